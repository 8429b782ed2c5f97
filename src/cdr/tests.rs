//! CDR durability: a full disk, short writes, torn lines, rotation, a full queue. The file
//! logic runs on a fake clock through `Sink::tick`; the thread is tested by its behaviour.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::fs::{CdrFile, CdrFs, FileId, RealFs, SyncHandle};
use super::sink::{BACKOFF_MAX, BACKOFF_MIN, SYNC_AFTER, Sink};
use super::{CallTag, CauseSource, CdrHealth, CdrOptions, CdrRecord, CdrWriter};

/// A CDR of a refused call, `id` its Call-ID (other modules' tests take it too).
pub(crate) fn rec(id: &str) -> CdrRecord {
    CdrRecord {
        call_id: id.into(),
        egress_call_id: None,
        start: "2026-01-01T00:00:00.000Z".into(),
        answer: None,
        end: "2026-01-01T00:00:01.000Z".into(),
        duration_ms: 0,
        from: "100".into(),
        to: "200".into(),
        ingress_peer: "pbx".into(),
        egress_peer: Some("carrier-a".into()),
        status: 486,
        call_tag: CallTag::CalleeReject,
        cause: 17,
        cause_source: CauseSource::Rfc3398,
        recording: None,
        events: vec![],
        reason_sip: None,
        callback_id: None,
        user1_answer: None,
    }
}

fn line(id: &str) -> String {
    serde_json::to_string(&rec(id)).unwrap()
}

/// What the fake disk does; shared between the test and the files it hands out.
#[derive(Debug, Default)]
struct Faults {
    /// Bytes the disk still takes; `None` is plenty. At 0 a write fails with `StorageFull`.
    space: Option<usize>,
    fail_truncate: bool,
    fail_sync: bool,
    /// Each write first waits this long: a disk that no longer answers.
    hang: Option<Duration>,
    /// Each write panics (a bug in the writer's path, as the writer would meet it).
    panic_on_write: bool,
    /// Syncs (on the sync thread's handle) wait while this is set: a disk slow to sync.
    hold_syncs: bool,
    /// Syncs that finished well.
    syncs_done: usize,
    /// The room reserved for `<file>.unwritten` takes its writes whatever `space` says
    /// (what `fallocate` gives it on a real disk).
    reserved_spill: bool,
    /// Without `reserved_spill`: bytes `<file>.unwritten` still takes (`None`: plenty).
    spill_space: Option<usize>,
    opens: usize,
    syncs: usize,
    writes: usize,
}

/// The real filesystem with a disk that can fill up.
#[derive(Clone, Default)]
struct FaultyFs(Arc<Mutex<Faults>>);

impl FaultyFs {
    fn set(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.0.lock().unwrap());
    }
    fn get<T>(&self, f: impl FnOnce(&Faults) -> T) -> T {
        f(&self.0.lock().unwrap())
    }
}

impl CdrFs for FaultyFs {
    fn open(&mut self, path: &Path) -> io::Result<Box<dyn CdrFile>> {
        // `opens` counts the CDR file's.
        let spill = path.extension().is_some_and(|e| e == "unwritten");
        if spill {
            if self.get(|f| f.reserved_spill) {
                return RealFs.open(path);
            }
        } else {
            self.set(|f| f.opens += 1);
        }
        Ok(Box::new(FaultyFile {
            inner: RealFs.open(path)?,
            faults: self.clone(),
            spill,
        }))
    }
    fn id_of(&mut self, path: &Path) -> io::Result<FileId> {
        RealFs.id_of(path)
    }
}

struct FaultyFile {
    inner: Box<dyn CdrFile>,
    faults: FaultyFs,
    /// It is `<file>.unwritten`: `spill_space` is its room, and it never hangs.
    spill: bool,
}

impl CdrFile for FaultyFile {
    fn id(&self) -> FileId {
        self.inner.id()
    }
    fn size(&mut self) -> io::Result<u64> {
        self.inner.size()
    }
    fn last_byte(&mut self) -> io::Result<Option<u8>> {
        self.inner.last_byte()
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.spill {
            let n = match self.faults.get(|f| f.spill_space) {
                Some(0) => return Err(io::ErrorKind::StorageFull.into()),
                Some(s) => self.inner.write(&buf[..s.min(buf.len())])?,
                None => self.inner.write(buf)?,
            };
            self.faults
                .set(|f| f.spill_space = f.spill_space.map(|s| s - n));
            return Ok(n);
        }
        if let Some(d) = self.faults.get(|f| f.hang) {
            std::thread::sleep(d);
        }
        if self.faults.get(|f| f.panic_on_write) {
            panic!("injected: the CDR writer's write panics");
        }
        let space = self.faults.get(|f| f.space);
        self.faults.set(|f| f.writes += 1);
        let n = match space {
            Some(0) => return Err(io::ErrorKind::StorageFull.into()),
            Some(s) => self.inner.write(&buf[..s.min(buf.len())])?,
            None => self.inner.write(buf)?,
        };
        self.faults.set(|f| f.space = f.space.map(|s| s - n));
        Ok(n)
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        if self.faults.get(|f| f.fail_truncate) {
            return Err(io::ErrorKind::StorageFull.into());
        }
        self.inner.truncate(len)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.faults.set(|f| f.syncs += 1);
        if self.faults.get(|f| f.fail_sync) {
            return Err(io::Error::from_raw_os_error(5));
        }
        self.inner.sync()
    }
    fn sync_handle(&self) -> io::Result<Box<dyn SyncHandle>> {
        Ok(Box::new(FaultySync {
            faults: self.faults.clone(),
            inner: self.inner.sync_handle()?,
        }))
    }
}

/// The sync thread's handle of a [`FaultyFile`]: fails and hangs as the disk says.
struct FaultySync {
    faults: FaultyFs,
    inner: Box<dyn SyncHandle>,
}

impl SyncHandle for FaultySync {
    fn sync(&mut self) -> io::Result<()> {
        self.faults.set(|f| f.syncs += 1);
        while self.faults.get(|f| f.hold_syncs) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.faults.get(|f| f.fail_sync) {
            return Err(io::Error::from_raw_os_error(5));
        }
        let r = self.inner.sync();
        self.faults.set(|f| f.syncs_done += 1);
        r
    }
}

fn setup() -> (tempfile::TempDir, PathBuf, FaultyFs, Sink) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("var/cdr.jsonl");
    let fs = FaultyFs::default();
    let mut sink = Sink::new(Box::new(fs.clone()), &path);
    sink.open_now().unwrap();
    (dir, path, fs, sink)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// The call_ids of the lines that are complete records, in file order.
fn ids(path: &Path) -> Vec<String> {
    lines(path)
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["call_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_full_disk_loses_no_record_and_corrupts_no_line_once_space_returns() {
    let (_dir, path, fs, mut sink) = setup();
    let t0 = Instant::now();
    // Room for one and a half records: the second is torn by the short write.
    fs.set(|f| f.space = Some(line("a").len() + 1 + 10));
    for id in ["a", "b", "c", "d", "e"] {
        sink.push(line(id));
    }
    let r = tick(&mut sink, t0);
    assert_eq!(r.written, 1);
    assert_eq!(r.errors, 1);
    assert!(sink.failing());
    assert_eq!(sink.pending(), 4);
    // The half-written "b" was cut off: the file holds exactly one complete line.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), line("a") + "\n");

    // Still full: every retry fails, nothing is lost, nothing is appended.
    for _ in 0..5 {
        let now = sink.retry_at().unwrap();
        fs.set(|f| f.space = Some(0));
        let r = tick(&mut sink, now);
        assert_eq!((r.written, r.errors), (0, 1));
        assert_eq!(sink.pending(), 4);
    }
    assert_eq!(lines(&path).len(), 1);

    fs.set(|f| f.space = None);
    let at = sink.retry_at().unwrap();
    let r = tick(&mut sink, at);
    assert_eq!((r.written, r.errors), (4, 0));
    assert_eq!(sink.pending(), 0);
    // Healthy once what was written is synced.
    assert!(sink.failing());
    tick(&mut sink, at + SYNC_AFTER);
    assert!(!sink.failing());
    let all = lines(&path);
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(ids(&path), ["a", "b", "c", "d", "e"]);
}

#[test]
fn a_torn_line_that_cannot_be_cut_stays_on_its_own_line() {
    let (_dir, path, fs, mut sink) = setup();
    let t0 = Instant::now();
    fs.set(|f| {
        f.space = Some(line("a").len() + 1 + 7);
        f.fail_truncate = true;
    });
    for id in ["a", "b", "c"] {
        sink.push(line(id));
    }
    assert_eq!(tick(&mut sink, t0).written, 1);
    fs.set(|f| f.space = None);
    let at = sink.retry_at().unwrap();
    assert_eq!(tick(&mut sink, at).written, 2);
    let all = lines(&path);
    // a, the 7-byte fragment of b alone on its line, then b and c whole.
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(all[1], line("b")[..7]);
    assert_eq!(ids(&path), ["a", "b", "c"]);
}

#[test]
fn a_short_write_inside_the_newline_that_closes_an_old_torn_line_still_gives_fresh_lines() {
    let (_dir, path, fs, sink) = setup();
    drop(sink);
    std::fs::write(&path, "{\"call_id\":\"cut-by-a-crash").unwrap();
    let mut sink = Sink::new(Box::new(fs.clone()), &path);
    sink.open_now().unwrap();
    // Only the newline fits; then space returns.
    fs.set(|f| f.space = Some(1));
    sink.push(line("a"));
    let t0 = Instant::now();
    assert_eq!(tick(&mut sink, t0).written, 0);
    fs.set(|f| f.space = None);
    let at = sink.retry_at().unwrap();
    assert_eq!(tick(&mut sink, at).written, 1);
    let all = lines(&path);
    assert_eq!(
        all,
        ["{\"call_id\":\"cut-by-a-crash".to_string(), line("a")]
    );
}

#[test]
fn a_file_left_torn_by_a_crash_gets_the_next_record_on_a_fresh_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    std::fs::write(&path, format!("{}\n{{\"call_id\":\"half", line("old"))).unwrap();
    let mut sink = Sink::new(Box::new(RealFs), &path);
    sink.open_now().unwrap();
    sink.push(line("new"));
    assert_eq!(tick(&mut sink, Instant::now()).written, 1);
    assert_eq!(ids(&path), ["old", "new"]);
    assert_eq!(lines(&path).len(), 3);
}

/// A CDR path that is no regular file (`/dev/null`, as `/dev/stdout` in a container is a
/// pipe) is refused at start, saying why: it cannot be synced, and a failed sync has the
/// lines written again for ever (and, with `fail_closed`, every call refused). Before, it
/// opened.
#[test]
fn a_cdr_path_that_is_no_regular_file_is_refused() {
    let mut sink = Sink::new(Box::new(RealFs), std::path::Path::new("/dev/null"));
    let e = sink.open_now().expect_err("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

#[test]
fn rename_rotation_puts_the_next_cdr_in_the_new_file_without_a_signal() {
    let (_dir, path, fs, mut sink) = setup();
    let t0 = Instant::now();
    sink.push(line("a"));
    tick(&mut sink, t0);
    let rotated = path.with_extension("jsonl.1");
    std::fs::rename(&path, &rotated).unwrap();
    sink.push(line("b"));
    tick(&mut sink, t0 + Duration::from_millis(100));
    assert_eq!(ids(&rotated), ["a"]);
    assert_eq!(ids(&path), ["b"]);
    assert_eq!(fs.get(|f| f.opens), 2);

    // logrotate's `create`: the new empty file is made by logrotate, not by us.
    let rotated2 = path.with_extension("jsonl.2");
    std::fs::rename(&path, &rotated2).unwrap();
    std::fs::write(&path, "").unwrap();
    sink.push(line("c"));
    tick(&mut sink, t0 + Duration::from_millis(200));
    assert_eq!(ids(&rotated2), ["b"]);
    assert_eq!(ids(&path), ["c"]);

    // Rotated and compressed away (deleted): the file is created again.
    std::fs::remove_file(&path).unwrap();
    sink.push(line("d"));
    tick(&mut sink, t0 + Duration::from_millis(300));
    assert_eq!(ids(&path), ["d"]);
}

#[test]
fn a_reopen_request_closes_and_opens_the_path_again() {
    let (_dir, path, fs, mut sink) = setup();
    let t0 = Instant::now();
    sink.push(line("a"));
    tick(&mut sink, t0);
    assert_eq!(fs.get(|f| f.opens), 1);
    sink.request_reopen();
    sink.push(line("b"));
    tick(&mut sink, t0 + Duration::from_millis(100));
    assert_eq!(fs.get(|f| f.opens), 2);
    // The unsynced line was synced before its file was closed.
    assert_eq!(fs.get(|f| f.syncs), 1);
    assert_eq!(ids(&path), ["a", "b"]);
}

#[test]
fn written_lines_are_synced_within_half_a_second_and_at_flush() {
    const { assert!(SYNC_AFTER.as_millis() + 100 <= 500) };
    let (_dir, _path, fs, mut sink) = setup();
    let t0 = Instant::now();
    sink.push(line("a"));
    tick(&mut sink, t0);
    tick(&mut sink, t0 + Duration::from_millis(100));
    assert_eq!(fs.get(|f| f.syncs), 0);
    tick(&mut sink, t0 + SYNC_AFTER);
    assert_eq!(fs.get(|f| f.syncs), 1);
    // Nothing new: no further sync.
    tick(&mut sink, t0 + SYNC_AFTER * 3);
    assert_eq!(fs.get(|f| f.syncs), 1);
    sink.push(line("b"));
    tick(&mut sink, t0 + SYNC_AFTER * 4);
    sink.flush();
    assert_eq!(fs.get(|f| f.syncs), 2);
}

#[test]
fn a_failed_sync_writes_its_records_again_rather_than_lose_them() {
    let (_dir, path, fs, mut sink) = setup();
    let t0 = Instant::now();
    sink.push(line("a"));
    let first = tick(&mut sink, t0);
    assert_eq!(ids(&path), ["a"]);
    // EIO at the sync: the kernel may have dropped the page with "a" in it.
    fs.set(|f| f.fail_sync = true);
    let r = tick(&mut sink, t0 + SYNC_AFTER);
    assert_eq!(r.errors, 1);
    assert_eq!(r.requeued, 1, "\"a\" is held again, and told");
    assert!(sink.failing());
    assert_eq!(sink.pending(), 1, "kept");
    fs.set(|f| f.fail_sync = false);
    sink.push(line("b"));
    // Written again after the back-off, and failing until that write is synced.
    let t1 = t0 + SYNC_AFTER + BACKOFF_MIN;
    let again = tick(&mut sink, t1);
    assert!(sink.failing(), "written, not yet durable");
    let last = tick(&mut sink, t1 + SYNC_AFTER);
    assert!(!sink.failing());
    // What the writer counts out of memory (once durable): two records in, two out,
    // though "a" was written twice.
    let out = first.durable + r.durable + again.durable + last.durable;
    assert_eq!(out, 2);
    // "a" twice (the first write did reach this file), "b" once, each on its own line.
    assert_eq!(ids(&path), ["a", "a", "b"]);
    sink.flush();
    assert_eq!(sink.pending(), 0);
}

/// A disk whose writes succeed and whose syncs always fail (EIO from a dying disk or NFS):
/// the sink stays failing (so `fail_closed` refuses calls throughout) and rewrites with the
/// back-off. Before, each good rewrite cleared `failing` until the next failed sync, and the
/// record was written again every half second.
#[test]
fn syncs_that_keep_failing_keep_the_sink_failing_and_back_off() {
    let (_dir, path, fs, mut sink) = setup();
    fs.set(|f| f.fail_sync = true);
    let t0 = Instant::now();
    sink.push(line("a"));
    let mut failed_at = None;
    for i in 0..100u32 {
        let now = t0 + Duration::from_millis(100) * i;
        tick(&mut sink, now);
        if failed_at.is_none() && sink.failing() {
            failed_at = Some(i);
        }
        if failed_at.is_some() {
            assert!(sink.failing(), "failing at tick {i}");
        }
    }
    assert!(failed_at.is_some());
    // In 10 s: written at 0, then at most after 0.2, 0.4, 0.8, 1.6, 3.2 s waits past each
    // failed sync (plus the 0.4 s each sync waits): not every half second.
    let copies = ids(&path).len();
    assert!((2..=7).contains(&copies), "{copies} copies of \"a\"");
}

/// A write that fails while earlier lines wait for their sync, whose sync fails too (EIO
/// hits both): the first retry still comes after the first step of the back-off, not two.
#[test]
fn a_failed_write_and_a_failed_sync_together_back_off_once() {
    let (_dir, _path, fs, mut sink) = setup();
    let t0 = Instant::now();
    sink.push(line("a"));
    tick(&mut sink, t0);
    fs.set(|f| {
        f.space = Some(0);
        f.fail_sync = true;
    });
    sink.push(line("b"));
    let t1 = t0 + Duration::from_millis(100);
    let r = tick(&mut sink, t1);
    assert!(r.errors >= 1);
    assert!(sink.failing());
    assert_eq!(sink.retry_at(), Some(t1 + BACKOFF_MIN));
}

#[test]
fn retries_back_off_exponentially_up_to_a_bound() {
    let (_dir, _path, fs, mut sink) = setup();
    fs.set(|f| f.space = Some(0));
    sink.push(line("a"));
    let mut now = Instant::now();
    let mut waits = Vec::new();
    for _ in 0..12 {
        tick(&mut sink, now);
        let at = sink.retry_at().unwrap();
        waits.push(at - now);
        // A tick before the retry is due attempts nothing.
        let writes = fs.get(|f| f.writes);
        tick(&mut sink, now + (at - now) / 2);
        assert_eq!(fs.get(|f| f.writes), writes);
        now = at;
    }
    assert_eq!(waits[0], BACKOFF_MIN);
    assert_eq!(waits[1], BACKOFF_MIN * 2);
    assert!(waits.iter().all(|w| *w <= BACKOFF_MAX));
    assert_eq!(*waits.last().unwrap(), BACKOFF_MAX);
    assert_eq!(sink.pending(), 1);
}

#[test]
fn a_new_cdr_file_is_not_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path, _fs, _sink) = setup();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    // 0640 less the umask: never group-writable, never anything for others.
    assert_eq!(mode & 0o137, 0, "{mode:o}");
    assert_eq!(mode & 0o600, 0o600, "{mode:o}");
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o027, 0, "{dir_mode:o}");
}

/// Waits (bounded) until `cond` holds; the assertion that follows checks the outcome.
/// The lines standard error gets for records `ids` lost (`why`: ` (reason)` or nothing).
fn said(ids: &[&str], why: &str) -> String {
    (ids.iter())
        .map(|id| format!("trunkgate: CDR not written{why}: {}\n", line(id)))
        .collect()
}

/// One tick of `sink` at `now`: its report.
fn tick(sink: &mut Sink, now: Instant) -> super::sink::TickReport {
    let mut report = super::sink::TickReport::default();
    sink.tick_into(now, &mut report);
    report
}

fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn writes_one_json_line_per_record_visible_before_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/cdr.jsonl");
    let mut w = CdrWriter::open(&path).unwrap();
    w.write(rec("a"));
    w.write(rec("b"));
    // Flushed per line: readable while the writer still runs. (The queue count follows
    // the write, on the writer's thread: waited for too.)
    wait_for(|| {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .count()
            == 2
            && w.stats().queue_depth == 0
    });
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["call_tag"], "callee_reject");
    assert_eq!(lines[0]["cause_source"], "rfc3398");
    assert_eq!(lines[1]["call_id"], "b");
    assert!(lines[0].get("events").is_none());
    assert_eq!(w.stats().queue_depth, 0);
    w.close();
}

#[test]
fn close_writes_everything_still_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let mut w = CdrWriter::open(&path).unwrap();
    for i in 0..50 {
        w.write(rec(&format!("c{i}")));
    }
    w.close();
    assert_eq!(ids(&path).len(), 50);
}

#[test]
fn a_full_queue_is_reported_and_refuses_new_calls_whatever_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let fs = FaultyFs::default();
    fs.set(|f| f.space = Some(0));
    let opts = CdrOptions {
        fail_closed: false,
        max_pending: 3,
    };
    let mut w = CdrWriter::open_on(Box::new(fs.clone()), &path, opts).unwrap();
    w.write(rec("a"));
    w.write(rec("b"));
    assert_ne!(w.health(), CdrHealth::Full);
    w.write(rec("c"));
    assert_eq!(w.health(), CdrHealth::Full);
    assert!(!w.admits_new_calls());
    // What `GET /health` reads from another thread says the same.
    let gate = w.gate();
    assert!(!gate.admits_new_calls());
    // Calls already up still get their CDR queued, up to twice max_pending.
    for id in ["d", "e", "f"] {
        w.write(rec(id));
    }
    assert_eq!(w.stats().dropped, 0);
    assert_eq!(w.lost_lines(), "");
    w.write(rec("g"));
    assert_eq!(w.stats().dropped, 1);
    // Whole, on standard error, so it can still be billed.
    assert_eq!(
        w.lost_lines(),
        said(&["g"], " (the CDR queue is at its limit)")
    );
    assert_eq!(w.stats().queue_depth, 6);
    // The writer has tried and failed: still reported as full, the stronger refusal.
    wait_for(|| w.stats().write_errors >= 1);
    assert!(w.stats().write_errors >= 1);
    assert_eq!(w.health(), CdrHealth::Full);

    fs.set(|f| f.space = None);
    wait_for(|| w.stats().queue_depth == 0 && w.health() == CdrHealth::Ok);
    assert_eq!(w.health(), CdrHealth::Ok);
    assert!(w.admits_new_calls());
    assert!(gate.admits_new_calls());
    w.close();
    assert_eq!(ids(&path), ["a", "b", "c", "d", "e", "f"]);
}

#[test]
fn a_failed_sync_leaves_the_queue_count_true_and_new_calls_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let fs = FaultyFs::default();
    let mut w = CdrWriter::open_on(Box::new(fs.clone()), &path, CdrOptions::default()).unwrap();
    fs.set(|f| f.fail_sync = true);
    w.write(rec("a"));
    // Written, then its sync fails (half a second later) and it is queued again.
    wait_for(|| w.stats().write_errors >= 1);
    fs.set(|f| f.fail_sync = false);
    // Written again, and that write synced.
    wait_for(|| ids(&path).len() == 2 && fs.get(|f| f.syncs) >= 2 && w.health() == CdrHealth::Ok);
    assert_eq!(fs.get(|f| f.syncs), 2);
    // Before, the record was counted out twice: the count wrapped below zero, read as a
    // full queue, and every new call was refused until a restart.
    assert_eq!(w.stats().queue_depth, 0);
    assert_eq!(w.health(), CdrHealth::Ok);
    assert!(w.admits_new_calls());
    w.write(rec("b"));
    wait_for(|| w.stats().queue_depth == 0);
    assert_eq!(w.stats().dropped, 0);
    w.close();
    assert_eq!(ids(&path), ["a", "a", "b"]);
}

#[test]
fn failing_writes_refuse_new_calls_only_when_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let fs = FaultyFs::default();
    let mut w = CdrWriter::open_on(Box::new(fs.clone()), &path, CdrOptions::default()).unwrap();
    assert!(w.admits_new_calls());
    fs.set(|f| f.space = Some(0));
    w.write(rec("a"));
    wait_for(|| w.health() == CdrHealth::Failing);
    assert_eq!(w.health(), CdrHealth::Failing);
    assert!(!w.admits_new_calls());
    assert!(!w.gate().admits_new_calls());
    w.set_fail_closed(false);
    assert!(w.admits_new_calls());
    w.set_fail_closed(true);

    fs.set(|f| f.space = None);
    wait_for(|| w.health() == CdrHealth::Ok);
    assert_eq!(w.health(), CdrHealth::Ok);
    assert!(w.admits_new_calls());
    w.close();
    assert_eq!(ids(&path), ["a"]);
}

#[test]
fn the_writer_reopens_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let fs = FaultyFs::default();
    let mut w = CdrWriter::open_on(Box::new(fs.clone()), &path, CdrOptions::default()).unwrap();
    assert_eq!(fs.get(|f| f.opens), 1);
    w.reopen();
    wait_for(|| fs.get(|f| f.opens) == 2);
    assert_eq!(fs.get(|f| f.opens), 2);
    w.close();
}

fn load(cdr_section: &str) -> Result<crate::config::Config, crate::config::ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("profiles")).unwrap();
    std::fs::write(
        dir.path().join("profiles/pbx.toml"),
        "name = \"pbx\"\nrole = \"internal\"\naddress = \"udp:127.0.0.2:5060\"\nmatch = [\"127.0.0.2/32\"]\n",
    )
    .unwrap();
    let gateway = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\nadvertise = \"127.0.0.1\"\n\n{cdr_section}\n\n[[route]]\nto = \"pbx\"\n"
    );
    std::fs::write(dir.path().join("gateway.toml"), gateway).unwrap();
    crate::config::Config::load(&dir.path().join("gateway.toml"))
}

#[test]
fn cdr_options_come_from_the_cdr_section_with_safe_defaults() {
    let cfg = load("").unwrap();
    assert_eq!(CdrOptions::from_config(&cfg), CdrOptions::default());
    assert!(CdrOptions::default().fail_closed);
    let cfg = load("[cdr]\nfail_closed = false\nmax_pending = 50").unwrap();
    assert_eq!(
        CdrOptions::from_config(&cfg),
        CdrOptions {
            fail_closed: false,
            max_pending: 50
        }
    );
    let errs = load("[cdr]\nmax_pending = 0").unwrap_err().to_string();
    assert!(
        errs.contains("gateway.toml:6:15: [cdr] max_pending must be 1..=1000000"),
        "{errs}"
    );
    let errs = load("[cdr]\nfail_close = true").unwrap_err().to_string();
    assert!(errs.contains("unknown field `fail_close`"), "{errs}");
}

#[test]
fn at_exit_cdrs_the_disk_never_took_are_counted_as_sent_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let fs = FaultyFs::default();
    fs.set(|f| f.space = Some(0));
    let mut w = CdrWriter::open_on(Box::new(fs.clone()), &path, CdrOptions::default()).unwrap();
    w.write(rec("a"));
    w.write(rec("b"));
    // close() retries for a few seconds, then gives up on the two records.
    w.close();
    let stats = w.stats();
    assert_eq!(stats.dropped, 2);
    assert_eq!(stats.queue_depth, 0);
    assert!(stats.write_errors >= 2);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    // A record written after close is not silently swallowed either: it goes to the log.
    let before = w.lost_lines();
    w.write(rec("c"));
    assert_eq!(w.stats().dropped, 3);
    assert_eq!(
        w.lost_lines(),
        before + &said(&["c"], " (the CDR writer has stopped)")
    );
}

/// At exit, the CDRs a full disk never took go to `<file>.unwritten`, in room reserved at
/// start, whole and in order; the next start says they are there. Before they went only to
/// the log, one line each, which drops lines under such a burst.
#[test]
fn at_exit_cdrs_the_disk_never_took_are_in_the_reserved_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let spill = dir.path().join("cdr.jsonl.unwritten");
    let fs = FaultyFs::default();
    fs.set(|f| f.reserved_spill = true);
    let mut w = CdrWriter::open_on(Box::new(fs.clone()), &path, CdrOptions::default()).unwrap();
    assert_eq!(
        std::fs::metadata(&spill).unwrap().len(),
        0,
        "room kept, no size"
    );
    fs.set(|f| f.space = Some(0));
    w.write(rec("a"));
    w.write(rec("b"));
    w.close();
    assert_eq!(w.stats().dropped, 2);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    assert_eq!(ids(&spill), ["a", "b"]);
    assert_eq!(lines(&spill), [line("a"), line("b")]);
}

/// A `<file>.unwritten` moved away while the gateway ran is made again at exit, and takes
/// the CDRs: before, they went into the file moved away (or deleted), and the log said
/// they were at the path.
#[test]
fn a_spill_file_moved_away_is_made_again_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let spill = dir.path().join("cdr.jsonl.unwritten");
    let fs = FaultyFs::default();
    fs.set(|f| f.reserved_spill = true);
    let mut w = CdrWriter::open_on(Box::new(fs.clone()), &path, CdrOptions::default()).unwrap();
    std::fs::rename(&spill, dir.path().join("billed.unwritten")).unwrap();
    fs.set(|f| f.space = Some(0));
    w.write(rec("a"));
    w.close();
    assert_eq!(ids(&spill), ["a"]);
    assert_eq!(
        ids(&dir.path().join("billed.unwritten")),
        Vec::<String>::new()
    );
}

/// A spill the disk cuts short keeps whole lines only (the cut one is cut off, and the
/// next run's first line does not glue onto it), and only the CDRs not in it are counted
/// once and logged. Before, every CDR was logged on top of those written aside.
#[test]
fn a_spill_cut_short_keeps_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let spill = dir.path().join("cdr.jsonl.unwritten");
    // An earlier run left half a line.
    std::fs::write(&spill, "{\"call_id\":\"ha").unwrap();
    let fs = FaultyFs::default();
    let mut w = CdrWriter::open_on(Box::new(fs.clone()), &path, CdrOptions::default()).unwrap();
    let one = line("a").len() + 1;
    // The newline that ends the old half line, one record and half the next.
    fs.set(|f| {
        f.space = Some(0);
        f.spill_space = Some(1 + one + one / 2);
    });
    for id in ["a", "b", "c"] {
        w.write(rec(id));
    }
    w.close();
    assert_eq!(w.stats().dropped, 3);
    let text = std::fs::read_to_string(&spill).unwrap();
    assert!(text.ends_with('\n'), "{text}");
    assert_eq!(ids(&spill), ["a"]);
    // What the spill did not take goes to standard error, each whole, in order (said by
    // the writer as it ends, which a slow retry can take past close's wait).
    wait_for(|| w.lost_lines().lines().count() >= 2);
    assert_eq!(w.lost_lines(), said(&["b", "c"], ""));
}

/// The stop gives up on a writer still busy at exit and counts what it held; the writer
/// finishing afterwards writes them aside but does not count them again.
#[test]
fn cdrs_given_up_at_exit_are_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let spill = dir.path().join("cdr.jsonl.unwritten");
    let fs = FaultyFs::default();
    fs.set(|f| f.reserved_spill = true);
    let mut w = CdrWriter::open_on(Box::new(fs.clone()), &path, CdrOptions::default()).unwrap();
    fs.set(|f| {
        f.space = Some(0);
        f.hang = Some(Duration::from_millis(400));
    });
    w.write(rec("a"));
    w.write(rec("b"));
    w.close_within(Duration::from_millis(200));
    assert_eq!(w.stats().dropped, 2);
    // The writer goes on: retries, the last flush, then the spill.
    let until = Instant::now() + Duration::from_secs(20);
    while ids(&spill).len() < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ids(&spill), ["a", "b"]);
    assert_eq!(w.stats().dropped, 2);
}

/// A writer stuck in a write (a disk that no longer answers) does not hold the stop: it
/// is left behind at the limit, and the CDRs it held are counted as lost. Before, the
/// stop waited for it for ever, and the supervisor's SIGKILL lost them unsaid.
#[test]
fn a_writer_stuck_on_the_disk_is_left_behind_at_exit_and_its_cdrs_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let fs = FaultyFs::default();
    let mut w = CdrWriter::open_on(Box::new(fs.clone()), &path, CdrOptions::default()).unwrap();
    fs.set(|f| f.hang = Some(Duration::from_secs(30)));
    for id in ["a", "b", "c"] {
        w.write(rec(id));
    }
    // The writer wakes within 100 ms and hangs in its write.
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    w.close_within(Duration::from_millis(500));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(w.stats().dropped, 3);
}

/// A burst grows the queue of lines; once they are written, `shrink` gives the room back
/// (while lines wait it keeps them, and their room).
#[test]
fn the_queue_gives_back_the_room_a_burst_took_once_it_is_written() {
    let (_dir, path, _fs, mut sink) = setup();
    for i in 0..5000 {
        sink.push(line(&format!("c{i}")));
    }
    sink.shrink();
    assert!(sink.queue_room() >= 5000);
    let mut written = 0;
    let t0 = Instant::now();
    while sink.pending() > 0 && written < 10_000 {
        written += tick(&mut sink, t0).written.max(1);
    }
    assert_eq!(sink.pending(), 0);
    assert_eq!(ids(&path).len(), 5000);
    sink.shrink();
    assert!(sink.queue_room() < 64, "{}", sink.queue_room());
}

/// A writer stuck in the disk sets no flag of its own: it is told by its silence. Records
/// wait and its loop has not come round for 2 s: failing (new calls refused under
/// `fail_closed`), and back to healthy once it moves. Before, health stayed `Ok` while up to
/// `max_pending` calls were let in whose CDRs were in memory only.
#[test]
fn a_writer_stuck_in_the_disk_is_failing_until_it_moves_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let fs = FaultyFs::default();
    let w = CdrWriter::open_on(Box::new(fs.clone()), &path, CdrOptions::default()).unwrap();
    // Idle and healthy: nothing waits, so no silence counts.
    std::thread::sleep(Duration::from_millis(2300));
    assert!(!w.stalled());
    assert_eq!(w.health(), CdrHealth::Ok);
    fs.set(|f| f.hang = Some(Duration::from_millis(3500)));
    w.write(rec("a"));
    wait_for(|| w.stalled());
    assert!(w.stalled());
    assert_eq!(w.health(), CdrHealth::Failing);
    assert!(!w.admits_new_calls());
    fs.set(|f| f.hang = None);
    wait_for(|| ids(&path) == ["a"] && w.health() == CdrHealth::Ok);
    assert_eq!(ids(&path), ["a"]);
    assert!(!w.stalled());
    assert!(w.admits_new_calls());
}

/// A writer whose write panics (a defect) does not die with what it holds: the records stay
/// queued, new calls are refused as for a failing disk, a write that works again takes
/// them, and at exit what is still held goes to `<file>.unwritten`. Before, the thread
/// unwound: everything it held, and every CDR after, was lost.
#[test]
fn a_writer_whose_writes_panic_keeps_its_cdrs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let spill = dir.path().join("cdr.jsonl.unwritten");
    let fs = FaultyFs::default();
    fs.set(|f| {
        f.reserved_spill = true;
        f.panic_on_write = true;
    });
    let mut w = CdrWriter::open_on(Box::new(fs.clone()), &path, CdrOptions::default()).unwrap();
    w.write(rec("a"));
    wait_for(|| w.health() == CdrHealth::Failing);
    assert!(!w.admits_new_calls());
    w.write(rec("b"));
    assert_eq!(w.stats().queue_depth, 2);
    fs.set(|f| f.panic_on_write = false);
    wait_for(|| ids(&path) == ["a", "b"] && w.health() == CdrHealth::Ok);
    assert!(w.admits_new_calls());

    fs.set(|f| f.panic_on_write = true);
    w.write(rec("c"));
    std::thread::sleep(Duration::from_millis(300));
    w.close();
    let st = w.stats();
    assert_eq!(st.dropped, 1, "{st:?}");
    assert_eq!(st.queue_depth, 0);
    assert_eq!(ids(&path), ["a", "b"]);
    assert_eq!(ids(&spill), ["c"]);
}

/// A tick that panics after it took a finished sync's records as durable (its write of the
/// next record panicking) still counts them out of the queue. Before, that count was lost
/// with the tick: `queue_depth` (and `trunkgate_cdr_queue_depth`) stayed too high for good,
/// and enough such faults would have the CDR gate refuse every new call.
#[test]
fn a_tick_that_panics_after_a_sync_finished_still_counts_its_records_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let fs = FaultyFs::default();
    fs.set(|f| {
        f.reserved_spill = true;
        f.hold_syncs = true;
    });
    let mut w = CdrWriter::open_on(Box::new(fs.clone()), &path, CdrOptions::default()).unwrap();
    w.write(rec("a"));
    // "a" written, its sync under way and held.
    wait_for(|| ids(&path) == ["a"] && fs.get(|f| f.syncs) > 0);
    fs.set(|f| f.panic_on_write = true);
    w.write(rec("b"));
    wait_for(|| w.health() == CdrHealth::Failing);
    // The sync ends: the next tick takes "a" as durable, then panics writing "b".
    fs.set(|f| f.hold_syncs = false);
    wait_for(|| fs.get(|f| f.syncs_done) > 0);
    std::thread::sleep(Duration::from_millis(300));
    fs.set(|f| f.panic_on_write = false);
    wait_for(|| ids(&path) == ["a", "b"] && w.health() == CdrHealth::Ok);
    assert_eq!(ids(&path), ["a", "b"]);
    wait_for(|| w.stats().queue_depth == 0);
    assert_eq!(w.stats().queue_depth, 0, "{:?}", w.stats());
    w.close();
}

/// At exit the writer retries a full disk for 3 s; a back-off grown longer than that by the
/// outage must not sleep through them. Before, a disk freed just before the stop never got
/// the CDRs: they went aside to `.unwritten` (or the log) to be billed by hand.
#[test]
fn at_exit_a_long_back_off_does_not_skip_the_last_retries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let fs = FaultyFs::default();
    fs.set(|f| f.space = Some(0));
    let mut w = CdrWriter::open_on(Box::new(fs.clone()), &path, CdrOptions::default()).unwrap();
    w.write(rec("a"));
    w.write(rec("b"));
    // Failures 0.2, 0.4, 0.8 and 1.6 s apart: after the fifth the next waits 3.2 s.
    wait_for(|| w.stats().write_errors >= 5);
    assert!(w.stats().write_errors >= 5);
    fs.set(|f| f.space = None);
    w.close();
    assert_eq!(ids(&path), ["a", "b"]);
    assert_eq!(w.stats().dropped, 0);
}

/// U+2028, U+2029 and U+0085 are line breaks to many readers (Python's `splitlines`): a
/// Call-ID carrying one must not split its record in two. JSON-escaped, the value reads
/// back the same.
#[test]
fn unicode_line_breaks_in_a_field_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let mut w = CdrWriter::open(&path).unwrap();
    let id = "a\u{2028}b\u{2029}c\u{85}d";
    w.write(rec(id));
    w.close();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(['\u{85}', '\u{2028}', '\u{2029}']),
        "{text:?}"
    );
    assert!(text.contains("a\\u2028b\\u2029c\\u0085d"), "{text:?}");
    assert_eq!(ids(&path), [id]);
}

/// A slow sync (a disk busy with recordings) holds up no write: CDRs that arrive while it
/// runs reach the file at once, where a crash of the process no longer loses them. It
/// counts as failing once it has run for 2 s, and healthy again when it ends. Before, the
/// one writer thread synced in line, and records waited in memory behind it.
#[test]
fn writes_go_on_while_a_slow_sync_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let fs = FaultyFs::default();
    let w = CdrWriter::open_on(Box::new(fs.clone()), &path, CdrOptions::default()).unwrap();
    fs.set(|f| f.hold_syncs = true);
    w.write(rec("a"));
    wait_for(|| fs.get(|f| f.syncs) >= 1);
    assert!(fs.get(|f| f.syncs) >= 1, "a sync began");
    w.write(rec("b"));
    wait_for(|| ids(&path) == ["a", "b"]);
    assert_eq!(ids(&path), ["a", "b"], "written while the sync ran");
    assert_eq!(fs.get(|f| f.syncs_done), 0, "the sync still runs");
    wait_for(|| w.health() == CdrHealth::Failing);
    assert_eq!(w.health(), CdrHealth::Failing, "a sync running for 2 s");
    fs.set(|f| f.hold_syncs = false);
    // Both leave the queue once synced.
    wait_for(|| w.stats().queue_depth == 0 && w.health() == CdrHealth::Ok);
    assert!(fs.get(|f| f.syncs_done) >= 2, "b synced after a");
    assert_eq!(w.health(), CdrHealth::Ok);
    assert_eq!(w.stats().queue_depth, 0);
}

/// One passing write error, then steady traffic: the writer is healthy again once a sync
/// has made durable the CDRs that waited when it failed, though new ones are queued when
/// that sync's outcome arrives (the sync runs on its own thread, and the writer takes new
/// CDRs before it looks). Before, it stayed failing until a sync found nothing queued,
/// which steady traffic never gives: with `fail_closed`, every new call was refused.
#[test]
fn a_passing_error_ends_while_cdrs_keep_coming() {
    let (_dir, path, fs, sink) = setup();
    let mut sink = sink.with_sync_thread().unwrap();
    let t0 = Instant::now();
    fs.set(|f| f.space = Some(0));
    sink.push(line("a"));
    assert_eq!(tick(&mut sink, t0).errors, 1);
    assert!(sink.failing());
    fs.set(|f| {
        f.space = None;
        f.hold_syncs = true;
    });
    let mut now = sink.retry_at().unwrap();
    tick(&mut sink, now);
    now += SYNC_AFTER;
    tick(&mut sink, now);
    assert!(sink.failing(), "a, written, is not yet durable");
    // The sync ends while the next CDR waits to be written.
    fs.set(|f| f.hold_syncs = false);
    wait_for(|| fs.get(|f| f.syncs_done) >= 1);
    for (i, id) in ["b", "c", "d"].into_iter().enumerate() {
        sink.push(line(id));
        now += Duration::from_millis(100);
        tick(&mut sink, now);
        if i == 0 {
            assert!(!sink.failing(), "healthy with b queued");
        }
    }
    assert!(!sink.failing());
    assert_eq!(ids(&path), ["a", "b", "c", "d"]);
}

/// A disk whose syncs hang while it still takes writes: the written lines wait for their
/// sync in memory, counted in the queue, so past `max_pending` new calls are refused
/// (`fail_closed` off too) and memory stays bounded. Before, written lines left the count
/// at once and piled up uncounted behind the hung sync.
#[test]
fn lines_waiting_for_a_hung_sync_count_in_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdr.jsonl");
    let fs = FaultyFs::default();
    let opts = CdrOptions {
        fail_closed: false,
        max_pending: 3,
    };
    let w = CdrWriter::open_on(Box::new(fs.clone()), &path, opts).unwrap();
    fs.set(|f| f.hold_syncs = true);
    for id in ["a", "b", "c", "d"] {
        w.write(rec(id));
    }
    wait_for(|| ids(&path).len() == 4);
    assert_eq!(
        ids(&path),
        ["a", "b", "c", "d"],
        "written while the sync hangs"
    );
    assert_eq!(w.stats().queue_depth, 4);
    assert_eq!(w.health(), CdrHealth::Full);
    assert!(!w.admits_new_calls());
    fs.set(|f| f.hold_syncs = false);
    wait_for(|| w.stats().queue_depth == 0 && w.health() == CdrHealth::Ok);
    assert_eq!(w.stats().queue_depth, 0);
    assert!(w.admits_new_calls());
}

/// A reopen asked for while a sync hangs (logrotate's SIGHUP) waits for that sync to end,
/// without stopping the writer's thread (before, closing the file waited for the sync on
/// it, and the exit's count with it); what comes meanwhile waits in memory rather than
/// going to the old file, which the path may no longer name, and goes to the new one.
#[test]
fn a_reopen_during_a_hung_sync_does_not_stop_the_writer() {
    let (_dir, path, fs, sink) = setup();
    let mut sink = sink.with_sync_thread().unwrap();
    let t0 = Instant::now();
    fs.set(|f| f.hold_syncs = true);
    sink.push(line("a"));
    tick(&mut sink, t0);
    tick(&mut sink, t0 + SYNC_AFTER);
    wait_for(|| fs.get(|f| f.syncs) == 1);
    assert_eq!(fs.get(|f| f.syncs), 1, "a sync runs");
    // Let the sync go in a while, should the tick below wait for it after all.
    let release = fs.clone();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        release.set(|f| f.hold_syncs = false);
    });
    sink.request_reopen();
    sink.push(line("b"));
    let opens = fs.get(|f| f.opens);
    tick(&mut sink, t0 + SYNC_AFTER + Duration::from_millis(100));
    assert_eq!(
        fs.get(|f| f.syncs_done),
        0,
        "the tick did not wait for the sync"
    );
    assert_eq!(fs.get(|f| f.opens), opens, "not reopened yet");
    assert_eq!(ids(&path), ["a"], "b waits for the new file");
    assert_eq!(sink.pending(), 1);
    releaser.join().unwrap();
    wait_for(|| fs.get(|f| f.syncs_done) >= 1);
    tick(&mut sink, t0 + SYNC_AFTER + Duration::from_millis(200));
    assert_eq!(
        fs.get(|f| f.opens),
        opens + 1,
        "reopened once the sync ended"
    );
    assert_eq!(ids(&path), ["a", "b"]);
}
