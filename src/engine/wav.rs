//! Writing recordings: one thread owns every open WAV file, so disk I/O never stalls the
//! core. 8 kHz, 16-bit PCM, stereo (caller left, callee right) or mixed mono. Samples are
//! appended as they come; the header is brought up to date every few seconds and when the
//! call ends, so a crash leaves a file that plays up to the last update (see README for the
//! repair of the rest).

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

/// Header updates at most this often per file.
const HEADER_EVERY: Duration = Duration::from_secs(5);

enum Cmd {
    Open {
        id: u64,
        path: PathBuf,
        stereo: bool,
    },
    Frames {
        id: u64,
        frames: Vec<[i16; 2]>,
    },
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
    stopped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wav command")
    }
}

impl WavWriters {
    pub fn start() -> std::io::Result<(WavWriters, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel();
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
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

    pub fn open(&self, id: u64, path: PathBuf, stereo: bool) {
        let _ = self.tx.send(Cmd::Open { id, path, stereo });
    }

    pub fn frames(&self, id: u64, frames: Vec<[i16; 2]>) {
        if !frames.is_empty() {
            let _ = self.tx.send(Cmd::Frames { id, frames });
        }
    }

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
    stereo: bool,
    last_header: Instant,
    path: PathBuf,
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

fn run(rx: Receiver<Cmd>, stopped: &std::sync::atomic::AtomicU64) {
    // Recordings stopped by a failed write, until their call ends: a discard still removes
    // the partial file.
    let mut failed: HashMap<u64, PathBuf> = HashMap::new();
    let refused = |stage: &'static str| {
        stopped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::ops::metrics::recording_failures(stage).increment(1);
    };
    let mut files: HashMap<u64, Open> = HashMap::new();
    let written = crate::ops::metrics::recording_bytes();
    while let Ok(cmd) = rx.recv() {
        match cmd {
            Cmd::Open { id, path, stereo } => {
                if let Some(dir) = path.parent()
                    && let Err(e) = std::fs::create_dir_all(dir)
                {
                    refused("open");
                    tracing::error!(path = %path.display(), error = %e, "cannot create recording folder: the call goes on unrecorded");
                    continue;
                }
                let spec = hound::WavSpec {
                    channels: if stereo { 2 } else { 1 },
                    sample_rate: 8000,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                };
                match hound::WavWriter::create(&path, spec) {
                    Ok(writer) => {
                        files.insert(
                            id,
                            Open {
                                writer,
                                stereo,
                                last_header: Instant::now(),
                                path,
                            },
                        );
                    }
                    Err(e) => {
                        refused("open");
                        tracing::error!(path = %path.display(), error = %e, "cannot create recording: the call goes on unrecorded")
                    }
                }
            }
            Cmd::Frames { id, frames } => {
                let Some(f) = files.get_mut(&id) else {
                    continue;
                };
                let r = write_frames(&mut f.writer, f.stereo, &frames);
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
                        let per_frame = if f.stereo { 4 } else { 2 };
                        written.increment((frames.len() * per_frame) as u64);
                    }
                    Err(e) => {
                        // A full or failing disk: this recording stops here, once and for
                        // all (no retry every 100 ms, no log flood); the call goes on, and
                        // the file keeps what reached the disk.
                        refused("write");
                        tracing::error!(path = %f.path.display(), error = %e, "recording stopped: the disk refused a write; the call goes on unrecorded");
                        if let Some(f) = files.remove(&id) {
                            let _ = f.writer.finalize();
                            failed.insert(id, f.path);
                        }
                    }
                }
            }
            Cmd::Close { id } => {
                failed.remove(&id);
                if let Some(f) = files.remove(&id)
                    && let Err(e) = f.writer.finalize()
                {
                    tracing::error!(error = %e, "cannot finalise recording");
                }
            }
            Cmd::Discard { id } => {
                let path = match files.remove(&id) {
                    Some(f) => {
                        drop(f.writer);
                        Some(f.path)
                    }
                    None => failed.remove(&id),
                };
                if let Some(path) = path
                    && let Err(e) = std::fs::remove_file(&path)
                {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove the unanswered call's recording");
                }
            }
        }
    }
    for (_, f) in files {
        let _ = f.writer.finalize();
    }
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
        w.open(1, full, true);
        w.open(2, ok.clone(), true);
        // 3 s of audio each, in 100 ms batches: the full disk refuses the first flush.
        for _ in 0..30 {
            w.frames(1, vec![[1, 2]; 800]);
            w.frames(2, vec![[1, 2]; 800]);
        }
        w.close(1);
        w.close(2);
        settle(|| hound::WavReader::open(&ok).is_ok_and(|r| r.duration() == 24_000));
        assert_eq!(hound::WavReader::open(&ok).unwrap().duration(), 24_000);
        assert_eq!(w.stopped(), 1, "stopped once, not once per batch");
        // A folder that cannot exist: refused at open, and counted.
        w.open(3, PathBuf::from("/dev/null/x/y.wav"), true);
        w.frames(3, vec![[1, 2]; 80]);
        settle(|| w.stopped() == 2);
        assert_eq!(w.stopped(), 2);
    }

    #[test]
    fn a_discarded_recording_leaves_no_file_and_a_closed_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _thread) = WavWriters::start().unwrap();
        let (gone, kept) = (dir.path().join("a/gone.wav"), dir.path().join("a/kept.wav"));
        w.open(1, gone.clone(), true);
        w.open(2, kept.clone(), false);
        w.frames(1, vec![[1, 2]; 80]);
        w.frames(2, vec![[1, 2]; 80]);
        w.discard(1);
        w.close(2);
        settle(|| {
            !gone.exists() && hound::WavReader::open(&kept).is_ok_and(|r| r.duration() == 80)
        });
        assert!(!gone.exists());
        assert_eq!(hound::WavReader::open(&kept).unwrap().duration(), 80);
    }
}
