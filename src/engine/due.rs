//! The shell's clock and what is due: the core's timers, and the input queued before them.

use std::time::{Duration, Instant, SystemTime};

use super::{Shell, inbox};

/// A timer this late means the process was stalled (a VM paused, no CPU given): what
/// arrived meanwhile is read before the timers fire, since it came before them.
const LATE_WAKE: Duration = Duration::from_millis(250);

impl Shell {
    /// Read both clocks: the monotonic one for the core's timers and durations, the system
    /// clock for the core's CDR timestamps (so an NTP step shows from the next event on).
    pub(super) fn clock(&mut self) -> Instant {
        let now = Instant::now();
        self.core.set_clock(now, SystemTime::now());
        now
    }

    /// Take what else is queued (accepted work first) before sleeping again: fewer wakeups.
    pub(super) fn take_queued(&mut self, q: &mut inbox::Queues) {
        self.take(q, 256, inbox::Queues::try_next);
    }

    /// Handle up to `n` events that `next` takes off the queues without waiting.
    fn take(
        &mut self,
        q: &mut inbox::Queues,
        n: usize,
        next: fn(&mut inbox::Queues) -> Option<super::Event>,
    ) {
        for _ in 0..n {
            let Some(ev) = next(q) else {
                break;
            };
            let now = self.clock();
            self.on_event(now, ev);
        }
    }

    /// Fire the core's timers that are due; returns the time they were fired at. Late
    /// (the process was stalled, whichever arm of the loop it was in), a 2xx queued
    /// meanwhile is no Timer B: the readers move what the sockets hold into the queues (a
    /// sleep, so that the runtime polls the sockets: a yield did not), and it is taken
    /// before the timers fire.
    pub(super) async fn fire_due_timers(&mut self, q: &mut inbox::Queues) -> Instant {
        let mut now = self.clock();
        if let Some(due) = self.core.poll_timeout().filter(|t| *t <= now) {
            if now.saturating_duration_since(due) > LATE_WAKE {
                tokio::time::sleep(Duration::from_millis(1)).await;
                tracing::debug!(
                    urgent = q.urgent.len(),
                    fresh = q.fresh.len(),
                    "woken late: reading what came meanwhile first"
                );
                // All of the accepted work queued by then (the answers the timers would give
                // up on: a stall of a second at 1,000 calls a second queues thousands),
                // however much: that queue is bounded. New work waits as ever.
                let queued = q.urgent.len();
                self.take(q, queued, inbox::Queues::try_next_accepted);
                self.take_queued(q);
                now = self.clock();
            }
            self.core.handle_timeout(now);
        }
        now
    }
}
