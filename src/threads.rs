//! What threads share: waiting for a worker thread at exit, within a limit (a thread stuck
//! in a system call, on a disk that no longer answers: an NFS hard mount, SCSI timeouts,
//! must not keep the process from ending in the time its supervisor allows, which would
//! then kill it with less said), and taking a lock a caught panic poisoned.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a thread waited for ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined {
    /// It finished.
    Finished,
    /// It panicked.
    Panicked,
    /// It was still running at the limit; it is left behind (it ends with the process).
    StillRunning,
}

/// Join `thread`, waiting at most `limit`.
pub fn join_within<T>(thread: JoinHandle<T>, limit: Duration) -> Joined {
    let until = Instant::now() + limit;
    while !thread.is_finished() {
        if Instant::now() >= until {
            return Joined::StillRunning;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    match thread.join() {
        Ok(_) => Joined::Finished,
        Err(_) => Joined::Panicked,
    }
}

/// Lock `m` whatever a panic left: the state shared across threads here is counters and
/// tables each step leaves whole, and a poisoned lock refused for good turned one caught
/// panic into a feature off for the rest of the process (every TCP connection refused,
/// overload control admitting everything, a recording stopped).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_waited_for_at_most_the_limit() {
        let quick = std::thread::spawn(|| ());
        assert_eq!(join_within(quick, Duration::from_secs(5)), Joined::Finished);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let stuck = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        let t = Instant::now();
        assert_eq!(
            join_within(stuck, Duration::from_millis(50)),
            Joined::StillRunning
        );
        assert!(t.elapsed() < Duration::from_secs(5));
        drop(tx);
        let broken = std::thread::spawn(|| panic!("a worker's panic"));
        assert_eq!(
            join_within(broken, Duration::from_secs(5)),
            Joined::Panicked
        );
    }
}
