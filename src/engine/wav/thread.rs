//! The writer thread's loop: commands from the shell, a slice of the recordings drained
//! every pass, and a fresh start after a fault.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use super::{Cmd, Files, News, PASS_EVERY, SLICES, WAV_LIMIT};

/// [`run`], started again after a panic: a fault in one recording's file (hound, our
/// buffers) stops the recordings open then (each is told, and its file's header set to what
/// it holds: `Files`'s `Drop`), not every recording for the rest of the process.
pub(super) fn run_restarting(
    rx: &Receiver<Cmd>,
    stopped: &std::sync::atomic::AtomicU64,
    queued_opens: &std::sync::atomic::AtomicUsize,
    news: &News,
    min_free: &std::sync::atomic::AtomicU64,
) {
    let survivors = std::cell::RefCell::new(HashMap::new());
    let syncer = super::sync::Syncer::start();
    loop {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(
                rx,
                stopped,
                queued_opens,
                news.clone(),
                (min_free, &syncer),
                &survivors,
            )
        }));
        if ran.is_ok() {
            syncer.finish();
            return;
        }
        tracing::error!("the recording writer failed: the recordings open then stop; it goes on");
    }
}

fn run(
    rx: &Receiver<Cmd>,
    stopped: &std::sync::atomic::AtomicU64,
    queued_opens: &std::sync::atomic::AtomicUsize,
    news: News,
    (min_free, syncer): (&std::sync::atomic::AtomicU64, &super::sync::Syncer),
    survivors: &std::cell::RefCell<HashMap<u64, std::path::PathBuf>>,
) {
    let mut files = Files {
        open: HashMap::new(),
        failed: survivors.take(),
        stopped,
        min_free,
        syncer,
        space: Default::default(),
        written: crate::ops::metrics::recording_bytes(),
        next_slice: 0,
        news,
        limit: WAV_LIMIT,
        survivors: Some(survivors),
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
            }) => {
                queued_opens.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                files.open(id, path, stereo, rec)
            }
            Ok(Cmd::Close { id }) => files.close(id),
            Ok(Cmd::Discard { id }) => files.discard(id),
            Ok(Cmd::Answered { id }) => files.answered(id),
            #[cfg(test)]
            #[allow(clippy::panic)]
            Ok(Cmd::Fail) => panic!("a fault in the recording writer"),
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
