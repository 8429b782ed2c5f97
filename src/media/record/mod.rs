//! Call recording, correct by construction: samples are placed by RTP timestamp, never by
//! packet arrival. Each direction has a jitter buffer of `depth` on one shared wall-clock
//! timeline, so the two channels stay aligned whatever the packet sizes (10–60 ms, changing
//! mid-call), reordering, loss, duplicates, timestamp wrap-around or SSRC changes.
//!
//! Sans-IO: packets and `Instant`s in, PCM frames out. The WAV file is the shell's business
//! (`engine/wav.rs`).

mod channel;
mod g711;

use channel::Channel;
use std::time::{Duration, Instant};

use super::rtp_check::check_rtp;

pub use g711::{ALAW, ULAW, alaw_to_linear, ulaw_to_linear};

/// 8 kHz: G.711's clock, and the recording's.
const RATE: u64 = 8000;
/// A timestamp this far from the expected position is a new stream, not a gap.
const DISCONTINUITY: i64 = 10 * RATE as i64;
/// How far past the jitter depth a packet may land in the buffer: the engine drains every
/// 100 ms, a packet holds up to about 185 ms, and a sender may run a little ahead of our
/// clock. A packet placed further ahead restarts its stream where it arrived.
const LOOKAHEAD: u64 = RATE / 2;
/// A stream that moved back (behind where its packets arrive) is borne out by a packet at
/// the same offset within this (40 ms)...
const BACK_AGREE: i64 = RATE as i64 / 25;
/// ...that arrived at least this long (100 ms) after the first.
const BACK_WAIT: i64 = RATE as i64 / 10;
/// The deepest jitter buffer a recorder keeps (the config allows up to 1 s).
const MAX_DEPTH: u64 = 10 * RATE;
/// How often a stream's lag behind its place on the timeline is looked at (one second).
const LAG_WINDOW: u64 = RATE;

/// Counters a recording keeps (for logs and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// Packets that arrived after their place in the file was written.
    pub late: u64,
    /// Packets whose every sample was already held (repeats, overlapping packets).
    pub duplicates: u64,
    /// Packets of codecs we cannot decode (recorded as silence).
    pub undecodable: u64,
    /// Telephone-events, comfort noise and other non-audio payloads left out.
    pub skipped: u64,
    pub ssrc_changes: u64,
    /// Datagrams that are not valid RTP (see `media::rtp_check`): dropped.
    pub malformed: u64,
    /// Packets that would land beyond the buffer while it still held audio: the stream was
    /// restarted where the packet arrived.
    pub restarts: u64,
    /// Packets dropped because the buffer was full: it is not being drained.
    pub overflow: u64,
    /// Times a stream fell behind its place on the timeline for a whole second (a sender
    /// whose clock runs slow, or a network delay that went up) and was moved after it.
    pub slews: u64,
    /// Packets that would have restarted their stream (far from where it should be, or
    /// beyond the buffer) and were left out, the next packet not bearing them out: one
    /// packet stamped seconds ahead must not move the whole stream.
    pub strays: u64,
}

/// What a drain hands out: `silence` silent frames, then `frames`. A long pause in the
/// media (both sides on hold, a park) comes out as a count, not as a buffer of zeros: an
/// hour of it would be 115 MB at once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub silence: u64,
    pub frames: Vec<[i16; 2]>,
}

impl Drained {
    /// Frames in all, silence included.
    pub fn len(&self) -> u64 {
        self.silence + self.frames.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every frame, the silence spelled out (for tests and short pauses).
impl IntoIterator for Drained {
    type Item = [i16; 2];
    type IntoIter = std::iter::Chain<std::iter::RepeatN<[i16; 2]>, std::vec::IntoIter<[i16; 2]>>;

    fn into_iter(self) -> Self::IntoIter {
        let silence = usize::try_from(self.silence).unwrap_or(usize::MAX);
        std::iter::repeat_n([0, 0], silence).chain(self.frames)
    }
}

/// The two channels of one call (0: caller, 1: callee).
#[derive(Debug)]
pub struct Recorder {
    t0: Option<Instant>,
    depth: u64,
    /// Timeline position up to which frames have been handed out.
    written: u64,
    /// The end of the latest sample received on either channel: the file never runs past
    /// the media (no trailing silence between the last packet and the hang-up).
    horizon: u64,
    channels: [Channel; 2],
    pub stats: RecordStats,
    /// G.711 packets taken (what the recording's audio is made of).
    pub audio: u64,
}

impl Recorder {
    pub fn new(jitter: Duration) -> Self {
        let depth = (jitter.as_millis() as u64 * RATE / 1000).min(MAX_DEPTH);
        let capacity = (depth + LOOKAHEAD) as usize;
        Recorder {
            t0: None,
            depth,
            written: 0,
            horizon: 0,
            channels: [Channel::new(capacity), Channel::new(capacity)],
            stats: RecordStats::default(),
            audio: 0,
        }
    }

    /// Samples the recorder can hold, both channels together: fixed at creation.
    pub fn capacity(&self) -> usize {
        self.channels.iter().map(|c| c.samples.len()).sum()
    }

    /// Samples held now, both channels together (never more than `capacity`).
    pub fn buffered(&self) -> usize {
        self.channels
            .iter()
            .map(|c| {
                c.held
                    .iter()
                    .map(|w| w.count_ones() as usize)
                    .sum::<usize>()
            })
            .sum()
    }

    fn clock(&self, now: Instant) -> u64 {
        self.t0
            .map(|t0| now.saturating_duration_since(t0).as_micros() as u64 * RATE / 1_000_000)
            .unwrap_or(0)
    }

    /// One RTP packet of channel `ch` (0 caller, 1 callee) arrived at `now`. Datagrams that
    /// are not valid RTP are dropped and counted in `stats.malformed`.
    pub fn push(&mut self, now: Instant, ch: usize, packet: &[u8]) {
        let Ok(p) = check_rtp(packet) else {
            self.stats.malformed += 1;
            return;
        };
        let table = match p.payload_type {
            0 => &ULAW,
            8 => &ALAW,
            // Comfort noise, and dynamic types (RFC 4733 telephone-events above all): not audio.
            13 | 96..=127 => {
                self.stats.skipped += 1;
                return;
            }
            _ => {
                // A codec we cannot decode: its span stays silent (the engine logs a warning
                // when the recording ends).
                self.stats.undecodable += 1;
                return;
            }
        };
        if p.payload.is_empty() || ch >= self.channels.len() {
            return;
        }
        self.audio += 1;
        let n = p.payload.len() as u64;
        let t0 = *self.t0.get_or_insert(now);
        let arrival = now.saturating_duration_since(t0).as_micros() as u64 * RATE / 1_000_000;
        let (ts, ssrc) = (p.timestamp, p.ssrc);
        let Some(c) = self.channels.get_mut(ch) else {
            return;
        };
        let new_stream = match c.ssrc {
            None => true,
            Some(s) if s != ssrc => {
                self.stats.ssrc_changes += 1;
                true
            }
            Some(_) => {
                // Unwrap the 32-bit timestamp around the last one (handles wrap and reordering).
                let ext = c.last_ext + i64::from(ts.wrapping_sub(c.last_ts) as i32);
                let pos = c.offset + ext;
                // A jump far from where the stream should be is a restart, not a gap; so is
                // a packet too far ahead for the buffer while it still holds audio.
                let far = (pos - arrival as i64).abs() > DISCONTINUITY;
                let beyond =
                    pos >= 0 && !c.fits(pos as u64 + n, arrival.saturating_sub(self.depth));
                // Behind where it arrives by more than the buffer holds: late whatever is
                // done, unless the stream moved back (a sender that resumed a pause with its
                // old timestamps), which the next packet tells.
                let behind = arrival as i64 - pos > (self.depth + LOOKAHEAD) as i64;
                if far || beyond || behind {
                    // A restart must be borne out by the next packet (another one, placed
                    // where this one says the stream now is): a single packet stamped
                    // ahead is left out instead of moving the stream after it, whose
                    // packets would then all be late (RFC 3550 A.1's probation, for time).
                    let near = (self.depth + LOOKAHEAD) as i64;
                    let borne_out = c
                        .pending
                        .is_some_and(|(o, e)| e != ext && (o + ext - arrival as i64).abs() <= near);
                    // Only behind: a burst of packets held up in the network looks the same,
                    // and must stay late, not move the stream. Their offsets drift a packet
                    // time per packet as they catch up; a stream that moved back keeps its
                    // offset. So it is borne out only by a packet at the same offset (within
                    // 40 ms) that arrived at least 100 ms after the first.
                    let moved_back = !far && !beyond;
                    let (agrees, waited) = c.pending.map_or((false, 0), |(o, e)| {
                        let agrees = e != ext && (o + ext - arrival as i64).abs() <= BACK_AGREE;
                        (agrees, arrival as i64 - (o + e))
                    });
                    if moved_back && !(agrees && waited >= BACK_WAIT) {
                        if !agrees {
                            c.pending = Some((arrival as i64 - ext, ext));
                        }
                        self.stats.strays += 1;
                        return;
                    }
                    if !moved_back && !borne_out {
                        c.pending = Some((arrival as i64 - ext, ext));
                        self.stats.strays += 1;
                        return;
                    }
                    if (beyond || behind) && !far {
                        self.stats.restarts += 1;
                    }
                    true
                } else {
                    c.pending = None;
                    false
                }
            }
        };
        if new_stream {
            c.pending = None;
            c.ssrc = Some(ssrc);
            c.last_ts = ts;
            c.last_ext = i64::from(ts);
            // The stream starts where its first packet arrived (less the buffer it filled).
            c.offset = arrival as i64 - i64::from(ts);
            c.lag_floor = i64::MAX;
            c.lag_ceiling = i64::MIN;
            c.early = 0;
            c.lag_since = arrival;
        }
        let ext = c.last_ext + i64::from(ts.wrapping_sub(c.last_ts) as i32);
        if ext > c.last_ext {
            c.last_ext = ext;
            c.last_ts = ts;
        }
        // Half the depth: jitter alone keeps some packets of every second nearer than that.
        let slack = (self.depth / 2).max(8) as i64;
        if c.follow(arrival, c.offset + ext, slack) || c.catch_up(c.offset + ext) {
            self.stats.slews += 1;
        }
        let Ok(pos) = u64::try_from(c.offset + ext) else {
            self.stats.late += 1;
            return;
        };
        let end = pos + n;
        // Samples before `written` are in the file already, and before `base` are silence
        // the buffer moved past: keep only what still has a place.
        let first = pos.max(self.written).max(c.base);
        if end <= first {
            self.stats.late += 1;
            return;
        }
        if !c.fits(end, arrival.saturating_sub(self.depth)) {
            // Only when the buffer is not being drained: nowhere to put it.
            self.stats.overflow += 1;
            return;
        }
        if end > c.base + c.capacity() {
            // The ring is empty (a gap in the media): move it up to the packet.
            c.base = end - c.capacity();
        }
        let skip = (first - pos) as usize;
        let placed = c.place(
            c.slot(first),
            p.payload.get(skip..).unwrap_or_default(),
            table,
        );
        if !placed {
            self.stats.duplicates += 1;
            return;
        }
        c.end = c.end.max(end);
        self.horizon = self.horizon.max(end);
    }

    /// Frames (caller, callee) whose time has come: everything older than the jitter depth,
    /// up to the end of the first run of audio in it (the rest is the next drain's).
    pub fn drain(&mut self, now: Instant) -> Drained {
        let until = self.clock(now).saturating_sub(self.depth).min(self.horizon);
        self.take_until(until)
    }

    /// Every frame still held, at the end of the call: a piece per run of audio (see
    /// [`Recorder::drain`]).
    pub fn finish(&mut self) -> Vec<Drained> {
        let end = self
            .channels
            .iter()
            .map(|c| c.end)
            .max()
            .unwrap_or(0)
            .max(self.written);
        let mut pieces = Vec::new();
        // Each take ends at least one channel's audio or reaches `end`: a few at most.
        while self.written < end {
            pieces.push(self.take_until(end));
        }
        pieces
    }

    /// The frames up to `until`: the silence before the first audio held as a count, then
    /// frames up to the end of that run of audio (where no channel holds any more), so what
    /// is allocated is at most about two rings' worth whatever `until` is. Whatever follows
    /// the run is the next take's: after a writer stalled for minutes, one channel's held
    /// audio and another's first packet, minutes apart, are not one buffer of zeros between.
    fn take_until(&mut self, until: u64) -> Drained {
        if until <= self.written {
            return Drained::default();
        }
        let written = self.written;
        // What each channel holds: nothing before its base, nothing past its ring.
        let spans: Vec<(u64, u64)> = (self.channels.iter())
            .map(|c| {
                let from = c.base.max(written);
                (from, until.min(c.end).min(c.base + c.capacity()))
            })
            .filter(|(from, to)| from < to)
            .collect();
        let start = spans.iter().map(|s| s.0).min().unwrap_or(until);
        let mut run_end = start;
        while let Some(to) = (spans.iter())
            .filter(|(from, to)| *from <= run_end && *to > run_end)
            .map(|s| s.1)
            .max()
        {
            run_end = to;
        }
        // With no audio held, all of it is silence.
        let until = if spans.is_empty() { until } else { run_end };
        let silence = start - written;
        let mut out = vec![[0i16; 2]; (until - start) as usize];
        for (ch, c) in self.channels.iter_mut().enumerate() {
            let from = start.max(c.base);
            let to = until.min(c.end).min(c.base + c.capacity());
            c.take(from, to, start, ch, &mut out);
            c.base = c.base.max(until);
        }
        self.written = until;
        Drained {
            silence,
            frames: out,
        }
    }
}

#[cfg(test)]
mod tests;
