//! Loading the configuration for a reload off the signalling thread, within a time limit:
//! a file system that stops answering (a hard NFS mount, storage gone away) must neither
//! stop SIP nor hold every later reload, nor the process at its stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::config::{Config, ConfigErrors};

/// How long a reload's loading may take: reading a few files and trying the recording
/// folder takes milliseconds; past this the disk is not answering. Below the 15 s that
/// `trunkgate reload` waits, so it prints this answer.
pub(in crate::engine) const LOAD_LIMIT: Duration = Duration::from_secs(5);

/// Loads given up on that may still be stuck, each on a thread of its own (a thread
/// blocked in the kernel cannot be stopped): past this many no more are started, or a
/// reload a minute on a dead mount would add a thread a minute.
const MAX_STUCK: usize = 4;

/// Why a reload's configuration did not come.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(in crate::engine) enum LoadFailed {
    #[error("loading the configuration failed (a panic)")]
    Panicked,
    #[error(
        "loading the configuration took more than {}s: a file system that does not answer?",
        LOAD_LIMIT.as_secs()
    )]
    TimedOut,
    #[error(
        "{MAX_STUCK} earlier loads of the configuration are still stuck on a file system that does not answer"
    )]
    Stuck,
    #[error("no thread to load the configuration on: {0}")]
    NoThread(String),
}

/// What loading the configuration gave.
pub(in crate::engine) type Loaded = Result<Result<Config, ConfigErrors>, LoadFailed>;

/// The configuration being loaded for a reload, and whether another SIGHUP came meanwhile.
pub(in crate::engine) struct Reloading {
    loading: Option<(oneshot::Receiver<Loaded>, tokio::time::Instant)>,
    pub(in crate::engine) again: bool,
    /// Loading threads still running, given up on or not.
    running: Arc<AtomicUsize>,
    /// [`LOAD_LIMIT`] (tests: shorter).
    limit: Duration,
    /// When the last load began ([`crate::ops::control::boot_ms`]).
    started: u64,
}

impl Default for Reloading {
    fn default() -> Self {
        Reloading {
            loading: None,
            again: false,
            running: Arc::default(),
            limit: LOAD_LIMIT,
            started: 0,
        }
    }
}

impl Reloading {
    pub(in crate::engine) fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    /// When the last load began.
    pub(in crate::engine) fn started(&self) -> u64 {
        self.started
    }

    /// Start `load` on a thread of its own (not the runtime's blocking pool: the runtime
    /// waits for those when it stops). Its result is [`Reloading::loaded`]'s.
    pub(in crate::engine) fn start(
        &mut self,
        load: impl FnOnce() -> Result<Config, ConfigErrors> + Send + 'static,
    ) {
        let (tx, rx) = oneshot::channel();
        self.loading = Some((rx, tokio::time::Instant::now() + self.limit));
        self.started = crate::ops::control::boot_ms();
        if self.running.load(Ordering::Relaxed) >= MAX_STUCK {
            let _ = tx.send(Err(LoadFailed::Stuck));
            return;
        }
        let running = self.running.clone();
        running.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("trunkgate-reload".into())
            .spawn(move || {
                // Counted down however the load ends, a panic included.
                struct Done(Arc<AtomicUsize>);
                impl Drop for Done {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                // Declared first, dropped last: the count is down before a panic's result
                // (the channel closed) is seen.
                let tx = tx;
                let done = Done(running);
                let loaded = load();
                // Down before the result is seen: a reload right after it is not refused
                // as one more stuck load.
                drop(done);
                let _ = tx.send(Ok(loaded));
            });
        if let Err(e) = spawned {
            self.running.fetch_sub(1, Ordering::Relaxed);
            // The sender went with the closure: say why here.
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Err(LoadFailed::NoThread(e.to_string())));
            self.loading = Some((rx, tokio::time::Instant::now() + self.limit));
        }
    }

    /// The configuration loaded, or why not; never while none is being loaded.
    pub(in crate::engine) async fn loaded(&mut self) -> Loaded {
        let Some((rx, deadline)) = self.loading.as_mut() else {
            return std::future::pending().await;
        };
        let done = match tokio::time::timeout_at(*deadline, rx).await {
            Ok(Ok(loaded)) => loaded,
            // The thread ended without a word: it panicked.
            Ok(Err(_)) => Err(LoadFailed::Panicked),
            // Left behind: it ends when its disk answers, or with the process.
            Err(_) => Err(LoadFailed::TimedOut),
        };
        self.loading = None;
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Result<Config, ConfigErrors> {
        Err(ConfigErrors(Vec::new()))
    }

    /// A load stuck on a disk that does not answer is given up on at its limit, and the next
    /// reload is loaded (before, every later SIGHUP waited behind it for ever, and the
    /// process's stop waited for it too). Past [`MAX_STUCK`] stuck ones, no more threads.
    #[tokio::test]
    async fn a_load_stuck_on_the_disk_is_given_up_and_the_next_one_goes() {
        let mut r = Reloading {
            limit: Duration::from_millis(50),
            ..Reloading::default()
        };
        let (unstick, stuck) = std::sync::mpsc::channel::<()>();
        let stuck = Arc::new(std::sync::Mutex::new(stuck));
        for _ in 0..MAX_STUCK {
            let stuck = stuck.clone();
            r.start(move || {
                let _ = stuck.lock().map(|s| s.recv());
                refused()
            });
            assert!(r.is_loading());
            assert_eq!(r.loaded().await.err(), Some(LoadFailed::TimedOut));
            assert!(!r.is_loading());
        }
        r.start(refused);
        assert_eq!(r.loaded().await.err(), Some(LoadFailed::Stuck));
        // The disk answers again: the stuck threads end, and a reload goes through.
        drop(unstick);
        for _ in 0..1000 {
            if r.running.load(Ordering::Relaxed) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        r.start(refused);
        assert!(matches!(r.loaded().await, Ok(Err(_))));
    }

    #[tokio::test]
    async fn a_load_that_panics_is_said_so() {
        let mut r = Reloading::default();
        r.start(|| panic!("a bug"));
        assert_eq!(r.loaded().await.err(), Some(LoadFailed::Panicked));
        assert_eq!(r.running.load(Ordering::Relaxed), 0);
    }
}
