//! Reading the operator's files: `gateway.toml`, the profiles, a password file, the
//! call-back keys. A file that would block the reload's loading thread for good (a FIFO, a
//! device such as `/dev/zero`, a folder) or fill memory is refused with a clear error
//! rather than read.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest configuration file read (a profile is a few KB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

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

/// The UTF-8 text of a regular file of at most [`MAX_FILE_BYTES`].
pub(super) fn read_text(path: &Path) -> Result<String, String> {
    let Some(buf) = read_at_most(path, MAX_FILE_BYTES)? else {
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
    let mut buf = Vec::new();
    f.take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok((buf.len() as u64 <= max).then_some(buf))
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
}
