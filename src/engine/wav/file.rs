//! Where a recording goes on disk, and how its file is opened, written and mended.

use std::fs::File;
use std::io::BufWriter;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::repair;

/// Recordings of one name (same call, same millisecond) side by side at most.
const MAX_SAME_NAME: u32 = 16;

/// Where a new recording for `path` goes: `path`, or beside it (`-1`, `-2`, … before the
/// extension) when a file of that name exists, so that two calls with the same Call-ID in
/// the same millisecond do not truncate each other's recording. Only this thread creates
/// recordings, so the name is still free when it is opened. None when every name is taken.
pub(super) fn free_name(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    // Taken: anything there, a dangling symlink or a FIFO included (a recording must not
    // follow one, nor block on one); free: nothing, or a character device (`/dev/full`
    // in the tests of a full disk).
    let free = |p: &Path| match std::fs::symlink_metadata(p) {
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        Ok(m) => m.file_type().is_char_device(),
    };
    if free(path) {
        return Some(path.to_path_buf());
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path.extension().unwrap_or_default().to_string_lossy();
    (1..=MAX_SAME_NAME)
        .map(|n| path.with_file_name(format!("{stem}-{n}.{ext}")))
        .find(|p| free(p))
}

/// A recording file, created 0640, anew: never through a symbolic link, nor over a file
/// put at its name since `free_name` looked (a hard link to another file would be
/// truncated and written through). A character device there (`/dev/full` in the tests of a
/// full disk, which `free_name` lets through) is opened as it is.
pub(super) fn private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::FileTypeExt;
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match made {
        Err(e)
            if e.kind() == std::io::ErrorKind::AlreadyExists
                && std::fs::symlink_metadata(path)
                    .is_ok_and(|m| m.file_type().is_char_device()) =>
        {
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
        }
        r => r,
    }
}

/// A recording folder (and those above it), made 0750 (less by the umask) when missing.
pub(super) fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
}

/// Whether recordings can be written under `dir`: the folder made (0750) as a call's would
/// be, and a file created and removed in it. Tried at start-up and each reload when a
/// profile records, so a folder the service may not write (a read-only `/etc` under
/// systemd's `ProtectSystem=strict`) is said then, not by every call afterwards.
pub(crate) fn probe_dir(dir: &Path) -> std::io::Result<()> {
    private_dir(dir)?;
    let probe = dir.join(format!(".trunkgate-probe-{}", std::process::id()));
    // One a process of this pid left (killed mid-probe) is not in the way.
    let _ = std::fs::remove_file(&probe);
    private_file(&probe)?;
    std::fs::remove_file(&probe)
}

/// Whether `path` is a regular file shorter than a WAV header: a recording whose header
/// never reached the disk. (Only a regular file: a device given as the path, as tests give
/// `/dev/full`, is never judged, nor removed.)
pub(super) fn holds_no_header(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file() && m.len() < 44)
}

/// Set the header of a recording whose finalize failed to what the file holds.
pub(super) fn mend(path: &Path) {
    if let Err(e) = repair::fix_sizes(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot set the recording's header to what the file holds");
    }
}

/// Frames into the file: both channels (stereo) or their sum (mono), through hound's 16-bit
/// sample writer, which fills one buffer per batch (per-sample `write_sample` calls were the
/// writer thread's largest item in a profile at 1,000 recorded calls).
pub(super) fn write_frames(
    w: &mut hound::WavWriter<BufWriter<File>>,
    stereo: bool,
    frames: &[[i16; 2]],
) -> hound::Result<()> {
    let per_frame = if stereo { 2 } else { 1 };
    let Ok(n) = u32::try_from(frames.len() * per_frame) else {
        return Err(hound::Error::TooWide);
    };
    let mut out = w.get_i16_writer(n);
    for &[l, r] in frames {
        if stereo {
            out.write_sample(l);
            out.write_sample(r);
        } else {
            out.write_sample((i32::from(l) + i32::from(r)).clamp(-32768, 32767) as i16);
        }
    }
    out.flush()
}
