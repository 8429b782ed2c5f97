//! What the CDR writer thread does with its file, driven by `tick(now)` so every failure path
//! (full disk, short write, rotation) is tested with a fake clock and an injected filesystem.
//!
//! The rules: a record leaves memory only once its whole line is in the file; every record
//! starts on a fresh line (a half line of our own write is cut off, or ended with a newline
//! when it cannot be cut; one found at open is ended with a newline, as it may not be ours); the file is reopened when asked and when the path names a different file; failed
//! writes are retried with a bounded exponential backoff; written data is synced within
//! [`SYNC_AFTER`] plus one tick. A record is kept until the sync after its write succeeded:
//! when a sync fails, the kernel may have dropped the written pages (the error is reported
//! once, and a later sync succeeds without them), so the lines written since the last good
//! sync are written again to the file reopened. A reader may then see a line twice (same
//! call_id and times), never miss one.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::fs::{CdrFile, CdrFs};
use super::syncer::{Done, Job, Syncer};

/// Unsynced data is synced once it is this old; with the writer's 100 ms tick that keeps
/// every line synced within half a second of being written.
pub const SYNC_AFTER: Duration = Duration::from_millis(400);
/// A sync still running after this long: the disk does not answer. The sink counts as
/// failing until it ends (its CDRs are in the file, safe from a crash of the process, but
/// not from one of the machine).
pub const SYNC_STUCK: Duration = Duration::from_secs(2);
/// First wait after a failed write or open.
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Longest wait between retries: a disk that gets space back is written to within this long.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Bytes handed to one `write` call, so the batch buffer stays small however long the queue.
const CHUNK_BYTES: usize = 256 * 1024;
/// `Interrupted` retries in one write loop before treating the signal storm as a failure.
const MAX_INTERRUPTS: u32 = 16;

/// What one `tick` did, for the thread's counters and the tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    /// Records whose lines are now completely in the file.
    pub written: usize,
    /// Records a sync made durable: they leave memory (the writer's `depth` counts what is
    /// not yet durable, so a disk whose syncs hang, writes still taken, fills the queue and
    /// refuses new calls at `max_pending` rather than holding written lines without bound).
    pub durable: usize,
    /// Records counted as written before and queued again, because the sync that should
    /// have made them durable failed: they are in memory once more, and written again.
    pub requeued: usize,
    /// Failed operations (open, write, sync).
    pub errors: u64,
}

/// The CDR file and the lines not yet in it.
pub struct Sink {
    fs: Box<dyn CdrFs>,
    path: PathBuf,
    file: Option<Box<dyn CdrFile>>,
    /// Encoded records (each ending in `\n`) not yet completely written, oldest first.
    pending: VecDeque<String>,
    /// Records written since the last successful sync, oldest first.
    unsynced: Vec<String>,
    /// The open file does not end with a newline, so the next write starts with one.
    torn: bool,
    /// When the oldest unsynced write happened.
    unsynced_since: Option<Instant>,
    /// No write or open is attempted before this (backoff after a failure).
    retry_at: Option<Instant>,
    backoff: Duration,
    /// The last attempt failed and records are waiting.
    failing: bool,
    /// The records waiting when it last failed (the oldest: at the front of `unsynced`,
    /// then of `pending`): healthy again once syncs have made them all durable. Those
    /// queued since do not keep it failing; before, it waited for a sync that found nothing
    /// queued, which steady traffic never gives, and `fail_closed` refused every new call
    /// for minutes after one passing error.
    owed: usize,
    reopen_requested: bool,
    /// Where syncs run: inline, or on a thread of their own (the writer's sink).
    syncer: Syncer,
    /// The sync running, if any.
    in_flight: Option<InFlight>,
    next_ticket: u64,
    /// The running sync has taken longer than [`SYNC_STUCK`] (said once).
    stuck: bool,
}

/// A sync asked of the syncer: which, how many of the oldest `unsynced` lines it makes
/// durable (those written before it was asked), and since when it runs.
struct InFlight {
    ticket: u64,
    lines: usize,
    since: Instant,
}

impl Sink {
    pub fn new(fs: Box<dyn CdrFs>, path: &Path) -> Self {
        Sink {
            fs,
            path: path.to_path_buf(),
            file: None,
            pending: VecDeque::new(),
            unsynced: Vec::new(),
            torn: false,
            unsynced_since: None,
            retry_at: None,
            backoff: BACKOFF_MIN,
            failing: false,
            owed: 0,
            reopen_requested: false,
            syncer: Syncer::inline(),
            in_flight: None,
            next_ticket: 0,
            stuck: false,
        }
    }

    /// Sync on a thread of its own: the writes go on while a sync takes its time.
    pub fn with_sync_thread(mut self) -> io::Result<Self> {
        self.syncer = Syncer::thread()?;
        Ok(self)
    }

    /// Open the file now (at start-up, where an unusable path is a configuration error).
    pub fn open_now(&mut self) -> io::Result<()> {
        self.open()
    }

    /// The filesystem the CDR file is on.
    pub fn fs(&mut self) -> &mut dyn CdrFs {
        self.fs.as_mut()
    }

    /// Queue one encoded record; `line` must not contain a newline (JSON never does).
    pub fn push(&mut self, mut line: String) {
        line.push('\n');
        self.pending.push_back(line);
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Records in the file, waiting for their sync.
    pub fn unsynced(&self) -> usize {
        self.unsynced.len()
    }

    #[cfg(test)]
    pub(super) fn queue_room(&self) -> usize {
        self.pending.capacity()
    }

    /// Give back the room a burst grew the queue to, once it is empty (the writer calls
    /// this when a burst has ended, so the allocator can free the pages it took).
    pub fn shrink(&mut self) {
        if self.pending.is_empty() {
            self.pending.shrink_to_fit();
        }
        if self.unsynced.is_empty() {
            self.unsynced = Vec::new();
        }
    }

    /// A write or sync failed and records wait, or a sync has run too long.
    pub fn failing(&self) -> bool {
        self.failing || self.stuck
    }

    /// The earliest moment the next retry may run (for tests and the close loop).
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Try again at the next tick, from the shortest back-off: at exit, whose few seconds
    /// of retries a back-off of up to [`BACKOFF_MAX`] would otherwise sleep through.
    pub fn retry_now(&mut self) {
        self.retry_at = None;
        self.backoff = BACKOFF_MIN;
    }

    /// Close and reopen the path at the next tick (SIGHUP after a rotation).
    pub fn request_reopen(&mut self) {
        self.reopen_requested = true;
    }

    /// Lines still waiting, for the log when the writer must give up at exit.
    pub fn take_pending(&mut self) -> Vec<String> {
        self.pending.drain(..).collect()
    }

    /// Do what is due at `now`: follow a rotation, write what is pending, sync what is old.
    /// It reports into `report` as it goes: what it did before a panic (a defect) is still
    /// told.
    pub fn tick_into(&mut self, now: Instant, report: &mut TickReport) {
        self.collect(Some(now), report);
        let reopen = self.reopen_requested || self.rotated();
        if reopen && self.in_flight.is_some() {
            // Once the running sync has ended: closing waits for it, and a disk whose syncs
            // hang would stop this thread (and the exit's count of what it holds) with it.
            self.reopen_requested = true;
        } else if reopen {
            self.reopen_requested = false;
            self.close_file(Some(now), report);
            // Open at once, not at the next record: the operator (and logrotate's
            // postrotate check) sees the new file, and a bad path is logged now.
            if let Err(e) = self.open() {
                report.errors += 1;
                tracing::error!(path = %self.path.display(), error = %e, "cannot reopen the CDR file");
            }
        }
        // A reopen put off for the running sync holds the writes too (in `pending`): the
        // path may name another file now, or none, and the old one's lines be lost with it.
        let waiting = self.retry_at.is_some_and(|at| now < at) || self.reopen_requested;
        if !self.pending.is_empty() && !waiting {
            match self.write_pending(now) {
                // Written, not yet durable: `failing` and the back-off are reset by the sync
                // that makes it so (a disk whose syncs keep failing takes writes).
                Ok(n) => {
                    report.written += n;
                    self.retry_at = None;
                }
                Err((n, e)) => {
                    report.written += n;
                    report.errors += 1;
                    tracing::error!(
                        path = %self.path.display(),
                        error = %e,
                        waiting = self.pending.len(),
                        retry_in_ms = self.backoff.as_millis() as u64,
                        "cannot write CDRs; they are kept and retried"
                    );
                    self.failed();
                    self.retry_at = Some(now + self.backoff);
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    // Start the retry from a fresh open: it repairs a file that went bad
                    // (EIO, a stale handle, a deleted folder); for a full disk it costs little.
                    // (The back-off is set: a failed sync here must not double it again.)
                    // With a sync running, once it has ended (closing waits for it).
                    if self.in_flight.is_some() {
                        self.reopen_requested = true;
                    } else {
                        self.close_file(None, report);
                    }
                }
            }
        }
        if self.in_flight.is_none()
            && self
                .unsynced_since
                .is_some_and(|t| now.saturating_duration_since(t) >= SYNC_AFTER)
        {
            self.start_sync(now, report);
        }
        let stuck = (self.in_flight.as_ref())
            .is_some_and(|f| now.saturating_duration_since(f.since) >= SYNC_STUCK);
        if stuck && !self.stuck {
            tracing::error!(path = %self.path.display(), "a sync of the CDR file has run for 2 s (the disk does not answer): CDRs are written, not yet durable");
        }
        self.stuck = stuck;
    }

    /// Ask the syncer to sync what was written so far; writing goes on meanwhile.
    fn start_sync(&mut self, now: Instant, report: &mut TickReport) {
        let handle = match self.file.as_ref().map(|f| f.sync_handle()) {
            Some(Ok(h)) => h,
            // No second descriptor (out of them): synced here.
            Some(Err(_)) => return self.sync(Some(now), report),
            None => {
                self.unsynced_since = None;
                return;
            }
        };
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        self.in_flight = Some(InFlight {
            ticket,
            lines: self.unsynced.len(),
            since: now,
        });
        self.unsynced_since = None;
        self.syncer.start(Job { ticket, handle });
        // Inline, its outcome is there at once.
        self.collect(Some(now), report);
    }

    /// Take the outcome of the running sync, if it has come.
    fn collect(&mut self, now: Option<Instant>, report: &mut TickReport) {
        let Some(ticket) = self.in_flight.as_ref().map(|f| f.ticket) else {
            return;
        };
        if let Some(done) = self.syncer.poll(ticket) {
            self.settle_sync(done, now, report);
        }
    }

    /// A sync ended: what it covered is durable, or (failed) written again.
    fn settle_sync(&mut self, done: Done, now: Option<Instant>, report: &mut TickReport) {
        let Some(f) = self.in_flight.take_if(|f| f.ticket == done.ticket) else {
            return;
        };
        self.stuck = false;
        match done.result {
            Ok(()) => {
                let durable = f.lines.min(self.unsynced.len());
                self.unsynced.drain(..durable);
                self.made_durable(durable);
                report.durable += durable;
            }
            Err(e) => self.sync_failed(&e, now, report),
        }
    }

    /// Failing, until what waits now is durable.
    fn failed(&mut self) {
        self.failing = true;
        self.owed = self.pending.len() + self.unsynced.len();
    }

    /// A sync made the `n` oldest written records durable.
    fn made_durable(&mut self, n: usize) {
        self.owed = self.owed.saturating_sub(n);
        if self.owed == 0 && self.failing {
            self.failing = false;
            self.backoff = BACKOFF_MIN;
        }
    }

    /// Sync whatever was written (at exit).
    pub fn flush(&mut self) -> TickReport {
        let mut report = TickReport::default();
        self.sync(None, &mut report);
        report
    }

    /// The path now names another file than the open one (moved away, deleted, replaced).
    fn rotated(&mut self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        match self.fs.id_of(&self.path) {
            Ok(id) => id != file.id(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            // Cannot tell (a permission change on the folder): keep writing where we are.
            Err(_) => false,
        }
    }

    fn close_file(&mut self, now: Option<Instant>, report: &mut TickReport) {
        if self.file.is_some() {
            self.sync(now, report);
        }
        self.file = None;
    }

    /// Sync what was written. A success makes it durable: the sink is healthy again once
    /// nothing waits. A failure queues it again, and the rewrite waits for the back-off
    /// like a failed write (`now`; none at exit), so a disk whose syncs keep failing is
    /// `failing` throughout, and is not written every tick. Here and now (a rotation, the
    /// exit), after the sync running, if any.
    fn sync(&mut self, now: Option<Instant>, report: &mut TickReport) {
        if let Some(ticket) = self.in_flight.as_ref().map(|f| f.ticket) {
            let done = self.syncer.wait(ticket);
            self.settle_sync(done, now, report);
        }
        if self.unsynced_since.is_none() {
            return;
        }
        self.unsynced_since = None;
        let Some(file) = self.file.as_mut() else {
            return;
        };
        match file.sync() {
            Ok(()) => {
                let durable = self.unsynced.len();
                self.unsynced.clear();
                self.made_durable(durable);
                report.durable += durable;
            }
            Err(e) => self.sync_failed(&e, now, report),
        }
    }

    /// A failed sync: every line written since the last good one is queued again (the
    /// kernel may have dropped their pages), behind a back-off like a failed write's.
    fn sync_failed(&mut self, e: &io::Error, now: Option<Instant>, report: &mut TickReport) {
        report.errors += 1;
        tracing::error!(path = %self.path.display(), error = %e, records = self.unsynced.len(), "cannot sync the CDR file: the records written since the last sync are written again");
        report.requeued += self.unsynced.len();
        for line in self.unsynced.drain(..).rev() {
            self.pending.push_front(line);
        }
        self.unsynced_since = None;
        self.failed();
        if let Some(now) = now {
            self.retry_at = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        }
        // Reopened at the next write: whatever the error did to this handle.
        self.file = None;
    }

    fn open(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            let mut file = self.fs.open(&self.path)?;
            // A previous run (or a write that could not be cut back) may have left half a
            // line: the next record must not glue onto it.
            self.torn = file.last_byte()?.is_some_and(|b| b != b'\n');
            self.file = Some(file);
        }
        Ok(())
    }

    /// Write every pending line. On failure returns how many records did make it (they are
    /// gone from `pending`) and the error; the rest stay queued.
    fn write_pending(&mut self, now: Instant) -> Result<usize, (usize, io::Error)> {
        let mut done = 0;
        while !self.pending.is_empty() {
            match self.write_chunk(now) {
                Ok(n) => done += n,
                Err((n, e)) => return Err((done + n, e)),
            }
        }
        Ok(done)
    }

    /// One `write` loop over as many whole pending lines as fit in [`CHUNK_BYTES`].
    fn write_chunk(&mut self, now: Instant) -> Result<usize, (usize, io::Error)> {
        self.open().map_err(|e| (0, e))?;
        let torn = self.torn;
        let mut buf = String::with_capacity(CHUNK_BYTES.min(4096));
        // Byte offsets in `buf` where a complete line ends (the records' boundaries).
        let mut ends = Vec::new();
        if torn {
            buf.push('\n');
        }
        let prefix = buf.len();
        for line in &self.pending {
            if !ends.is_empty() && buf.len() + line.len() > CHUNK_BYTES {
                break;
            }
            buf.push_str(line);
            ends.push(buf.len());
        }
        let Some(file) = self.file.as_mut() else {
            return Err((0, io::Error::other("CDR file not open")));
        };
        let before = file.size().map_err(|e| (0, e))?;
        let mut written = 0;
        let mut interrupts = 0;
        let mut failure = None;
        while let Some(rest) = buf.as_bytes().get(written..).filter(|r| !r.is_empty()) {
            match file.write(rest) {
                Ok(0) => {
                    failure = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupts < MAX_INTERRUPTS => {
                    interrupts += 1;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if written > 0 {
            self.unsynced_since.get_or_insert(now);
        }
        // Records whose whole line is in the file leave the queue, even when a later one
        // failed: writing them again would duplicate them.
        let complete = ends.iter().take_while(|&&end| end <= written).count();
        self.unsynced.extend(self.pending.drain(..complete));
        let Some(e) = failure else {
            self.torn = false;
            return Ok(complete);
        };
        // Where the file ends cleanly: after the last complete line, or after the newline
        // that closed an old torn line, or where it was if nothing reached it.
        let clean = complete
            .checked_sub(1)
            .and_then(|i| ends.get(i))
            .copied()
            .unwrap_or(if written >= prefix { prefix } else { 0 });
        if written > clean {
            // Half a record is in the file. Cut it off, but only when the file is exactly as
            // we left it (an outside truncate, e.g. copytruncate, must not be undone).
            let cut = file
                .size()
                .ok()
                .filter(|&len| len == before + written as u64)
                .and_then(|_| file.truncate(before + clean as u64).ok());
            self.torn = cut.is_none() || (clean == 0 && torn);
        } else if clean > 0 {
            self.torn = false;
        }
        Err((complete, e))
    }
}
