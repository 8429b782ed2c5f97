//! `<CDR file>.unwritten`: where the records the CDR file did not take by exit go, in room
//! reserved at start, so that a full disk still takes them, rather than only to a log that
//! may drop lines under such a burst or sit on the same full disk.

use std::path::{Path, PathBuf};

use super::fs::{CdrFile, CdrFs};

/// Room reserved per record the queue may hold at exit (twice `max_pending`): more than a
/// record's line.
const RESERVE_PER_RECORD: u64 = 768;
/// The room reserved at most: past it, the file takes what the disk still has.
const MAX_RESERVE: u64 = 64 << 20;

pub(super) struct Spill {
    pub(super) path: PathBuf,
    file: Box<dyn CdrFile>,
}

impl Spill {
    fn path_of(cdr: &Path) -> PathBuf {
        let mut p = cdr.as_os_str().to_owned();
        p.push(".unwritten");
        PathBuf::from(p)
    }

    /// Open (create) it and reserve room past its end for twice `max_pending` records;
    /// `None`, said, when it cannot be opened.
    pub(super) fn open(fs: &mut dyn CdrFs, cdr: &Path, max_pending: usize) -> Option<Spill> {
        let path = Self::path_of(cdr);
        let mut file = match fs.open(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "no file for CDRs the CDR file may not take at exit: they would go to the log only");
                return None;
            }
        };
        if let Ok(n) = file.size()
            && n > 0
        {
            tracing::warn!(
                path = %path.display(),
                bytes = n,
                "CDRs an earlier run could not write are in this file: bill them, then move \
                 the file away while the gateway is stopped"
            );
        }
        let room = (max_pending as u64)
            .saturating_mul(2 * RESERVE_PER_RECORD)
            .min(MAX_RESERVE);
        if let Err(e) = file.reserve(room) {
            tracing::warn!(path = %path.display(), error = %e, "cannot reserve room for CDRs the CDR file may not take at exit");
        }
        Some(Spill { path, file })
    }

    /// Append `lines` (each ending in a newline) and sync them: how many of them, from the
    /// first, are whole in the file. A line cut short (the disk full after all) is cut off
    /// again, so the file holds whole lines only and the caller logs the rest. A file moved
    /// or removed meanwhile is made again (without the room kept: it was the old file's).
    pub(super) fn write(&mut self, fs: &mut dyn CdrFs, lines: &[String]) -> usize {
        let here = fs.id_of(&self.path).ok();
        if here != Some(self.file.id()) {
            match fs.open(&self.path) {
                Ok(f) => self.file = f,
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot make the file for CDRs the CDR file did not take");
                    return 0;
                }
            }
        }
        let Ok(mut end) = self.file.size() else {
            return 0;
        };
        // A line an earlier run left half-written is ended first: the next one is whole.
        if end > 0 && self.file.last_byte().ok().flatten() != Some(b'\n') {
            if !self.write_all(b"\n") {
                return 0;
            }
            end += 1;
        }
        let mut whole = 0;
        for line in lines {
            if !self.write_all(line.as_bytes()) {
                let _ = self.file.truncate(end);
                break;
            }
            end += line.len() as u64;
            whole += 1;
        }
        if self.file.sync().is_err() {
            // Maybe not on the disk: the caller says them all in the log as well.
            return 0;
        }
        whole
    }

    fn write_all(&mut self, mut rest: &[u8]) -> bool {
        while !rest.is_empty() {
            match self.file.write(rest) {
                Ok(0) | Err(_) => return false,
                Ok(n) => rest = &rest[n..],
            }
        }
        true
    }
}
