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
//! in the recorder's stats), not memory. An open holds its recorder until the thread takes
//! it, so a thread stalled on its disk takes at most [`MAX_QUEUED_OPENS`] of them; later
//! calls go unrecorded. The other exception is the end of a long pause:
//! its silence is written a minute a pass, and the sound drained meanwhile waits in the
//! recording's backlog (a tenth of a second per minute of pause).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::media::RecordingNews;
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
    /// The call was answered: its file is kept when the writer stops before the call ends.
    Answered {
        id: u64,
    },
    /// A fault in the writer (tests: what any panic on its thread does).
    #[cfg(test)]
    Fail,
}

/// Opens waiting for the writer thread at most. Each holds its call's recorder (tens of KB):
/// a disk that stalls the thread (an NFS hard mount, a SCSI timeout) must not have every
/// call recorded meanwhile pile up in memory, ended calls included. Past this a new
/// recording is refused (counted as a refusal at `open`); the call goes on.
const MAX_QUEUED_OPENS: usize = 1024;

/// News for the calls ([`RecordingNews`]) waiting to be taken, at most: the shell takes
/// them every second; past this (a disk failing every recording of a burst) the rest is
/// only counted, and those CDRs may name their recording wrongly.
const MAX_NEWS: usize = 4096;

/// News of recordings for their calls, from the writer thread (and a refused open) to the
/// shell.
type News = Arc<NewsBox>;

/// The news waiting, and a bell rung at each, for a shell that waits for a recording to be
/// finished (its call's CDR is held until then: `engine::held_cdrs`).
#[derive(Debug, Default)]
struct NewsBox {
    list: Mutex<Vec<(u64, RecordingNews)>>,
    bell: Arc<tokio::sync::Notify>,
}

impl NewsBox {
    fn lock(&self) -> std::sync::LockResult<std::sync::MutexGuard<'_, Vec<(u64, RecordingNews)>>> {
        self.list.lock()
    }
}

fn tell(news: &News, id: u64, what: RecordingNews) {
    let Ok(mut n) = news.lock() else {
        return;
    };
    if n.len() < MAX_NEWS {
        n.push((id, what));
        drop(n);
        news.bell.notify_one();
    } else {
        // Counted, not logged one by one: a burst of them would flood the log. That call's
        // CDR may name its recording wrongly (a file the disk refused, or the name a
        // renamed file had first).
        drop(n);
        crate::ops::metrics::recording_failures("news_lost").increment(1);
    }
}

/// Handle to the writer thread.
#[derive(Debug, Clone)]
pub struct WavWriters {
    tx: Sender<Cmd>,
    /// Recordings the disk refused (at open or mid-call), since start.
    stopped: Arc<std::sync::atomic::AtomicU64>,
    /// Opens sent and not yet taken by the thread.
    queued_opens: Arc<std::sync::atomic::AtomicUsize>,
    news: News,
    /// `[recording] min_free_mb`, in bytes (0: no floor).
    min_free: Arc<std::sync::atomic::AtomicU64>,
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
        let queued_opens = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let news = News::default();
        let min_free = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (counted, taken, told) = (stopped.clone(), queued_opens.clone(), news.clone());
        let floor = min_free.clone();
        let h = std::thread::Builder::new()
            .name("wav-writer".into())
            .spawn(move || thread::run_restarting(&rx, &counted, &taken, &told, &floor))?;
        Ok((
            WavWriters {
                tx,
                stopped,
                queued_opens,
                news,
                min_free,
            },
            h,
        ))
    }

    /// Rung when there is news (see [`WavWriters::news`]).
    pub fn bell(&self) -> Arc<tokio::sync::Notify> {
        self.news.bell.clone()
    }

    /// What became of recordings since the last call: each closed one's `Finished`, and
    /// what did not go as planned.
    pub fn news(&self) -> Vec<(u64, RecordingNews)> {
        self.news
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    /// Recordings start, and go on, only while the file system of theirs has `bytes` free
    /// (`[recording] min_free_mb`; 0: to the last byte).
    pub fn keep_free(&self, bytes: u64) {
        self.min_free
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many recordings the disk refused so far.
    pub fn stopped(&self) -> u64 {
        self.stopped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Start recording call `id` into `path`, draining `rec` from now on (unless
    /// [`MAX_QUEUED_OPENS`] are waiting already: then the call goes unrecorded). False when
    /// it goes unrecorded: nothing is to be closed at its end (a stalled disk's thread would
    /// otherwise queue a close for every call that ends meanwhile).
    pub fn open(&self, id: u64, path: PathBuf, stereo: bool, rec: SharedRecorder) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if self.queued_opens.fetch_add(1, Relaxed) >= MAX_QUEUED_OPENS {
            self.queued_opens.fetch_sub(1, Relaxed);
            count_refusal(&self.stopped, "open");
            warn!(path = %path.display(), "the recording writer is stalled ({MAX_QUEUED_OPENS} recordings waiting to open): this call goes unrecorded");
            tell(&self.news, id, RecordingNews::NotStarted);
            return false;
        }
        let sent = self.tx.send(Cmd::Open {
            id,
            path,
            stereo,
            rec,
        });
        if let Err(mpsc::SendError(Cmd::Open { path, .. })) = sent {
            // No writer left. Defensive: it restarts after a fault and ends only when the
            // shell's handle goes; but a count nobody takes back would refuse every
            // recording after 1,024.
            self.queued_opens.fetch_sub(1, Relaxed);
            count_refusal(&self.stopped, "open");
            warn!(path = %path.display(), "the recording writer has ended: this call goes unrecorded");
            tell(&self.news, id, RecordingNews::NotStarted);
            return false;
        }
        true
    }

    /// The call ended: what its recorder holds goes to the file, which is then finalised.
    pub fn close(&self, id: u64) {
        let _ = self.tx.send(Cmd::Close { id });
    }

    /// Close and remove a recording nobody will want (a call that was never answered).
    pub fn discard(&self, id: u64) {
        let _ = self.tx.send(Cmd::Discard { id });
    }

    /// The call was answered: at a stop its recording is kept (one still ringing is removed).
    pub fn answered(&self, id: u64) {
        let _ = self.tx.send(Cmd::Answered { id });
    }
}

struct Open {
    writer: file::Writer,
    /// The file the writer writes, to see whether it still has a name.
    file: Arc<File>,
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
    /// Audio written since the header was last brought up to date.
    dirty: bool,
    /// Its call was answered (else, at a stop, the file is removed).
    answered: bool,
}

/// The writer thread's state: every open file, and the recordings the disk stopped.
struct Files<'a> {
    open: HashMap<u64, Open>,
    /// Recordings stopped by a failed write, until their call ends: a discard still removes
    /// the partial file.
    failed: HashMap<u64, PathBuf>,
    stopped: &'a std::sync::atomic::AtomicU64,
    /// [`WavWriters::keep_free`].
    min_free: &'a std::sync::atomic::AtomicU64,
    /// Where finished files go to be synced.
    syncer: &'a sync::Syncer,
    /// Recordings' free space as last seen ([`file::Space`]).
    space: file::Space,
    written: metrics::Counter,
    /// The slice the next recording opened joins: round robin, so slices stay even.
    next_slice: u32,
    news: News,
    /// Audio bytes a file may hold ([`WAV_LIMIT`]; smaller in tests).
    limit: u64,
    /// Where `failed` (and the recordings a fault stops) go when a fault ends this `Files`:
    /// the next one takes them, so a Discard that comes after still removes the file.
    survivors: Option<&'a std::cell::RefCell<HashMap<u64, PathBuf>>>,
}

impl Drop for Files<'_> {
    /// Unwinding from a panic on the writer thread: every open recording stops there, its
    /// call told and its header set to what reached the disk.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let open: Vec<(u64, Open)> = self.open.drain().collect();
        for (id, f) in open {
            let (path, closed) = (f.path.clone(), f.closing);
            // The BufWriter flushes as it goes; the header is mended from the file's size.
            drop(f);
            file::mend(&path);
            self.refused_for(id, "write", RecordingNews::Stopped);
            // Its call ended already (the file was catching up a long pause): no Close will
            // come, and its held CDR goes now.
            if closed {
                tell(&self.news, id, RecordingNews::Finished);
            } else {
                self.failed.insert(id, path);
            }
        }
        if let Some(s) = self.survivors
            && let Ok(mut s) = s.try_borrow_mut()
        {
            s.extend(self.failed.drain());
        }
    }
}

impl Files<'_> {
    fn refused(&self, stage: &'static str) {
        count_refusal(self.stopped, stage);
    }

    /// A refusal at `stage` that the call is told of.
    fn refused_for(&self, id: u64, stage: &'static str, what: RecordingNews) {
        self.refused(stage);
        tell(&self.news, id, what);
    }

    fn open(&mut self, id: u64, path: PathBuf, stereo: bool, rec: SharedRecorder) {
        // Voices and numbers: folders 0750 and files 0640 (less by the umask), as the CDR
        // file, whatever umask the process was started with.
        if let Some(dir) = path.parent()
            && let Err(e) = file::private_dir(dir)
        {
            self.refused_for(id, "open", RecordingNews::NotStarted);
            self.space.refused(&path, "folder", &e);
            return;
        }
        if (path.parent()).is_some_and(|d| short_of_space(self.min_free, &mut self.space, d)) {
            self.refused_for(id, "space", RecordingNews::NotStarted);
            return;
        }
        let spec = hound::WavSpec {
            channels: if stereo { 2 } else { 1 },
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        match file::create(&path, spec) {
            Ok((writer, made, file)) => {
                self.space.made();
                if made != path {
                    tell(&self.news, id, RecordingNews::Renamed(made.clone()));
                }
                let path = made;
                let slice = self.next_slice;
                self.next_slice = (slice + 1) % SLICES;
                self.open.insert(
                    id,
                    Open {
                        writer,
                        file,
                        slice,
                        rec,
                        stereo,
                        last_header: Instant::now(),
                        path,
                        bytes: 0,
                        backlog: VecDeque::new(),
                        closing: false,
                        dirty: false,
                        answered: false,
                    },
                );
            }
            Err(e) => {
                self.refused_for(id, "open", RecordingNews::NotStarted);
                self.space.refused(&path, "file", &e);
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
}

/// A recording refused at `stage` (open, write, size_limit): counted in `stopped` and in
/// `trunkgate_recording_failures_total`.
fn count_refusal(stopped: &std::sync::atomic::AtomicU64, stage: &'static str) {
    stopped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::ops::metrics::recording_failures(stage).increment(1);
}

mod ending;
mod file;
mod repair;
mod sync;
mod thread;

pub(crate) use file::check_recording_dir;
use file::short_of_space;
mod write;

#[cfg(test)]
mod tests;
