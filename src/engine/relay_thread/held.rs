//! Audio a repacketiser holds short of a packet goes out on its own when its time comes
//! (`Repacketizer::due`): the end of a talkspurt from a sender without comfort noise would
//! otherwise wait for its next packet, seconds or minutes on, and arrive stale.

use std::time::{Duration, Instant};

use super::Relay;

/// How often the streams holding audio are looked at: within an outgoing ptime (10 ms at
/// the least), so what is due goes at most this late. A thread with none holding waits for
/// packets alone.
pub(super) const SCAN: Duration = Duration::from_millis(10);

impl Relay {
    /// Every listed stream's audio that is due goes out; streams left holding none leave the
    /// list. At most once a [`SCAN`], however busy the thread.
    pub(super) fn send_held(&mut self, now: Instant) {
        if now < self.scanned + SCAN {
            return;
        }
        self.scanned = now;
        let slots = &mut self.slots;
        self.holding.retain(|&slot| {
            let Some(Some((_, io))) = slots.get_mut(slot) else {
                return false;
            };
            let mut holds = false;
            for sock in 0..io.dirs.len() {
                if let Some(d) = io.dirs[sock].as_mut() {
                    holds |= d.send_due(&io.sockets[sock ^ 2], now);
                }
            }
            io.holding = holds;
            holds
        });
    }
}
