//! The writer thread's loop: take what the calls queued, write and sync it, count what
//! leaves memory, and at exit retry a while, then set aside what the file did not take.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use super::super::CdrRecord;
use super::super::sink::{Sink, TickReport};
use super::super::spill::Spill;
use super::{CDR_DROPPED, CDR_QUEUE_DEPTH, CDR_WRITE_ERRORS, CLOSE_RETRY, Shared, WRITE_EVERY};

pub(super) fn run(
    mut sink: Sink,
    mut spill: Option<Spill>,
    rx: Receiver<CdrRecord>,
    shared: &Shared,
) {
    let mut closed = false;
    let mut burst = crate::ops::heap::BurstEnd::default();
    let mut faults = Faults::default();
    while !closed {
        std::thread::sleep(WRITE_EVERY);
        // Records stay queued until written: a panic in a tick (a defect) leaves them there
        // and the thread goes on. Unwound, it would have taken them all with it, and every
        // CDR after.
        closed = faults
            .guard(shared, || take_queued(&mut sink, &rx, shared))
            .unwrap_or(false);
        if shared.reopen.swap(false, Ordering::AcqRel) {
            sink.request_reopen();
        }
        let written = guarded_step(&mut faults, &mut sink, shared);
        shared.beat(Instant::now());
        if burst.ended(written > 0 || sink.pending() > 0) {
            // A burst of calls ended: the pages its lines were encoded and queued in go
            // back.
            sink.shrink();
            crate::ops::heap::release_thread_pages();
        }
    }
    // Exit: keep retrying for a while (a disk that is being cleaned), each wait bounded.
    let give_up = Instant::now() + CLOSE_RETRY;
    sink.retry_now();
    while sink.pending() > 0 && Instant::now() < give_up {
        let now = Instant::now();
        // At least a tick's wait: a reopen held for a running sync writes nothing and sets
        // no retry time, and the loop would spin on it.
        let wake = sink
            .retry_at()
            .unwrap_or(now)
            .max(now + WRITE_EVERY)
            .min(give_up);
        std::thread::sleep(wake.saturating_duration_since(now));
        // One that panics at every try will not stop doing so: what it holds goes aside.
        let mut report = TickReport::default();
        if faults
            .guard(shared, || {
                step(&mut sink, shared, Instant::now(), &mut report)
            })
            .is_none()
        {
            settle_after_fault(shared, report);
            break;
        }
    }
    let report = faults.guard(shared, || sink.flush()).unwrap_or_default();
    settle(shared, report);
    shared.unsynced.store(sink.unsynced(), Ordering::Release);
    count_errors(shared, report.errors);
    let left = sink.take_pending();
    // Counted once: a stop that went on without this thread may have counted them.
    // Stored first: a stop that finds the count taken says this number.
    shared.given_up.store(left.len(), Ordering::Release);
    if !left.is_empty() && !shared.exit_counted.swap(true, Ordering::AcqRel) {
        settle(
            shared,
            TickReport {
                durable: left.len(),
                ..TickReport::default()
            },
        );
        shared
            .dropped
            .fetch_add(left.len() as u64, Ordering::Relaxed);
        metrics::counter!(CDR_DROPPED).increment(left.len() as u64);
    }
    let spilled = match (&mut spill, left.is_empty()) {
        (Some(spill), false) => spill.write(sink.fs(), &left),
        _ => 0,
    };
    if let Some(spill) = spill.as_ref().filter(|_| spilled > 0) {
        tracing::error!(
            count = spilled,
            "CDRs not written to the CDR file (it stayed unwritable until exit) are in {}",
            spill.path.display()
        );
    }
    // Straight to standard error (the log), waiting for it: the log's own queue drops
    // lines when it is full, and these thousands may be billed from nowhere else.
    let unsaid = &left[spilled..];
    if !unsaid.is_empty() {
        tracing::error!(
            count = unsaid.len(),
            "CDRs not written (the file stayed unwritable until exit): each follows on standard error, one line each, after `trunkgate: CDR not written: `"
        );
        (shared.lost).write_waiting("", unsaid.iter().map(String::as_str));
    }
    metrics::gauge!(CDR_QUEUE_DEPTH).set(shared.depth.load(Ordering::Acquire) as f64);
}

/// Panics caught in the writer's loop (each a defect).
#[derive(Default)]
struct Faults(u64);

impl Faults {
    /// Run `f`; a panic in it is counted (`trunkgate_faults_total{place="cdr_writer"}`),
    /// logged at powers of two, and taken as a failing write (new calls are refused with
    /// `fail_closed`, as when the disk fails). `None`: it panicked.
    fn guard<T>(&mut self, shared: &Shared, f: impl FnOnce() -> T) -> Option<T> {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        if ran.is_err() {
            self.0 = self.0.saturating_add(1);
            shared.failing.store(true, Ordering::Release);
            crate::ops::metrics::fault("cdr_writer");
            if self.0.is_power_of_two() {
                tracing::error!(
                    faults = self.0,
                    "the CDR writer panicked (a defect): its CDRs stay queued and it writes on"
                );
            }
        }
        ran.ok()
    }
}

/// Move what the calls queued into the sink. True once every sender is gone.
fn take_queued(sink: &mut Sink, rx: &Receiver<CdrRecord>, shared: &Shared) -> bool {
    loop {
        match rx.try_recv() {
            // Encoding panicking (a defect) is an encoding error: the record's count is
            // taken back, as it is gone.
            Ok(rec) => {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rec.to_line()))
                    .unwrap_or_else(|_| Err(serde::ser::Error::custom("encoding panicked")))
                {
                    Ok(line) => sink.push(line),
                    Err(e) => {
                        shared.depth.fetch_sub(1, Ordering::AcqRel);
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(CDR_DROPPED).increment(1);
                        tracing::error!(call_id = %rec.call_id, error = %e, "cannot encode CDR");
                    }
                }
            }
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => return true,
        }
    }
}

/// Write what can be written now; how many lines went out.
/// [`step`] under the fault guard: what a tick that panicked had made durable before it did
/// is counted out all the same.
fn guarded_step(faults: &mut Faults, sink: &mut Sink, shared: &Shared) -> usize {
    let mut report = TickReport::default();
    match faults.guard(shared, || step(sink, shared, Instant::now(), &mut report)) {
        Some(written) => written,
        None => {
            settle_after_fault(shared, report);
            0
        }
    }
}

/// What a tick that panicked reported before it did: its records made durable leave the
/// queue's count. Before, they stayed counted for good (`trunkgate_cdr_queue_depth` too
/// high; enough such faults and the CDR gate refused every new call).
fn settle_after_fault(shared: &Shared, report: TickReport) {
    settle(shared, report);
    count_errors(shared, report.errors);
}

/// One tick of the writer; what it reports is settled here, or, should the tick panic, by
/// the caller from `report` (filled as the tick goes, taken once settled).
pub(super) fn step(
    sink: &mut Sink,
    shared: &Shared,
    now: Instant,
    report: &mut TickReport,
) -> usize {
    // Nothing counts as safe in the file while a tick runs: one stuck in it (a failed sync
    // put its lines back in memory, then a write hung) would have them counted so.
    shared.unsynced.store(0, Ordering::Release);
    sink.tick_into(now, report);
    let report = std::mem::take(report);
    shared.unsynced.store(sink.unsynced(), Ordering::Release);
    settle(shared, report);
    shared.failing.store(sink.failing(), Ordering::Release);
    count_errors(shared, report.errors);
    metrics::gauge!(CDR_QUEUE_DEPTH).set(shared.depth.load(Ordering::Acquire) as f64);
    report.written
}

/// Count what a tick moved out of memory: records leave it once durable (a record written,
/// then put back by a failed sync, was never counted out), so `depth` is every record held,
/// written or not, and a sync that hangs while writes go on fills it.
fn settle(shared: &Shared, report: TickReport) {
    // The saturation guards the gate on new calls: a miscount that wrapped below zero
    // would read as a full queue and refuse every call until a restart.
    let _ = shared
        .depth
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
            Some(d.saturating_sub(report.durable))
        });
}

fn count_errors(shared: &Shared, n: u64) {
    if n > 0 {
        shared.write_errors.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(CDR_WRITE_ERRORS).increment(n);
    }
}
