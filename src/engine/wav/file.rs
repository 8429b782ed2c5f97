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

/// A recording's file as hound writes it, shared with the writer thread's look at whether
/// it still has a name (one descriptor for both).
pub(super) struct Shared(pub(super) std::sync::Arc<File>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

impl std::io::Seek for Shared {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        (&*self.0).seek(pos)
    }
}

/// What writes a recording.
pub(super) type Writer = hound::WavWriter<BufWriter<Shared>>;

/// Whether the open file `f` has no name left: removed (its folder deleted to free a full
/// disk), not moved (a job that files recordings away while their calls are up).
pub(super) fn unlinked(f: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    f.metadata().is_ok_and(|m| m.nlink() == 0)
}

/// Bytes the file system holding `dir` still has for an unprivileged writer (None: it
/// cannot be asked).
pub(super) fn free_bytes(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Frames into the file: both channels (stereo) or their sum (mono), through hound's 16-bit
/// sample writer, which fills one buffer per batch (per-sample `write_sample` calls were the
/// writer thread's largest item in a profile at 1,000 recorded calls).
pub(super) fn write_frames(w: &mut Writer, stereo: bool, frames: &[[i16; 2]]) -> hound::Result<()> {
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

/// A new recording's file for `path` (or a free name beside it: [`free_name`]), its
/// header written through to the file: a call whose recorder never decodes audio (a codec
/// other than G.711) would otherwise hold its header in the buffer until its end, where a
/// full disk or a quota refuses it and the file is removed, while the CDR, written at the
/// call's end before the file is closed, names it. Refused now, the call is told at once
/// (`recording_not_started`) and no file is left.
pub(super) fn create(
    path: &Path,
    spec: hound::WavSpec,
) -> hound::Result<(Writer, PathBuf, std::sync::Arc<File>)> {
    let Some(made) = free_name(path) else {
        return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists).into());
    };
    let file = std::sync::Arc::new(private_file(&made)?);
    let shared = BufWriter::new(Shared(file.clone()));
    let written = hound::WavWriter::new(shared, spec).and_then(|mut w| w.flush().map(|()| w));
    match written {
        Ok(w) => Ok((w, made, file)),
        Err(e) => {
            if holds_no_header(&made) {
                let _ = std::fs::remove_file(&made);
            }
            Err(e)
        }
    }
}

/// What the writer thread last learnt of the recordings' file system: its free space, and
/// whether new recordings' files could be made.
#[derive(Debug, Default)]
pub(super) struct Space {
    /// Short of `[recording] min_free_mb` at the last look (said once while it lasts).
    low: bool,
    /// The last recording could not be made (said once, until one is: a file system
    /// remounted read-only must not log an error for every call).
    refusing: bool,
    /// When it was last asked: at most once a second for every recording (a thousand
    /// recordings each asking every 5 s would ask 200 times a second, slow on NFS).
    asked: Option<std::time::Instant>,
}

/// How long a look at the free space stands.
const SPACE_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether the file system of folder `dir` has less free than `min_free` bytes (`[recording]
/// min_free_mb`): recordings must not fill the disk the CDRs are written to (a CDR file that
/// cannot be written refuses every new call). Said at warn once while it lasts. (The
/// recordings' folders are one file system's: a look stands for all of them a second.)
pub(super) fn short_of_space(
    min_free: &std::sync::atomic::AtomicU64,
    space: &mut Space,
    dir: &Path,
) -> bool {
    let floor = min_free.load(std::sync::atomic::Ordering::Relaxed);
    if floor == 0 {
        return false;
    }
    let now = std::time::Instant::now();
    if space
        .asked
        .is_some_and(|t| now.duration_since(t) < SPACE_FRESH)
    {
        return space.low;
    }
    space.asked = Some(now);
    let Some(free) = free_bytes(dir) else {
        return false;
    };
    let short = free < floor;
    let low = &mut space.low;
    if short && !*low {
        tracing::warn!(
            dir = %dir.display(),
            free_mb = free >> 20,
            min_free_mb = floor >> 20,
            "recordings stop: their file system is short of [recording] min_free_mb; calls go on unrecorded until space is freed"
        );
    } else if !short && *low {
        tracing::info!(dir = %dir.display(), "recordings start again: their file system has [recording] min_free_mb free");
    }
    *low = short;
    short
}

impl Space {
    /// A recording for `path` could not be made (`what`: its folder or its file).
    pub(super) fn refused(&mut self, path: &Path, what: &str, e: &dyn std::fmt::Display) {
        if !std::mem::replace(&mut self.refusing, true) {
            tracing::error!(path = %path.display(), error = %e, "cannot create a recording's {what}: the call goes on unrecorded, and so do the next until one can be made (said once; trunkgate_recording_failures_total{{stage=\"open\"}} counts them)");
        }
    }

    /// A recording was made: the next refusal is said again.
    pub(super) fn made(&mut self) {
        if std::mem::replace(&mut self.refusing, false) {
            tracing::info!("recordings can be made again");
        }
    }
}

/// `[recording] dir`, tried when a profile of `cfg` records: an error saying why
/// recordings could not be written there.
pub(crate) fn check_recording_dir(cfg: &crate::config::Config) -> Result<(), String> {
    if !cfg.records() {
        return Ok(());
    }
    probe_dir(&cfg.recording_dir).map_err(|e| {
        format!(
            "[recording] dir {}: recordings cannot be written there ({e}); set it to a folder \
             the gateway may write, or turn `record` off",
            cfg.recording_dir.display()
        )
    })
}
