//! Shutdown's hang-up, in turns: the calls still up when the drain ends are hung up a batch
//! at a time, so the shell sends each batch's BYEs and hands on its CDRs before the next.
//! Before, one turn of the core hung up every call at once: with 100,000 calls up it built
//! 200,000 BYEs and 100,000 CDRs before sending any, every CDR past the writer's queue
//! (twice `[cdr] max_pending`, unsynced) went to the log instead of the file, and a TCP
//! trunk's connection took 1,024 of its BYEs and lost the rest.

use std::time::Instant;

use super::CallRef;
use super::router::B2bua;

/// Turns of the stop's hang-up that may panic in a row before it gives up.
const MAX_HANG_UP_FAULTS: u8 = 3;

impl B2bua {
    /// Hang up at most `n` of the calls that were up when shutdown's hang-up began (listed
    /// at the first turn; a call that ended meanwhile is passed over). True while some are
    /// left for a later turn.
    pub fn hang_up_some(&mut self, now: Instant, n: usize) -> bool {
        // Each call's hang-up is guarded on its own (`with_call`); a panic outside them (a
        // defect in the glue) costs this turn, not the process: the calls it had taken from
        // the list are still up, and the next turn lists them again. Three such turns in a
        // row and the hang-up gives up (a defect that strikes every turn would keep the stop
        // from ending): the calls left are forgotten with the process.
        let mut more = false;
        let ran = super::router::fault::guarded(self, super::router::FaultPlace::Core, |b| {
            more = b.hang_up_turn(now, n);
        });
        if ran {
            self.hang_up_faults = 0;
            return more;
        }
        self.to_hang_up = None;
        self.hang_up_faults = self.hang_up_faults.saturating_add(1);
        self.hang_up_faults < MAX_HANG_UP_FAULTS && !self.calls.is_empty()
    }

    /// The stop's hang-up gave up on the calls left (its turns kept panicking).
    pub fn hang_up_gave_up(&self) -> bool {
        self.hang_up_faults >= MAX_HANG_UP_FAULTS
    }

    fn hang_up_turn(&mut self, now: Instant, n: usize) -> bool {
        #[cfg(test)]
        super::router::fault::test_fault::strike(super::router::FaultPlace::Core);
        let calls = &self.calls;
        let left = (self.to_hang_up).get_or_insert_with(|| {
            let mut refs: Vec<CallRef> = calls.keys().copied().collect();
            // Oldest first, popped from the end.
            refs.sort_unstable_by(|a, b| b.cmp(a));
            refs
        });
        let batch = left.split_off(left.len().saturating_sub(n));
        let more = !left.is_empty();
        if !more {
            // Done: a later hang-up lists the calls up then (a test's, or the fuzzer's,
            // with calls begun since).
            self.to_hang_up = None;
        }
        for r in batch.into_iter().rev() {
            self.with_call(r, now, |c, cx| c.hang_up(cx));
            self.pump(now);
        }
        more
    }
}
