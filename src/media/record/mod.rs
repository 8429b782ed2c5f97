//! Call recording, correct by construction: samples are placed by RTP timestamp, never by
//! packet arrival. Each direction has a jitter buffer of `depth` on one shared wall-clock
//! timeline, so the two channels stay aligned whatever the packet sizes (10–60 ms, changing
//! mid-call), reordering, loss, duplicates, timestamp wrap-around or SSRC changes.
//!
//! Sans-IO: packets and `Instant`s in, PCM frames out. The WAV file is the shell's business
//! (`engine/wav.rs`).

mod g711;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use webrtc_util::marshal::Unmarshal;

pub use g711::{alaw_to_linear, ulaw_to_linear};

/// 8 kHz: G.711's clock, and the recording's.
const RATE: u64 = 8000;
/// A timestamp this far from the expected position is a new stream, not a gap.
const DISCONTINUITY: i64 = 10 * RATE as i64;

/// Counters a recording keeps (for logs and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// Packets that arrived after their place in the file was written.
    pub late: u64,
    pub duplicates: u64,
    /// Packets of codecs we cannot decode (recorded as silence).
    pub undecodable: u64,
    /// Telephone-events, comfort noise and other non-audio payloads left out.
    pub skipped: u64,
    pub ssrc_changes: u64,
}

#[derive(Debug, Default)]
struct Channel {
    ssrc: Option<u32>,
    /// Timeline position minus extended timestamp, fixed when a stream starts.
    offset: i64,
    last_ts: u32,
    last_ext: i64,
    /// Decoded samples waiting for their turn, by timeline position.
    pending: BTreeMap<u64, Vec<i16>>,
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
}

impl Recorder {
    pub fn new(jitter: Duration) -> Self {
        Recorder {
            t0: None,
            depth: jitter.as_millis() as u64 * RATE / 1000,
            written: 0,
            horizon: 0,
            channels: [Channel::default(), Channel::default()],
            stats: RecordStats::default(),
        }
    }

    fn clock(&self, now: Instant) -> u64 {
        self.t0
            .map(|t0| now.saturating_duration_since(t0).as_micros() as u64 * RATE / 1_000_000)
            .unwrap_or(0)
    }

    /// One RTP packet of channel `ch` (0 caller, 1 callee) arrived at `now`.
    pub fn push(&mut self, now: Instant, ch: usize, packet: &[u8]) {
        let Ok(p) = rtp::packet::Packet::unmarshal(&mut Bytes::copy_from_slice(packet)) else {
            return;
        };
        let samples: Vec<i16> = match p.header.payload_type {
            0 => p.payload.iter().map(|&b| ulaw_to_linear(b)).collect(),
            8 => p.payload.iter().map(|&b| alaw_to_linear(b)).collect(),
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
        if samples.is_empty() {
            return;
        }
        let t0 = *self.t0.get_or_insert(now);
        let arrival = now.saturating_duration_since(t0).as_micros() as u64 * RATE / 1_000_000;
        let (ts, ssrc) = (p.header.timestamp, p.header.ssrc);
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
                // A jump far from where the stream should be is a restart, not a gap.
                (pos - arrival as i64).abs() > DISCONTINUITY
            }
        };
        if new_stream {
            c.ssrc = Some(ssrc);
            c.last_ts = ts;
            c.last_ext = i64::from(ts);
            // The stream starts where its first packet arrived (less the buffer it filled).
            c.offset = arrival as i64 - i64::from(ts);
        }
        let ext = c.last_ext + i64::from(ts.wrapping_sub(c.last_ts) as i32);
        if ext > c.last_ext {
            c.last_ext = ext;
            c.last_ts = ts;
        }
        let pos = c.offset + ext;
        if pos < 0 {
            self.stats.late += 1;
            return;
        }
        let mut pos = pos as u64;
        let mut samples = samples;
        if pos + samples.len() as u64 <= self.written {
            self.stats.late += 1;
            return;
        }
        if pos < self.written {
            // Partly late: keep what still has a place.
            let cut = (self.written - pos) as usize;
            samples.drain(..cut);
            pos = self.written;
        }
        if c.pending.contains_key(&pos) {
            self.stats.duplicates += 1;
            return;
        }
        self.horizon = self.horizon.max(pos + samples.len() as u64);
        c.pending.insert(pos, samples);
    }

    /// Frames (caller, callee) whose time has come: everything older than the jitter depth.
    pub fn drain(&mut self, now: Instant) -> Vec<[i16; 2]> {
        let until = self.clock(now).saturating_sub(self.depth).min(self.horizon);
        self.take_until(until)
    }

    /// Every frame still held, at the end of the call.
    pub fn finish(&mut self) -> Vec<[i16; 2]> {
        let end = self
            .channels
            .iter()
            .filter_map(|c| {
                c.pending
                    .iter()
                    .next_back()
                    .map(|(p, s)| p + s.len() as u64)
            })
            .max()
            .unwrap_or(self.written);
        self.take_until(end)
    }

    fn take_until(&mut self, until: u64) -> Vec<[i16; 2]> {
        if until <= self.written {
            return Vec::new();
        }
        let start = self.written;
        let len = (until - start) as usize;
        let mut out = vec![[0i16; 2]; len];
        for (ch, c) in self.channels.iter_mut().enumerate() {
            let mut keep = BTreeMap::new();
            for (pos, samples) in std::mem::take(&mut c.pending) {
                let end = pos + samples.len() as u64;
                if pos >= until {
                    keep.insert(pos, samples);
                    continue;
                }
                for (i, s) in samples.iter().enumerate() {
                    let p = pos + i as u64;
                    if p >= until {
                        break;
                    }
                    if let Some(frame) = out.get_mut((p - start) as usize) {
                        frame[ch] = *s;
                    }
                }
                if end > until {
                    let rest = samples[(until - pos) as usize..].to_vec();
                    keep.insert(until, rest);
                }
            }
            c.pending = keep;
        }
        self.written = until;
        out
    }
}

#[cfg(test)]
mod tests;
