//! The few file operations the CDR writer needs, behind a trait so tests can put the writer on
//! a full disk (an injected `ENOSPC`, a short write, a failing truncate) without mounting one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// CDRs are personal data (numbers, times): owner read/write, group read, nothing for others.
pub const CDR_FILE_MODE: u32 = 0o640;
/// Folders the writer creates for the CDR file.
const CDR_DIR_MODE: u32 = 0o750;

/// Which file a path names: rotation (move-and-create) shows as a different identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// Where CDR files are opened. The real one is [`RealFs`].
pub trait CdrFs: Send + 'static {
    /// Open `path` for appending, creating it (mode 0640) and its folder when missing.
    fn open(&mut self, path: &Path) -> io::Result<Box<dyn CdrFile>>;
    /// The identity of the file `path` names now (`NotFound` when there is none).
    fn id_of(&mut self, path: &Path) -> io::Result<FileId>;
}

/// One open CDR file.
pub trait CdrFile: Send {
    /// The identity it had when it was opened.
    fn id(&self) -> FileId;
    /// The file's size in bytes.
    fn size(&mut self) -> io::Result<u64>;
    /// The last byte of the file, `None` when it is empty.
    fn last_byte(&mut self) -> io::Result<Option<u8>>;
    /// Append; may write only part of `buf` (a short write), like `write(2)`.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// `fdatasync`.
    fn sync(&mut self) -> io::Result<()>;
    /// A handle that syncs this file from another thread (a duplicate descriptor).
    fn sync_handle(&self) -> io::Result<Box<dyn SyncHandle>>;
    /// Reserve room for `len` bytes past the file's end without changing its size
    /// (`fallocate(FALLOC_FL_KEEP_SIZE)`): appends within it need no free space later.
    fn reserve(&mut self, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

/// Syncs one open CDR file, from any thread.
pub trait SyncHandle: Send {
    /// `fdatasync`.
    fn sync(&mut self) -> io::Result<()>;
}

/// The operating system's files.
#[derive(Debug, Default)]
pub struct RealFs;

impl CdrFs for RealFs {
    fn open(&mut self, path: &Path) -> io::Result<Box<dyn CdrFile>> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(CDR_DIR_MODE)
                .create(dir)?;
        }
        let existed = std::fs::symlink_metadata(path).is_ok();
        // Read as well as append: the last byte tells whether a previous run left a torn line.
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(CDR_FILE_MODE)
            .open(path)?;
        if !existed && let Some(dir) = dir {
            // Make the new name itself durable, not only the data written under it. Best
            // effort: some filesystems refuse fsync on a directory, and CDRs must still flow.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        let meta = file.metadata()?;
        // A file only: a sync that fails has the lines written again, and a pipe, a
        // terminal or /dev/null, none of which can be synced, would take them for ever.
        if !meta.file_type().is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file (a pipe, a device): CDRs go to a file, synced to disk",
            ));
        }
        Ok(Box::new(RealFile {
            id: FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            },
            file,
        }))
    }

    fn id_of(&mut self, path: &Path) -> io::Result<FileId> {
        let meta = std::fs::metadata(path)?;
        Ok(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

struct RealFile {
    id: FileId,
    file: File,
}

impl CdrFile for RealFile {
    fn id(&self) -> FileId {
        self.id
    }

    fn size(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn last_byte(&mut self) -> io::Result<Option<u8>> {
        let len = self.size()?;
        let Some(at) = len.checked_sub(1) else {
            return Ok(None);
        };
        let mut b = [0u8; 1];
        self.file.read_exact_at(&mut b, at)?;
        Ok(Some(b[0]))
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_handle(&self) -> io::Result<Box<dyn SyncHandle>> {
        Ok(Box::new(RealSync(self.file.try_clone()?)))
    }

    fn reserve(&mut self, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let from = libc::off_t::try_from(self.size()?).map_err(|_| io::ErrorKind::InvalidInput)?;
        let len = libc::off_t::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: a plain system call on a descriptor this struct owns.
        let r =
            unsafe { libc::fallocate(self.file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, from, len) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// A duplicate of a CDR file's descriptor, synced on the sync thread.
struct RealSync(File);

impl SyncHandle for RealSync {
    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}
