//! Reading the operator's files: `gateway.toml`, the profiles, a password file, the
//! call-back keys. A file that would block the reload's loading thread for good (a FIFO, a
//! device such as `/dev/zero`, a folder) or fill memory is refused with a clear error
//! rather than read.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The largest configuration file read (a profile is a few KB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// A configuration file is read once it has gone this long unchanged, and read again if it
/// changed while it was read: one being written in place (`cat new.toml > itsp.toml`, as in
/// a container, or an editor that saves in place) is read whole, never its first half (which
/// may well be valid, with a section missing: its limits, its registration, its
/// credentials).
const SETTLED: Duration = Duration::from_millis(100);
/// How long a file is waited for to settle before the read is refused: a few of them fit in
/// a reload's 5 s, so that one that does not settle is named rather than the reload timing
/// out.
const SETTLE_WAIT: Duration = Duration::from_secs(1);

/// Open `path` for reading if it is a regular file (after symlinks), without blocking on
/// one that is not; the error says why in words an operator can act on.
fn open_regular(path: &Path) -> Result<std::fs::File, String> {
    // Asked first, so that a device is never opened (opening one may act: a terminal, a
    // watchdog); then opened without blocking (a FIFO put there meanwhile would wait for a
    // writer) or taking a terminal, and asked again.
    let before = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !before.is_file() {
        return Err("cannot read: not a regular file".into());
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("cannot read: not a regular file".into());
    }
    Ok(f)
}

/// The UTF-8 text of a regular file of at most [`MAX_FILE_BYTES`], once it is settled.
pub(super) fn read_text(path: &Path) -> Result<String, String> {
    let Some(buf) = read_settled(path, MAX_FILE_BYTES)? else {
        return Err(format!(
            "cannot read: larger than {} KiB",
            MAX_FILE_BYTES >> 10
        ));
    };
    String::from_utf8(buf).map_err(|_| "cannot read: not UTF-8 text".into())
}

/// Whether `path` names nothing at all (not even a dangling link): a value of a `*_file` key
/// that may be a secret written in the wrong key, which an error then does not quote.
pub(super) fn names_nothing(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_err()
}

/// The bytes of a regular file, or `None` when it holds more than `max`.
pub(crate) fn read_at_most(path: &Path, max: u64) -> Result<Option<Vec<u8>>, String> {
    let f = open_regular(path)?;
    read_open(f, max).map(|(buf, _)| buf)
}

/// [`read_at_most`] of an operator's file, once it has gone [`SETTLED`] unchanged and did
/// not change while read; refused after [`SETTLE_WAIT`] of changes.
pub(super) fn read_settled(path: &Path, max: u64) -> Result<Option<Vec<u8>>, String> {
    read_settled_with(path, max, &SystemTime::now, &std::thread::sleep)
}

/// [`read_settled`] with its clock and its wait given (tests).
fn read_settled_with(
    path: &Path,
    max: u64,
    now: &dyn Fn() -> SystemTime,
    sleep: &dyn Fn(Duration),
) -> Result<Option<Vec<u8>>, String> {
    let mut waited = Duration::ZERO;
    loop {
        let f = open_regular(path)?;
        let before = stamp(&f)?;
        // A modification time ahead of the clock says nothing of when it was written (a
        // clock set back): taken as settled.
        let young = now()
            .duration_since(before.1)
            .is_ok_and(|age| age < SETTLED);
        if !young {
            let (buf, f) = read_open(f, max)?;
            if stamp(&f)? == before {
                return Ok(buf);
            }
        }
        if waited >= SETTLE_WAIT {
            return Err(format!(
                "cannot read: it is being written (still changing after {} s)",
                SETTLE_WAIT.as_secs()
            ));
        }
        let step = SETTLED / 4;
        sleep(step);
        waited += step;
    }
}

/// What tells a file changed: its size and modification time.
fn stamp(f: &std::fs::File) -> Result<(u64, SystemTime), String> {
    let m = f.metadata().map_err(|e| format!("cannot read: {e}"))?;
    let modified = m.modified().map_err(|e| format!("cannot read: {e}"))?;
    Ok((m.len(), modified))
}

/// Up to `max` bytes of `f` (`None` when it holds more), and the file back.
fn read_open(f: std::fs::File, max: u64) -> Result<(Option<Vec<u8>>, std::fs::File), String> {
    let mut buf = Vec::new();
    let mut limited = f.take(max.saturating_add(1));
    limited
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok((
        (buf.len() as u64 <= max).then_some(buf),
        limited.into_inner(),
    ))
}

/// Whether an operator's path names something: not empty (it would be gateway.toml's own
/// folder, the file then failing to open at start, or gateway.toml read as a profile),
/// and, for a file, not a folder (`var/`).
pub(super) fn names_a_file(path: &str) -> Result<(), &'static str> {
    names_a_folder(path)?;
    if path.ends_with('/')
        || path.ends_with("/.")
        || path.ends_with("/..")
        || path == "."
        || path == ".."
    {
        return Err("names a folder: name the file (e.g. \"var/cdr.jsonl\")");
    }
    Ok(())
}

/// [`names_a_file`] for a folder: not empty.
pub(super) fn names_a_folder(path: &str) -> Result<(), &'static str> {
    if path.trim().is_empty() {
        return Err("is empty: name a path (relative to gateway.toml's folder, or absolute)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO, a device and a folder are refused at once (a reload read on the signalling
    /// thread: a FIFO blocked it for ever, `/dev/zero` filled memory); a file too large or
    /// not UTF-8 is refused with its reason.
    #[test]
    fn only_regular_files_of_reasonable_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.toml");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a plain system call on a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let t = std::time::Instant::now();
        assert!(read_text(&fifo).unwrap_err().contains("not a regular file"));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        let zero = dir.path().join("zero.toml");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(read_text(&zero).unwrap_err().contains("not a regular file"));
        assert!(
            read_text(dir.path())
                .unwrap_err()
                .contains("not a regular file")
        );
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(read_text(&big).unwrap_err().contains("larger than"));
        let latin = dir.path().join("latin.toml");
        std::fs::write(&latin, b"name = \"caf\xe9\"\n").unwrap();
        assert!(read_text(&latin).unwrap_err().contains("not UTF-8"));
        let ok = dir.path().join("ok.toml");
        std::fs::write(&ok, "name = \"ok\"\n").unwrap();
        assert_eq!(read_text(&ok).unwrap(), "name = \"ok\"\n");
    }

    /// A file read while it is being written in place is read once whole: a first half
    /// written just now is waited for (here its second half is written during the wait), and
    /// one that keeps changing is refused after the wait rather than read half. Before, the
    /// first half was read, and being valid TOML (a profile without its `[limits]`), applied.
    #[test]
    fn a_file_being_written_is_read_whole_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("itsp.toml");
        std::fs::write(&path, "name = \"itsp\"\n").unwrap();
        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        // The clock reads just after the first half's write until the second half is in.
        let done = std::cell::Cell::new(false);
        let now = || {
            if done.get() {
                written + SETTLED * 2
            } else {
                written + SETTLED / 10
            }
        };
        let finish = |_: Duration| {
            if !done.get() {
                use std::io::Write as _;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                f.write_all(b"[limits]\nmax_calls = 10\n").unwrap();
                done.set(true);
            }
        };
        let got = read_settled_with(&path, MAX_FILE_BYTES, &now, &finish).unwrap();
        assert_eq!(
            String::from_utf8(got.unwrap()).unwrap(),
            "name = \"itsp\"\n[limits]\nmax_calls = 10\n"
        );
        // Never settling: refused, after waiting no longer than SETTLE_WAIT.
        let slept = std::cell::Cell::new(Duration::ZERO);
        let young = || std::fs::metadata(&path).unwrap().modified().unwrap() + SETTLED / 10;
        let count = |d: Duration| slept.set(slept.get() + d);
        std::fs::write(&path, "name = \"itsp\"\n").unwrap();
        let err = read_settled_with(&path, MAX_FILE_BYTES, &young, &count).unwrap_err();
        assert!(err.contains("being written"), "{err}");
        assert!(slept.get() >= SETTLE_WAIT && slept.get() <= SETTLE_WAIT + SETTLED);
        // Settled (or stamped ahead of the clock): read at once.
        let old = || written + SETTLED * 2;
        let early = || written - Duration::from_secs(60);
        let never = |_: Duration| panic!("no wait");
        for clock in [&old as &dyn Fn() -> SystemTime, &early] {
            let got = read_settled_with(&path, MAX_FILE_BYTES, clock, &never).unwrap();
            assert_eq!(got.unwrap(), b"name = \"itsp\"\n");
        }
    }
}
