//! `<CDR file>.callback-ts`: the latest `ts` ahead of the clock that a signed call-back
//! datagram had, kept for the next process. A signed REQUEST is taken within 30 s of our
//! clock either way; one dated ahead (an AS whose clock runs fast) is still within that
//! window after a quick restart, when the new process's replay table is empty. The next
//! process refuses what is dated up to this.
//!
//! Written aside and renamed (`ops::control::write_atomically`, as the reload result is) on
//! a thread of its own, newest value only: a stalled disk must not stall the signalling
//! thread, and the value only rises. Not synced: a crash of the machine takes longer than
//! the 30 s window to come back from.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use crate::callback::signature::MAX_SKEW_S;
use crate::config::Config;

/// The file beside the CDR file of the gateway run with `cfg`.
pub fn path_of(cfg: &Config) -> PathBuf {
    let mut p = cfg.cdr_path.as_os_str().to_owned();
    p.push(".callback-ts");
    PathBuf::from(p)
}

/// What the last process kept, as the next refuses it at wall-clock second `now_s`: at
/// most the window ahead of now (a value beyond it was never a `ts` taken here, unless
/// the clock was set back since; a damaged file must not refuse everything for longer).
pub fn read(path: &Path, now_s: u64) -> Option<u64> {
    // A regular file of a number's length: a FIFO or device put there must not hold up
    // the start.
    let bytes = crate::config::read::read_at_most(path, 64).ok()??;
    let ts = std::str::from_utf8(&bytes)
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(ts.min(now_s.saturating_add(MAX_SKEW_S)))
}

#[derive(Default)]
struct Latest {
    value: Option<u64>,
    closed: bool,
}

/// The writer of the file.
pub struct Floor {
    latest: Arc<(Mutex<Latest>, Condvar)>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// How long a stop waits for the last value to reach the file (a small write and rename,
/// not synced): a stalled disk must not hold up the exit, whose waits are budgeted
/// (`config::process`, the stop's time after the drain).
const LAST_WRITE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

impl Floor {
    pub fn start(path: PathBuf) -> std::io::Result<Floor> {
        let latest = Arc::new((Mutex::new(Latest::default()), Condvar::new()));
        let theirs = latest.clone();
        let writer = std::thread::Builder::new()
            .name("callback-ts".into())
            .spawn(move || write_newest(&path, &theirs))?;
        Ok(Floor {
            latest,
            writer: Some(writer),
        })
    }

    /// Keep `ts` (the newest of what was given since the last write is written).
    pub fn store(&self, ts: u64) {
        let (lock, cv) = &*self.latest;
        let mut l = crate::threads::lock(lock);
        l.value = Some(l.value.map_or(ts, |v| v.max(ts)));
        cv.notify_one();
    }
}

impl Drop for Floor {
    /// The value given last is written before the process goes on to exit (it may be the
    /// `ts` of a REQUEST taken a moment ago, which the next process must refuse); before,
    /// the exit could come first. Bounded by [`LAST_WRITE_WAIT`], within the half second
    /// the stop's budget rounds up.
    fn drop(&mut self) {
        let (lock, cv) = &*self.latest;
        crate::threads::lock(lock).closed = true;
        cv.notify_one();
        if let Some(writer) = self.writer.take()
            && crate::threads::join_within(writer, LAST_WRITE_WAIT)
                == crate::threads::Joined::StillRunning
        {
            tracing::warn!(
                waited_ms = LAST_WRITE_WAIT.as_millis() as u64,
                "the newest call-back ts was not written in time (a stalled disk?): a signed REQUEST dated ahead of the clock could be taken again by the next process"
            );
        }
    }
}

fn write_newest(path: &Path, latest: &(Mutex<Latest>, Condvar)) {
    let (lock, cv) = latest;
    let mut said = false;
    let mut kept = 0;
    loop {
        let value = {
            let Ok(mut l) = lock.lock() else { return };
            while l.value.is_none() && !l.closed {
                l = match cv.wait(l) {
                    Ok(l) => l,
                    Err(_) => return,
                };
            }
            match l.value.take() {
                Some(v) => v.max(kept),
                None => return,
            }
        };
        kept = value;
        let written = crate::ops::control::write_atomically(path, &format!("{value}\n"));
        if let Err(e) = written
            && !std::mem::replace(&mut said, true)
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep the newest call-back ts for the next start: a signed REQUEST dated ahead of the clock could be taken again after a quick restart");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The newest value is written, and read back bounded by the window.
    #[test]
    fn the_newest_ts_is_kept_and_read_back_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cdr.jsonl.callback-ts");
        assert_eq!(read(&path, 1000), None);
        let floor = Floor::start(path.clone()).unwrap();
        floor.store(1_020);
        floor.store(1_010);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while read(&path, 1000) != Some(1_020) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(read(&path, 1000), Some(1_020));
        assert_eq!(read(&path, 900), Some(900 + MAX_SKEW_S), "bounded");
        drop(floor);
        std::fs::write(&path, "junk").unwrap();
        assert_eq!(read(&path, 1000), None);
    }

    /// A value given just before the stop is in the file once the keeper is dropped (the
    /// process exits next): no wait for the writer thread's own time.
    #[test]
    fn the_last_ts_is_written_before_the_stop_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cdr.jsonl.callback-ts");
        let floor = Floor::start(path.clone()).unwrap();
        floor.store(2_000);
        drop(floor);
        assert_eq!(read(&path, 2_000), Some(2_000));
    }
}
