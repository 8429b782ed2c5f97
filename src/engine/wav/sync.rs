//! Finished recordings synced to the disk, on a thread of their own: a sync can take the
//! disk's whole queue (tens of milliseconds, seconds on a busy array), and the writer
//! thread must go on draining every other call's recorder meanwhile. Before, recordings
//! were never synced, so after a power loss a CDR written and synced seconds after its
//! call could name a recording that was empty or missing. Each file is synced by its
//! path once finalised (no descriptor held while it waits: the queue costs no file
//! descriptors), then its folder, for the file's name. Bounded: past [`QUEUE`] waiting
//! (a disk slower than the calls ending) a file is left to the kernel's own writeback,
//! and counted.

use std::collections::BTreeSet;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

/// Files waiting for their sync at most.
const QUEUE: usize = 4096;
/// Files synced before their folders are (one folder sync covers a batch).
const BATCH: usize = 256;
/// How long a stop waits for the syncs still queued: within the time the stop gives the
/// recordings' close (`[shutdown]` in README).
const LAST_SYNCS_WAIT: Duration = Duration::from_secs(1);

/// The sync thread's handle (none when it could not start: every file is then counted as
/// not synced).
pub(super) struct Syncer {
    tx: Option<SyncSender<PathBuf>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    pub(super) fn start() -> Syncer {
        let (tx, rx) = sync_channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("wav-sync".into())
            .spawn(move || run(&rx));
        match spawned {
            Ok(thread) => Syncer {
                tx: Some(tx),
                thread: Some(thread),
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot start the recordings' sync thread: recordings are left to the kernel's writeback");
                Syncer {
                    tx: None,
                    thread: None,
                }
            }
        }
    }

    /// Sync the finalised recording at `path` (soon, not now).
    pub(super) fn sync(&self, path: &Path) {
        let queued = self.tx.as_ref().map(|tx| tx.try_send(path.to_path_buf()));
        if !matches!(queued, Some(Ok(()))) {
            if matches!(queued, Some(Err(TrySendError::Full(_)))) {
                tracing::debug!(path = %path.display(), "recording sync queue full: left to the kernel's writeback");
            }
            crate::ops::metrics::recording_failures("not_synced").increment(1);
        }
    }

    /// The writer is ending: the syncs queued are done, for at most [`LAST_SYNCS_WAIT`].
    /// False when some were left (to the kernel's writeback).
    pub(super) fn finish(mut self) -> bool {
        self.tx = None;
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let joined = crate::threads::join_within(thread, LAST_SYNCS_WAIT);
        if joined == crate::threads::Joined::StillRunning {
            tracing::warn!(
                waited_ms = LAST_SYNCS_WAIT.as_millis() as u64,
                "recordings not yet synced at the stop (a slow disk?): the kernel writes them back"
            );
        }
        joined == crate::threads::Joined::Finished
    }
}

fn run(rx: &Receiver<PathBuf>) {
    let mut said = false;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH
            && let Ok(p) = rx.try_recv()
        {
            batch.push(p);
        }
        let mut folders = BTreeSet::new();
        for path in batch {
            match sync_file(&path) {
                Ok(()) => {
                    folders.insert(path.parent().map(Path::to_path_buf).unwrap_or_default());
                }
                // Removed or moved since (an operator's job): nothing here to keep.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    crate::ops::metrics::recording_failures("not_synced").increment(1);
                    if !std::mem::replace(&mut said, true) {
                        tracing::warn!(path = %path.display(), error = %e, "cannot sync a finished recording to the disk (said once)");
                    }
                }
            }
        }
        for folder in folders {
            // Best effort: some file systems refuse a folder's sync.
            let dir = if folder.as_os_str().is_empty() {
                Path::new(".")
            } else {
                &folder
            };
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
    }
}

/// The file at `path`, never through a symbolic link (as recordings are made), synced.
fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?
        .sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queued files are synced and a stop waits for the queue: a FIFO put in a recording's
    /// place does not hold the thread (an open without O_NONBLOCK would block for ever), a
    /// removed file is no error.
    #[test]
    fn queued_files_are_synced_and_a_stop_waits_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.wav");
        std::fs::write(&file, b"RIFF").unwrap();
        let fifo = dir.path().join("fifo.wav");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let s = Syncer::start();
        s.sync(&fifo);
        s.sync(&dir.path().join("gone.wav"));
        s.sync(&file);
        assert!(s.finish(), "every queued sync ended");
        assert!(sync_file(&file).is_ok());
    }
}
