//! `<CDR file>.unwritten`: where the records the CDR file did not take by exit go, in room
//! reserved at start, so that a full disk still takes them.

use std::path::{Path, PathBuf};

use super::fs::{CdrFile, CdrFs};

/// Room kept beside the CDR file for the records it does not take by exit: 16 MiB, some
/// 25,000 records, more than the queue holds (twice the default `max_pending`).
const SPILL_RESERVE: u64 = 16 << 20;

/// `<CDR file>.unwritten`: where the records the CDR file did not take by exit go, in room
/// reserved at start (so a full disk still takes them), rather than only to a log that may
/// drop lines under such a burst or sit on the same full disk.
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

    /// Open (create) it and reserve its room; `None`, said, when that cannot be done.
    pub(super) fn open(fs: &mut dyn CdrFs, cdr: &Path) -> Option<Spill> {
        let path = Self::path_of(cdr);
        let mut file = match fs.open(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "no file for CDRs the CDR file may not take at exit: they would go to the log only");
                return None;
            }
        };
        match file.size() {
            Ok(n) if n > 0 => tracing::warn!(
                path = %path.display(),
                bytes = n,
                "CDRs an earlier run could not write are in this file: bill them, then empty it"
            ),
            _ => {}
        }
        if let Err(e) = file.reserve(SPILL_RESERVE) {
            tracing::warn!(path = %path.display(), error = %e, "cannot reserve room for CDRs the CDR file may not take at exit");
        }
        Some(Spill { path, file })
    }

    /// Append `lines` and sync them; whether all of them are there.
    pub(super) fn write(&mut self, lines: &[String]) -> bool {
        let mut ok = true;
        for line in lines {
            let mut rest = line.as_bytes();
            while ok && !rest.is_empty() {
                match self.file.write(rest) {
                    Ok(0) | Err(_) => ok = false,
                    Ok(n) => rest = &rest[n..],
                }
            }
        }
        ok && self.file.sync().is_ok()
    }
}
