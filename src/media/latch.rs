//! Learning where one leg's RTP really comes from (symmetric RTP behind NAT), without letting
//! anyone else take the leg over ("RTP bleed", audit C1).
//!
//! After each offer/answer the latch is empty and the first accepted packet fixes the source,
//! from anywhere only for [`OPEN_TO_ANYONE`] after the offer/answer (or the answer); after
//! that an empty latch takes only a source on the leg's SDP IP or its signalling IP, so a
//! leg that stays silent (a listen-only endpoint, a video stream with the camera off, a
//! call answered on hold) is not the first sprayer's, however much later.
//! For [`LEARNING`] after that packet a source that matches the leg's SDP better (its exact
//! address, then its IP) still takes the latch over: whoever sprays the port just after an
//! answer wins the first packet, but not against an endpoint that sends from where its SDP
//! says. After that, packets from any other address are dropped, with one exception for a
//! NAT that rebinds mid-call: the latched
//! source has been silent for [`MOVE_AFTER_SILENCE`] and the new address continues the *same*
//! stream (same SSRC, sequence number a little ahead). An attacker off the path knows neither
//! the SSRC nor the sequence; a new stream (a restarted phone, a transfer elsewhere) moves
//! the latch only through signalling that moves the leg's SDP address, which empties it
//! again (an offer/answer that leaves it where it was keeps the latch).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long after an offer/answer (or the answer) an empty latch takes its first source from
/// anywhere: an endpoint behind NAT sends from an address no SDP names, and starts within a
/// second or two of the answer.
pub const OPEN_TO_ANYONE: Duration = Duration::from_secs(10);

/// How long the latched source must have been silent before another address may continue
/// its stream.
pub const MOVE_AFTER_SILENCE: Duration = Duration::from_secs(2);
/// How far ahead the sequence number of a continued stream may be (packets lost in between),
/// beyond what the silence itself explains: the endpoint went on sending from its new
/// address while the latch waited, at most a packet every [`FASTEST_PACKETS`].
const MAX_SEQ_GAP: u16 = 500;
/// The shortest packet time counted on when a silence explains a sequence gap.
const FASTEST_PACKETS: Duration = Duration::from_millis(10);
/// How long after the first packet a source that matches the SDP better may still take the
/// latch: an endpoint's first packets follow the answer within a second or two.
pub const LEARNING: Duration = Duration::from_secs(3);
/// After an offer/answer that kept the source, how long (from that offer/answer) another
/// source may still take over once the latched one has been silent, or from the same IP: a
/// NATed phone resuming from a hold on a new public port, or a trunk answering from another
/// port than its early media, often with a new SSRC. Counted from the signalling, not from
/// the next packet: a leg that stays silent (on hold) must not be open to whoever sends
/// first, however much later. Within it a new source is taken from the latched source's IP
/// or the SDP's, never from elsewhere, silent latch or not.
const REOPENED: Duration = Duration::from_secs(10);
/// Within [`REOPENED`], a latched source that has gone on sending after the offer/answer
/// (more than this past it) keeps the leg until it pauses this long: a trunk's early media
/// stops when it answers (its last packets still in flight arrive within this), so its
/// answer's stream from another port takes over at once, but a stream still running after
/// the offer/answer (a phone put on hold or resumed, talking) is not taken over meanwhile
/// by a sender on its IP or the SDP's (a spoof, a neighbour behind the same NAT).
const REOPEN_QUIET: Duration = Duration::from_millis(100);
/// How long a source whose last packets came within [`REOPEN_QUIET`] of the offer/answer
/// must have been quiet: its stream ended then (early media), not one that runs on.
const TAIL_QUIET: Duration = Duration::from_millis(40);
/// Either pause is at least twice the source's own packet spacing (a 60 ms stream, a lost
/// packet), counting a spacing up to this (a stream back from a silence has a long one, and
/// must not keep its leg from a new stream for the whole window).
const MAX_SPACING: Duration = Duration::from_millis(150);

/// Packets this far apart on average over the last three (or fewer than three) from the
/// latched address are sparser than any voice stream's (60 ms packets at most, a lost one
/// between): while learning, another source ranked as well may take the leg from them once
/// they pause. Judged over three packets, not the last two: a pair a few ms apart is what a
/// sprayer sends each port, and a voice stream's packets may come in one read (one instant).
const SPARSE_GAP: Duration = Duration::from_millis(130);

/// What the latch needs of an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHead {
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Latched {
    addr: SocketAddr,
    /// The last packet's stream identity; `None` on a stream the relay does not read (T.38,
    /// DTLS), which therefore never moves after a silence, only through signalling.
    head: Option<RtpHead>,
    /// The last few other SSRCs this address sent (a video stream's retransmissions, its
    /// FEC, telephone-events under an SSRC of their own): its RTCP may name any of them
    /// as its sender ([`RtpLatch::knows_ssrc`]).
    others: [Option<u32>; 3],
    seen: Instant,
    /// When the two packets before the last came from it, the later first: how sparse it
    /// is, and how long a pause of its own is.
    before: [Option<Instant>; 2],
    /// When the latch was first set after the last offer/answer (the learning window's start).
    learnt: Instant,
}

impl Latched {
    /// Fewer than three packets, or three sent further apart on average than a voice
    /// stream's ([`SPARSE_GAP`]).
    fn sparse(&self) -> bool {
        self.before[1].is_none_or(|t| self.seen.saturating_duration_since(t) >= SPARSE_GAP * 2)
    }

    /// Its packets' spacing, on average over the last three (zero after the first).
    fn spacing(&self) -> Duration {
        match self.before {
            [_, Some(t)] => self.seen.saturating_duration_since(t) / 2,
            [Some(t), None] => self.seen.saturating_duration_since(t),
            _ => Duration::ZERO,
        }
    }
}

/// The latched source of one leg's RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLatch {
    current: Option<Latched>,
    /// How long the latched source must be silent before the stream may move.
    rebind_after: Duration,
    /// Whether an offer/answer kept the source, and since which packet ([`REOPENED`]).
    reopened: Reopened,
    /// The source an offer/answer moved the leg away from, and when: not latched again
    /// for [`LEARNING`] after it (the old endpoint still sends until its BYE, and would
    /// otherwise take the emptied latch from the new one), unless it is on the IP the new
    /// SDP names (the same endpoint, its SDP's port changed: an SBC that sends from one
    /// port whatever its SDP says), and whether the move was to another port of the same
    /// host (its SDP's IP did not change): its old source is that endpoint, not one to hold
    /// off.
    moved_from: Option<(SocketAddr, Instant, bool)>,
    /// Since when an empty latch takes a source from anywhere ([`OPEN_TO_ANYONE`]); `None`:
    /// at any time (a latch no relay opened: the rules' own tests).
    open_since: Option<Instant>,
    /// The IP the leg's signalling comes from (a NATed endpoint's public address, usually
    /// its RTP's too): a source there may latch after the window, and continue a stream
    /// from a new address.
    signalling: Option<std::net::IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reopened {
    No,
    /// Kept by the offer/answer at this instant.
    Since(Instant),
}

impl Default for SourceLatch {
    fn default() -> Self {
        SourceLatch::with_rebind_after(MOVE_AFTER_SILENCE)
    }
}

impl SourceLatch {
    /// A latch that lets the stream move after `rebind_after` of silence
    /// (`[media] rebind_after_silence_ms`).
    pub fn with_rebind_after(rebind_after: Duration) -> Self {
        SourceLatch {
            current: None,
            rebind_after,
            reopened: Reopened::No,
            moved_from: None,
            open_since: None,
            signalling: None,
        }
    }

    /// Opened at `now` to a first source from anywhere for [`OPEN_TO_ANYONE`], then to one
    /// on the SDP's IP or on `signalling`, the IP of the leg's signalling.
    pub fn opened(mut self, now: Instant, signalling: Option<std::net::IpAddr>) -> Self {
        self.open_since = Some(now);
        self.signalling = signalling.map(|ip| ip.to_canonical());
        self
    }

    /// The call was answered at `now`: a leg still without a source (its endpoint sends
    /// only once answered) is open to anyone again for [`OPEN_TO_ANYONE`], and a leg whose
    /// source latched while ringing learns afresh for [`LEARNING`] (a sprayer that sent
    /// first then does not keep it against the endpoint's own packets).
    pub fn answered(&mut self, now: Instant) {
        match self.current.as_mut() {
            Some(l) => l.learnt = now,
            None if self.open_since.is_some() => self.open_since = Some(now),
            None => {}
        }
    }

    /// The leg's media moved (its SDP names another address) at `now`, away from `old`'s
    /// source: the latch is learnt afresh, but not from that source for a while.
    pub fn moved_from(&mut self, old: &SourceLatch, now: Instant, same_host: bool) {
        self.moved_from = old.current.map(|l| (l.addr, now, same_host));
    }

    /// Carry `old`'s latched source over (this leg's media did not move) at an offer/answer
    /// at `now` that makes the stream's media flow both ways again (a resume from hold),
    /// but let a new one take over for a while if the old one has gone quiet or comes from
    /// its IP ([`REOPENED`]), and learn afresh: a source at the SDP's address may win it
    /// back within [`LEARNING`]. A leg still empty is opened again (its `open_since` is
    /// this update's). Any other offer/answer that leaves the leg where it was changes
    /// nothing of its latch ([`SourceLatch::carry`]): it must not open a silent leg to the
    /// next sprayer. What an earlier move holds off stays held off.
    pub fn keep_source(&mut self, old: &SourceLatch, now: Instant) {
        self.current = old.current.map(|l| Latched { learnt: now, ..l });
        self.moved_from = old.moved_from;
        if self.current.is_some() {
            self.reopened = Reopened::Since(now);
        }
    }

    /// Go on exactly as `old` (an offer/answer that changed nothing of this leg).
    pub fn carry(&mut self, old: &SourceLatch) {
        self.current = old.current;
        self.reopened = old.reopened;
        self.moved_from = old.moved_from;
        self.open_since = old.open_since;
    }

    /// The IP the leg's signalling comes from, when the relay was told it.
    pub fn signalling(&self) -> Option<std::net::IpAddr> {
        self.signalling
    }

    /// Where this leg's RTP is latched, once a packet has arrived.
    pub fn source(&self) -> Option<SocketAddr> {
        self.current.map(|l| l.addr)
    }

    /// The SSRC of the latched source's stream, when it has one the relay reads.
    pub fn ssrc(&self) -> Option<u32> {
        self.current.and_then(|l| l.head).map(|h| h.ssrc)
    }

    /// Whether the latched source sent RTP under `ssrc`: its last packet's, or one of the
    /// few others it sent lately.
    pub fn knows_ssrc(&self, ssrc: u32) -> bool {
        self.current.is_some_and(|l| {
            l.head.is_some_and(|h| h.ssrc == ssrc) || l.others.contains(&Some(ssrc))
        })
    }

    /// Whether a packet from `src` belongs to this leg; latches the first one. `p`: its RTP
    /// stream identity, `None` for a datagram that has none the relay can read. `sdp` is
    /// the leg's RTP address from its SDP, when it named a usable one: a source there is
    /// preferred while the latch is learning.
    pub fn accept(
        &mut self,
        now: Instant,
        src: SocketAddr,
        p: Option<RtpHead>,
        sdp: Option<SocketAddr>,
    ) -> bool {
        // How well an address matches the leg's SDP: 2 its exact address, 1 its IP, 0
        // neither; and the leg: its signalling's IP (behind NAT, where its packets come
        // from) ranks as the SDP's IP.
        let sdp_rank = |a: SocketAddr| match sdp {
            Some(s) if s == a => 2,
            Some(s) if s.ip() == a.ip() => 1,
            _ => 0,
        };
        let signalling = self.signalling;
        let rank =
            |a: SocketAddr| sdp_rank(a).max(u8::from(signalling == Some(a.ip().to_canonical())));
        let open = self
            .open_since
            .is_none_or(|t| now.saturating_duration_since(t) < OPEN_TO_ANYONE);
        let reopened_at = match self.reopened {
            Reopened::Since(t) if now.saturating_duration_since(t) < REOPENED => Some(t),
            _ => None,
        };
        // A packet that is accepted latches; the learning window runs from the first one.
        let same = self.current.filter(|l| l.addr == src);
        let fresh = Latched {
            addr: src,
            head: p,
            others: same.map_or([None; 3], |l| match (l.head, p) {
                (Some(old), Some(new))
                    if old.ssrc != new.ssrc && !l.others.contains(&Some(old.ssrc)) =>
                {
                    [Some(old.ssrc), l.others[0], l.others[1]]
                }
                _ => l.others,
            }),
            seen: now,
            before: same.map_or([None, None], |l| [Some(l.seen), l.before[0]]),
            learnt: self.current.map_or(now, |l| l.learnt),
        };
        match self.current {
            // (Not judged by the signalling's IP: behind one NAT, the phone a transfer moved
            // the leg away from is on it too.)
            None if self.moved_from.is_some_and(|(a, t, same_host)| {
                !same_host
                    && a == src
                    && sdp_rank(src) == 0
                    && now.saturating_duration_since(t) < LEARNING
            }) =>
            {
                false
            }
            None if !open && rank(src) == 0 => false,
            // Open to anyone, but not to a private or loopback source for a leg whose own
            // signalling is not there: a spoof from 10.0.0.5 would have the far leg's
            // media sent into our own network (as RTCP is never taken from there).
            None if rank(src) == 0 && self.inside_for_an_outside_leg(src, sdp) => false,
            None => {
                self.current = Some(fresh);
                true
            }
            // The latched source: it may restart its stream (new SSRC) behind the same address.
            Some(l) if l.addr == src => {
                self.current = Some(fresh);
                true
            }
            // Still learning, and this source is where the SDP said (or nearer to it).
            Some(l)
                if now.saturating_duration_since(l.learnt) < LEARNING
                    && rank(src) > rank(l.addr) =>
            {
                self.current = Some(fresh);
                true
            }
            // Still learning, a source ranked as well (another port of the signalling's IP:
            // a NATed phone), and the latched one is sparse and paused, as a sprayer is (it
            // hits each port a few times a second): the stream takes the leg. A latched
            // source sending as a voice stream does (a packet every 60 ms or sooner) is kept;
            // one that sprays faster than that at every port costs its sender 10 times the
            // packets.
            Some(l)
                if now.saturating_duration_since(l.learnt) < LEARNING
                    && rank(src) > 0
                    && rank(src) == rank(l.addr)
                    && l.sparse()
                    && now.saturating_duration_since(l.seen) >= REOPEN_QUIET =>
            {
                self.current = Some(fresh);
                true
            }
            Some(l) => {
                let quiet = now.saturating_duration_since(l.seen);
                // Twice the latched stream's own spacing, within reason.
                let spacing = l.spacing().min(MAX_SPACING) * 2;
                let silent = quiet >= self.rebind_after;
                // What the endpoint sent meanwhile from its new address (dropped while the
                // latch waited) explains a gap, on top of the packets lost.
                let explained = (quiet.as_millis() / FASTEST_PACKETS.as_millis())
                    .min(u128::from(i16::MAX as u16 - MAX_SEQ_GAP))
                    as u16;
                let continues = match (p, l.head) {
                    (Some(p), Some(l)) => {
                        p.ssrc == l.ssrc
                            && (1..=MAX_SEQ_GAP + explained).contains(&p.seq.wrapping_sub(l.seq))
                            && in_time(p.ts.wrapping_sub(l.ts), quiet)
                    }
                    _ => false,
                };
                // The latched source is the one the leg moved away from, and has gone quiet
                // since the move (its stream ended with its BYE): a new stream on the new
                // SDP's IP takes the leg (a media server that now sends from another port,
                // with a new SSRC). Only once it is quiet, and only from that IP: a sender
                // that reaches the port cannot take a leg its old stream still holds.
                let left = self.moved_from.is_some_and(|(a, t, _)| {
                    a == l.addr && now.saturating_duration_since(t) < REOPENED
                });
                // The stream goes on from a new address on the latched IP (a NAT's new
                // port), the SDP's or the signalling's: the far peer knows the stream's SSRC
                // and sequence (they are relayed to it), and must not move this leg to
                // itself or to a victim of its choice.
                if silent && continues && (src.ip() == l.addr.ip() || rank(src) > 0) {
                    self.current = Some(fresh);
                    true
                } else if left && silent && rank(src) > 0 {
                    self.current = Some(Latched {
                        learnt: now,
                        ..fresh
                    });
                    self.moved_from = None;
                    true
                } else if let Some(t) = reopened_at
                    && (src.ip() == l.addr.ip() || rank(src) > 0)
                    && (l.seen <= t
                        || (l.seen <= t + REOPEN_QUIET && quiet >= TAIL_QUIET.max(spacing))
                        || quiet >= REOPEN_QUIET.max(spacing))
                {
                    // A new stream after an offer/answer that kept the source: taken, and
                    // learnt afresh (a source at the SDP's address may still win it back).
                    self.current = Some(Latched {
                        learnt: now,
                        ..fresh
                    });
                    self.reopened = Reopened::No;
                    true
                } else {
                    false
                }
            }
        }
    }
}

impl SourceLatch {
    /// `src` is on a private network or this host, and the leg is not: its signalling
    /// (else, without one, its SDP's address) is a public one. Unknown: not judged.
    fn inside_for_an_outside_leg(&self, src: SocketAddr, sdp: Option<SocketAddr>) -> bool {
        let inside = |ip: std::net::IpAddr| {
            crate::config::net::private(ip) || ip.to_canonical().is_loopback()
        };
        let leg_inside = match (self.signalling, sdp) {
            (Some(s), _) => inside(s),
            (None, Some(s)) => inside(s.ip()),
            (None, None) => true,
        };
        inside(src.ip()) && !leg_inside
    }
}

/// Whether a timestamp `ahead` of the latched stream's last (wrapping) fits a silence of
/// `quiet`: ahead by at most that time and a second at 96 kHz (no RTP audio or video clock
/// runs faster), or behind by at most [`MAX_TS_BEHIND`] (a video frame sent out of order).
fn in_time(ahead: u32, quiet: Duration) -> bool {
    let most = (quiet.as_millis().saturating_add(1000) * u128::from(MAX_CLOCK_KHZ))
        .min(u128::from(i32::MAX as u32)) as u32;
    ahead <= most || ahead.wrapping_neg() <= MAX_TS_BEHIND
}

/// The fastest RTP clock counted on, in kHz.
const MAX_CLOCK_KHZ: u32 = 96;
/// How far behind the last packet's a continued stream's timestamp may be: 100 ms of a
/// 90 kHz video clock (B-frames go out before the frames they follow).
const MAX_TS_BEHIND: u32 = 9000;

#[cfg(test)]
mod tests;
