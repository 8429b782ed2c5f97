//! The CDR writer: one thread owns the file. Records are written as whole lines within 100 ms
//! of the call's release and the file is fsync'd at most half a second later, so a crash (even
//! of the machine) loses no CDR of a call that ended more than a second before.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::CdrRecord;

const SYNC_EVERY: Duration = Duration::from_millis(500);

/// Handle to the writer thread. Dropping every sender and calling [`CdrWriter::close`]
/// flushes and syncs what is left.
#[derive(Debug)]
pub struct CdrWriter {
    tx: Option<Sender<CdrRecord>>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl CdrWriter {
    /// Open (create, append) the CDR file, creating its folder.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("cdr-writer".into())
            .spawn(move || run(file, rx))?;
        Ok(CdrWriter {
            tx: Some(tx),
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue one record. Never blocks the caller.
    pub fn write(&self, rec: CdrRecord) {
        if let Some(tx) = &self.tx
            && tx.send(rec).is_err()
        {
            tracing::error!("CDR writer is gone; a CDR was lost");
        }
    }

    /// Flush, sync and stop the thread.
    pub fn close(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for CdrWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// How often the writer wakes to write what has queued. The calls' side never waits for the
/// writer and never has to wake it (a send to a parked receiver costs a futex call per CDR).
const WRITE_EVERY: Duration = Duration::from_millis(100);

fn run(mut file: File, rx: Receiver<CdrRecord>) {
    let mut last_sync = Instant::now();
    let mut dirty = false;
    let mut buf = String::new();
    loop {
        std::thread::sleep(WRITE_EVERY);
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(rec) => match serde_json::to_string(&rec) {
                    Ok(line) => {
                        buf.push_str(&line);
                        buf.push('\n');
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode CDR"),
                },
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if !buf.is_empty() {
            // Whole lines in one append: a reader never sees half a record.
            if let Err(e) = file.write_all(buf.as_bytes()).and_then(|_| file.flush()) {
                tracing::error!(error = %e, "cannot write CDRs");
            }
            buf.clear();
            dirty = true;
        }
        if dirty && (closed || last_sync.elapsed() >= SYNC_EVERY) {
            if let Err(e) = file.sync_data() {
                tracing::error!(error = %e, "cannot sync CDR file");
            }
            dirty = false;
            last_sync = Instant::now();
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdr::{CallTag, CauseSource};

    fn rec(id: &str) -> CdrRecord {
        CdrRecord {
            call_id: id.into(),
            egress_call_id: None,
            start: "2026-01-01T00:00:00.000Z".into(),
            answer: None,
            end: "2026-01-01T00:00:01.000Z".into(),
            duration_ms: 0,
            from: "100".into(),
            to: "200".into(),
            ingress_peer: "pbx".into(),
            egress_peer: Some("carrier-a".into()),
            status: 486,
            call_tag: CallTag::CalleeReject,
            cause: 17,
            cause_source: CauseSource::Rfc3398,
            recording: None,
            events: vec![],
            reason_sip: None,
        }
    }

    #[test]
    fn writes_one_json_line_per_record_visible_before_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cdr.jsonl");
        let mut w = CdrWriter::open(&path).unwrap();
        w.write(rec("a"));
        w.write(rec("b"));
        // Flushed per line: readable while the writer still runs.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() == 2 || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["call_tag"], "callee_reject");
        assert_eq!(lines[0]["cause_source"], "rfc3398");
        assert_eq!(lines[1]["call_id"], "b");
        assert!(lines[0].get("events").is_none());
        w.close();
    }
}
