//! The reload-result file: one line per answered reload, `<sequence>[/<started_ms>] <result>
//! <detail>`, written by the gateway and read by `trunkgate reload`.

use std::io;
use std::path::{Path, PathBuf};

/// Write `contents` to `path` through a temporary file and a rename. The temporary file is
/// always a new one: whoever may write the folder (a collector that moves rotated CDR
/// files) must not have a reload truncate the file a link there names, symbolic or hard
/// (a hard link is no link to `O_NOFOLLOW`). What is at its name is unlinked first (a name
/// gone, never a file's contents); one put back before the open fails it.
pub(crate) fn write_atomically(path: &Path, contents: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    #[cfg(test)]
    stalled::wait(path);
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(contents.as_bytes()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)
}

/// A disk that stalls, for tests: a write to a path held here waits until it is let go.
#[cfg(test)]
pub(super) mod stalled {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    fn held() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
        HELD.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn hold(path: &Path) {
        held().push(path.to_path_buf());
    }

    pub fn release(path: &Path) {
        held().retain(|p| p != path);
    }

    pub(super) fn wait(path: &Path) {
        while held().iter().any(|p| p == path) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// The result file's length: each result is written padded to it, so that when a new file
/// cannot be written (a full disk), the result can still be written over the old one in
/// place, in blocks the file already has.
pub(super) const RESULT_ROOM: usize = 4096;

/// `line` (ending in a newline) cut to fit (and then ending in `…`) and padded with spaces
/// to [`RESULT_ROOM`]; the reader trims the padding.
pub(super) fn padded(line: &str) -> String {
    let line = line.trim_end_matches('\n');
    let mut out = if line.len() < RESULT_ROOM {
        line.to_string()
    } else {
        let mut end = RESULT_ROOM - 1 - '…'.len_utf8();
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &line[..end])
    };
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', RESULT_ROOM - out.len()));
    out
}

/// Write the result line: aside and renamed; failing that, over the old one in place.
pub(super) fn write_result(path: &Path, line: &str) -> io::Result<()> {
    let text = padded(line);
    write_atomically(path, &text).or_else(|first| {
        use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
        let f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        // Ours alone: a second name (a hard link to the CDR file) would have it cut.
        let meta = f.metadata()?;
        if !meta.file_type().is_file() || meta.nlink() != 1 {
            return Err(first);
        }
        if meta.len() < text.len() as u64 {
            return Err(first);
        }
        f.write_all_at(text.as_bytes(), 0)?;
        // An older, longer file's tail would read as part of the detail.
        f.set_len(text.len() as u64)?;
        tracing::warn!(file = %path.display(), error = %first, "the reload result was written over the last one in place");
        Ok(())
    })
}

/// One line of the result file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadResult {
    pub sequence: u64,
    /// When the reload's loading began ([`boot_ms`]); `None` from a gateway of before it
    /// was written.
    pub started_ms: Option<u64>,
    pub result: String,
    pub detail: String,
}

impl ReloadResult {
    /// `<sequence>[/<started_ms>] <result> <detail>`.
    pub(super) fn line(&self) -> String {
        let started = self.started_ms.map(|t| format!("/{t}")).unwrap_or_default();
        format!(
            "{}{started} {} {}\n",
            self.sequence, self.result, self.detail
        )
    }

    /// Whether this answers a SIGHUP sent at `sent_ms` when the file said `before`: a new
    /// result of a load begun since. Another's SIGHUP loading as it came, or an answer its
    /// client gave up waiting for, is not this one's answer.
    pub(super) fn answers(&self, before: u64, sent_ms: u64) -> bool {
        self.sequence != before && self.started_ms.is_none_or(|t| t >= sent_ms)
    }
}

/// Now on the host's boot clock, in ms: one clock for the gateway and `trunkgate reload`
/// (every process of the host reads the same), and never set back as the wall clock can
/// be (a step back between the signal and the load left the client without its answer).
pub fn boot_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).map_or(0, |t| {
        (t.tv_sec() as u64) * 1000 + (t.tv_nsec() as u64) / 1_000_000
    })
}

pub(super) fn read_result(path: &Path) -> Option<ReloadResult> {
    // A regular file of its size at most: a FIFO or a device put there must not hold up a
    // start or a `trunkgate reload`.
    let bytes = crate::config::read::read_at_most(path, 2 * RESULT_ROOM as u64).ok()??;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.trim_end().splitn(3, ' ');
    let first = parts.next()?;
    let (sequence, started_ms) = match first.split_once('/') {
        Some((s, t)) => (s.parse().ok()?, Some(t.parse().ok()?)),
        None => (first.parse().ok()?, None),
    };
    Some(ReloadResult {
        sequence,
        started_ms,
        result: parts.next()?.to_string(),
        detail: parts.next().unwrap_or("").to_string(),
    })
}
