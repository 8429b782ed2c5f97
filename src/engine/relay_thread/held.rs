//! Audio a repacketiser holds short of a packet goes out on its own when its time comes
//! (`Repacketizer::due`): the end of a talkspurt from a sender without comfort noise would
//! otherwise wait for its next packet, seconds or minutes on, and arrive stale.

use std::time::{Duration, Instant};

use super::Relay;

/// How often the streams holding audio are looked at: within an outgoing ptime (10 ms at
/// the least), so what is due goes at most this late. A thread with none holding waits for
/// packets alone.
pub(super) const SCAN: Duration = Duration::from_millis(10);

#[cfg(test)]
thread_local! {
    /// Sending held audio panics on this thread (a test's fault).
    pub(super) static FAULT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Relay {
    /// Every listed stream's audio that is due goes out; streams left holding none leave the
    /// list. At most once a [`SCAN`], however busy the thread.
    pub(super) fn send_held(&mut self, now: Instant) {
        if now < self.scanned + SCAN {
            return;
        }
        self.scanned = now;
        let slots = &mut self.slots;
        let mut failed = Vec::new();
        self.holding.retain(|&slot| {
            let Some(Some((_, io))) = slots.get_mut(slot) else {
                return false;
            };
            // A panic here is the stream's failure, as one on a packet it reads is
            // (`Relay::readable`), not the thread's: it ended every call on the thread.
            let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                #[cfg(test)]
                if FAULT.with(std::cell::Cell::get) {
                    panic!("test: a fault sending held audio");
                }
                let mut holds = false;
                for sock in 0..io.dirs.len() {
                    if let Some(d) = io.dirs[sock].as_mut() {
                        holds |= d.send_due(&io.sockets[sock ^ 2], now);
                    }
                }
                holds
            }));
            let holds = sent.unwrap_or_else(|_| {
                failed.push(slot);
                false
            });
            io.holding = holds;
            holds
        });
        for slot in failed {
            tracing::warn!("a relay stream failed sending held audio; its call ends");
            crate::ops::metrics::relay_failures("stream").increment(1);
            self.fail(slot);
        }
    }
}
