//! Where each RTP/RTCP packet of an anchored stream goes: the relay's policy, sans-IO. The
//! shell's relay (`engine/media.rs`) owns the sockets and asks [`StreamRoute::route`] about
//! every packet; latching and destinations are decided here, testable without a socket.

use std::net::{IpAddr, SocketAddr};

use std::time::Instant;

use super::rtp_check::{muxed_rtcp, rtcp_sender};
use super::{
    Latch, PacketError, RelayPair, RtpHead, SourceLatch, StreamKind, check_datagram, check_rtcp,
    check_rtp, check_srtcp, check_srtp,
};

/// Which way a packet travels: from the caller's leg toward the callee's, or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    AtoB,
    BtoA,
}

/// What becomes of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Not a well-formed RTP/RTCP packet (`media::check_rtp`/`check_rtcp`): drop it before
    /// anything parses it.
    Malformed,
    /// Not from the leg's peer: drop it (it counts as no activity and is not recorded).
    Drop,
    /// On a stream that is off (refused with port 0, or its call ended and its ports not yet
    /// given back): dropped as [`Route::Drop`], counted apart. The peer's own packets
    /// sent before it heard of the end are no stranger's.
    Inactive,
    /// From outside the leg's peer's media networks ([`RelayPair::a_networks`]): dropped
    /// as [`Route::Drop`], counted apart.
    OutsideNetworks,
    /// From the leg's peer, but over [`MAX_PACKETS_PER_SECOND`] on this stream: dropped,
    /// so no peer can make the gateway relay (or record) a flood.
    OverRate,
    /// RTP from the leg's peer: send it here, or nowhere yet when the far leg's address is
    /// not known (it still counts as activity and is recorded).
    Accept(Option<SocketAddr>),
    /// RTCP from the leg's peer, on the RTCP port or multiplexed on the RTP port (RFC 5761):
    /// send it here with its source descriptions replaced (it counts as activity; it is not
    /// recorded, repacketised or counted as RTP).
    Control(Option<SocketAddr>),
    /// From the leg's peer, on a stream the gateway does not read ([`StreamKind::Srtp`],
    /// [`StreamKind::Datagram`]): send it `to` exactly as it came (it counts as activity,
    /// and is neither recorded nor repacketised); `rtcp` when it came as RTCP (on the RTCP
    /// port, or multiplexed), which is not counted as media.
    Forward { to: Option<SocketAddr>, rtcp: bool },
}

/// RTP packets one leg may send on one stream in a second. Audio is 50 (20 ms packets) to
/// 100; video a few hundred; more is a flood, not media.
pub const MAX_PACKETS_PER_SECOND: u32 = 1000;
/// RTCP packets one leg may send on one stream in a second, counted apart from its RTP:
/// reports come every few seconds, feedback (RFC 4585) a few dozen a second at most. Apart,
/// so RTCP (whose source port is not the RTP's) can never use up the leg's RTP allowance.
pub const MAX_RTCP_PER_SECOND: u32 = 200;

/// Where one leg's packets of one stream come from and go to.
#[derive(Debug, Default, Clone, Copy)]
struct LegAddrs {
    /// Its RTP address from its SDP.
    sdp: Option<SocketAddr>,
    /// The IP `latch = "sdp-ip"` accepts packets from: the last usable one its SDP gave.
    /// An SDP without one (old-style hold, `c=0.0.0.0`) keeps the previous; a leg that
    /// never gave one is accepted from nowhere, not from anywhere.
    sdp_ip: Option<IpAddr>,
    /// The last address its SDP named, kept through an SDP that names none (an old-style
    /// hold): whether a resume moved the leg is judged against it, never sent to.
    named: Option<SocketAddr>,
    /// Its SDP's RTCP port when not the RTP port + 1 ([`RelayPair::a_rtcp_port`]).
    sdp_rtcp_port: Option<u16>,
    rtp: SourceLatch,
    rtcp: Option<SocketAddr>,
    latch: Option<Latch>,
    /// Its peer has sent SDP (see [`RelayPair::a_heard`]).
    heard: bool,
    /// Nothing is sent to `sdp` before the leg's source is latched
    /// ([`RelayPair::a_wait_for_source`]).
    wait_for_source: bool,
    /// Of those, one whose SDP names no host the relay can judge: a private address behind
    /// its NAT, or an address that is no destination while its signalling comes from
    /// elsewhere (a remote phone naming 127.0.0.1). One whose signalling comes from its SDP's
    /// own IP, or from loopback (a PBX or SBC on this host), is that host.
    names_no_host: bool,
    /// Accepted RTP packets in the current one-second window, and RTCP apart.
    rtp_rate: Rate,
    rtcp_rate: Rate,
}

/// Packets counted in a one-second window.
#[derive(Debug, Default, Clone, Copy)]
struct Rate {
    window: Option<Instant>,
    in_window: u32,
}

impl Rate {
    /// Count one accepted packet; false when over `max` this second.
    fn within(&mut self, now: Instant, max: u32) -> bool {
        match self.window {
            Some(start)
                if now.saturating_duration_since(start) < std::time::Duration::from_secs(1) => {}
            _ => {
                self.window = Some(now);
                self.in_window = 0;
            }
        }
        self.in_window = self.in_window.saturating_add(1);
        self.in_window <= max
    }
}

impl LegAddrs {
    fn new(
        (sdp, sdp_rtcp_port): (Option<SocketAddr>, Option<u16>),
        latch: Latch,
        rebind_after: std::time::Duration,
        (heard, wait_for_source): (bool, bool),
        signalling: Option<IpAddr>,
        now: Instant,
    ) -> Self {
        LegAddrs {
            sdp,
            sdp_ip: sdp.map(|a| a.ip()),
            named: sdp,
            sdp_rtcp_port,
            latch: Some(latch),
            heard,
            wait_for_source,
            names_no_host: wait_for_source
                && sdp.is_some_and(|s| {
                    let from = signalling.map(|ip| ip.to_canonical());
                    from != Some(s.ip()) && !from.is_some_and(|ip| ip.is_loopback())
                }),
            rtp: SourceLatch::with_rebind_after(rebind_after).opened(now, signalling),
            ..LegAddrs::default()
        }
    }

    /// Its SDP's RTP address as a source the latch prefers: none when its SDP names no host
    /// ([`LegAddrs::names_no_host`]: behind NAT, a packet from there can only be a spoof, or
    /// a host of our own network).
    fn sdp_source(&self) -> Option<SocketAddr> {
        self.sdp.filter(|_| !self.names_no_host)
    }

    /// Its SDP's RTP address, where it is sent to before latching; none for a leg that
    /// waits for its source ([`RelayPair::a_wait_for_source`]: behind NAT, or on an address
    /// that is no destination).
    fn sdp_dest(&self) -> Option<SocketAddr> {
        self.sdp.filter(|_| !self.wait_for_source)
    }

    /// Whether a packet from `src` may be this leg's: an IPv6 source that is one of this
    /// host's own addresses (`host_ips`) only for a leg on this host, one whose signalling
    /// comes from loopback or from one of those addresses (a PBX or SBC beside the gateway:
    /// its packets to our media address come from an address of ours, whatever its SDP
    /// says). From outside such a packet is a spoof, and the relay would answer into
    /// whatever listens there; what a leg's SDP names does not make it one of ours (a remote
    /// caller may name our address). IPv4 is left to the kernel, which drops a packet from
    /// outside claiming a local source. Only a source new to the leg is looked up.
    fn may_be_sent_from(&self, src: SocketAddr, host_ips: &[IpAddr]) -> bool {
        let ip = match src.ip().to_canonical() {
            IpAddr::V6(v6) => IpAddr::V6(v6),
            IpAddr::V4(_) => return true,
        };
        if self.rtp.source() == Some(src) || self.rtcp == Some(src) || !host_ips.contains(&ip) {
            return true;
        }
        self.rtp
            .signalling()
            .is_some_and(|s| s.is_loopback() || host_ips.contains(&s))
    }

    /// Where this leg's RTCP goes before its own shows where it is: the port its SDP named
    /// (`a=rtcp`), else the RTP port + 1, at [`LegAddrs::sdp_dest`]'s IP. RTP on 65535 has
    /// no port above it: none, not port 0.
    fn sdp_rtcp_dest(&self) -> Option<SocketAddr> {
        let rtp = self.sdp_dest()?;
        let port = self.sdp_rtcp_port.or(rtp.port().checked_add(1))?;
        Some(SocketAddr::new(rtp.ip(), port))
    }

    /// Whether `port` is one this leg's SDP says its RTCP is on: the one `a=rtcp` named,
    /// else the RTP port + 1 (of its latched source, `rtp`).
    fn rtcp_port_of(&self, rtp: SocketAddr, port: u16) -> bool {
        self.sdp_rtcp_port == Some(port) || rtp.port().checked_add(1) == Some(port)
    }

    /// Where this leg's RTP goes: its latched source, else [`LegAddrs::sdp_dest`].
    fn rtp_dest(&self) -> Option<SocketAddr> {
        self.rtp.source().or(self.sdp_dest())
    }
}

/// The routing state of one anchored stream (RTP and its RTCP).
#[derive(Debug, Clone)]
pub struct StreamRoute {
    kind: StreamKind,
    rtcp_mux: bool,
    a: LegAddrs,
    b: LegAddrs,
    callee: u32,
    /// The ptime each leg is repacketised to (`RelayPair::a_ptime`, `b_ptime`): a failover
    /// to a peer of another profile changes the callee's.
    a_ptime: Option<u16>,
    b_ptime: Option<u16>,
    /// [`RelayPair::active`]: a stream turned off relays nothing.
    active: bool,
    /// [`RelayPair::flowing`].
    flowing: bool,
    /// [`RelayPair::host_ips`].
    host_ips: std::sync::Arc<[IpAddr]>,
    /// [`RelayPair::a_networks`], [`RelayPair::b_networks`].
    a_networks: Option<std::sync::Arc<[ipnet::IpNet]>>,
    b_networks: Option<std::sync::Arc<[ipnet::IpNet]>>,
    /// Its RTP goes into the call's recording: the call's first G.711 stream, or one that
    /// became G.711 later (a re-INVITE) when the call had none.
    recorded: bool,
}

impl StreamRoute {
    /// A stream as `p` says, its legs' latches opened at `now`.
    pub fn new(p: &RelayPair, now: Instant) -> Self {
        StreamRoute {
            kind: p.kind,
            rtcp_mux: p.rtcp_mux,
            a: LegAddrs::new(
                (p.a_remote, p.a_rtcp_port),
                p.a_latch,
                p.a_rebind_after,
                (p.a_heard, p.a_wait_for_source),
                p.a_signalling,
                now,
            ),
            b: LegAddrs::new(
                (p.b_remote, p.b_rtcp_port),
                p.b_latch,
                p.b_rebind_after,
                (p.b_heard, p.b_wait_for_source),
                p.b_signalling,
                now,
            ),
            callee: p.callee,
            a_ptime: p.a_ptime,
            b_ptime: p.b_ptime,
            active: p.active,
            flowing: p.flowing,
            host_ips: p.host_ips.clone(),
            a_networks: p.a_networks.clone(),
            b_networks: p.b_networks.clone(),
            recorded: false,
        }
    }

    /// From now on its RTP goes into the call's recording.
    pub fn record(&mut self) {
        self.recorded = true;
    }

    /// From now on its RTP goes into the recording no more (another stream is to).
    pub fn unrecord(&mut self) {
        self.recorded = false;
    }

    /// Whether its RTP goes into the call's recording.
    pub fn is_recorded(&self) -> bool {
        self.recorded
    }

    /// How the leg `dir` sends toward is repacketised: the ptime (if it is), and which
    /// callee side B is (audio held for a callee that failed is not for the next one).
    pub fn repacketised_toward(&self, dir: Dir) -> (Option<u16>, u32) {
        let ptime = match dir {
            Dir::AtoB => self.b_ptime,
            Dir::BtoA => self.a_ptime,
        };
        (ptime, self.callee)
    }

    /// Check a packet as its stream's kind expects; its RTP identity when it has one the
    /// latch can use.
    fn check(&self, rtcp: bool, packet: &[u8]) -> Result<Option<RtpHead>, PacketError> {
        let head = |v: super::RtpView<'_>| {
            Some(RtpHead {
                ssrc: v.ssrc,
                seq: v.sequence,
                ts: v.timestamp,
            })
        };
        match (self.kind, rtcp) {
            (StreamKind::Rtp, false) => check_rtp(packet).map(head),
            (StreamKind::Rtp, true) => check_rtcp(packet).map(|_| None),
            (StreamKind::Srtp, false) => check_srtp(packet).map(head),
            (StreamKind::Srtp, true) => check_srtcp(packet).map(|_| None),
            (StreamKind::Datagram, _) => check_datagram(packet).map(|()| None),
        }
    }

    /// A new offer/answer. A leg whose SDP moved its media is learnt again from its next
    /// packets (the latch empties). A leg whose SDP still names the same address keeps its
    /// latched source: a session refresh or a hold/resume must not reopen the moment in which
    /// the first packet from anywhere takes the leg (audit C1); a NAT that rebinds is still
    /// followed after a silence ([`crate::media::MOVE_AFTER_SILENCE`]).
    pub fn update(&mut self, p: &RelayPair, now: Instant) {
        let old = std::mem::replace(self, StreamRoute::new(p, now));
        // Recorded once, recorded while it is the call's G.711 audio (the recording is one
        // stream's; the engine moves it when the stream stops being that).
        self.recorded = old.recorded;
        let same_callee = self.callee == old.callee;
        let resumed = self.flowing && !old.flowing;
        for (new, old, same_peer) in [
            (&mut self.a, old.a, true),
            (&mut self.b, old.b, same_callee),
        ] {
            // The socket's second goes on whatever the signalling says: reset by each
            // offer/answer, a peer sending one after each answer had a fresh allowance each.
            new.rtp_rate = old.rtp_rate;
            new.rtcp_rate = old.rtcp_rate;
            // Another callee (a failover): its leg is learnt from nothing.
            if !same_peer {
                continue;
            }
            new.sdp_ip = new.sdp_ip.or(old.sdp_ip);
            new.named = new.sdp.or(old.named);
            // An SDP that names no address (an old-style hold, `c=0.0.0.0`) did not move
            // the leg, nor did the resume that names the address it had before: emptied,
            // its latch would go to whoever sends first.
            if (new.sdp.is_none() || new.sdp == old.named) && new.latch == old.latch {
                // Media that flows both ways again (a resume from hold) opens a leg that has
                // sent nothing, and one latched to a better-ranked source for a while (a
                // phone behind NAT back from hold on a new public port); an update that does
                // not change that (the other leg's offer, a refresh, a refused offer) opens
                // neither: the latch goes on as it was. (Reopened at every update, a latched
                // leg was open for a while after each re-INVITE the other party sent.)
                if resumed {
                    new.rtp.keep_source(&old.rtp, now);
                } else {
                    new.rtp.carry(&old.rtp);
                }
                new.rtcp = old.rtcp;
            } else {
                // Only the port moved, on the same host: its old source is this endpoint
                // (behind NAT its packets still come from there), not one to hold off. A
                // private address names no host: many NATs hide a 192.168.1.100.
                let same_host = !new.names_no_host
                    && !old.names_no_host
                    && new.sdp.map(|a| a.ip()) == old.named.map(|a| a.ip());
                new.rtp.moved_from(&old.rtp, now, same_host);
            }
        }
    }

    /// The call was answered at `now`: a leg that has sent nothing yet may take its source
    /// from anywhere again for a while ([`crate::media::latch::OPEN_TO_ANYONE`]).
    pub fn answered(&mut self, now: Instant) {
        self.a.rtp.answered(now);
        self.b.rtp.answered(now);
    }

    /// Decide about a packet that arrived from `src` on the socket facing `dir`'s origin leg.
    pub fn route(
        &mut self,
        now: Instant,
        dir: Dir,
        rtcp: bool,
        src: SocketAddr,
        packet: &[u8],
    ) -> Route {
        // RTCP multiplexed on the RTP port (when both legs agreed to it) is read and sent
        // on as RTCP.
        let muxed =
            !rtcp && self.rtcp_mux && self.kind != StreamKind::Datagram && muxed_rtcp(packet);
        let rtcp = rtcp || muxed;
        if !self.active {
            return Route::Inactive;
        }
        let Ok(head) = self.check(rtcp, packet) else {
            return Route::Malformed;
        };
        let read = self.kind == StreamKind::Rtp;
        let (mine, other, networks) = match dir {
            Dir::AtoB => (&mut self.a, &self.b, &self.a_networks),
            Dir::BtoA => (&mut self.b, &self.a, &self.b_networks),
        };
        // Before the latch and the rate count: nothing from outside the peer's networks is
        // its leg's, on any port, however the latch would take it.
        if let Some(n) = networks.as_deref()
            && !crate::config::net::holds(n, src.ip())
        {
            return Route::OutsideNetworks;
        }
        // No source that is no destination: the far leg's would go there (`[::]:p` is sent
        // to `[::1]:p`, a service on this host).
        if src.port() == 0 || !crate::config::net::names_one_host(src.ip()) {
            return Route::Drop;
        }
        let accept = match mine.latch.unwrap_or(Latch::Any) {
            Latch::Any => mine.heard,
            Latch::SdpIp => mine.sdp_ip == Some(src.ip()),
        };
        if !accept || !mine.may_be_sent_from(src, &self.host_ips) {
            return Route::Drop;
        }
        // Latch: this leg is answered where it sends from. RTCP follows the latched RTP
        // address's IP; RTP itself moves only on a verified SSRC change. Only what the latch
        // accepts counts against the leg's rate: strangers' packets must not use it up, or
        // anyone could silence the leg's real source by spraying its port.
        if rtcp {
            match mine.rtp.source() {
                Some(a) if a.ip() != src.ip() => return Route::Drop,
                // Multiplexed RTCP comes from the RTP source itself.
                Some(a) if muxed && a != src => return Route::Drop,
                // Another port on the same IP (a second phone behind the same NAT) must not
                // take where the far leg's reports go: they carry this leg's SSRC and
                // sequence number, what a NAT rebind is checked against. The leg's own
                // reports name its stream's SSRC as their sender's (RFC 3550 §6.4), which
                // nobody off its path knows: only those are taken, from whichever port
                // (its NAT may map RTCP anew). One of the few other SSRCs the source sent
                // lately too (a video stream's retransmissions or FEC, events under their
                // own SSRC: before, their reports were dropped whenever the last packet was
                // another's).
                Some(_)
                    if mine.rtp.ssrc().is_some()
                        && !rtcp_sender(packet).is_some_and(|s| mine.rtp.knows_ssrc(s)) =>
                {
                    return Route::Drop;
                }
                Some(_) if mine.rtp.ssrc().is_some() => {}
                // A stream whose SSRC the relay does not read: the first port heard is its
                // RTCP (or the port its SDP gave RTCP after it).
                Some(a)
                    if !muxed
                        && mine.rtcp.is_some_and(|r| r != src)
                        && !mine.rtcp_port_of(a, src.port()) =>
                {
                    return Route::Drop;
                }
                // A datagram stream (T.38) has no RTCP of its own: its RTCP port relays only
                // beside a source already latched, so no stranger can set where the far
                // leg's packets to it go.
                None if self.kind == StreamKind::Datagram => return Route::Drop,
                // Before the leg's RTP is latched, RTCP only from its SDP's IP (an endpoint
                // that only listens still reports): a stranger's would set where the far
                // leg's reports go, and they carry this leg's SSRC and sequence number,
                // what a NAT rebind is checked against.
                None if mine.sdp_source().is_none_or(|s| s.ip() != src.ip()) => return Route::Drop,
                _ => {}
            }
            if !mine.rtcp_rate.within(now, MAX_RTCP_PER_SECOND) {
                return Route::OverRate;
            }
            let to = if muxed {
                // The far leg multiplexes too (both sides agreed to `a=rtcp-mux`).
                other.rtp_dest()
            } else {
                mine.rtcp = Some(src);
                other.rtcp.or(other.sdp_rtcp_dest())
            };
            if read {
                Route::Control(to)
            } else {
                Route::Forward { to, rtcp: true }
            }
        } else {
            let before = mine.rtp.source();
            if !mine.rtp.accept(now, src, head, mine.sdp_source()) {
                return Route::Drop;
            }
            // RTCP follows the RTP source: one learnt beside another source (a NAT that
            // rebound maps RTCP anew too) is learnt again.
            let moved = before.is_some_and(|b| b != src);
            if moved || (before.is_none() && mine.rtcp.is_some_and(|r| r.ip() != src.ip())) {
                mine.rtcp = None;
            }
            if !mine.rtp_rate.within(now, MAX_PACKETS_PER_SECOND) {
                return Route::OverRate;
            }
            let to = other.rtp_dest();
            if read {
                Route::Accept(to)
            } else {
                Route::Forward { to, rtcp: false }
            }
        }
    }
}

#[cfg(test)]
mod tests;
