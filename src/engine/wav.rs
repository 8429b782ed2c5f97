//! Writing recordings: one thread owns every open WAV file and drains every call's recorder
//! into it, so neither disk I/O nor the jitter buffers' draining runs on the threads that
//! carry signalling or RTP (those only push packets into a recorder). 8 kHz, 16-bit PCM,
//! stereo (caller left, callee right) or mixed mono. What left a recorder's jitter window is
//! appended every 100 ms; the header is brought up to date every few seconds and when the
//! call ends, so a crash leaves a file that plays up to the last update (see README for the
//! repair of the rest).
//!
//! Nothing queues here but one command per call opened or ended: audio waits in its
//! recorder's fixed ring, so a disk slower than the calls costs audio (counted as overflow
//! in the recorder's stats), not memory. The one exception is the end of a long pause:
//! its silence is written a minute a pass, and the sound drained meanwhile waits in the
//! recording's backlog (a tenth of a second per minute of pause).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::media::record::{Drained, Recorder};

/// A call's recorder: the relay tasks push into it, the writer thread drains it.
pub type SharedRecorder = Arc<Mutex<Recorder>>;

/// Header updates at most this often per file.
const HEADER_EVERY: Duration = Duration::from_secs(5);
/// How often what left a recorder's jitter window goes to disk.
const DRAIN_EVERY: Duration = Duration::from_millis(100);
/// The recordings are drained in this many slices, one slice per pass, so each recording
/// is still drained every [`DRAIN_EVERY`]: a pass over a thousand files at once took a
/// core for milliseconds, and the relay threads' packets waited behind it.
const SLICES: u32 = 10;
/// The most audio bytes one WAV file holds: its sizes are 32-bit (RIFF), so past this the
/// header would wrap (about 37 hours stereo, 74 mono). A recording stops there.
const WAV_LIMIT: u64 = u32::MAX as u64 - 4096;
/// Silence is written this many frames at a time: hound keeps a buffer as large as the
/// largest batch it was given.
const SILENCE_CHUNK: usize = 4000;
/// Silence one pass writes for one recording at most (frames): a minute. A pause of hours
/// is caught up at 600 times real time (a recording is drained every 100 ms), a few MB a
/// pass, instead of in one pass that holds the writer, and every other recording, for
/// seconds; the sound drained meanwhile waits in the recording's backlog.
const SILENCE_PER_PASS: u64 = 60 * 8000;
static ZEROS: [[i16; 2]; SILENCE_CHUNK] = [[0; 2]; SILENCE_CHUNK];
/// Recordings of one name (same call, same millisecond) side by side at most.
const MAX_SAME_NAME: u32 = 16;
const PASS_EVERY: Duration = DRAIN_EVERY.checked_div(SLICES).expect("SLICES > 0");

enum Cmd {
    Open {
        id: u64,
        path: PathBuf,
        stereo: bool,
        rec: SharedRecorder,
    },
    /// The call ended: write what its recorder still holds and finalise the file.
    Close {
        id: u64,
    },
    Discard {
        id: u64,
    },
}

/// Handle to the writer thread.
#[derive(Debug, Clone)]
pub struct WavWriters {
    tx: Sender<Cmd>,
    /// Recordings the disk refused (at open or mid-call), since start.
    stopped: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wav command")
    }
}

impl WavWriters {
    pub fn start() -> std::io::Result<(WavWriters, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel();
        let stopped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = stopped.clone();
        let h = std::thread::Builder::new()
            .name("wav-writer".into())
            .spawn(move || run(rx, &counted))?;
        Ok((WavWriters { tx, stopped }, h))
    }

    /// How many recordings the disk refused so far.
    pub fn stopped(&self) -> u64 {
        self.stopped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Start recording call `id` into `path`, draining `rec` from now on.
    pub fn open(&self, id: u64, path: PathBuf, stereo: bool, rec: SharedRecorder) {
        let _ = self.tx.send(Cmd::Open {
            id,
            path,
            stereo,
            rec,
        });
    }

    /// The call ended: what its recorder holds goes to the file, which is then finalised.
    pub fn close(&self, id: u64) {
        let _ = self.tx.send(Cmd::Close { id });
    }

    /// Close and remove a recording nobody will want (a call that was never answered).
    pub fn discard(&self, id: u64) {
        let _ = self.tx.send(Cmd::Discard { id });
    }
}

struct Open {
    writer: hound::WavWriter<BufWriter<File>>,
    /// The pass (of [`SLICES`]) that drains this recording.
    slice: u32,
    rec: SharedRecorder,
    stereo: bool,
    last_header: Instant,
    path: PathBuf,
    /// Audio bytes in the file so far.
    bytes: u64,
    /// What was drained but not written yet, in order: a pause longer than one pass's share
    /// of silence ([`SILENCE_PER_PASS`]) and the sound after it. Empty but for the passes
    /// after a long pause.
    backlog: VecDeque<Drained>,
    /// The call ended while its backlog was still being written: finalised once it is.
    closing: bool,
}

/// Frames into the file: both channels (stereo) or their sum (mono), through hound's 16-bit
/// sample writer, which fills one buffer per batch (per-sample `write_sample` calls were the
/// writer thread's largest item in a profile at 1,000 recorded calls).
fn write_frames(
    w: &mut hound::WavWriter<BufWriter<File>>,
    stereo: bool,
    frames: &[[i16; 2]],
) -> hound::Result<()> {
    let per_frame = if stereo { 2 } else { 1 };
    let Ok(n) = u32::try_from(frames.len() * per_frame) else {
        return Err(hound::Error::TooWide);
    };
    let mut out = w.get_i16_writer(n);
    for &[l, r] in frames {
        if stereo {
            out.write_sample(l);
            out.write_sample(r);
        } else {
            out.write_sample((i32::from(l) + i32::from(r)).clamp(-32768, 32767) as i16);
        }
    }
    out.flush()
}

/// Where a new recording for `path` goes: `path`, or beside it (`-1`, `-2`, … before the
/// extension) when a file of that name exists, so that two calls with the same Call-ID in
/// the same millisecond do not truncate each other's recording. Only this thread creates
/// recordings, so the name is still free when it is opened. None when every name is taken.
fn free_name(path: &std::path::Path) -> Option<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    // Taken: anything there, a dangling symlink or a FIFO included (a recording must not
    // follow one, nor block on one); free: nothing, or a character device (`/dev/full`
    // in the tests of a full disk).
    let free = |p: &std::path::Path| match std::fs::symlink_metadata(p) {
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        Ok(m) => m.file_type().is_char_device(),
    };
    if free(path) {
        return Some(path.to_path_buf());
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path.extension().unwrap_or_default().to_string_lossy();
    (1..=MAX_SAME_NAME)
        .map(|n| path.with_file_name(format!("{stem}-{n}.{ext}")))
        .find(|p| free(p))
}

/// The writer thread's state: every open file, and the recordings the disk stopped.
struct Files<'a> {
    open: HashMap<u64, Open>,
    /// Recordings stopped by a failed write, until their call ends: a discard still removes
    /// the partial file.
    failed: HashMap<u64, PathBuf>,
    stopped: &'a std::sync::atomic::AtomicU64,
    written: metrics::Counter,
    /// The slice the next recording opened joins: round robin, so slices stay even.
    next_slice: u32,
    /// Audio bytes a file may hold ([`WAV_LIMIT`]; smaller in tests).
    limit: u64,
}

impl Files<'_> {
    fn refused(&self, stage: &'static str) {
        self.stopped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::ops::metrics::recording_failures(stage).increment(1);
    }

    fn open(&mut self, id: u64, path: PathBuf, stereo: bool, rec: SharedRecorder) {
        if let Some(dir) = path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            self.refused("open");
            tracing::error!(path = %path.display(), error = %e, "cannot create recording folder: the call goes on unrecorded");
            return;
        }
        let spec = hound::WavSpec {
            channels: if stereo { 2 } else { 1 },
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let created = free_name(&path)
            .ok_or_else(|| {
                hound::Error::from(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
            })
            .and_then(|p| hound::WavWriter::create(&p, spec).map(|w| (w, p)));
        match created {
            Ok((writer, path)) => {
                let slice = self.next_slice;
                self.next_slice = (slice + 1) % SLICES;
                self.open.insert(
                    id,
                    Open {
                        writer,
                        slice,
                        rec,
                        stereo,
                        last_header: Instant::now(),
                        path,
                        bytes: 0,
                        backlog: VecDeque::new(),
                        closing: false,
                    },
                );
            }
            Err(e) => {
                self.refused("open");
                tracing::error!(path = %path.display(), error = %e, "cannot create recording: the call goes on unrecorded")
            }
        }
    }

    /// Append what was drained to call `id`'s file, after its backlog, writing at most
    /// [`SILENCE_PER_PASS`] of silence. A full or failing disk stops that recording here,
    /// once and for all (no retry every 100 ms, no log flood); the call goes on, and the file
    /// keeps what reached the disk. So does a file at the WAV size limit.
    fn write(&mut self, id: u64, d: Drained) {
        let Some(f) = self.open.get_mut(&id) else {
            return;
        };
        if !d.is_empty() {
            f.backlog.push_back(d);
        }
        if f.backlog.is_empty() {
            return;
        }
        let per_frame = if f.stereo { 4 } else { 2 };
        let mut room = self.limit.saturating_sub(f.bytes) / per_frame;
        let mut budget = SILENCE_PER_PASS;
        let mut wrote = 0u64;
        let mut r = Ok(());
        while r.is_ok()
            && let Some(piece) = f.backlog.front_mut()
        {
            let mut silence = piece.silence.min(budget).min(room);
            piece.silence -= silence;
            (budget, room, wrote) = (budget - silence, room - silence, wrote + silence);
            while silence > 0 && r.is_ok() {
                let n = silence.min(SILENCE_CHUNK as u64);
                r = write_frames(&mut f.writer, f.stereo, &ZEROS[..n as usize]);
                silence -= n;
            }
            if piece.silence > 0 {
                break; // this pass's share of silence is spent, or the file is full
            }
            let sound = piece
                .frames
                .len()
                .min(usize::try_from(room).unwrap_or(usize::MAX));
            if r.is_ok() && sound > 0 {
                r = write_frames(&mut f.writer, f.stereo, &piece.frames[..sound]);
            }
            (room, wrote) = (room - sound as u64, wrote + sound as u64);
            if sound < piece.frames.len() {
                break; // the file is full
            }
            f.backlog.pop_front();
        }
        let full = room == 0 && f.backlog.iter().any(|p| !p.is_empty());
        let r = r.and_then(|()| {
            if f.last_header.elapsed() >= HEADER_EVERY {
                f.last_header = Instant::now();
                f.writer.flush()
            } else {
                Ok(())
            }
        });
        match r {
            Ok(()) => {
                f.bytes += wrote * per_frame;
                self.written.increment(wrote * per_frame);
                if full {
                    tracing::error!(path = %f.path.display(), "recording stopped: a WAV file holds at most 4 GiB (about 37 hours stereo); the call goes on unrecorded");
                    self.refused("size_limit");
                    self.finalize(id);
                }
            }
            Err(e) => {
                tracing::error!(path = %f.path.display(), error = %e, "recording stopped: the disk refused a write; the call goes on unrecorded");
                self.refused("write");
                if let Some(f) = self.open.remove(&id) {
                    let _ = f.writer.finalize();
                    self.failed.insert(id, f.path);
                }
            }
        }
    }

    /// The frames that left their jitter window by `now`, of every recording in `slice`.
    /// Each recorder is locked only to take its frames; the disk is written with no lock
    /// held.
    fn drain(&mut self, now: Instant, slice: u32) {
        let ids: Vec<u64> = (self.open.iter())
            .filter(|(_, f)| f.slice == slice)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            let frames = match self.open.get(&id) {
                // Its recorder gave its last frames at the call's end.
                Some(f) if f.closing => Drained::default(),
                Some(f) => match f.rec.lock() {
                    Ok(mut r) => r.drain(now),
                    Err(_) => continue,
                },
                None => continue,
            };
            self.write(id, frames);
            self.finalize_if_caught_up(id);
        }
    }

    fn close(&mut self, id: u64) {
        self.close_open(id);
        // Last: the final write may be the one the disk refuses.
        self.failed.remove(&id);
    }

    fn close_open(&mut self, id: u64) {
        let Some(rec) = self.open.get(&id).map(|f| f.rec.clone()) else {
            return;
        };
        if let Ok(mut r) = rec.lock() {
            let rest = r.finish();
            if r.stats.undecodable > 0 {
                warn!(
                    call = id,
                    packets = r.stats.undecodable,
                    "recording: codec other than G.711; those spans are silent"
                );
            }
            if r.stats != Default::default() {
                debug!(call = id, stats = ?r.stats, "recording finished");
            }
            drop(r);
            self.write(id, rest);
        }
        // What a long pause left is written by the next passes, then the file is finalised.
        match self.open.get_mut(&id) {
            Some(f) if !f.backlog.is_empty() => f.closing = true,
            _ => self.finalize(id),
        }
    }

    /// Write the header of call `id`'s file for the last time and close it.
    fn finalize(&mut self, id: u64) {
        if let Some(f) = self.open.remove(&id)
            && let Err(e) = f.writer.finalize()
        {
            tracing::error!(error = %e, "cannot finalise recording");
        }
    }

    /// A recording whose call ended while its backlog was written is finalised once the
    /// backlog is.
    fn finalize_if_caught_up(&mut self, id: u64) {
        if (self.open.get(&id)).is_some_and(|f| f.closing && f.backlog.is_empty()) {
            self.finalize(id);
        }
    }

    /// Stopping: every file is completed now, a long pause's backlog included.
    fn close_all(&mut self) {
        let ids: Vec<u64> = self.open.keys().copied().collect();
        for id in ids {
            self.close(id);
            while self.open.get(&id).is_some_and(|f| f.closing) {
                self.write(id, Drained::default());
                self.finalize_if_caught_up(id);
            }
        }
    }

    fn discard(&mut self, id: u64) {
        let path = match self.open.remove(&id) {
            Some(f) => {
                drop(f.writer);
                Some(f.path)
            }
            None => self.failed.remove(&id),
        };
        if let Some(path) = path
            && let Err(e) = std::fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the unanswered call's recording");
        }
    }
}

fn run(rx: Receiver<Cmd>, stopped: &std::sync::atomic::AtomicU64) {
    let mut files = Files {
        open: HashMap::new(),
        failed: HashMap::new(),
        stopped,
        written: crate::ops::metrics::recording_bytes(),
        next_slice: 0,
        limit: WAV_LIMIT,
    };
    let mut next = Instant::now() + PASS_EVERY;
    let mut slice = 0;
    let mut burst = crate::ops::heap::BurstEnd::default();
    loop {
        match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(Cmd::Open {
                id,
                path,
                stereo,
                rec,
            }) => files.open(id, path, stereo, rec),
            Ok(Cmd::Close { id }) => files.close(id),
            Ok(Cmd::Discard { id }) => files.discard(id),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // What a burst of recorded calls grew goes back as they end (a capacity check).
        crate::maps::shrink_if_sparse(&mut files.open);
        let now = Instant::now();
        if now >= next {
            files.drain(now, slice);
            slice = (slice + 1) % SLICES;
            if burst.ended(!files.open.is_empty()) {
                // The last recording ended: the pages its samples went through go back.
                crate::ops::heap::release_thread_pages();
            }
            next += PASS_EVERY;
            if next <= now {
                // A slow pass does not cause a burst of catch-up passes.
                next = now + PASS_EVERY;
            }
        }
    }
    files.close_all();
}

#[cfg(test)]
mod tests {
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
        // 500 ms each: more than the file buffer, so the first write reaches the disk.
        let refused = fed(25);
        w.open(1, full, true, refused.clone());
        w.open(2, ok.clone(), true, fed(25));
        settle(|| w.stopped() == 1);
        // More audio and several drain passes later, still stopped once.
        {
            let mut r = refused.lock().unwrap();
            for k in 25..40 {
                r.push(Instant::now(), 0, &packet(k));
            }
        }
        std::thread::sleep(DRAIN_EVERY * 3);
        w.close(1);
        w.close(2);
        settle(|| hound::WavReader::open(&ok).is_ok_and(|r| r.duration() == 4000));
        assert_eq!(hound::WavReader::open(&ok).unwrap().duration(), 4000);
        assert_eq!(w.stopped(), 1, "stopped once, not once per pass");
        // A folder that cannot exist: refused at open, and counted.
        w.open(3, PathBuf::from("/dev/null/x/y.wav"), true, fed(1));
        settle(|| w.stopped() == 2);
        assert_eq!(w.stopped(), 2);
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
        settle(|| {
            !gone.exists() && hound::WavReader::open(&kept).is_ok_and(|r| r.duration() == 160)
        });
        assert!(!gone.exists());
        assert_eq!(hound::WavReader::open(&kept).unwrap().duration(), 160);
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

    fn files(stopped: &std::sync::atomic::AtomicU64, limit: u64) -> Files<'_> {
        Files {
            open: HashMap::new(),
            failed: HashMap::new(),
            stopped,
            written: crate::ops::metrics::recording_bytes(),
            next_slice: 0,
            limit,
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
        rec.lock().unwrap().push(t0, 0, &packet(0));
        files.drain(t0 + Duration::from_secs(1), files.open[&2].slice);
        rec.lock().unwrap().push(back, 0, &packet(600 * 50));
        files.close_all();
        assert!(files.open.is_empty());
        let r = hound::WavReader::open(&path).unwrap();
        assert_eq!(u64::from(r.duration()), 600 * 8000 + 160);
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

    /// The final write at a call's end is the one the disk refuses: nothing of the call is
    /// kept afterwards.
    #[test]
    fn a_recording_refused_at_its_last_write_leaves_nothing_behind() {
        let stopped = std::sync::atomic::AtomicU64::new(0);
        let mut files = files(&stopped, WAV_LIMIT);
        // 16 KB of audio at the end: more than the file buffer, so it reaches the disk.
        files.open(1, PathBuf::from("/dev/full"), true, fed(25));
        assert!(files.open.contains_key(&1));
        files.close(1);
        assert_eq!(stopped.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(files.failed.is_empty(), "{:?}", files.failed);
        assert!(files.open.is_empty());
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
}
