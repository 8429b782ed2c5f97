//! One direction's jitter buffer for the recorder.

use super::{LAG_WINDOW, LOOKAHEAD};

/// A stream this far ahead of where its packets arrive (250 ms) moves back at once, without
/// waiting for a pause: half the room ahead of the buffer, so that with a drain's worth of
/// packets and the largest one on top it is still sure to fit. Further ahead, packets would
/// land beyond the ring between drains and be left out, one in every few for good.
const MOVE_BACK_NOW: i64 = LOOKAHEAD as i64 / 2;
/// How long (10 s) a stream ahead waits for a pause to move back at: one that has not paused
/// by then (G.711 without silence suppression never does) moves back anyway.
const PAUSE_WAIT: u64 = 10 * super::RATE;

/// One direction's jitter buffer: a fixed ring of samples indexed by timeline position
/// (`pos % capacity`), holding positions `base..base + capacity`. Nothing is allocated per
/// packet, so whatever arrives it never holds more than `capacity` samples.
#[derive(Debug)]
pub(super) struct Channel {
    pub(super) ssrc: Option<u32>,
    /// Timeline position minus extended timestamp, fixed when a stream starts.
    pub(super) offset: i64,
    pub(super) last_ts: u32,
    pub(super) last_ext: i64,
    pub(super) samples: Box<[i16]>,
    /// One bit per ring slot: a sample is held there (0 is a valid sample, so a flag).
    pub(super) held: Box<[u64]>,
    /// First position the ring can hold; everything before it is written, or silence.
    pub(super) base: u64,
    /// End of the latest sample held (`<= base` when the ring is empty).
    pub(super) end: u64,
    /// The least lag (arrival less timeline position, in samples) of this second's
    /// packets, and the arrival the second began at: a sender whose clock is slow drifts
    /// behind by 0.8 samples a second per 100 ppm, and without following it would be late
    /// for good once the drift passed the jitter depth.
    pub(super) lag_floor: i64,
    pub(super) lag_since: u64,
    /// The greatest lag of this second's packets: a stream whose every packet came at
    /// least the slack early (a delay that went up, was followed, and came down again; a
    /// sender's fast clock) is placed that much later than the other channel for good.
    pub(super) lag_ceiling: i64,
    /// How much earlier the timeline is to move (negative; 0: none), at the sender's next
    /// pause long enough that nothing held is overwritten ([`Channel::catch_up`]).
    pub(super) early: i64,
    /// The arrival at which the stream was first found early, of the seconds since.
    pub(super) early_since: u64,
    /// A packet that would restart the stream, held back until the next one bears it out:
    /// the stream's offset it would give (arrival less its extended timestamp), and that
    /// extended timestamp.
    pub(super) pending: Option<(i64, i64)>,
}

/// The run of slots from `slot` that stays in one `held` word, at most `left` long: its bit
/// offset in the word, its length and the word's bits for it (`left >= 1`).
fn word_run(slot: usize, left: usize) -> (usize, usize, u64) {
    let bit = slot % 64;
    let len = (64 - bit).min(left);
    let mask = if len >= 64 {
        u64::MAX
    } else {
        ((1u64 << len) - 1) << bit
    };
    (bit, len, mask)
}

impl Channel {
    /// `capacity` is rounded up to whole `held` words: the ring then wraps only at a word
    /// boundary, so placing and draining go a word (64 slots) at a time.
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.next_multiple_of(64);
        Channel {
            ssrc: None,
            offset: 0,
            last_ts: 0,
            last_ext: 0,
            samples: vec![0; capacity].into_boxed_slice(),
            held: vec![0; capacity.div_ceil(64)].into_boxed_slice(),
            base: 0,
            end: 0,
            lag_floor: i64::MAX,
            lag_since: 0,
            lag_ceiling: i64::MIN,
            early: 0,
            early_since: 0,
            pending: None,
        }
    }

    /// Note a packet's lag; at the end of each second, a stream whose every packet was at
    /// least `slack` behind moves its timeline that much later (a short silence, once, in
    /// place of losing every packet from then on). True when it moved.
    /// A stream whose every packet of the second was at least `slack` early is to move that
    /// much earlier, at its next pause ([`Channel::catch_up`]); at once when it is too far
    /// ahead for the ring ([`MOVE_BACK_NOW`]) or has not paused within [`PAUSE_WAIT`]: the
    /// new audio that falls on what it holds already is cut, once, in place of the ring
    /// leaving packets out for the rest of the call.
    pub(super) fn follow(&mut self, arrival: u64, pos: i64, slack: i64) -> bool {
        let lag = arrival as i64 - pos;
        self.lag_floor = self.lag_floor.min(lag);
        self.lag_ceiling = self.lag_ceiling.max(lag);
        if arrival.saturating_sub(self.lag_since) < LAG_WINDOW {
            return false;
        }
        let floor = std::mem::replace(&mut self.lag_floor, i64::MAX);
        let ceiling = std::mem::replace(&mut self.lag_ceiling, i64::MIN);
        self.lag_since = arrival;
        if floor >= slack {
            self.offset += floor;
            self.early = 0;
            return true;
        }
        // Only what the last second bore out: a delay that went up again meanwhile leaves
        // nothing to move back.
        let early = if ceiling <= -slack { ceiling } else { 0 };
        if self.early == 0 {
            self.early_since = arrival;
        }
        self.early = early;
        if early < 0
            && (early <= -MOVE_BACK_NOW || arrival.saturating_sub(self.early_since) >= PAUSE_WAIT)
        {
            self.offset += std::mem::take(&mut self.early);
            return true;
        }
        false
    }

    /// Move the timeline earlier as [`Channel::follow`] asked, when the packet at `pos`
    /// would then still start after everything held: the sender paused at least that long
    /// (a talkspurt's start, silence suppression), so no audio is overwritten. True when it
    /// moved.
    pub(super) fn catch_up(&mut self, pos: i64) -> bool {
        if self.early < 0 && pos + self.early >= self.end as i64 {
            self.offset += std::mem::take(&mut self.early);
            return true;
        }
        false
    }

    pub(super) fn capacity(&self) -> u64 {
        self.samples.len() as u64
    }

    pub(super) fn slot(&self, pos: u64) -> usize {
        (pos % self.capacity().max(1)) as usize
    }

    /// Decode `payload` into the ring from `slot` on, sample by sample into free slots only
    /// (first come, first kept: a duplicate or overlapping packet changes nothing). A word of
    /// free slots, the usual case, is one straight decode loop. Returns whether any sample
    /// was placed.
    pub(super) fn place(&mut self, mut slot: usize, payload: &[u8], table: &[i16; 256]) -> bool {
        let mut placed = false;
        let mut rest = payload;
        while !rest.is_empty() {
            let (bit, len, mask) = word_run(slot, rest.len());
            let (Some(word), Some(out)) = (
                self.held.get_mut(slot / 64),
                self.samples.get_mut(slot..slot + len),
            ) else {
                return placed;
            };
            let free = !*word & mask;
            let bytes = &rest[..len];
            if free == mask {
                for (s, &b) in out.iter_mut().zip(bytes) {
                    *s = table[usize::from(b)];
                }
            } else if free != 0 {
                for (i, (s, &b)) in out.iter_mut().zip(bytes).enumerate() {
                    if free & (1 << (bit + i)) != 0 {
                        *s = table[usize::from(b)];
                    }
                }
            }
            placed |= free != 0;
            *word |= mask;
            rest = &rest[len..];
            slot = if slot + len >= self.samples.len() {
                0
            } else {
                slot + len
            };
        }
        placed
    }

    /// Move the samples held at positions `from..to` into `out[.. ][ch]` (`out[0]` is
    /// position `start`) and free their slots; slots not held stay silence.
    pub(super) fn take(&mut self, from: u64, to: u64, start: u64, ch: usize, out: &mut [[i16; 2]]) {
        let mut pos = from;
        while pos < to {
            let slot = self.slot(pos);
            let (bit, len, mask) = word_run(slot, (to - pos) as usize);
            let at = (pos - start) as usize;
            let (Some(word), Some(samples), Some(frames)) = (
                self.held.get_mut(slot / 64),
                self.samples.get(slot..slot + len),
                out.get_mut(at..at + len),
            ) else {
                return;
            };
            let held = *word & mask;
            if held == mask {
                for (f, &s) in frames.iter_mut().zip(samples) {
                    f[ch] = s;
                }
            } else if held != 0 {
                for (i, (f, &s)) in frames.iter_mut().zip(samples).enumerate() {
                    if held & (1 << (bit + i)) != 0 {
                        f[ch] = s;
                    }
                }
            }
            *word &= !mask;
            pos += len as u64;
        }
    }

    /// Whether a packet ending at `end` fits without dropping audio still held. An empty
    /// ring takes a packet no further ahead than its capacity from `floor` (where a packet
    /// arriving now belongs, less the jitter depth): one stamped seconds ahead must not
    /// move its start past where the stream's next packets go.
    pub(super) fn fits(&self, end: u64, floor: u64) -> bool {
        let base = if self.end <= self.base {
            self.base.max(floor)
        } else {
            self.base
        };
        end <= base + self.capacity()
    }
}
