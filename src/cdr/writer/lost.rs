//! Where a record that cannot reach the CDR file goes: standard error (the log), whole, one
//! line each, so it can still be billed. Not through the log's queue, which drops lines when
//! full (a peer's refusals can fill it), and not from the signalling thread either: standard
//! error can block (a journal on the disk that stopped answering, a full pipe), and the
//! calls that lose a record end on that thread, which must go on. A thread of its own writes
//! the lines, from a bounded queue; a line that finds the queue full is counted
//! (`trunkgate_cdr_unlogged_total`), not waited for.

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Lost records' lines not yet on standard error: some 3 MB of JSON lines. Standard error
/// that takes none for this long is stuck, and what follows is counted instead.
const QUEUE: usize = 4096;

#[derive(Debug)]
pub(super) struct LostLines {
    /// The thread's queue, started at the first lost record (most runs lose none); `None`
    /// when the thread could not be started.
    queue: OnceLock<Option<SyncSender<String>>>,
    /// Lines queued and not yet written.
    pending: Arc<AtomicUsize>,
    /// Lines that found the queue full, or no thread.
    unlogged: AtomicU64,
    out: Out,
}

/// Where the lines go: standard error; in the library's own tests a buffer they read (and
/// hold, to stand for a standard error that blocks).
#[derive(Debug, Clone)]
enum Out {
    // (Not made in the library's own tests.)
    #[cfg_attr(test, allow(dead_code))]
    Stderr,
    #[cfg(test)]
    Buffer(Arc<std::sync::Mutex<Vec<u8>>>),
}

impl LostLines {
    pub(super) fn new() -> LostLines {
        #[cfg(not(test))]
        let out = Out::Stderr;
        #[cfg(test)]
        let out = Out::Buffer(Arc::default());
        LostLines {
            queue: OnceLock::new(),
            pending: Arc::new(AtomicUsize::new(0)),
            unlogged: AtomicU64::new(0),
            out,
        }
    }

    /// Each of `lines` (a record's JSON line), after `trunkgate: CDR not written{why}: `.
    /// Never waits: a line that finds the queue full is counted and dropped.
    pub(super) fn write<'a>(&self, why: &str, lines: impl IntoIterator<Item = &'a str>) {
        self.put(why, lines, false);
    }

    /// As [`LostLines::write`], waiting for room: for the writer's own thread at exit, which
    /// may wait (a stop goes on without it after a few seconds).
    pub(super) fn write_waiting<'a>(&self, why: &str, lines: impl IntoIterator<Item = &'a str>) {
        self.put(why, lines, true);
    }

    fn put<'a>(&self, why: &str, lines: impl IntoIterator<Item = &'a str>, wait: bool) {
        for line in lines {
            let text = format!("trunkgate: CDR not written{why}: {}\n", line.trim_end());
            self.pending.fetch_add(1, Ordering::AcqRel);
            let sent = self.queue().is_some_and(|tx| match wait {
                true => tx.send(text).is_ok(),
                false => tx.try_send(text).is_ok(),
            });
            if !sent {
                self.pending.fetch_sub(1, Ordering::AcqRel);
                self.unlogged.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(super::CDR_UNLOGGED).increment(1);
            }
        }
    }

    /// Wait until every queued line is written, at most `limit`; whether they all were.
    pub(super) fn drain_within(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while self.pending.load(Ordering::Acquire) > 0 {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Lines that could not be queued.
    pub(super) fn unlogged(&self) -> u64 {
        self.unlogged.load(Ordering::Relaxed)
    }

    fn queue(&self) -> Option<&SyncSender<String>> {
        self.queue
            .get_or_init(|| {
                let (tx, rx) = sync_channel::<String>(QUEUE);
                let (out, pending) = (self.out.clone(), Arc::clone(&self.pending));
                std::thread::Builder::new()
                    .name("cdr-lost".into())
                    .spawn(move || {
                        for text in rx {
                            out.say(&text);
                            pending.fetch_sub(1, Ordering::AcqRel);
                        }
                    })
                    .ok()
                    .map(|_| tx)
            })
            .as_ref()
    }

    /// What was written so far, once what is queued is out.
    #[cfg(test)]
    pub(super) fn written(&self) -> String {
        self.drain_within(Duration::from_secs(5));
        match &self.out {
            Out::Buffer(b) => b
                .lock()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            Out::Stderr => String::new(),
        }
    }

    /// Standard error's stand-in, to hold (a standard error that blocks).
    #[cfg(test)]
    pub(super) fn buffer(&self) -> Option<Arc<std::sync::Mutex<Vec<u8>>>> {
        match &self.out {
            Out::Buffer(b) => Some(Arc::clone(b)),
            Out::Stderr => None,
        }
    }
}

impl Out {
    fn say(&self, text: &str) {
        match self {
            Out::Stderr => {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
            #[cfg(test)]
            Out::Buffer(b) => {
                if let Ok(mut b) = b.lock() {
                    b.extend_from_slice(text.as_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standard error that takes nothing (a journal on a stuck disk, a full pipe) never
    /// holds up the thread that lost a record: what finds the queue full is counted, and
    /// what was queued is written once standard error moves again. Before, the signalling
    /// thread wrote each line itself and stopped with standard error.
    #[test]
    fn a_standard_error_that_blocks_never_holds_up_the_caller() {
        let lost = LostLines::new();
        let buffer = lost.buffer().expect("a test buffer");
        let held = buffer.lock().unwrap();
        let lines: Vec<String> = (0..QUEUE + 10).map(|i| format!("{{\"n\":{i}}}")).collect();
        lost.write(" (full)", lines.iter().map(String::as_str));
        // The thread took at most one line and waits on standard error with it.
        let unlogged = lost.unlogged();
        assert!((9..=10).contains(&unlogged), "{unlogged}");
        assert!(!lost.drain_within(Duration::from_millis(50)), "still stuck");
        drop(held);
        assert!(lost.drain_within(Duration::from_secs(5)));
        let written = lost.written();
        assert_eq!(
            written.lines().count() as u64,
            (QUEUE + 10) as u64 - unlogged
        );
        assert!(
            written.starts_with("trunkgate: CDR not written (full): {\"n\":0}\n"),
            "in order, whole: {}",
            &written[..80]
        );
    }
}
