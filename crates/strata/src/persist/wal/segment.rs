//! Segment files: the handle appends go through (so that tests can make them fail), the
//! opener that makes it, and the small file-system helpers the WAL needs.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::error::PersistError;

// ---------------------------------------------------------------------------------------
// Files, and fault injection
// ---------------------------------------------------------------------------------------

/// An open segment file, in append mode. The WAL appends, fsyncs and truncates segments
/// only through this trait, so that tests can make those operations fail.
pub trait SegmentFile: Send {
    /// Writes all of `bytes` at the end of the file. On error, any prefix of `bytes` may
    /// have been written.
    fn write_all_at_end(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes the written bytes durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Truncates the file to `len` bytes; later writes go to the new end.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Another handle to the same file (used by the interval sync thread, which must be able
    /// to fsync while the WAL appends).
    fn try_clone(&self) -> io::Result<Box<dyn SegmentFile>>;
}

impl SegmentFile for File {
    fn write_all_at_end(&mut self, bytes: &[u8]) -> io::Result<()> {
        // Opened with O_APPEND: every write goes to the current end, also after `set_len`.
        self.write_all(bytes)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn try_clone(&self) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(File::try_clone(self)?))
    }
}

/// Opens existing segment files for appending.
pub trait SegmentOpener: Send + Sync {
    /// Opens the segment at `path` (which exists and holds at least its header) so that
    /// writes append to it.
    fn open(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
}

/// Opens segments as plain [`std::fs::File`]s in append mode. What [`Wal::open`] uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsOpener;

impl FsOpener {
    pub(super) fn open_file(path: &Path) -> io::Result<File> {
        OpenOptions::new().append(true).open(path)
    }
}

impl SegmentOpener for FsOpener {
    fn open(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(FsOpener::open_file(path)?))
    }
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

pub(super) fn truncate_file(path: &Path, len: u64) -> Result<(), PersistError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| PersistError::io("open", path, e))?;
    f.set_len(len)
        .map_err(|e| PersistError::io("truncate", path, e))?;
    f.sync_all().map_err(|e| PersistError::io("fsync", path, e))
}

/// Reads until `buf` is full or the end of the input; returns how many bytes were read.
pub(super) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
