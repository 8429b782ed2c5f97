//! What one direction of a stream does with each packet its relay thread reads: checked and
//! routed by `media::relay`, counted, recorded, repacketised, forwarded (a stream the
//! gateway does not read, SRTP or T.38, only forwarded).

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::Instant;

use metrics::Counter;
use mio::net::UdpSocket;
use tracing::debug;

use super::Activity;
use crate::engine::wav::SharedRecorder;
use crate::media::relay::{Dir, Route, StreamRoute};
use crate::media::repacketize::{Repacketizer, Sent};
use crate::media::rtcp_translate::{self, Came, Translation};

/// What one direction of a stream does with each packet besides forwarding it.
pub(in crate::engine) struct Direction {
    dir: Dir,
    rtcp: bool,
    recorder: Option<SharedRecorder>,
    activity: Option<Activity>,
    repack: Option<Repacketizer>,
    /// RTP packets and bytes relayed toward the far leg (RTCP is not counted).
    counted: Option<(Counter, Counter)>,
    /// What this drain of the socket relayed, not yet added to `counted` and `activity`:
    /// both are shared (the counters by every stream of every relay thread), so they are
    /// touched once a drain rather than once a packet.
    unflushed: Unflushed,
    malformed: Counter,
    foreign: Counter,
    inactive: Counter,
    outside: Counter,
    over_rate: Counter,
    /// G.711 packets too long for the repacketiser to cut (more than its 12 packets).
    oversize: Counter,
    /// What the far side's RTCP says we are, in place of what the endpoint said it is.
    cname: Box<str>,
    /// The ptime the far leg gets its RTP repacketised to, as the stream's route last said
    /// (a failover may change it).
    toward_ptime: Option<u16>,
    /// The callee (`RelayPair::callee`) the repacketiser was made for.
    callee: u32,
    /// Where the repacketiser's last packets went: what it still holds goes there when its
    /// time comes ([`Direction::send_due`]).
    repack_dest: Option<SocketAddr>,
}

impl Direction {
    /// What RTP and RTCP directions share (`route`: the stream's, as it opens); RTP adds
    /// its counters, recorder and repacketiser.
    fn new(
        dir: Dir,
        rtcp: bool,
        route: &StreamRoute,
        activity: Option<Activity>,
        cname: &str,
    ) -> Self {
        let (toward_ptime, callee) = route.repacketised_toward(dir);
        Direction {
            dir,
            rtcp,
            recorder: None,
            activity,
            repack: None,
            counted: None,
            unflushed: Unflushed::default(),
            malformed: crate::ops::metrics::rtp_dropped("malformed"),
            foreign: crate::ops::metrics::rtp_dropped("foreign_source"),
            inactive: crate::ops::metrics::rtp_dropped("inactive"),
            outside: crate::ops::metrics::rtp_dropped("outside_networks"),
            over_rate: crate::ops::metrics::rtp_dropped("over_rate"),
            oversize: crate::ops::metrics::rtp_dropped("oversize"),
            cname: cname.into(),
            toward_ptime,
            callee,
            repack_dest: None,
        }
    }

    pub(in crate::engine) fn rtp(
        dir: Dir,
        route: &StreamRoute,
        recorder: Option<SharedRecorder>,
        activity: Option<Activity>,
        cname: &str,
    ) -> Self {
        let toward = match dir {
            Dir::AtoB => "callee",
            Dir::BtoA => "caller",
        };
        let counted = Some((
            crate::ops::metrics::rtp_packets(toward),
            crate::ops::metrics::rtp_bytes(toward),
        ));
        let common = Direction::new(dir, false, route, activity, cname);
        Direction {
            counted,
            recorder,
            repack: common.toward_ptime.map(Repacketizer::new),
            ..common
        }
    }

    /// RTCP counts as activity too: a call on hold may send no RTP but keeps its reports.
    pub(in crate::engine) fn rtcp(
        dir: Dir,
        route: &StreamRoute,
        activity: Option<Activity>,
        cname: &str,
    ) -> Self {
        Direction::new(dir, true, route, activity, cname)
    }

    /// The far leg is now repacketised to `ptime` for `callee` (a failover, to a peer of
    /// the same profile or another; a re-INVITE), or no more: a repacketiser of that ptime,
    /// or one that only numbers packets on from those it sent. What the old one held is
    /// dropped with the callee or the ptime it was for.
    fn repacketise_toward(&mut self, ptime: Option<u16>, callee: u32) {
        self.toward_ptime = ptime;
        let new_callee = std::mem::replace(&mut self.callee, callee) != callee;
        if !self.rtcp {
            if new_callee && ptime.is_none() {
                // Another peer, never sent a packet before: none to number on from. What
                // comes passes as sent, and its RTCP as it came.
                self.repack = None;
                return;
            }
            if new_callee && let Some(r) = self.repack.as_mut() {
                // Another peer: what it is told it got starts from nothing.
                r.forget_sent();
            }
            match (self.repack.as_mut(), ptime) {
                (Some(r), Some(p)) => r.restart(p),
                (Some(r), None) => r.stop(),
                (None, p) => self.repack = p.map(Repacketizer::new),
            }
        }
    }

    /// What this RTP direction's repacketiser sent toward the far leg of its latest stream;
    /// `None` when it renumbers nothing (no repacketiser, or nothing sent yet).
    pub(super) fn sent(&self) -> Option<Sent> {
        self.repack.as_ref().and_then(Repacketizer::sent)
    }

    /// The stream this RTP direction renumbers toward the far leg, with the highest
    /// sequence number it got of it in its sender's numbers: the far leg's reports on it
    /// are given that. `None` when it renumbers nothing.
    pub(super) fn renumbers(&self) -> Option<Came> {
        let r = self.repack.as_ref()?;
        r.sent()?;
        let (ssrc, highest) = r.came()?;
        Some(Came { ssrc, highest })
    }

    fn channel(&self) -> usize {
        match self.dir {
            Dir::AtoB => 0,
            Dir::BtoA => 1,
        }
    }

    /// One packet from `src`, read on the socket facing this direction's origin leg: checked
    /// and routed, counted, recorded, sent out of `to`. `Break`: the stream's shared state
    /// is gone (a poisoned lock), it cannot go on.
    pub(super) fn relay(
        &mut self,
        route: &Mutex<StreamRoute>,
        to: &UdpSocket,
        now: Instant,
        pkt: &[u8],
        src: SocketAddr,
        sides: RtpSides<'_>,
    ) -> ControlFlow<()> {
        let (decided, (ptime, callee), recorded) = match route.lock() {
            Ok(mut r) => (
                r.route(now, self.dir, self.rtcp, src, pkt),
                r.repacketised_toward(self.dir),
                r.is_recorded(),
            ),
            Err(_) => return ControlFlow::Break(()),
        };
        if (ptime, callee) != (self.toward_ptime, self.callee) {
            self.repacketise_toward(ptime, callee);
        }
        let (dest, what) = match decided {
            Route::Accept(dest) => (dest, Packet::Rtp),
            Route::Control(dest) => (dest, Packet::Rtcp),
            Route::Forward { to, rtcp } => (to, Packet::Unread { rtcp }),
            Route::Malformed => {
                self.malformed.increment(1);
                return ControlFlow::Continue(());
            }
            Route::Drop => {
                self.foreign.increment(1);
                return ControlFlow::Continue(());
            }
            Route::Inactive => {
                self.inactive.increment(1);
                return ControlFlow::Continue(());
            }
            Route::OutsideNetworks => {
                self.outside.increment(1);
                return ControlFlow::Continue(());
            }
            Route::OverRate => {
                self.over_rate.increment(1);
                return ControlFlow::Continue(());
            }
        };
        self.unflushed.active = true;
        let ch = self.channel();
        if what == Packet::Rtp
            && recorded
            && let Some(r) = &self.recorder
            // A recorder a panic left poisoned is half-updated: its recording stops there
            // (the file keeps what it had), the call goes on.
            && let Ok(mut r) = r.lock()
        {
            r.push(now, ch, pkt);
        }
        let Some(d) = dest else {
            return ControlFlow::Continue(());
        };
        let sent = match what {
            // Encrypted or not RTP: exactly as it came (an SRTP packet's tag covers it all).
            Packet::Unread { rtcp } => to.send_to(pkt, d).map(|_| !rtcp),
            Packet::Rtcp => {
                // Counts and reports in terms of the packets each leg got: the counts of
                // this way's repacketiser (this direction's own, multiplexed on the RTP
                // port), unless it was made for a callee before this one (it has seen no
                // packet since the failover: the new callee got none); the reports as the
                // other way's renumbers them.
                let sent = match sides.this_way {
                    Some(w) => w.sent().filter(|_| w.callee == self.callee),
                    None => self.sent(),
                };
                let back = sides.other_way.and_then(Direction::renumbers);
                let terms = Translation { sent, back };
                let translated = rtcp_translate::translate(pkt, terms);
                let pkt = translated.as_deref().unwrap_or(pkt);
                let scrubbed = crate::media::sdes::scrub_sdes(pkt, self.cname.as_bytes());
                let out = scrubbed.as_deref().unwrap_or(pkt);
                // Our CNAME in every chunk can make a compound of many empty chunks grow
                // several times over: what would exceed a packet is not sent.
                if out.is_empty() || out.len() > crate::media::MAX_PACKET {
                    Ok(false)
                } else {
                    to.send_to(out, d).map(|_| false)
                }
            }
            Packet::Rtp => match self.repack.as_mut() {
                // Another SSRC than the one numbered on: a new stream, whose numbers the leg
                // takes as they come. It and what follows pass as sent.
                Some(r) if self.toward_ptime.is_none() && !r.numbers_on(pkt) => {
                    self.repack = None;
                    to.send_to(pkt, d).map(|_| true)
                }
                // Repacketised before, no more: numbered on from what it sent.
                Some(r) if self.toward_ptime.is_none() => match r.renumber(pkt) {
                    Some(p) => to.send_to(&p, d).map(|_| true),
                    None => Ok(false),
                },
                Some(r) => {
                    self.repack_dest = Some(d);
                    let (dropped, oversize) = (r.stats.over_rate, r.stats.oversize);
                    let out = r.push(now, pkt);
                    self.over_rate.increment(r.stats.over_rate - dropped);
                    self.oversize.increment(r.stats.oversize - oversize);
                    // What went out is what is counted: packets cut or held, not came.
                    let sent = out.iter().try_for_each(|p| {
                        to.send_to(p, d)?;
                        self.unflushed.packets += 1;
                        self.unflushed.bytes += p.len() as u64;
                        Ok::<(), std::io::Error>(())
                    });
                    sent.map(|()| false)
                }
                None => to.send_to(pkt, d).map(|_| true),
            },
        };
        match sent {
            // Media relayed toward the far leg (RTCP is not counted).
            Ok(true) => {
                self.unflushed.packets += 1;
                self.unflushed.bytes += pkt.len() as u64;
            }
            Ok(false) => {}
            Err(e) => debug!(%d, error = %e, kind = ?what, "media send failed"),
        }
        ControlFlow::Continue(())
    }

    /// Whether the repacketiser holds audio short of a packet (it goes out on its own when
    /// its time comes: [`Direction::send_due`]).
    pub(super) fn holds(&self) -> bool {
        self.repack.as_ref().is_some_and(|r| r.due().is_some())
    }

    /// What the repacketiser held past its time goes out of `to`, short (the end of a
    /// talkspurt from a sender without comfort noise); true while it still holds some.
    pub(super) fn send_due(&mut self, to: &UdpSocket, now: Instant) -> bool {
        let (Some(r), Some(d)) = (self.repack.as_mut(), self.repack_dest) else {
            return false;
        };
        let dropped = r.stats.over_rate;
        if let Some(p) = r.flush_due(now) {
            match to.send_to(&p, d) {
                Ok(_) => {
                    self.unflushed.packets += 1;
                    self.unflushed.bytes += p.len() as u64;
                }
                Err(e) => debug!(%d, error = %e, "media send failed"),
            }
        }
        self.over_rate.increment(r.stats.over_rate - dropped);
        let holds = r.due().is_some();
        // (Counted as a drain's packets are; no packet came, so no activity.)
        self.flush(now);
        holds
    }

    /// The end of a drain: what it relayed goes to the counters, and the call's media
    /// clock reads `now` if any packet was accepted.
    pub(super) fn flush(&mut self, now: Instant) {
        let u = std::mem::take(&mut self.unflushed);
        if u.active
            && let Some(a) = &self.activity
        {
            *crate::threads::lock(a) = now;
        }
        if u.packets > 0
            && let Some((packets, bytes)) = &self.counted
        {
            packets.increment(u.packets);
            bytes.increment(u.bytes);
        }
    }
}

/// The RTP directions of a stream that RTCP read by another direction speaks of: this way's
/// (`None` when the reader is it, RTCP multiplexed on its port) and the other way's.
#[derive(Clone, Copy, Default)]
pub(super) struct RtpSides<'a> {
    pub(super) this_way: Option<&'a Direction>,
    pub(super) other_way: Option<&'a Direction>,
}

/// The direction reading socket `sock` (`A_RTP`, `A_RTCP`, `B_RTP`, `B_RTCP`), and the
/// stream's RTP directions its RTCP speaks of (read only when RTCP comes: an RTP packet
/// touches no other direction).
pub(super) fn with_rtp_sides(
    dirs: &mut [Option<Direction>; 4],
    sock: usize,
) -> Option<(&mut Direction, RtpSides<'_>)> {
    let (a, b) = dirs.split_at_mut(2);
    let (own, far) = if sock < 2 { (a, b) } else { (b, a) };
    let ([rtp, rtcp], [far_rtp, _]) = (own, far) else {
        return None;
    };
    let (d, this_way) = if sock.is_multiple_of(2) {
        (rtp, None)
    } else {
        (rtcp, (*rtp).as_ref())
    };
    let other_way = (*far_rtp).as_ref();
    Some((
        d.as_mut()?,
        RtpSides {
            this_way,
            other_way,
        },
    ))
}

/// What a routed packet is to its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packet {
    /// RTP in the clear: recorded, repacketised, counted.
    Rtp,
    /// RTCP, from either port: its source descriptions replaced.
    Rtcp,
    /// A packet of a stream the gateway does not read: sent as it came; `rtcp` when it
    /// came as RTCP (not counted as media).
    Unread { rtcp: bool },
}

/// See [`Direction::flush`].
#[derive(Debug, Default)]
struct Unflushed {
    active: bool,
    packets: u64,
    bytes: u64,
}
