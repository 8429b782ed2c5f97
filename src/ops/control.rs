//! `trunkgate reload` and the running process: a pid file and a reload-result file, both
//! beside the CDR file and named after it (a folder the service may write, unlike its
//! configuration folder; instances that share the folder have CDR files, and so control
//! files, of their own).
//!
//! The running process writes its pid at start and removes it at exit; after each SIGHUP it
//! writes one line, `<sequence> <result> <detail>`, to the result file (written aside and
//! renamed, so a reader never sees half a line). `trunkgate reload` (`client.rs`) validates
//! the configuration itself, signals the process, and waits for the sequence to move. The
//! running process writes on threads of their own: a disk that stalls must not stall the
//! signalling thread that answers the reload.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Config;

mod client;
mod result_file;
pub use client::{ReloadError, reload};
pub(crate) use result_file::write_atomically;
pub use result_file::{ReloadResult, boot_ms};
use result_file::{read_result, write_result};

/// The pid file of the gateway run with `cfg`: `<CDR file>.pid`.
pub fn pid_file(cfg: &Config) -> PathBuf {
    beside_cdr(cfg, ".pid")
}

/// The reload-result file of the gateway run with `cfg`: `<CDR file>.reload`.
pub fn result_file(cfg: &Config) -> PathBuf {
    beside_cdr(cfg, ".reload")
}

fn beside_cdr(cfg: &Config, suffix: &str) -> PathBuf {
    let mut p = cfg.cdr_path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// The pid and result files a gateway from before they were named after the CDR file
/// wrote in its folder (`trunkgate.pid`, `trunkgate.reload`), when there is one: between an
/// upgrade of the program and the restart, `trunkgate reload` still reaches it.
fn legacy_files(cfg: &Config) -> Option<(PathBuf, PathBuf)> {
    let dir = cfg
        .cdr_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let pid = dir.join("trunkgate.pid");
    pid.exists().then(|| (pid, dir.join("trunkgate.reload")))
}

/// How long the process waits at exit for its pid file to go (a stalled disk).
const PID_REMOVAL_WAIT: Duration = Duration::from_millis(500);

/// The running process's record: its pid file, and the reloads it has answered.
pub struct Control {
    pid_file: PathBuf,
    /// The pid file, open and locked for the life of the process: the lock, which the
    /// kernel drops when the process dies however it dies, is what says the file's process
    /// runs (a pid alone may have been given to another process since).
    held: Option<std::fs::File>,
    result_file: PathBuf,
    sequence: u64,
    /// The newest result not yet written, and whether a thread is writing: one thread at a
    /// time, writing the newest result it finds (a stalled disk gets no second thread,
    /// however many reloads come meanwhile, and the file never goes back to an older one).
    pending: Arc<Mutex<Pending>>,
    /// The last writing thread started (the one left running, if any).
    writing: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct Pending {
    line: Option<String>,
    writer_running: bool,
}

/// The program process `pid` runs.
fn exe_of(pid: i32) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
}

/// Whether `pid` is a running trunkgate other than this process.
fn another_gateway(pid: i32) -> bool {
    if pid <= 0 || pid as u32 == std::process::id() {
        return false;
    }
    let theirs = exe_of(pid).ok();
    let ours = std::env::current_exe().ok();
    matches!((&theirs, &ours), (Some(t), Some(o)) if same_program(t, o))
}

/// Whether the pid file open as `f` is held by a running gateway: locked. A `trunkgate
/// reload` that tests it takes the lock shared for a moment; a gateway starting then tries a
/// few times (`start`).
fn held(f: &std::fs::File) -> bool {
    match f.try_lock_shared() {
        Ok(()) => {
            let _ = f.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        // A file system without locks (some NFS, FUSE mounts): the lock says nothing, and
        // the pid's program (`another_gateway`) is all that is left to tell.
        Err(std::fs::TryLockError::Error(_)) => true,
    }
}

/// What locking the pid file gave.
enum Lock {
    /// This process holds it.
    Ours(std::fs::File),
    /// A running gateway holds it.
    Held,
    /// The file system takes no locks: the file, unlocked.
    Unsupported(std::fs::File, io::Error),
}

/// Open the pid file and take its lock. A gateway exiting removes its file while it still
/// holds the lock: one that locked the removed file would hold a file no one else can find,
/// so the lock taken must be on the file the path names, else it is tried again. A
/// `trunkgate reload` testing the lock holds it shared for a moment: a few tries.
fn lock_pid_file(path: &Path) -> io::Result<Lock> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    // Still the file the path names: not one an exiting gateway removed after this open,
    // nor a file with another name too (a hard link to the CDR file, emptied by the start).
    let same = |f: &std::fs::File| -> io::Result<bool> {
        let (a, b) = (f.metadata()?, std::fs::metadata(path)?);
        Ok(a.nlink() == 1 && (a.dev(), a.ino()) == (b.dev(), b.ino()))
    };
    for attempt in 0..6 {
        // A pid file with other names is none a gateway wrote: its name is unlinked (the
        // file it shares stays as it was), and a new one made.
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.nlink() > 1) {
            tracing::warn!(file = %path.display(), "the pid file has another name (a hard link): made anew");
            let _ = std::fs::remove_file(path);
        }
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        match f.try_lock() {
            Ok(()) if same(&f).unwrap_or(false) => return Ok(Lock::Ours(f)),
            // Locked each time yet never the path's file: a file system whose link counts
            // or inode numbers say nothing (some FUSE mounts). Taken, said.
            Ok(()) if attempt == 5 && f.metadata().is_ok_and(|m| m.nlink() <= 1) => {
                tracing::warn!(file = %path.display(), "the pid file's lock cannot be checked against its path on this file system");
                return Ok(Lock::Ours(f));
            }
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Ok(Lock::Unsupported(f, e)),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Lock::Held)
}

impl Control {
    /// Write the pid file (the folder exists: the CDR file was opened in it), and hold its
    /// lock while the process runs. Refused when another running gateway holds it: two
    /// gateways writing one CDR file, whose `trunkgate reload` would reach only one.
    /// `config`: the file a reload reads (as started), written beside the pid so that
    /// `trunkgate reload -c` with another file is refused rather than reported applied.
    pub fn start(cfg: &Config, config: &Path) -> io::Result<Control> {
        use std::io::Write;
        let pid_file = pid_file(cfg);
        let taken = |pid: &str| {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} is held by a running trunkgate (pid {}): another instance writes the \
                     same CDR file (each needs its own [cdr] path)",
                    pid_file.display(),
                    pid.lines().next().unwrap_or_default().trim()
                ),
            )
        };
        let mut held = match lock_pid_file(&pid_file)? {
            Lock::Ours(f) => f,
            Lock::Held => {
                return Err(taken(
                    &std::fs::read_to_string(&pid_file).unwrap_or_default(),
                ));
            }
            Lock::Unsupported(f, e) => {
                tracing::warn!(file = %pid_file.display(), error = %e, "cannot lock the pid file (a file system without locks?): whether another gateway uses it is told by its pid alone");
                let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
                if first_line_pid(&pid).is_some_and(another_gateway) {
                    return Err(taken(&pid));
                }
                f
            }
        };
        // Written in place: the lock is on this file, not on one renamed over it. Never a
        // file with another name (a hard link put there as it was opened): emptied, that
        // name's file (the CDR file) would be lost.
        {
            use std::os::unix::fs::MetadataExt;
            if held.metadata()?.nlink() > 1 {
                return Err(io::Error::other(format!(
                    "{} has another name (a hard link) and is not written",
                    pid_file.display()
                )));
            }
        }
        held.set_len(0)?;
        held.write_all(pid_file_text(config).as_bytes())?;
        let result_file = result_file(cfg);
        let last = read_result(&result_file);
        let sequence = last.as_ref().map_or(0, |r| r.sequence);
        // The file at its full length now, while there is room: a reload on a full disk
        // can then still be answered in place.
        let line = match &last {
            Some(r) => r.line(),
            None => "0 started -\n".to_string(),
        };
        if let Err(e) = write_result(&result_file, &line) {
            tracing::warn!(file = %result_file.display(), error = %e, "cannot write the reload result file");
        }
        Ok(Control {
            pid_file,
            held: Some(held),
            result_file,
            sequence,
            pending: Arc::default(),
            writing: None,
        })
    }

    /// Record the result (`applied`, `invalid`, `restart_required`, `failed`) and a detail of the
    /// reload whose loading began at `started` ([`boot_ms`]).
    pub fn reloaded(&mut self, started: u64, result: &str, detail: &str) {
        // Wrapping: a result file left with a huge number must not stop the count (the
        // client waits for any other number).
        self.sequence = self.sequence.wrapping_add(1);
        let line = ReloadResult {
            sequence: self.sequence,
            started_ms: Some(started),
            result: result.to_string(),
            detail: detail.replace('\n', " "),
        }
        .line();
        let mut p = crate::threads::lock(&self.pending);
        p.line = Some(line);
        if p.writer_running {
            return;
        }
        let path = self.result_file.clone();
        let pending = Arc::clone(&self.pending);
        let write = move || {
            loop {
                let line = match pending.lock() {
                    Ok(mut p) => match p.line.take() {
                        Some(l) => l,
                        None => {
                            p.writer_running = false;
                            return;
                        }
                    },
                    Err(_) => return,
                };
                if let Err(e) = write_result(&path, &line) {
                    tracing::warn!(file = %path.display(), error = %e, "cannot write the reload result");
                }
            }
        };
        // The last thread has returned (it said so under the lock): its handle goes.
        self.writing = None;
        match std::thread::Builder::new()
            .name("reload-result".into())
            .spawn(write)
        {
            Ok(h) => {
                p.writer_running = true;
                self.writing = Some(h);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a thread to write the reload result")
            }
        }
    }

    /// Wait for the results handed over so far to be written.
    #[cfg(test)]
    fn settle(&mut self) {
        if let Some(h) = self.writing.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let path = self.pid_file.clone();
        let before = self.writing.take();
        // The lock is held until the file is gone: a gateway starting meanwhile must not
        // lock and write the file this one is about to remove.
        let held = self.held.take();
        let remove = move || {
            if let Some(b) = before {
                let _ = b.join();
            }
            // Only our own: another instance may have written its pid since.
            let ours = std::fs::read_to_string(&path)
                .is_ok_and(|t| first_line_pid(&t) == i32::try_from(std::process::id()).ok());
            if ours {
                let _ = std::fs::remove_file(&path);
            }
            drop(held);
        };
        // At exit, within a limit: the stop's time is the supervisor's (README, drain_s).
        if let Ok(h) = std::thread::Builder::new()
            .name("pid-file".into())
            .spawn(remove)
            && crate::threads::join_within(h, PID_REMOVAL_WAIT)
                == crate::threads::Joined::StillRunning
        {
            tracing::warn!(file = %self.pid_file.display(), "the pid file could not be removed in time (a stalled disk?)");
        }
    }
}

/// The pid file's most: a pid, and a path (`PATH_MAX`).
const PID_FILE_ROOM: u64 = 4200;

/// What the pid file holds: the pid, and on a line of its own the configuration file a
/// reload reads, made absolute as the gateway names it, its symbolic links not followed (a
/// reload follows them anew: a link moved to a new release is the file it reads then; left
/// out when it cannot be written on one line).
fn pid_file_text(config: &Path) -> String {
    let pid = std::process::id();
    let config = std::path::absolute(config).ok();
    match config.as_ref().and_then(|c| c.to_str()) {
        Some(c) if !c.contains('\n') => format!("{pid}\n{c}\n"),
        _ => format!("{pid}\n"),
    }
}

/// The pid on the pid file's first line (a gateway from before the path was written there
/// has no other line).
fn first_line_pid(text: &str) -> Option<i32> {
    let first = text.lines().next()?;
    first.trim().parse().ok().filter(|p| *p > 0)
}

/// Whether the running process's executable `theirs` (its `/proc/PID/exe` link) is the
/// program `ours`. After an upgrade replaced the file, the link of a process started from it
/// reads `PATH (deleted)`; a gateway started from another copy (a build tree, another
/// prefix) has the same file name.
fn same_program(theirs: &Path, ours: &Path) -> bool {
    let theirs = theirs.to_string_lossy();
    let theirs = Path::new(theirs.strip_suffix(" (deleted)").unwrap_or(&theirs));
    theirs == ours || (theirs.file_name().is_some() && theirs.file_name() == ours.file_name())
}

#[cfg(test)]
mod tests;
