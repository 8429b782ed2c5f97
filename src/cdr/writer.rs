//! The CDR writer: one thread owns the file. Records are written as whole lines within 100 ms
//! of the call's release and synced within half a second, so a crash (even of the machine)
//! loses no CDR of a call that ended more than a second before.
//!
//! On a bad disk day nothing is dropped: records that cannot be written stay in memory and
//! are retried (see [`super::sink`]), and the writer says so through [`CdrWriter::health`],
//! which the call layer asks before it admits a new call. The memory they take is bounded:
//! at `max_pending` waiting records new calls are refused; records of calls already up are
//! still taken up to twice that; beyond it a record goes to the error log as its JSON line
//! (an operator can still bill it) and is counted in `trunkgate_cdr_dropped_total`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::CdrRecord;
use super::fs::{CdrFs, RealFs};
use super::sink::Sink;
use super::spill::Spill;
use crate::threads::Joined;

/// Records not yet durable (queued, being retried, or written and waiting for their sync).
pub const CDR_QUEUE_DEPTH: &str = "trunkgate_cdr_queue_depth";
/// Failed opens, writes and syncs of the CDR file.
pub const CDR_WRITE_ERRORS: &str = "trunkgate_cdr_write_errors_total";
/// Records not in the CDR file: past the queue's hard limit (to the log), given up at exit
/// (to `<file>.unwritten`, else the log), or held by a writer stuck at exit.
pub const CDR_DROPPED: &str = "trunkgate_cdr_dropped_total";
/// Of those meant for the log, the lines that found standard error stuck (its queue full).
pub const CDR_UNLOGGED: &str = "trunkgate_cdr_unlogged_total";
/// At exit, how long lost records' lines are waited for on their way to standard error.
const LOST_DRAIN: Duration = Duration::from_secs(2);

/// Give the CDR metrics their help text; call once after the exporter is installed.
pub fn describe_metrics() {
    metrics::describe_gauge!(
        CDR_QUEUE_DEPTH,
        "CDRs not yet durable (queued, being retried, or written and waiting for their sync)"
    );
    metrics::describe_counter!(
        CDR_WRITE_ERRORS,
        "Failed opens, writes and syncs of the CDR file"
    );
    metrics::describe_counter!(
        CDR_DROPPED,
        "CDRs not written to the CDR file (in <file>.unwritten, in the error log, or lost with a stuck writer)"
    );
    metrics::describe_counter!(
        CDR_UNLOGGED,
        "CDRs meant for the error log that found standard error stuck: lost whole"
    );
}

/// How often the writer wakes to write what has queued. The calls' side never waits for the
/// writer and never has to wake it (a send to a parked receiver costs a futex call per CDR).
const WRITE_EVERY: Duration = Duration::from_millis(100);
/// At exit, how long records that cannot be written are retried before they go to the log.
const CLOSE_RETRY: Duration = Duration::from_secs(3);
/// At exit, how long the writer is waited for: its retries, then a last write and sync, and
/// the records it gives up on written and synced aside.
pub const CLOSE_WAIT: Duration = Duration::from_secs(6);
/// A writer that has not come round its loop for this long while records wait is stuck in
/// the disk (a hard NFS mount, a dying drive): its records are in memory only, so it counts
/// as failing. Its loop runs every 100 ms; writing a large backlog takes well under this.
const STALLED_AFTER: Duration = Duration::from_secs(2);

/// The operator's `[cdr]` choices that shape the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CdrOptions {
    /// Refuse new calls while CDRs cannot be written (`[cdr] fail_closed`).
    pub fail_closed: bool,
    /// Waiting records at which new calls are refused (`[cdr] max_pending`).
    pub max_pending: usize,
}

impl Default for CdrOptions {
    fn default() -> Self {
        CdrOptions {
            fail_closed: true,
            max_pending: 10_000,
        }
    }
}

impl CdrOptions {
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        CdrOptions {
            fail_closed: cfg.cdr_fail_closed,
            max_pending: cfg.cdr_max_pending,
        }
    }
}

/// Whether CDRs are flowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CdrHealth {
    /// Records are being written.
    Ok,
    /// The last write failed; records are kept and retried.
    Failing,
    /// `max_pending` records are waiting: new calls must be refused whatever `fail_closed`.
    Full,
}

impl CdrHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            CdrHealth::Ok => "ok",
            CdrHealth::Failing => "failing",
            CdrHealth::Full => "full",
        }
    }
}

/// Counters for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CdrStats {
    pub health: CdrHealth,
    /// Records not yet durable: queued, being retried, or written and not yet synced.
    pub queue_depth: usize,
    /// Failed opens, writes and syncs since start.
    pub write_errors: u64,
    /// Records that went to the log instead of the file.
    pub dropped: u64,
}

/// State the calls' side reads without waiting for the writer thread.
#[derive(Debug)]
struct Shared {
    /// Records accepted by `write` and not yet durable (synced in the file), or given up.
    depth: AtomicUsize,
    failing: AtomicBool,
    write_errors: AtomicU64,
    dropped: AtomicU64,
    reopen: AtomicBool,
    fail_closed: AtomicBool,
    /// At exit, the records not written have been counted (and said): by the writer, or
    /// by a stop that went on without it. Whoever sets it first counts them, once.
    exit_counted: AtomicBool,
    /// How many the writer counted that way, for a stop that then goes on without it.
    given_up: AtomicUsize,
    /// Where records go that cannot reach the file.
    lost: LostLines,
    /// Of `depth`, the records already in the file and waiting for their sync: a writer
    /// stuck at exit has not lost those (only a crash of the machine would).
    unsynced: AtomicUsize,
    /// When the writer last came round its loop: milliseconds after `born`.
    beat_ms: AtomicU64,
    born: Instant,
}

impl Shared {
    fn new(fail_closed: bool) -> Shared {
        Shared {
            depth: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
            write_errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            reopen: AtomicBool::new(false),
            fail_closed: AtomicBool::new(fail_closed),
            exit_counted: AtomicBool::new(false),
            given_up: AtomicUsize::new(0),
            lost: LostLines::new(),
            unsynced: AtomicUsize::new(0),
            beat_ms: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    fn beat(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.born).as_millis();
        self.beat_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Release);
    }

    /// Records wait and the writer has not come round its loop for [`STALLED_AFTER`].
    fn stalled(&self, now: Instant) -> bool {
        if self.depth.load(Ordering::Acquire) == 0 {
            return false;
        }
        let beat = self.born + Duration::from_millis(self.beat_ms.load(Ordering::Acquire));
        now.saturating_duration_since(beat) > STALLED_AFTER
    }
}

/// Handle to the writer thread. [`CdrWriter::close`] (also run on drop) writes and syncs what
/// is left.
#[derive(Debug)]
pub struct CdrWriter {
    tx: Option<Sender<CdrRecord>>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
    /// The state shared with the writer thread, and the limit health is judged by.
    gate: CdrGate,
}

impl CdrWriter {
    /// Open (create, append) the CDR file, creating its folder, with the default options.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Self::open_with(path, CdrOptions::default())
    }

    pub fn open_with(path: &Path, opts: CdrOptions) -> std::io::Result<Self> {
        Self::open_on(Box::new(RealFs), path, opts)
    }

    /// Open on any filesystem (tests inject a full disk). The file is opened here, so an
    /// unusable path is reported at start-up rather than at the first call.
    pub fn open_on(mut fs: Box<dyn CdrFs>, path: &Path, opts: CdrOptions) -> std::io::Result<Self> {
        let spill = Spill::open(fs.as_mut(), path, opts.max_pending);
        let mut sink = Sink::new(fs, path).with_sync_thread()?;
        sink.open_now()?;
        let shared = Arc::new(Shared::new(opts.fail_closed));
        // Unbounded channel, bounded by `depth`: `write` refuses past the hard limit, and
        // `depth` counts everything in the channel and in the sink.
        let (tx, rx) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("cdr-writer".into())
            .spawn(move || run(sink, spill, rx, &thread_shared))?;
        Ok(CdrWriter {
            tx: Some(tx),
            thread: Some(thread),
            path: path.to_path_buf(),
            gate: CdrGate {
                shared,
                max_pending: opts.max_pending.max(1),
            },
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue one record. Never blocks the caller.
    pub fn write(&self, rec: CdrRecord) {
        let hard_limit = self.hard_limit();
        let queued = self
            .gate
            .shared
            .depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                (d < hard_limit).then_some(d + 1)
            })
            .is_ok();
        if !queued {
            self.lose(&rec, "the CDR queue is at its limit");
            return;
        }
        let sent = match &self.tx {
            Some(tx) => tx.send(rec).map_err(|e| e.0),
            None => Err(rec),
        };
        if let Err(rec) = sent {
            self.gate.shared.depth.fetch_sub(1, Ordering::AcqRel);
            self.lose(&rec, "the CDR writer has stopped");
        }
    }

    /// A record that cannot reach the file goes to standard error (the log) whole, so it can
    /// be billed: not through the log's queue, which drops lines when full (a peer's
    /// refusals can fill it), and never waiting on standard error (`LostLines`).
    fn lose(&self, rec: &CdrRecord, why: &str) {
        self.gate.shared.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(CDR_DROPPED).increment(1);
        let line = rec.to_line().unwrap_or_default();
        (self.gate.shared.lost).write(&format!(" ({why})"), [line.as_str()]);
    }

    /// Records the queue takes now before it refuses one (to the log): twice `max_pending`,
    /// less those not yet durable.
    pub fn room(&self) -> usize {
        (self.hard_limit()).saturating_sub(self.gate.shared.depth.load(Ordering::Acquire))
    }

    /// Records not yet durable past which one more is refused: twice `max_pending`.
    fn hard_limit(&self) -> usize {
        self.gate.max_pending.saturating_mul(2)
    }

    /// Close the file and open the path again at the writer's next wake-up (≤ 100 ms): the
    /// shell calls this on SIGHUP, after logrotate moved the file away. (A moved or deleted
    /// file is also noticed without a signal.)
    pub fn reopen(&self) {
        self.gate.shared.reopen.store(true, Ordering::Release);
    }

    /// `[cdr] fail_closed` as reloaded.
    pub fn set_fail_closed(&self, on: bool) {
        self.gate.shared.fail_closed.store(on, Ordering::Release);
    }

    /// Whether CDRs are flowing. A few atomic loads (and the clock while records wait):
    /// cheap enough for every new INVITE. A writer stuck in a system call sets no flag, so
    /// it is told by its silence.
    pub fn health(&self) -> CdrHealth {
        self.gate.health()
    }

    /// Whether a new call may start: not while the queue is full, and not while writes fail
    /// when `fail_closed` is on. A refused call gets 503 from the call layer.
    pub fn admits_new_calls(&self) -> bool {
        self.gate.admits_new_calls()
    }

    /// [`CdrWriter::admits_new_calls`], readable from another thread (`GET /health`).
    pub fn gate(&self) -> CdrGate {
        self.gate.clone()
    }

    /// Records wait and the writer has not come round its loop for a while: stuck in the
    /// disk.
    pub fn stalled(&self) -> bool {
        self.gate.shared.stalled(Instant::now())
    }

    /// What went to standard error so far, one line per record lost.
    #[cfg(test)]
    pub fn lost_lines(&self) -> String {
        self.gate.shared.lost.written()
    }

    pub fn stats(&self) -> CdrStats {
        CdrStats {
            health: self.health(),
            queue_depth: self.gate.shared.depth.load(Ordering::Acquire),
            write_errors: self.gate.shared.write_errors.load(Ordering::Relaxed),
            dropped: self.gate.shared.dropped.load(Ordering::Relaxed),
        }
    }

    /// Write and sync what is queued, then stop the thread. Records that still cannot be
    /// written after a few seconds of retries go to the error log. Waits at most
    /// [`CLOSE_WAIT`]: a writer stuck in a system call is left behind, with what it holds
    /// counted and said.
    pub fn close(&mut self) {
        self.close_within(CLOSE_WAIT);
    }

    /// [`CdrWriter::close`], waiting at most `limit`.
    pub fn close_within(&mut self, limit: Duration) {
        self.tx.take();
        let Some(t) = self.thread.take() else {
            return;
        };
        self.join_within(t, limit);
        let lost = &self.gate.shared.lost;
        if !lost.drain_within(LOST_DRAIN) {
            tracing::error!(
                "standard error took no lost CDR's line for {} s: those still queued for it \
                 are lost with the process",
                LOST_DRAIN.as_secs()
            );
        }
        if lost.unlogged() > 0 {
            tracing::error!(
                unlogged = lost.unlogged(),
                "CDRs that could not be written found standard error stuck too: lost"
            );
        }
    }

    fn join_within(&self, t: JoinHandle<()>, limit: Duration) {
        match crate::threads::join_within(t, limit) {
            Joined::Finished => {}
            // Whatever it held in memory is gone: counted and said, not lost silently.
            Joined::Panicked if !self.gate.shared.exit_counted.swap(true, Ordering::AcqRel) => {
                let lost = self.count_held_as_lost(true);
                tracing::error!(
                    lost,
                    "the CDR writer stopped abnormally: the CDRs it held are lost"
                );
            }
            Joined::Panicked => tracing::error!("the CDR writer stopped abnormally"),
            Joined::StillRunning if !self.gate.shared.exit_counted.swap(true, Ordering::AcqRel) => {
                let lost = self.count_held_as_lost(false);
                tracing::error!(
                    lost,
                    "the CDR writer did not finish within {} s (the disk does not answer): \
                     the CDRs it still held are lost unless it finishes before the process \
                     exits",
                    limit.as_secs()
                );
            }
            // It has counted what it gives up on, and is writing them aside or saying them
            // in the log: lost if the process exits first.
            Joined::StillRunning => tracing::error!(
                lost = self.gate.shared.given_up.load(Ordering::Acquire),
                "the CDR writer did not finish within {} s (the disk does not answer): the \
                 CDRs it was writing aside are lost unless it finishes before the process \
                 exits",
                limit.as_secs()
            ),
        }
    }
}

/// Whether new calls may start as far as CDRs go, read from another thread than the
/// writer's owner.
#[derive(Debug, Clone)]
pub struct CdrGate {
    shared: Arc<Shared>,
    max_pending: usize,
}

impl CdrGate {
    pub fn admits_new_calls(&self) -> bool {
        match self.health() {
            CdrHealth::Ok => true,
            CdrHealth::Failing => !self.shared.fail_closed.load(Ordering::Acquire),
            CdrHealth::Full => false,
        }
    }

    fn health(&self) -> CdrHealth {
        let shared = &self.shared;
        if shared.depth.load(Ordering::Acquire) >= self.max_pending {
            CdrHealth::Full
        } else if shared.failing.load(Ordering::Acquire) || shared.stalled(Instant::now()) {
            CdrHealth::Failing
        } else {
            CdrHealth::Ok
        }
    }
}

impl CdrWriter {
    /// `n` calls ended with no CDR made (the stop's hang-up gave up on them: a defect):
    /// counted as dropped, so the exit status says so.
    pub fn count_never_made(&self, n: usize) {
        (self.gate.shared.dropped).fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!(CDR_DROPPED).increment(n as u64);
    }

    /// Count what the writer holds as dropped, and how many: `gone` (it died) empties the
    /// queue count too; a writer stuck in the disk may still finish with them.
    fn count_held_as_lost(&self, gone: bool) -> usize {
        let held = if gone {
            self.gate.shared.depth.swap(0, Ordering::AcqRel)
        } else {
            self.gate.shared.depth.load(Ordering::Acquire)
        };
        // Written and not yet synced: in the file, not lost.
        let lost = held.saturating_sub(self.gate.shared.unsynced.load(Ordering::Acquire));
        self.gate
            .shared
            .dropped
            .fetch_add(lost as u64, Ordering::Relaxed);
        metrics::counter!(CDR_DROPPED).increment(lost as u64);
        lost
    }
}

impl Drop for CdrWriter {
    fn drop(&mut self) {
        self.close();
    }
}

mod lost;
mod thread;
use lost::LostLines;
use thread::run;
#[cfg(test)]
use thread::step;

#[cfg(test)]
mod tests;
