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

/// How far behind the audio already taken a G.711 packet of the same stream may end and
/// still be taken as late: 1 s. Further back, its sender restarted its clock (some do after
/// a hold) and it is a new stream, taken whole.
const MAX_LATE: u32 = 8000;
/// Late packets in a row that make a new stream all the same: a sender whose clock went
/// back less than [`MAX_LATE`] (a duplicate or a late packet comes alone).
const LATE_RUN: u8 = 3;

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
    /// Late packets dropped in a row.
    late_run: u8,
    budget: AudioBudget,
    pub stats: RepackStats,
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
            budget: AudioBudget { at: None },
            stats: RepackStats::default(),
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
            ..Repacketizer::new(ptime_ms)
        };
    }

    /// One incoming packet at `now`; returns the packets to send now (possibly none, at
    /// most `MAX_CHUNKS + 1`).
    pub fn push(&mut self, now: Instant, packet: &[u8]) -> Vec<Bytes> {
        let mut out = self.chunk(packet);
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
        out
    }

    /// The packets one incoming packet makes, before the audio budget.
    fn chunk(&mut self, packet: &[u8]) -> Vec<Bytes> {
        let Ok(h) = check_rtp(packet) else {
            self.stats.malformed += 1;
            return Vec::new();
        };
        if !self.seeded {
            (self.seq, self.seeded) = (h.sequence, true);
        }
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
            && self.late_run < LATE_RUN - 1
        {
            self.late_run += 1;
            self.stats.stale += 1;
            return out;
        }
        // Ahead of what was taken, another stream, or a clock restarted: it goes on from here.
        self.late_run = 0;
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
mod tests {
    use super::*;
    use webrtc_util::marshal::Unmarshal;

    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn parse(b: &Bytes) -> rtp::packet::Packet {
        rtp::packet::Packet::unmarshal(&mut b.clone()).unwrap()
    }

    #[test]
    fn thirty_in_twenty_out_with_identical_content() {
        let t0 = Instant::now();
        let data: Vec<u8> = (0..4800u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut r = Repacketizer::new(20);
        let mut out = Vec::new();
        for (i, chunk) in data.chunks(240).enumerate() {
            out.extend(r.push(t0, &rtp(0, 100 + i as u16, 5000 + (i * 240) as u32, chunk)));
        }
        let pkts: Vec<_> = out.iter().map(parse).collect();
        assert!(
            pkts.iter().all(|p| p.payload.len() == 160),
            "every packet 20 ms"
        );
        let joined: Vec<u8> = pkts.iter().flat_map(|p| p.payload.to_vec()).collect();
        assert_eq!(joined, data, "content identical");
        for (i, p) in pkts.iter().enumerate() {
            assert_eq!(p.header.sequence_number, 100 + i as u16);
            assert_eq!(p.header.timestamp, 5000 + 160 * i as u32);
        }
    }

    #[test]
    fn loss_and_events_flush_and_keep_numbering_continuous() {
        let t0 = Instant::now();
        let mut r = Repacketizer::new(20);
        let mut out = Vec::new();
        out.extend(r.push(t0, &rtp(0, 1, 0, &[1; 240])));
        // 240 samples lost, then the stream goes on, then a telephone-event.
        out.extend(r.push(t0, &rtp(0, 3, 480, &[2; 240])));
        out.extend(r.push(t0, &rtp(101, 4, 720, &[5, 0x80, 0, 160])));
        let pkts: Vec<_> = out.iter().map(parse).collect();
        let sizes: Vec<usize> = pkts.iter().map(|p| p.payload.len()).collect();
        assert_eq!(sizes, vec![160, 80, 160, 80, 4]);
        let ts: Vec<u32> = pkts.iter().map(|p| p.header.timestamp).collect();
        assert_eq!(ts, vec![0, 160, 480, 640, 720]);
        let seqs: Vec<u16> = pkts.iter().map(|p| p.header.sequence_number).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        assert_eq!(pkts[4].header.payload_type, 101);
    }

    /// Started mid-stream (a re-INVITE turned it on; the packets before went as they came),
    /// its numbers go on from the stream's, across the wrap; restarted toward another
    /// callee, from its own. Before, they began at 0: a jump the far end's jitter buffer
    /// takes for a new stream.
    #[test]
    fn numbering_goes_on_from_the_stream() {
        let t0 = Instant::now();
        let mut r = Repacketizer::new(20);
        let mut out = r.push(t0, &rtp(0, 65535, 800, &[1; 160]));
        out.extend(r.push(t0, &rtp(0, 0, 960, &[1; 160])));
        r.restart(20);
        out.extend(r.push(t0, &rtp(0, 9000, 1120, &[1; 160])));
        let seqs: Vec<u16> = out
            .iter()
            .map(|p| parse(p).header.sequence_number)
            .collect();
        assert_eq!(seqs, vec![65535, 0, 1]);
    }

    /// Audio taken already goes out once: a duplicate is dropped, a packet overtaken by a
    /// later one is dropped, and a sender whose clock restarted is a new stream (far back at
    /// once; a little back after three packets). Before, each went out again under new
    /// sequence numbers, after the audio that follows it: the far end played it twice.
    #[test]
    fn audio_taken_already_is_not_sent_again() {
        let t0 = Instant::now();
        let mut r = Repacketizer::new(20);
        assert_eq!(r.push(t0, &rtp(0, 1, 0, &[1; 160])).len(), 1);
        assert!(r.push(t0, &rtp(0, 1, 0, &[1; 160])).is_empty(), "duplicate");
        // 3 overtakes 2: 2 comes late, its audio's place is past.
        assert_eq!(r.push(t0, &rtp(0, 3, 320, &[3; 160])).len(), 1);
        assert!(r.push(t0, &rtp(0, 2, 160, &[2; 160])).is_empty(), "late");
        assert_eq!(r.stats.stale, 2);
        // A clock restarted 10 s back: taken whole.
        let back = 480u32.wrapping_sub(80_000);
        assert_eq!(r.push(t0, &rtp(0, 4, back, &[4; 160])).len(), 1);
        // Restarted half a second back: two packets dropped, then it is the stream.
        let back = back.wrapping_sub(4000);
        assert!(r.push(t0, &rtp(0, 5, back, &[5; 160])).is_empty());
        assert!(r.push(t0, &rtp(0, 6, back + 160, &[6; 160])).is_empty());
        assert_eq!(r.push(t0, &rtp(0, 7, back + 320, &[7; 160])).len(), 1);
        assert_eq!(r.push(t0, &rtp(0, 8, back + 480, &[8; 160])).len(), 1);
    }

    /// A sender whose timestamps run slower than its audio (each packet overlapping the
    /// last) goes out whole, as before: only audio taken in full is dropped.
    #[test]
    fn a_slow_clock_loses_no_audio() {
        let t0 = Instant::now();
        let mut r = Repacketizer::new(20);
        let sent: usize = (0..10u32)
            .map(|k| r.push(t0, &rtp(0, k as u16, k * 20, &[1; 160])).len())
            .sum();
        assert_eq!(r.stats.stale, 0);
        assert!(sent >= 9, "{sent}");
    }

    #[test]
    fn malformed_packets_are_dropped_and_counted_and_the_stream_goes_on() {
        let t0 = Instant::now();
        let mut r = Repacketizer::new(20);
        let mut out = r.push(t0, &rtp(0, 1, 0, &[1; 160]));
        // The audit's packet: a one-byte extension element claiming 16 bytes of 4.
        let mut hostile = rtp(0, 2, 160, &[0xBE, 0xDE, 0x00, 0x01, 0x1F, 0x00, 0x00, 0x00]);
        hostile[0] |= 0x10;
        assert!(r.push(t0, &hostile).is_empty());
        assert!(r.push(t0, &[0x80, 0, 0]).is_empty());
        out.extend(r.push(t0, &rtp(0, 3, 160, &[2; 160])));
        assert_eq!(r.stats.malformed, 2);
        let pkts: Vec<_> = out.iter().map(parse).collect();
        assert_eq!(pkts.len(), 2);
        assert_eq!(&pkts[1].payload[..], &[2; 160]);
        assert_eq!(pkts[1].header.sequence_number, 2);
    }

    #[test]
    fn one_big_packet_cannot_become_fifty() {
        let t0 = Instant::now();
        // 5 ms out (40 bytes a packet): a 1400-byte payload would be 35 packets.
        let mut r = Repacketizer::new(5);
        assert!(r.push(t0, &rtp(0, 1, 0, &[1; 1400])).is_empty());
        assert_eq!(r.stats.oversize, 1);
        // The most one packet may carry: MAX_CHUNKS packets out, plus the held remainder of
        // the previous stream when this one breaks it.
        let mut r = Repacketizer::new(5);
        assert!(r.push(t0, &rtp(0, 1, 0, &[1; 20])).is_empty());
        let out = r.push(t0, &rtp(0, 2, 9_999, &[2; MAX_CHUNKS * 40]));
        assert_eq!(out.len(), MAX_CHUNKS + 1);
        assert_eq!(r.stats, RepackStats::default());
        // Whatever arrives, each input gives at most MAX_CHUNKS + 1 outputs and the buffer
        // keeps less than one packet.
        let mut r = Repacketizer::new(5);
        for i in 0..2000u32 {
            let len = (i as usize * 37) % 1489;
            let out = r.push(t0, &rtp(0, i as u16, i * 7, &vec![3; len]));
            assert!(out.len() <= MAX_CHUNKS + 1, "{} for {len}", out.len());
            assert!(r.buf.len() < r.size);
        }
        // A ptime of 0 would never finish a packet: it is clamped.
        let mut r = Repacketizer::new(0);
        assert_eq!(r.push(t0, &rtp(0, 1, 0, &[1; 80])).len(), 2);
    }

    #[test]
    fn no_packet_sent_is_larger_than_a_relay_accepts() {
        let t0 = Instant::now();
        // The longest ptime asked for is cut to what fits MAX_PACKET: what the repacketiser
        // sends passes the relay's own check (a gateway of ours downstream drops the rest).
        for ms in [MAX_PTIME_MS, MAX_PTIME_MS + 1, 200, u16::MAX] {
            let mut r = Repacketizer::new(ms);
            let mut out = Vec::new();
            for i in 0..20u16 {
                out.extend(r.push(t0, &rtp(0, i, u32::from(i) * 1_480, &[5; 1_480])));
            }
            // A gap flushes what is held; an event passes through as it came.
            out.extend(r.push(t0, &rtp(0, 20, 99_999, &[6; 1_000])));
            out.extend(r.push(t0, &rtp(101, 21, 99_999, &[7; 1_488])));
            assert!(!out.is_empty());
            for p in &out {
                assert!(p.len() <= MAX_PACKET, "{} bytes at {ms} ms", p.len());
                assert!(check_rtp(p).is_ok());
            }
        }
    }

    /// A leg flooding within the relay's packet rate, each packet 120 ms of G.711 toward a
    /// 10 ms leg: what goes out is 2 s of audio at once and then 5/4 of real time. Before,
    /// 1,000 packets a second in went out as 12,000.
    #[test]
    fn a_flood_goes_out_at_little_more_than_real_time() {
        let t0 = Instant::now();
        let mut r = Repacketizer::new(10);
        let mut sent = 0;
        for i in 0..1000u32 {
            let at = t0 + Duration::from_millis(u64::from(i));
            let out = r.push(at, &rtp(0, i as u16, i * 960, &[1; 960]));
            sent += out.iter().map(|p| p.len() - 12).sum::<usize>();
        }
        // 16,000 bytes at once, then 10 a millisecond for 999 ms: 80-byte packets.
        assert_eq!(sent, (16_000 + 9_990) / 80 * 80);
        assert_eq!(r.stats.over_rate, 12_000 - sent as u64 / 80);
        // Once it runs dry, telephone-events still pass.
        let at = t0 + Duration::from_millis(999);
        assert!(r.push(at, &rtp(0, 1000, 960_000, &[1; 960])).is_empty());
        assert_eq!(r.push(at, &rtp(101, 1001, 0, &[5, 0x80, 0, 160])).len(), 1);
    }

    /// A stream after a stall: 1.8 s of audio at once, then live 20 ms packets for a minute
    /// from a sender whose clock runs 1 % fast. Every byte goes out: the budget holds back a
    /// flood, not a stream that catches up.
    #[test]
    fn a_stream_catching_up_after_a_stall_goes_out_whole() {
        let t0 = Instant::now();
        let mut r = Repacketizer::new(20);
        let mut sent = 0;
        for i in 0..15u32 {
            let out = r.push(t0, &rtp(0, i as u16, i * 960, &[1; 960]));
            sent += out.iter().map(|p| p.len() - 12).sum::<usize>();
        }
        assert_eq!(sent, 15 * 960);
        for i in 0..3000u32 {
            let at = t0 + Duration::from_micros(u64::from(i) * 19_800);
            let out = r.push(at, &rtp(0, 15 + i as u16, 14_400 + i * 160, &[2; 160]));
            sent += out.iter().map(|p| p.len() - 12).sum::<usize>();
        }
        assert_eq!(sent, 15 * 960 + 3000 * 160);
        assert_eq!(r.stats.over_rate, 0);
    }
}
