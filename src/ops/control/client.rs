//! `trunkgate reload`: find the running gateway by its pid file, check it reads the
//! file that was checked, signal it, and wait for its answer in the result file.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{
    PID_FILE_ROOM, ReloadResult, another_gateway, boot_ms, exe_of, first_line_pid, held,
    legacy_files, pid_file, read_result, result_file,
};
use crate::config::Config;

/// Why `trunkgate reload` could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(
        "no running gateway: cannot read {path}: {source} (the pid file is beside the CDR \
         file; if [cdr] path changed since the gateway started, it is beside the old one, \
         and that change needs a restart)"
    )]
    NoPidFile { path: PathBuf, source: io::Error },
    #[error("{path} does not hold a process id")]
    BadPidFile { path: PathBuf },
    #[error(
        "cannot read {path}: {source}: run `trunkgate reload` as the gateway's user or as \
         root (under systemd: `systemctl reload trunkgate`)"
    )]
    NoPermission { path: PathBuf, source: io::Error },
    #[error("process {pid} (from {path}) is not a running trunkgate")]
    NotRunning { pid: i32, path: PathBuf },
    #[error(
        "process {pid} (from {path}) may be the gateway, but what it runs cannot be read \
         ({source}): run `trunkgate reload` as the gateway's user or as root (under systemd: \
         `systemctl reload trunkgate`)"
    )]
    CannotTell {
        pid: i32,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "the running gateway (pid {pid}) reloads {running}, not {given}: put the change \
         there (or run `trunkgate reload -c {running}`); not reloaded",
        running = running.display(),
        given = given.display()
    )]
    OtherConfig {
        pid: i32,
        running: PathBuf,
        given: PathBuf,
    },
    #[error("cannot signal process {pid}: {source}")]
    Signal { pid: i32, source: io::Error },
    #[error("process {pid} did not answer the reload within {waited:?}")]
    NoAnswer { pid: i32, waited: Duration },
}

/// Why the pid file at `path` could not be read: none there (no gateway), or not ours to
/// read (the gateway may well run: said so, not "no running gateway").
pub(super) fn pid_file_error(path: &Path, source: io::Error) -> ReloadError {
    let path = path.to_path_buf();
    if source.kind() == io::ErrorKind::PermissionDenied {
        ReloadError::NoPermission { path, source }
    } else {
        ReloadError::NoPidFile { path, source }
    }
}

/// Signal the gateway run with `cfg` to reload the file it was started with, `config` (the
/// file the caller checked: refused when the gateway reads another), and wait up to `wait`
/// for its answer.
pub fn reload(cfg: &Config, config: &Path, wait: Duration) -> Result<ReloadResult, ReloadError> {
    let (path, results, legacy) = match legacy_files(cfg) {
        Some((p, r)) if !pid_file(cfg).exists() => (p, r, true),
        _ => (pid_file(cfg), result_file(cfg), false),
    };
    // Not blocking on a FIFO put there, nor reading a device's endless bytes.
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| pid_file_error(&path, e))?
    };
    if !file.metadata().is_ok_and(|m| m.file_type().is_file()) {
        return Err(ReloadError::BadPidFile { path: path.clone() });
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(&file, PID_FILE_ROOM), &mut text)
        .map_err(|e| pid_file_error(&path, e))?;
    let pid =
        first_line_pid(&text).ok_or_else(|| ReloadError::BadPidFile { path: path.clone() })?;
    // A stale pid file (its gateway died without removing it) is not held, and its pid may
    // be another program's by now: signal only a trunkgate that holds its file (a gateway
    // from before the lock, found by its old file name, by its program alone).
    if !(legacy || held(&file)) {
        return Err(ReloadError::NotRunning { pid, path });
    }
    // The gateway reloads the file it was started with, whatever file was checked here: the
    // same path, or a path to the same file (by a link, or relative) is that file.
    if let Some(running) = text.lines().nth(1).filter(|l| !l.is_empty()) {
        let given = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
        if Path::new(running) != given && !same_file(Path::new(running), &given) {
            return Err(ReloadError::OtherConfig {
                pid,
                running: running.into(),
                given,
            });
        }
    }
    if !another_gateway(pid) {
        // Another user's process: its program cannot be read, so it cannot be told from
        // a stranger's; said so, not "not a running trunkgate".
        return Err(match exe_of(pid) {
            Err(source) if source.kind() == io::ErrorKind::PermissionDenied => {
                ReloadError::CannotTell { pid, path, source }
            }
            _ => ReloadError::NotRunning { pid, path },
        });
    }
    let before = read_result(&results).map_or(0, |r| r.sequence);
    let sent_ms = boot_ms();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .map_err(|e| ReloadError::Signal {
        pid,
        source: io::Error::from(e),
    })?;
    let start = Instant::now();
    while start.elapsed() < wait {
        if let Some(r) = read_result(&results).filter(|r| r.answers(before, sent_ms)) {
            return Ok(r);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(ReloadError::NoAnswer { pid, waited: wait })
}

/// Whether `a` and `b` name the same file now (links followed).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}
