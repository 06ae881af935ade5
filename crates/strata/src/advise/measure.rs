//! The figures of [`Measurements`](super::Measurements) that come from the machine: a data
//! directory's sizes and its disk's free space, the process's memory and the memory it may
//! use (the machine's, or its cgroup's limit when lower).

use crate::persist::snapshot::{DIR_NAME as SNAPSHOTS, SNAP_SUFFIX};
use crate::persist::wal::wal_dir;
use std::path::Path;

/// Sizes in a data directory, and the free space of its disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirFigures {
    /// The newest snapshot (what recovery restores).
    pub newest_snapshot_bytes: u64,
    pub wal_bytes: u64,
    /// Everything in the directory.
    pub total_bytes: u64,
    /// Free space for an unprivileged user on the directory's file system.
    pub free_bytes: Option<u64>,
}

/// Measures data directory `dir`.
pub fn data_dir(dir: &Path) -> std::io::Result<DirFigures> {
    // Snapshot files are named by their zero-padded log position: the greatest is newest.
    let newest_snapshot_bytes = files(&dir.join(SNAPSHOTS))
        .filter(|(name, _)| name.to_string_lossy().ends_with(SNAP_SUFFIX))
        .max_by_key(|(name, _)| name.clone())
        .map_or(0, |(_, len)| len);
    Ok(DirFigures {
        newest_snapshot_bytes,
        wal_bytes: files(&wal_dir(dir)).map(|(_, len)| len).sum(),
        total_bytes: tree_bytes(dir)?,
        free_bytes: free_bytes(dir),
    })
}

/// The files of `dir` (not recursive) with their sizes; none if it cannot be read.
fn files(dir: &Path) -> impl Iterator<Item = (std::ffi::OsString, u64)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| (e.file_name(), meta.len()))
        })
}

fn tree_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            tree_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(unix)]
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a valid place for the answer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// The process's resident memory (`VmRSS`), and the most it may use: the machine's memory
/// (`MemTotal`), or its cgroup's limit (v2 `memory.max`, v1 `memory.limit_in_bytes`) when
/// lower. `None` where `/proc` and `/sys/fs/cgroup` do not say.
pub fn memory() -> (Option<u64>, Option<u64>) {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let kib_field = |text: &str, field: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(field))?;
        let kib: u64 = line[field.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    let rss = read("/proc/self/status").and_then(|s| kib_field(&s, "VmRSS:"));
    let total = read("/proc/meminfo").and_then(|s| kib_field(&s, "MemTotal:"));
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| read(p)?.trim().parse::<u64>().ok());
    let limit = match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    };
    (rss, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(SNAPSHOTS)).unwrap();
        std::fs::create_dir(wal_dir(dir.path())).unwrap();
        std::fs::write(dir.path().join(SNAPSHOTS).join("001.snap"), [0; 10]).unwrap();
        std::fs::write(dir.path().join(SNAPSHOTS).join("002.snap"), [0; 30]).unwrap();
        std::fs::write(wal_dir(dir.path()).join("a"), [0; 5]).unwrap();
        std::fs::write(wal_dir(dir.path()).join("b"), [0; 7]).unwrap();
        let f = data_dir(dir.path()).unwrap();
        assert_eq!(
            (f.newest_snapshot_bytes, f.wal_bytes, f.total_bytes),
            (30, 12, 52)
        );
        assert!(f.free_bytes.is_some_and(|b| b > 0));
    }

    #[test]
    fn memory_is_read_from_proc() {
        let (rss, limit) = memory();
        if Path::new("/proc/self/status").exists() {
            assert!(rss.is_some_and(|r| r > 0) && limit.is_some_and(|l| l >= rss.unwrap()));
        }
    }
}
