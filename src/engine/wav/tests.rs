use super::*;

/// Wait (bounded) for the writer thread to have done what it was sent.
fn settle(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A 20 ms PCMU packet: sequence `k`, timestamp `160 * k`.
fn packet(k: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&(k as u16).to_be_bytes());
    p.extend_from_slice(&(160 * k).to_be_bytes());
    p.extend_from_slice(&7u32.to_be_bytes());
    p.extend_from_slice(&[0x10; 160]);
    p
}

/// A recorder (60 ms jitter) fed `packets` packets on both channels, the first having
/// arrived `packets * 20 ms` ago and the last just now.
fn fed(packets: u32) -> SharedRecorder {
    let mut r = Recorder::new(Duration::from_millis(60));
    let start = Instant::now() - Duration::from_millis(20) * packets;
    for k in 0..packets {
        let at = start + Duration::from_millis(20) * (k + 1);
        r.push(at, 0, &packet(k));
        r.push(at, 1, &packet(k));
    }
    Arc::new(Mutex::new(r))
}

/// The writer drains a running call's recorder on its own: audio older than the jitter
/// depth leaves the ring without the call ending.
#[test]
fn a_running_recording_is_drained_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (w, _thread) = WavWriters::start().unwrap();
    let rec = fed(25);
    assert_eq!(rec.lock().unwrap().buffered(), 2 * 4000);
    w.open(1, dir.path().join("r.wav"), true, rec.clone());
    settle(|| rec.lock().unwrap().buffered() <= 2 * 480);
    assert!(
        rec.lock().unwrap().buffered() <= 2 * 480,
        "drained to the depth"
    );
    w.close(1);
    let path = dir.path().join("r.wav");
    settle(|| hound::WavReader::open(&path).is_ok_and(|r| r.duration() == 4000));
    assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 4000);
}

/// A disk that refuses writes (`/dev/full` answers ENOSPC) stops that recording once and
/// for all, and the other calls' recordings go on.
#[test]
fn a_full_disk_stops_one_recording_and_not_the_others() {
    let full = PathBuf::from("/dev/full");
    if !full.exists() {
        return; // not Linux: no device that is always full
    }
    let dir = tempfile::tempdir().unwrap();
    let (w, _thread) = WavWriters::start().unwrap();
    let ok = dir.path().join("ok.wav");
    // Its header is written at open: refused there, the call is told at once.
    let refused = fed(25);
    w.open(1, full, true, refused.clone());
    w.open(2, ok.clone(), true, fed(25));
    settle(|| w.stopped() == 1);
    w.close(1);
    w.close(2);
    settle(|| hound::WavReader::open(&ok).is_ok_and(|r| r.duration() == 4000));
    assert_eq!(hound::WavReader::open(&ok).unwrap().duration(), 4000);
    assert_eq!(w.stopped(), 1);
    use crate::media::RecordingNews::{Finished, NotStarted};
    let told = std::cell::RefCell::new(Vec::new());
    settle(|| {
        told.borrow_mut().extend(w.news());
        told.borrow().len() >= 3
    });
    assert_eq!(
        *told.borrow(),
        vec![(1, NotStarted), (1, Finished), (2, Finished)],
        "the call is told, once; each close is finished (a held CDR waits for it)"
    );
    // A folder that cannot exist: refused at open, counted, and the call told.
    w.open(3, PathBuf::from("/dev/null/x/y.wav"), true, fed(1));
    settle(|| w.stopped() == 2);
    assert_eq!(w.stopped(), 2);
    assert_eq!(w.news(), vec![(3, NotStarted)]);
}

#[test]
fn a_discarded_recording_leaves_no_file_and_a_closed_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (w, _thread) = WavWriters::start().unwrap();
    let (gone, kept) = (dir.path().join("a/gone.wav"), dir.path().join("a/kept.wav"));
    w.open(1, gone.clone(), true, fed(1));
    w.open(2, kept.clone(), false, fed(1));
    w.discard(1);
    w.close(2);
    settle(|| !gone.exists() && hound::WavReader::open(&kept).is_ok_and(|r| r.duration() == 160));
    assert!(!gone.exists());
    assert_eq!(hound::WavReader::open(&kept).unwrap().duration(), 160);
}

/// A recording and its day folder are private to the gateway's user and group (0640,
/// 0750) whatever the umask (a newcomer's shell has 022); before they were 0644 and 0755.
/// Nor is a recording written through a symbolic link planted at its name.
#[test]
fn recordings_are_not_readable_by_others_nor_written_through_a_link() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, WAV_LIMIT);
    let day = dir.path().join("2026-12-01");
    files.open(1, day.join("a.wav"), true, fed(2));
    files.close(1);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&day.join("a.wav")) & 0o037,
        0,
        "{:o}",
        mode(&day.join("a.wav"))
    );
    assert_eq!(mode(&day) & 0o027, 0, "{:o}", mode(&day));
    assert!(hound::WavReader::open(day.join("a.wav")).is_ok());
    // A link where a recording goes: `free_name` takes another name, and the target is
    // never touched.
    let target = dir.path().join("target");
    std::fs::write(&target, b"keep").unwrap();
    std::os::unix::fs::symlink(&target, day.join("b.wav")).unwrap();
    files.open(2, day.join("b.wav"), true, fed(2));
    files.close(2);
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
}

#[test]
fn two_recordings_of_one_name_are_both_kept() {
    let dir = tempfile::tempdir().unwrap();
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut f = files(&stopped, WAV_LIMIT);
    let path = dir.path().join("same.wav");
    f.open(1, path.clone(), true, fed(2));
    f.open(2, path.clone(), true, fed(1));
    f.close(1);
    f.close(2);
    // The second call is told the name its file got, for its CDR.
    use crate::media::RecordingNews::{Finished, Renamed};
    assert_eq!(
        std::mem::take(&mut *f.news.lock().unwrap()),
        vec![
            (2, Renamed(dir.path().join("same-1.wav"))),
            (1, Finished),
            (2, Finished)
        ]
    );
    let first = hound::WavReader::open(&path).unwrap().duration();
    let second = hound::WavReader::open(dir.path().join("same-1.wav"))
        .unwrap()
        .duration();
    assert_eq!((first, second), (320, 160), "neither truncated the other");
    // A dangling symlink of that name is not followed.
    let target = dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, dir.path().join("link.wav")).unwrap();
    f.open(3, dir.path().join("link.wav"), true, fed(1));
    f.close(3);
    assert!(!target.exists(), "the link was followed");
    assert!(dir.path().join("link-1.wav").is_file());
    assert_eq!(stopped.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// No `[recording] min_free_mb`.
static NO_FLOOR: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// One sync thread for the tests' writers.
static SYNCER: std::sync::LazyLock<super::sync::Syncer> =
    std::sync::LazyLock::new(super::sync::Syncer::start);

fn files(stopped: &std::sync::atomic::AtomicU64, limit: u64) -> Files<'_> {
    Files {
        open: HashMap::new(),
        failed: HashMap::new(),
        stopped,
        min_free: &NO_FLOOR,
        syncer: &SYNCER,
        space: Default::default(),
        written: crate::ops::metrics::recording_bytes(),
        next_slice: 0,
        news: News::default(),
        limit,
        survivors: None,
    }
}

/// Recording `id` opened at `path` (stereo) and drained a second into its call.
fn drained(files: &mut Files<'_>, id: u64, path: &std::path::Path) {
    files.open(id, path.to_path_buf(), true, fed(25));
    let slice = files.open[&id].slice;
    files.drain(Instant::now() + Duration::from_secs(1), slice);
}

/// Recording 1 (`a.wav` in `dir`), answered, ended while `minutes` of a pause's silence
/// were still to be written.
fn closed_in_a_long_pause(files: &mut Files<'_>, dir: &std::path::Path, minutes: u64) {
    files.open(1, dir.join("a.wav"), true, fed(25));
    files.answered(1);
    if let Some(f) = files.open.get_mut(&1) {
        f.backlog.push_back(Drained {
            silence: minutes * SILENCE_PER_PASS,
            frames: Vec::new(),
        });
    }
    files.close(1);
}

/// Recording `id`'s header update is due now (its next write brings it up to date).
fn header_due(files: &mut Files<'_>, id: u64) {
    if let Some(f) = files.open.get_mut(&id) {
        f.last_header = Instant::now() - HEADER_EVERY - Duration::from_millis(1);
    }
}

/// A file at the WAV size limit stops its recording with a valid header (the sizes are
/// 32-bit: past the limit they would wrap, or panic in a debug build).
#[test]
fn a_recording_stops_at_the_wav_size_limit_with_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let stopped = std::sync::atomic::AtomicU64::new(0);
    // Room for 1,000 stereo frames; 4,000 are waiting.
    let mut files = files(&stopped, 4000);
    let path = dir.path().join("long.wav");
    files.open(1, path.clone(), true, fed(25));
    files.drain(
        Instant::now() + Duration::from_secs(1),
        files.open[&1].slice,
    );
    assert!(!files.open.contains_key(&1), "stopped");
    assert_eq!(stopped.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 1000);
    // Its call's end finds nothing left to do.
    files.close(1);
    assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 1000);
}

/// A pause in the media comes out of the recorder as a count and goes to the file in
/// chunks of silence, however long it was; a call that ends right after it has the rest
/// written by the next passes (a minute each), then its file is completed.
#[test]
fn a_long_pause_is_written_as_silence_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, WAV_LIMIT);
    let t0 = Instant::now();
    let rec: SharedRecorder = Arc::new(Mutex::new(Recorder::new(Duration::from_millis(60))));
    let path = dir.path().join("pause.wav");
    files.open(1, path.clone(), false, rec.clone());
    rec.lock().unwrap().push(t0, 0, &packet(0));
    files.drain(t0 + Duration::from_secs(1), files.open[&1].slice);
    // Ten minutes later (both sides on hold), the media comes back.
    let back = t0 + Duration::from_secs(600);
    rec.lock().unwrap().push(back, 0, &packet(600 * 50));
    let slice = files.open[&1].slice;
    files.close(1);
    assert!(files.open[&1].closing, "nine minutes still to write");
    let mut passes = 0;
    while files.open.contains_key(&1) && passes < 20 {
        files.drain(back, slice);
        passes += 1;
    }
    assert_eq!(passes, 9, "a minute a pass");
    let r = hound::WavReader::open(&path).unwrap();
    assert_eq!(u64::from(r.duration()), 600 * 8000 + 160);
    assert!(files.failed.is_empty() && files.open.is_empty());
    // The gateway stopping with such a recording open completes it at once.
    let path = dir.path().join("pause-at-stop.wav");
    let rec: SharedRecorder = Arc::new(Mutex::new(Recorder::new(Duration::from_millis(60))));
    files.open(2, path.clone(), false, rec.clone());
    files.answered(2);
    rec.lock().unwrap().push(t0, 0, &packet(0));
    files.drain(t0 + Duration::from_secs(1), files.open[&2].slice);
    rec.lock().unwrap().push(back, 0, &packet(600 * 50));
    // A call still ringing at the stop keeps no recording, as at its end.
    let ringing = dir.path().join("ringing-at-stop.wav");
    files.open(3, ringing.clone(), false, fed(25));
    files.drain(Instant::now(), files.open[&3].slice);
    assert!(ringing.exists());
    files.close_all();
    assert!(files.open.is_empty());
    let r = hound::WavReader::open(&path).unwrap();
    assert_eq!(u64::from(r.duration()), 600 * 8000 + 160);
    assert!(!ringing.exists(), "before, kept");
}

/// A pause of ten minutes ends while the call goes on: each pass writes a minute of its
/// silence, the sound drained meanwhile waits behind it, and the file ends up exactly
/// as if it had been written at once.
#[test]
fn a_long_pause_is_caught_up_a_minute_a_pass_and_keeps_the_sound_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, WAV_LIMIT);
    let t0 = Instant::now();
    let rec: SharedRecorder = Arc::new(Mutex::new(Recorder::new(Duration::from_millis(60))));
    let path = dir.path().join("catch-up.wav");
    files.open(1, path.clone(), false, rec.clone());
    rec.lock().unwrap().push(t0, 0, &packet(0));
    let slice = files.open[&1].slice;
    files.drain(t0 + Duration::from_secs(1), slice);
    let back = t0 + Duration::from_secs(600);
    rec.lock().unwrap().push(back, 0, &packet(600 * 50));
    let written = |files: &Files<'_>| files.open[&1].bytes / 2;
    files.drain(back + Duration::from_secs(1), slice);
    assert_eq!(
        written(&files),
        160 + SILENCE_PER_PASS,
        "one minute of the pause"
    );
    // Media flows on while the pause is caught up.
    for i in 1..=9u64 {
        let at = back + Duration::from_millis(20 * i);
        rec.lock()
            .unwrap()
            .push(at, 0, &packet(600 * 50 + i as u32));
        files.drain(back + Duration::from_secs(1 + i), slice);
    }
    // Packet k holds frames 160k to 160k + 159: up to the end of packet 30,009.
    assert_eq!(
        written(&files),
        160 * (600 * 50 + 10),
        "caught up, in order"
    );
    assert!(files.open[&1].backlog.is_empty());
    files.close(1);
    let r = hound::WavReader::open(&path).unwrap();
    assert_eq!(u64::from(r.duration()), 160 * (600 * 50 + 10));
}

/// The disk under recording `id` fills from now on (its header was written at open): its
/// file's descriptor is made `/dev/full`'s, which refuses every write (ENOSPC).
fn fill_disk(files: &Files<'_>, id: u64) {
    use std::os::fd::AsRawFd;
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    // SAFETY: both descriptors are open; the recording's now writes to /dev/full.
    let dup = unsafe { libc::dup2(full.as_raw_fd(), files.open[&id].file.as_raw_fd()) };
    assert!(dup >= 0);
}

/// A disk that refuses the header at open: no recording, no file, the call told at once
/// (before, the header waited in the buffer; a call with no audio the recorder decodes
/// met the full disk only at its end, after its CDR named the file, which was removed).
#[test]
fn a_recording_refused_at_its_open_leaves_nothing_behind() {
    if !std::path::Path::new("/dev/full").exists() {
        return; // not Linux: no device that is always full
    }
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, WAV_LIMIT);
    files.open(1, PathBuf::from("/dev/full"), true, fed(25));
    assert!(files.open.is_empty());
    assert_eq!(stopped.load(std::sync::atomic::Ordering::Relaxed), 1);
    let news = files.news.lock().unwrap().clone();
    assert_eq!(news, [(1, RecordingNews::NotStarted)]);
}

/// A disk that fills mid-call stops the recording once (not once per pass), the call told
/// once; the file keeps what reached the disk, with a header a player reads.
#[test]
fn a_disk_full_mid_call_stops_the_recording_once() {
    if !std::path::Path::new("/dev/full").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wav");
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, WAV_LIMIT);
    let rec = fed(25);
    files.open(1, path.clone(), true, rec.clone());
    fill_disk(&files, 1);
    // 500 ms a drain: more than the file buffer, so the write reaches the disk.
    for pass in 1..4 {
        {
            let mut r = rec.lock().unwrap();
            for k in 25 * pass..25 * (pass + 1) {
                r.push(Instant::now(), 0, &packet(k));
            }
        }
        let slice = files.open.get(&1).map_or(0, |f| f.slice);
        files.drain(Instant::now() + Duration::from_secs(pass as u64 + 1), slice);
    }
    assert_eq!(stopped.load(std::sync::atomic::Ordering::Relaxed), 1);
    files.close(1);
    assert_eq!(stopped.load(std::sync::atomic::Ordering::Relaxed), 1);
    let news = files.news.lock().unwrap().clone();
    assert_eq!(
        news,
        [(1, RecordingNews::Stopped), (1, RecordingNews::Finished)]
    );
    assert!(files.failed.is_empty() && files.open.is_empty());
    assert!(hound::WavReader::open(&path).is_ok(), "a playable file");
}

/// A call ended while its file was still catching up a long pause, whose disk then fills:
/// the recording stops, and nothing of it is kept in `failed` (no Close or Discard will
/// come to take it out: one entry per such call for the process's life, before).
#[test]
fn a_recording_refused_after_its_close_is_not_kept_as_failed() {
    if !std::path::Path::new("/dev/full").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, WAV_LIMIT);
    closed_in_a_long_pause(&mut files, dir.path(), 10);
    assert!(files.open[&1].closing, "catching up after its close");
    fill_disk(&files, 1);
    while files.open.contains_key(&1) {
        files.write(1, Drained::default());
    }
    assert_eq!(stopped.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(files.failed.is_empty(), "{:?}", files.failed);
    // As finished as it will be: its held CDR goes (before, it waited out its 5 s).
    let news = files.news.lock().unwrap().clone();
    assert_eq!(
        news,
        [(1, RecordingNews::Stopped), (1, RecordingNews::Finished)]
    );
}

/// The last bytes of a short recording fit in the file's buffer: only the finalize's flush
/// meets the full disk. That stops the recording as a failed write does (counted); before,
/// it was logged without the file's name and counted nowhere.
#[test]
fn a_recording_refused_only_at_its_finalize_is_counted() {
    if !std::path::Path::new("/dev/full").exists() {
        return; // not Linux: no device that is always full
    }
    let dir = tempfile::tempdir().unwrap();
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, WAV_LIMIT);
    files.open(1, dir.path().join("a.wav"), true, fed(1));
    fill_disk(&files, 1);
    files.close(1);
    assert_eq!(stopped.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(files.open.is_empty());
    // And told: the call's CDR, held until the file is finished, says the recording
    // stopped (before, counted only: the CDR said nothing of the file's missing end).
    let news = files.news.lock().unwrap().clone();
    assert_eq!(
        news,
        [(1, RecordingNews::Stopped), (1, RecordingNews::Finished)]
    );
}

/// A call ended during a long pause's catch-up: its recording is finished (and its held
/// CDR told) once the backlog is written, not at the close.
#[test]
fn a_recording_catching_up_a_pause_is_finished_when_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, WAV_LIMIT);
    closed_in_a_long_pause(&mut files, dir.path(), 3);
    assert!(files.news.lock().unwrap().is_empty(), "not finished yet");
    while files.open.contains_key(&1) {
        files.write(1, Drained::default());
        files.finalize_if_caught_up(1);
    }
    let news = files.news.lock().unwrap().clone();
    assert_eq!(news, [(1, RecordingNews::Finished)]);
}

/// A pass drains one slice of the recordings, not all of them: the writer's work at a
/// thousand recorded calls comes in short passes, and every recording is still drained
/// once in [`SLICES`] passes.
#[test]
fn a_pass_drains_one_slice_and_every_recording_has_its_turn() {
    let dir = tempfile::tempdir().unwrap();
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, WAV_LIMIT);
    let n = 2 * SLICES as u64;
    let recs: Vec<SharedRecorder> = (0..n).map(|_| fed(25)).collect();
    for (id, rec) in (0..n).zip(&recs) {
        files.open(id, dir.path().join(format!("{id}.wav")), true, rec.clone());
    }
    let drained = || {
        (recs.iter())
            .filter(|r| r.lock().unwrap().buffered() < 2 * 4000)
            .count()
    };
    let now = Instant::now();
    files.drain(now, 0);
    assert_eq!(drained(), 2, "one slice: two recordings of twenty");
    for slice in 1..SLICES {
        files.drain(now, slice);
    }
    assert_eq!(drained(), recs.len(), "every recording had its turn");
}

/// A writer thread stalled on its disk: past MAX_QUEUED_OPENS new recordings are refused
/// and counted, rather than each holding its recorder in the queue.
#[test]
fn opens_past_the_bound_are_refused_while_the_writer_is_stalled() {
    let (tx, rx) = mpsc::channel();
    let w = WavWriters {
        tx,
        stopped: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        queued_opens: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        news: News::default(),
        min_free: Arc::default(),
    };
    let rec = fed(1);
    let opened: Vec<bool> = (0..(MAX_QUEUED_OPENS as u64 + 5))
        .map(|id| w.open(id, PathBuf::from("/nonexistent/a.wav"), true, rec.clone()))
        .collect();
    // Only those queued are said opened: the engine sends no close for the others.
    assert!(opened[..MAX_QUEUED_OPENS].iter().all(|o| *o));
    assert!(opened[MAX_QUEUED_OPENS..].iter().all(|o| !*o));
    assert_eq!(w.stopped(), 5);
    assert_eq!(rx.try_iter().count(), MAX_QUEUED_OPENS);
    // Each refused call is told, so its CDR names no file.
    let told = w.news();
    assert_eq!(told.len(), 5);
    assert!(
        told.iter().all(|(id, n)| *id >= MAX_QUEUED_OPENS as u64
            && *n == crate::media::RecordingNews::NotStarted)
    );
}

/// A recording file is never opened through a symbolic link, whatever `free_name` decided.
#[test]
fn a_recording_file_is_not_opened_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, b"keep").unwrap();
    let link = dir.path().join("a.wav");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = file::private_file(&link).unwrap_err();
    assert!(
        matches!(err.raw_os_error(), Some(libc::ELOOP | libc::EEXIST)),
        "{err}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    // Nor over a hard link put at its name (a file of another's, truncated and written
    // through before: the open truncated whatever was there).
    let hard = dir.path().join("b.wav");
    std::fs::hard_link(&target, &hard).unwrap();
    assert!(file::private_file(&hard).is_err());
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
}

/// A recording stopped at the size limit while its bytes were still buffered, whose last
/// flush then meets a full disk, counts once.
#[test]
fn a_recording_stopped_at_the_limit_is_counted_once() {
    if !std::path::Path::new("/dev/full").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, 1000);
    files.open(1, dir.path().join("a.wav"), true, fed(25));
    fill_disk(&files, 1);
    files.close(1);
    assert_eq!(stopped.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// News past the bound is counted (`stage="news_lost"`), not dropped unsaid: those CDRs may
/// name a file the disk refused, and the operator must be able to tell.
#[test]
fn news_past_the_bound_is_counted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let news: News = Arc::default();
    metrics::with_local_recorder(&recorder, || {
        for id in 0..=MAX_NEWS as u64 + 1 {
            tell(&news, id, RecordingNews::Stopped);
        }
    });
    assert_eq!(news.lock().unwrap().len(), MAX_NEWS);
    let text = handle.render();
    assert!(
        text.contains("trunkgate_recording_failures_total{stage=\"news_lost\"} 2"),
        "{text}"
    );
}

/// A recording folder the gateway cannot write is said at start-up and reload, when a
/// profile records. Before, both passed, and every recorded call then logged its own
/// failure while nothing was recorded.
#[test]
fn an_unwritable_recording_folder_is_found_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let mut cfg = crate::call::tests::config();
    cfg.recording_dir = blocker.join("recordings");
    // No profile records: not looked at.
    assert!(cfg.profiles.values().all(|p| !p.record));
    assert_eq!(check_recording_dir(&cfg), Ok(()));
    let mut recording = (**cfg.profiles.values().next().unwrap()).clone();
    recording.record = true;
    cfg.profiles
        .insert(recording.name.clone(), std::sync::Arc::new(recording));
    let err = check_recording_dir(&cfg).unwrap_err();
    assert!(err.contains("[recording] dir"), "{err}");
    // A folder it may write is made, and the probe leaves nothing in it.
    cfg.recording_dir = dir.path().join("rec");
    assert_eq!(check_recording_dir(&cfg), Ok(()));
    assert_eq!(std::fs::read_dir(&cfg.recording_dir).unwrap().count(), 0);
}

/// An open sent when the writer has ended is refused at once and its call told; the count
/// of opens waiting goes back down. Before, the count stayed up (after 1,024 such calls
/// every recording was refused as "stalled") and the call's CDR named a file never made.
#[test]
fn an_open_with_no_writer_left_is_refused_and_told() {
    let (tx, rx) = mpsc::channel();
    drop(rx);
    let w = WavWriters {
        tx,
        stopped: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        queued_opens: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        news: News::default(),
        min_free: Arc::default(),
    };
    for id in 0..3 {
        w.open(id, PathBuf::from("/nonexistent/a.wav"), true, fed(1));
    }
    assert_eq!(w.queued_opens.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(w.stopped(), 3);
    let told = w.news();
    assert_eq!(told.len(), 3);
    assert!(told.iter().all(|(_, n)| *n == RecordingNews::NotStarted));
}

/// A fault (a panic) on the writer thread stops the recordings open then, each told and
/// its file playable, and the writer goes on for the next calls. Before, the thread died:
/// every later recorded call named a file that was never made.
#[test]
fn a_fault_in_the_writer_stops_the_open_recordings_and_the_next_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let (w, _thread) = WavWriters::start().unwrap();
    let rec = fed(25);
    w.open(1, dir.path().join("one.wav"), true, rec.clone());
    settle(|| rec.lock().unwrap().buffered() <= 2 * 480);
    let _ = w.tx.send(Cmd::Fail);
    settle(|| w.stopped() > 0);
    assert_eq!(w.stopped(), 1);
    // (Counted a moment before it is told: the news is waited for too.)
    let told = std::cell::RefCell::new(Vec::new());
    settle(|| {
        told.borrow_mut().extend(w.news());
        !told.borrow().is_empty()
    });
    assert_eq!(told.into_inner(), [(1, RecordingNews::Stopped)]);
    let one = dir.path().join("one.wav");
    assert!(hound::WavReader::open(&one).is_ok_and(|r| r.duration() > 0));
    // Its call ends unanswered after all: the file it left goes, restart or not.
    w.discard(1);
    settle(|| !one.exists());
    assert!(!one.exists());
    // The next call is recorded as ever.
    w.open(2, dir.path().join("two.wav"), true, fed(25));
    w.close(2);
    let two = dir.path().join("two.wav");
    settle(|| hound::WavReader::open(&two).is_ok_and(|r| r.duration() == 4000));
    assert_eq!(hound::WavReader::open(&two).unwrap().duration(), 4000);
}

/// A recording that went quiet (both sides on hold) has its header brought up to date
/// all the same once it is due: a crash during an hour's hold finds the audio before it.
/// Before, a pass with nothing to write returned before the header's turn, and the header
/// (and up to 8 KiB in the file's buffer) stayed as they were for the whole hold.
#[test]
fn a_quiet_recordings_header_is_brought_up_to_date() {
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, WAV_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quiet.wav");
    drained(&mut files, 1, &path);
    let data_size = || {
        let bytes = std::fs::read(&path).unwrap_or_default();
        bytes
            .get(40..44)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let written = files.open[&1].bytes;
    assert!(written > 0);
    // Nothing more comes; the header is due.
    header_due(&mut files, 1);
    files.write(1, Drained::default());
    assert_eq!(
        u64::from(data_size()),
        written,
        "the header counts what was written"
    );
    files.close(1);
}

/// Only a regular file shorter than a WAV header is taken for a recording whose header
/// never reached the disk; a device named as the path never is.
#[test]
fn only_a_regular_file_without_a_header_holds_none() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    assert!(file::holds_no_header(&empty));
    let whole = dir.path().join("whole.wav");
    std::fs::write(&whole, [0u8; 44]).unwrap();
    assert!(!file::holds_no_header(&whole));
    assert!(!file::holds_no_header(std::path::Path::new("/dev/null")));
    assert!(!file::holds_no_header(&dir.path().join("none.wav")));
}

/// A recording whose file was removed (its folder deleted to free a full disk) stops at
/// the next header update: its writer dropped, so the space goes back now, and the call is
/// told (its CDR names no file). Before, the writer went on into the unlinked file until
/// the call ended, up to 4 GiB of space no one could see.
#[test]
fn a_recording_whose_file_was_removed_stops() {
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, WAV_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("day/gone.wav");
    drained(&mut files, 1, &path);
    std::fs::remove_dir_all(dir.path().join("day")).unwrap();
    header_due(&mut files, 1);
    files.write(1, Drained::default());
    assert!(!files.open.contains_key(&1));
    let told = std::mem::take(&mut *files.news.lock().unwrap());
    assert_eq!(told, [(1, crate::media::RecordingNews::Removed)]);
    assert_eq!(stopped.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// A recording whose file is moved away while its call is up (a job filing the day's
/// recordings) goes on: only a file with no name left is one removed. Before, a move was
/// taken for a removal, the recording stopped and the CDR named no file.
#[test]
fn a_recording_whose_file_was_moved_goes_on() {
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, WAV_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("day/moved.wav");
    drained(&mut files, 1, &path);
    std::fs::rename(dir.path().join("day"), dir.path().join("filed")).unwrap();
    header_due(&mut files, 1);
    files.write(1, Drained::default());
    assert!(files.open.contains_key(&1), "still recording");
    assert!(files.news.lock().unwrap().is_empty());
    files.close(1);
    let wav = hound::WavReader::open(dir.path().join("filed/moved.wav")).unwrap();
    assert!(wav.duration() > 0, "the moved file holds the call");
    assert_eq!(stopped.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// `[recording] min_free_mb`: with less free on their file system, no recording starts and
/// one under way stops at its next header update with a playable file (the call told each
/// time); the CDR file sharing the disk is not the one to run out.
#[test]
fn recordings_keep_min_free_on_their_file_system() {
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let floor = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, WAV_LIMIT);
    files.min_free = &floor;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("day/a.wav");
    drained(&mut files, 1, &path);
    // More than any file system here has free.
    floor.store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
    files.open(2, dir.path().join("day/b.wav"), true, fed(25));
    assert!(!files.open.contains_key(&2), "not started");
    assert!(!dir.path().join("day/b.wav").exists());
    header_due(&mut files, 1);
    files.write(1, Drained::default());
    assert!(!files.open.contains_key(&1), "stopped");
    let told = std::mem::take(&mut *files.news.lock().unwrap());
    use crate::media::RecordingNews::{NotStarted, Stopped};
    assert_eq!(told, [(2, NotStarted), (1, Stopped)]);
    let wav = hound::WavReader::open(&path).unwrap();
    assert!(wav.duration() > 0, "a playable file up to there");
    assert_eq!(stopped.load(std::sync::atomic::Ordering::Relaxed), 2);
    // Its call never answered: the file goes with it.
    files.discard(1);
    assert!(!path.exists(), "no file left that no CDR names");
    // Space again (a second later: a look stands a second): the next recording starts.
    floor.store(1, std::sync::atomic::Ordering::Relaxed);
    files.space = Default::default();
    files.open(3, dir.path().join("day/c.wav"), true, fed(1));
    assert!(files.open.contains_key(&3));
    files.close(3);
}

/// `[recording] format = "mixed"`: one channel, each sample the caller's and the callee's
/// summed, clamped where the sum would wrap.
#[test]
fn a_mixed_recording_is_one_channel_of_both_sides_summed_and_clamped() {
    use crate::media::record::ulaw_to_linear;
    let dir = tempfile::tempdir().unwrap();
    let stopped = std::sync::atomic::AtomicU64::new(0);
    let mut files = files(&stopped, WAV_LIMIT);
    // Caller 0x10 and callee 0x20 for 10 packets, then both at μ-law's loudest negative
    // (0x00, -32124) for 10 more: that sum is clamped.
    let packet_of = |k: u32, fill: u8| {
        let mut p = packet(k);
        p[12..].fill(fill);
        p
    };
    let mut r = Recorder::new(Duration::from_millis(60));
    let start = Instant::now() - Duration::from_millis(400);
    for k in 0..20 {
        let at = start + Duration::from_millis(20) * (k + 1);
        let (a, b) = if k < 10 { (0x10, 0x20) } else { (0x00, 0x00) };
        r.push(at, 0, &packet_of(k, a));
        r.push(at, 1, &packet_of(k, b));
    }
    let path = dir.path().join("mixed.wav");
    files.open(1, path.clone(), false, Arc::new(Mutex::new(r)));
    files.close(1);
    let mut reader = hound::WavReader::open(&path).unwrap();
    assert_eq!(reader.spec().channels, 1);
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    assert_eq!(samples.len(), 20 * 160);
    let summed = i16::try_from(i32::from(ulaw_to_linear(0x10)) + i32::from(ulaw_to_linear(0x20)));
    assert_eq!(Ok(samples[0]), summed);
    assert_eq!(samples[10 * 160], i16::MIN, "clamped, not wrapped");
}
