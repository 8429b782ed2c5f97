//! G.711 repacketisation: re-chunk a stream toward a leg into packets of the ptime that leg's
//! profile asks for (`[media] repacketize` with `[sdp] ptime`). Payload bytes are carried over
//! one for one (G.711 is one byte per sample), so content is identical; the outgoing stream
//! gets its own continuous sequence numbers, and timestamps that follow the samples.
//!
//! Packets are checked by `media::rtp_check` first (malformed ones are dropped and counted),
//! and one packet never turns into more than [`MAX_CHUNKS`] + 1 packets: a G.711 payload
//! longer than `MAX_CHUNKS` outgoing packets' worth is dropped, so a peer cannot use the
//! gateway to multiply its packet rate. Nor its audio: what goes out is held to a little more
//! than real time ([`AudioBudget`]), whatever the packets that came in carried.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use super::rtp_check::{MAX_PACKET, check_rtp};

/// The most outgoing packets one G.711 packet is cut into (120 ms in, 10 ms out). One more
/// may precede them: what was held from the previous packet, sent when the stream breaks.
pub const MAX_CHUNKS: usize = 12;

/// The longest ptime a repacketiser sends, in ms: G.711 is 8 bytes a millisecond, and an
/// outgoing packet, its 12-byte header included, must fit [`MAX_PACKET`] (the size every
/// relay check allows, a gateway of ours downstream included).
pub const MAX_PTIME_MS: u16 = ((MAX_PACKET - 12) / 8) as u16;

/// The G.711 audio a repacketiser may send: a bucket of [`AudioBudget::BURST_MS`] that
/// fills at [`AudioBudget::RATE`] times real time. A stream after a stall (a second of
/// audio at once) goes out whole and a sender's fast clock is no matter; more comes only
/// from a peer flooding (the relay lets a leg send up to `relay::MAX_PACKETS_PER_SECOND`
/// packets of up to 120 ms each), whose excess is dropped (a gap the far end hears as
/// loss) rather than multiplied.
#[derive(Debug, Clone, Copy)]
struct AudioBudget {
    /// When it was last filled, and the bytes (8 a millisecond) it then held.
    at: Option<(Instant, usize)>,
}

impl AudioBudget {
    /// The most audio sent at once, in ms.
    const BURST_MS: usize = 2_000;
    /// How fast it fills: 5/4 of real time.
    const RATE: (usize, usize) = (5, 4);

    /// Take `bytes` of audio at `now`: false when the bucket holds too few.
    fn take(&mut self, now: Instant, bytes: usize) -> bool {
        let full = Self::BURST_MS * 8;
        let (since, held) = self.at.unwrap_or((now, full));
        let ms = now.saturating_duration_since(since).as_millis();
        let filled = usize::try_from(ms).unwrap_or(usize::MAX) / Self::RATE.1;
        let held = held
            .saturating_add(filled.saturating_mul(8 * Self::RATE.0))
            .min(full);
        // The time consumed is what the fill counted (whole 4 ms steps); the rest of it
        // counts at the next take.
        let counted = Duration::from_millis((filled * Self::RATE.1) as u64);
        let since = if held == full { now } else { since + counted };
        let ok = held >= bytes;
        self.at = Some((since, if ok { held - bytes } else { held }));
        ok
    }
}

/// Outgoing ptime accepted by [`Repacketizer::new`], in ms.
const PTIME_MS: std::ops::RangeInclusive<u16> = 5..=MAX_PTIME_MS;

/// What a repacketiser dropped (per direction; the engine may log or export them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepackStats {
    /// Datagrams that are not valid RTP.
    pub malformed: u64,
    /// G.711 packets longer than `MAX_CHUNKS` outgoing packets.
    pub oversize: u64,
    /// Outgoing packets dropped past the audio budget.
    pub over_rate: u64,
    /// G.711 packets whose audio ends at or before the audio already sent (a duplicate, or
    /// one overtaken by a later one): dropped. (Read by tests; not exported.)
    pub stale: u64,
}

/// What a repacketiser sent of one stream (its SSRC) toward the leg: the counts that stream's
/// RTCP sender reports give the leg in place of the sender's own (RFC 3550 §7.2: a
/// translator that changes the packets corrects them). Both wrap, as an SR's do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub ssrc: u32,
    pub packets: u32,
    /// Payload octets (headers and padding not counted, as in an SR).
    pub octets: u32,
}

impl Sent {
    /// A packet of `ssrc` with `payload` octets went out: a new SSRC starts its counts anew.
    fn count(sent: &mut Option<Sent>, ssrc: u32, payload: usize) {
        let s = sent.get_or_insert(Sent {
            ssrc,
            ..Sent::default()
        });
        if s.ssrc != ssrc {
            *s = Sent {
                ssrc,
                ..Sent::default()
            };
        }
        s.packets = s.packets.wrapping_add(1);
        s.octets = s.octets.wrapping_add(payload as u32);
    }

    /// A packet [`packet_of`] made went out (its header 12 bytes, the SSRC at 8).
    fn count_made(sent: &mut Option<Sent>, p: &[u8]) {
        if let Some(ssrc) = p.get(8..12) {
            let ssrc = u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]);
            Sent::count(sent, ssrc, p.len() - 12);
        }
    }
}

/// How far behind the audio already taken a G.711 packet of the same stream may end and
/// still be taken as late: 1 s. Further back, its sender restarted its clock (some do after
/// a hold) and it is a new stream, taken whole.
const MAX_LATE: u32 = 8000;
/// Late packets in a row that make a new stream all the same: a sender whose clock went
/// back less than [`MAX_LATE`] (a duplicate or a late packet comes alone).
const LATE_RUN: u8 = 3;

/// How late the sender's next packet may be and still complete audio held short of a
/// packet ([`Repacketizer::due`]).
const HELD_JITTER: Duration = Duration::from_millis(40);

/// Re-chunks one direction of one stream.
#[derive(Debug)]
pub struct Repacketizer {
    /// Payload bytes per outgoing packet (8 per ms).
    size: usize,
    /// Samples held for the next packet: always fewer than `size` between calls.
    buf: Vec<u8>,
    /// RTP timestamp of `buf[0]`.
    ts: u32,
    pt: u8,
    ssrc: u32,
    marker: bool,
    /// The next sequence number out: from the first packet's own, so one started mid-stream
    /// (a re-INVITE that turned it on, packets relayed as they came before) goes on where
    /// the stream was rather than jumping to 0, and a new stream's starts where its sender
    /// chose (RFC 3550 §5.1: at random).
    seq: u16,
    seeded: bool,
    /// The SSRC and the timestamp just past the last G.711 sample taken: a packet of that
    /// stream ending before it repeats audio sent already.
    taken_to: Option<(u32, u32)>,
    /// Late packets dropped in a row whose sequence numbers went on (a restarted clock's).
    late_run: u8,
    /// The sequence number of the last G.711 packet taken: a late one numbered before it was
    /// held up on the way, not sent by a restarted clock.
    last_seq: u16,
    /// When the first sample held in `buf` arrived: held past [`Repacketizer::due`], it goes
    /// out short rather than wait for a packet that may not come (a talkspurt's end from a
    /// sender without comfort noise, a hold).
    held_since: Option<Instant>,
    /// The last G.711 packet's samples: the sender's packet time, which the next packet
    /// normally takes to come.
    in_len: usize,
    budget: AudioBudget,
    pub stats: RepackStats,
    /// What went toward the leg since the repacketiser was made: kept across
    /// [`Repacketizer::restart`] and [`Repacketizer::stop`], as the leg's stream goes on.
    sent: Option<Sent>,
    /// The SSRC of the latest stream that came, and its highest sequence number, extended
    /// by the wraps seen (RFC 3550 §6.4.1): the leg's reports on what it got, which count
    /// our numbers, are given this in their place.
    came: Option<(u32, u32)>,
}

impl Repacketizer {
    /// Packets of `ptime_ms` toward the leg (clamped to 5 ms–[`MAX_PTIME_MS`]).
    pub fn new(ptime_ms: u16) -> Self {
        let ptime = ptime_ms.clamp(*PTIME_MS.start(), *PTIME_MS.end());
        let size = usize::from(ptime) * 8;
        Repacketizer {
            size,
            // Never more than one packet short of `size` plus the largest payload accepted.
            buf: Vec::with_capacity(size * (MAX_CHUNKS + 1)),
            ts: 0,
            pt: 0,
            ssrc: 0,
            marker: false,
            seq: 0,
            seeded: false,
            taken_to: None,
            late_run: 0,
            last_seq: 0,
            held_since: None,
            in_len: 0,
            budget: AudioBudget { at: None },
            stats: RepackStats::default(),
            sent: None,
            came: None,
        }
    }

    /// The leg it sends toward is another peer now (a failover's next callee), sent
    /// packets of `ptime_ms`: the audio held for the peer before is dropped, and the
    /// sequence numbers go on, so the leg sees one stream.
    pub fn restart(&mut self, ptime_ms: u16) {
        *self = Repacketizer {
            seq: self.seq,
            seeded: self.seeded,
            budget: self.budget,
            stats: self.stats,
            sent: self.sent,
            came: self.came,
            ..Repacketizer::new(ptime_ms)
        };
    }

    /// The leg is sent packets as they come from now on (a re-INVITE took G.711, or its
    /// ptime, off it): what is held is dropped, and [`Repacketizer::renumber`] numbers what
    /// goes on after the packets it sent.
    pub fn stop(&mut self) {
        self.buf.clear();
        self.held_since = None;
    }

    /// `packet` as it came but for its sequence number, which goes on from those sent
    /// (after [`Repacketizer::stop`]). Passed with its own, the stream toward the leg would
    /// jump back by every packet repacketising added (or on by each one it saved), and a
    /// receiver takes packets numbered behind those it has for late ones. `None`: not RTP.
    pub fn renumber(&mut self, packet: &[u8]) -> Option<Bytes> {
        let h = check_rtp(packet).ok()?;
        if !self.seeded {
            (self.seq, self.seeded) = (h.sequence, true);
        }
        self.note_came(h.ssrc, h.sequence);
        let mut b = BytesMut::from(packet);
        b[2..4].copy_from_slice(&self.seq.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        Sent::count(&mut self.sent, h.ssrc, h.payload.len());
        Some(b.freeze())
    }

    /// Whether `packet` (RTP) is of the stream last sent, or nothing was: after
    /// [`Repacketizer::stop`], only that stream is numbered on; another SSRC is a new
    /// stream, whose own numbers the leg takes.
    pub fn numbers_on(&self, packet: &[u8]) -> bool {
        self.sent
            .is_none_or(|s| packet.get(8..12) == Some(&s.ssrc.to_be_bytes()[..]))
    }

    /// What went toward the leg of its latest stream; `None` before anything did.
    pub fn sent(&self) -> Option<Sent> {
        self.sent
    }

    /// The latest stream that came (its SSRC) and its extended highest sequence number.
    pub fn came(&self) -> Option<(u32, u32)> {
        self.came
    }

    /// A packet of `ssrc` numbered `seq` came: a later number (within half the space) moves
    /// the highest on, over a wrap too; a new SSRC starts anew.
    fn note_came(&mut self, ssrc: u32, seq: u16) {
        self.came = Some(match self.came {
            Some((s, ext)) if s == ssrc => {
                let ahead = seq.wrapping_sub(ext as u16) as i16;
                (s, ext.wrapping_add(u32::from(ahead.max(0).unsigned_abs())))
            }
            _ => (ssrc, u32::from(seq)),
        });
    }

    /// The leg is another peer now (a failover): what it got starts from nothing.
    pub fn forget_sent(&mut self) {
        self.sent = None;
    }

    /// One incoming packet at `now`; returns the packets to send now (possibly none, at
    /// most `MAX_CHUNKS + 1`).
    pub fn push(&mut self, now: Instant, packet: &[u8]) -> Vec<Bytes> {
        let out = self.chunk(now, packet);
        self.within_budget(now, out)
    }

    /// When what is held goes out on its own: the sender's packet time (when its next
    /// packet is due), one outgoing ptime and [`HELD_JITTER`] after its first sample came,
    /// so that a packet late within that still completes it. `None`: nothing held.
    pub fn due(&self) -> Option<Instant> {
        let ms = |bytes: usize| Duration::from_millis(bytes as u64 / 8);
        self.held_since
            .filter(|_| !self.buf.is_empty())
            .map(|t| t + ms(self.in_len) + ms(self.size) + HELD_JITTER)
    }

    /// What is held, as one short packet, if it is [`Repacketizer::due`] at `now`.
    pub fn flush_due(&mut self, now: Instant) -> Option<Bytes> {
        if self.due().is_none_or(|d| now < d) {
            return None;
        }
        let mut out = Vec::new();
        self.flush(&mut out);
        self.within_budget(now, out).pop()
    }

    /// `out` less what goes past the audio budget.
    fn within_budget(&mut self, now: Instant, mut out: Vec<Bytes>) -> Vec<Bytes> {
        out.retain(|p| {
            // Only G.711 is multiplied here; other payloads pass one for one.
            let audio = match p.get(1).map(|b| b & 0x7f) {
                Some(0 | 8) => p.len() - 12,
                _ => 0,
            };
            let within = audio == 0 || self.budget.take(now, audio);
            if !within {
                self.stats.over_rate += 1;
            }
            within
        });
        for p in &out {
            Sent::count_made(&mut self.sent, p);
        }
        out
    }

    /// The packets one incoming packet makes, before the audio budget.
    fn chunk(&mut self, now: Instant, packet: &[u8]) -> Vec<Bytes> {
        let Ok(h) = check_rtp(packet) else {
            self.stats.malformed += 1;
            return Vec::new();
        };
        if !self.seeded {
            (self.seq, self.seeded) = (h.sequence, true);
        }
        self.note_came(h.ssrc, h.sequence);
        let mut out = Vec::new();
        if !matches!(h.payload_type, 0 | 8) {
            // Not G.711 (telephone-events, comfort noise): flush what we hold, pass it
            // through renumbered so the sequence toward the leg stays continuous.
            self.flush(&mut out);
            out.push(packet_of(
                &mut self.seq,
                h.payload_type,
                h.marker,
                h.ssrc,
                h.timestamp,
                h.payload,
            ));
            return out;
        }
        if h.payload.len() > MAX_CHUNKS * self.size {
            self.stats.oversize += 1;
            return out;
        }
        // A packet whose audio was all taken already (a duplicate, or one overtaken by a
        // later one) would go out again under new sequence numbers, after the audio that
        // follows it, where the far end's jitter buffer can no longer place it: dropped, as
        // lost. (One that overlaps what was taken goes whole, as from a sender whose clock
        // runs slow.)
        let (timestamp, payload) = (h.timestamp, h.payload);
        let packet_end = timestamp.wrapping_add(payload.len() as u32);
        if let Some((ssrc, end)) = self.taken_to
            && ssrc == h.ssrc
            && end.wrapping_sub(packet_end) <= MAX_LATE
        {
            // Numbered on from the last taken, it may be a restarted clock (a few in a row
            // say so); numbered before it, a packet held up on the way (a burst of them
            // after a path change is no restart).
            let numbered_on = (h.sequence.wrapping_sub(self.last_seq) as i16) > 0;
            if !numbered_on || self.late_run < LATE_RUN - 1 {
                self.late_run += u8::from(numbered_on);
                self.stats.stale += 1;
                return out;
            }
        }
        // Ahead of what was taken, another stream, or a clock restarted: it goes on from here.
        self.late_run = 0;
        self.last_seq = h.sequence;
        self.taken_to = Some((h.ssrc, packet_end));
        let contiguous = self.buf.is_empty()
            || (h.ssrc == self.ssrc
                && h.payload_type == self.pt
                && timestamp == self.ts.wrapping_add(self.buf.len() as u32));
        if !contiguous {
            // Loss, a new stream or a codec switch: send what we hold as it is.
            self.flush(&mut out);
        }
        if self.buf.is_empty() {
            self.ts = timestamp;
            self.pt = h.payload_type;
            self.ssrc = h.ssrc;
            self.marker = h.marker;
        }
        self.buf.extend_from_slice(payload);
        let mut sent = 0;
        // At most MAX_CHUNKS rounds: the buffer held fewer than `size` bytes before this
        // payload of at most MAX_CHUNKS * size.
        while let Some(chunk) = self.buf.get(sent..sent + self.size) {
            out.push(packet_of(
                &mut self.seq,
                self.pt,
                self.marker,
                self.ssrc,
                self.ts,
                chunk,
            ));
            self.marker = false;
            self.ts = self.ts.wrapping_add(self.size as u32);
            sent += self.size;
        }
        self.buf.drain(..sent);
        self.in_len = payload.len();
        // What is held came with this packet, unless it is older audio still short of a
        // packet (this payload added less than is held).
        self.held_since = match self.held_since {
            _ if self.buf.is_empty() => None,
            Some(t) if self.buf.len() > payload.len() => Some(t),
            _ => Some(now),
        };
        out
    }

    fn flush(&mut self, out: &mut Vec<Bytes>) {
        if !self.buf.is_empty() {
            out.push(packet_of(
                &mut self.seq,
                self.pt,
                self.marker,
                self.ssrc,
                self.ts,
                &self.buf,
            ));
            self.buf.clear();
            self.marker = false;
        }
        self.held_since = None;
    }
}

/// One outgoing RTP packet (no CSRCs, no extension), taking the next sequence number.
fn packet_of(seq: &mut u16, pt: u8, marker: bool, ssrc: u32, ts: u32, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(12 + payload.len());
    b.put_u8(0x80);
    b.put_u8(if marker { 0x80 } else { 0 } | (pt & 0x7f));
    b.put_u16(*seq);
    b.put_u32(ts);
    b.put_u32(ssrc);
    b.put_slice(payload);
    *seq = seq.wrapping_add(1);
    b.freeze()
}

#[cfg(test)]
mod tests;
