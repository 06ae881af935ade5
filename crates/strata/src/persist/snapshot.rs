//! Snapshot files: storing and retrieving the bytes of a snapshot safely.
//!
//! The engine serialises its catalog and state to bytes (an rkyv archive) elsewhere; this
//! module only stores those bytes so that a crash at any moment leaves either the old set of
//! snapshots or the old set plus one complete new snapshot, detects any damage when reading,
//! and hands the body back in a 16-byte-aligned buffer that `rkyv::access` can read in place.
//!
//! # Directory
//!
//! Snapshots live in `<data_dir>/snapshots/`, one file per snapshot, named by the WAL LSN it
//! covers, zero-padded to 20 digits so names sort like LSNs:
//!
//! ```text
//! <data_dir>/snapshots/00000000000000001234.snap       a complete snapshot at LSN 1234
//! <data_dir>/snapshots/00000000000000005678.snap.tmp   a write in progress (or interrupted)
//! ```
//!
//! Other names in the directory are ignored.
//!
//! # File layout (format versions 1 to 3)
//!
//! All integers are little-endian. The header is 48 bytes, a multiple of 16, so the body also
//! starts 16-byte aligned in the file.
//!
//! ```text
//! offset  size  field
//!      0     8  magic             b"STRATASN"                      (MAGIC)
//!      8     4  format version    u32 = 3 (1: strata 0.1.0)        (FORMAT_VERSION)
//!     12     4  prefix CRC32C     crc32c(bytes 0..12)
//!     16     8  LSN               u64, equals the LSN in the file name
//!     24     8  body length       u64, file size = 48 + body length exactly
//!     32     4  body CRC32C       crc32c(body)
//!     36     8  reserved          zero
//!     44     4  header CRC32C     crc32c(bytes 0..44)
//!     48     …  body              body length bytes
//! ```
//!
//! Magic, version and prefix CRC (bytes 0..16) keep this layout in every future version; the
//! rest of the header may change with the version. The prefix CRC is what tells a file
//! written by a newer strata (valid prefix, higher version: refused with
//! [`PersistError::UnsupportedVersion`]) from a damaged version field (prefix CRC mismatch:
//! the file is damaged and skipped).
//!
//! # Atomic-write protocol
//!
//! [`SnapshotDir::write`] and [`SnapshotDir::write_with`]:
//!
//! 1. create `snapshots/` if needed (and fsync the data directory so the new entry is durable);
//! 2. write a placeholder header and then the body to `<lsn>.snap.tmp`, computing the body CRC
//!    on the fly;
//! 3. write the real header (length and CRC now known) at offset 0;
//! 4. `sync_all` the temp file;
//! 5. rename it to `<lsn>.snap` (atomic: readers see the old name set or the new one);
//! 6. fsync the `snapshots/` directory so the rename itself survives a crash.
//!
//! A crash before step 5 leaves only a `.tmp` file, which [`SnapshotDir::list`] ignores and
//! [`SnapshotDir::remove_stale_temps`] deletes; a crash after it leaves a complete snapshot.
//!
//! # Fallback rule
//!
//! [`SnapshotDir::load_newest`] tries the snapshots newest first. A file that cannot be read,
//! whose magic, header, CRCs or length are wrong, or whose body the caller's validation
//! rejects, is skipped and reported in [`LoadOutcome::skipped`]; the next older one is tried.
//! Falling back loses nothing as long as the WAL is kept from the oldest retained snapshot on
//! (see [`Retained::oldest_kept_lsn`]). The one exception: a file with a valid header prefix
//! and a format version newer than [`FORMAT_VERSION`] stops loading with
//! [`PersistError::UnsupportedVersion`], because a newer strata wrote it and falling back past
//! it would silently drop everything it holds.
//!
//! Reading never panics and never allocates more than the file's real size: the header's body
//! length is checked against the file size before any buffer is allocated.

use crate::error::PersistError;
use rkyv::util::AlignedVec;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The first 8 bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"STRATASN";
/// The format version this build writes, and the newest it reads (it reads 1..=this).
/// The header layout is the same in every version; the version says how the body is encoded
/// (`super::image`: 1 = `SnapshotImage`, 2 = `SnapshotImageV2`, 3 = `SnapshotImageV3`).
/// Version 3 adds the pairs of DISTINCT aggregates, and keeps `AVG` of BIGINT as an exact
/// i128 sum in a view's records (three words instead of two; older records are converted
/// when they are read, in `AggState::import`).
pub const FORMAT_VERSION: u32 = 3;
/// Size of the version-1 header; the body starts at this offset.
pub const HEADER_LEN: usize = 48;
/// Size of the part of the header that keeps its layout in every version (magic, version,
/// prefix CRC).
pub const PREFIX_LEN: usize = 16;
/// Alignment of the buffer the body is read into.
pub const BODY_ALIGN: usize = 16;
/// Name of the snapshot directory inside the data directory.
pub const DIR_NAME: &str = "snapshots";
/// File name suffix of a complete snapshot.
pub const SNAP_SUFFIX: &str = ".snap";
/// Suffix appended to a snapshot's name while it is being written.
pub const TMP_SUFFIX: &str = ".tmp";
/// Number of digits of the zero-padded LSN in a file name (enough for `u64::MAX`).
pub const LSN_DIGITS: usize = 20;

/// A snapshot body as read back: 16-byte aligned, ready for `rkyv::access`.
pub type SnapshotBody = AlignedVec<BODY_ALIGN>;

/// Unit of streaming I/O and CRC computation (keeps the CRC pass cache-hot).
const CHUNK: usize = 1 << 20;

/// The decoded header of a snapshot file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// Format version of the file.
    pub version: u32,
    /// The WAL LSN the snapshot covers.
    pub lsn: u64,
    /// Length of the body in bytes.
    pub body_len: u64,
    /// CRC32C of the body.
    pub body_crc: u32,
}

impl SnapshotHeader {
    /// A version-[`FORMAT_VERSION`] header for a body.
    pub fn new(lsn: u64, body: &[u8]) -> SnapshotHeader {
        SnapshotHeader {
            version: FORMAT_VERSION,
            lsn,
            body_len: body.len() as u64,
            body_crc: crc32c::crc32c(body),
        }
    }

    /// The header's bytes in the version-1 layout (see the module docs), with both CRCs
    /// computed. `version` is written as given (tests use this to craft other versions).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&self.version.to_le_bytes());
        let prefix_crc = crc32c::crc32c(&h[0..12]);
        h[12..16].copy_from_slice(&prefix_crc.to_le_bytes());
        h[16..24].copy_from_slice(&self.lsn.to_le_bytes());
        h[24..32].copy_from_slice(&self.body_len.to_le_bytes());
        h[32..36].copy_from_slice(&self.body_crc.to_le_bytes());
        // 36..44 reserved, zero.
        let header_crc = crc32c::crc32c(&h[0..44]);
        h[44..48].copy_from_slice(&header_crc.to_le_bytes());
        h
    }
}

/// What [`SnapshotDir::write`] wrote.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "testing"), allow(dead_code))] // read by the tests
pub struct SnapshotInfo {
    /// The LSN the snapshot covers.
    pub lsn: u64,
    /// Final path of the snapshot file.
    pub path: PathBuf,
    /// Size of the body in bytes.
    pub body_len: u64,
    /// Size of the file (header + body) in bytes.
    pub file_len: u64,
    /// CRC32C of the body.
    pub body_crc: u32,
    /// Wall time of the whole write, including fsyncs and rename.
    pub elapsed: Duration,
}

/// A snapshot file that was not used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// LSN from the file name.
    pub lsn: u64,
    /// Path of the file.
    pub path: PathBuf,
    /// Why it was skipped, without the file name (e.g. "body checksum mismatch: …").
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "snapshot {} is damaged ({})",
            self.path.display(),
            self.reason
        )
    }
}

/// A snapshot loaded and accepted by the caller's validation.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The LSN the snapshot covers: replay the WAL after it.
    pub lsn: u64,
    /// Path of the file.
    pub path: PathBuf,
    /// The decoded header.
    pub header: SnapshotHeader,
    /// The body, 16-byte aligned, CRC-checked.
    pub body: SnapshotBody,
    /// What the caller's validation returned.
    // Read by the callers of `SnapshotDir::load_newest` with a validation of their own (the
    // snapshot tests); where no WAL checkpointer is compiled in, rustc sees no reader.
    #[cfg_attr(feature = "cluster", allow(dead_code))]
    pub value: T,
    /// Wall time to read, check and validate this file (not the skipped ones).
    pub elapsed: Duration,
    /// When the snapshot was written, if the storage knows.
    pub written_at: Option<std::time::SystemTime>,
}

/// The result of [`SnapshotDir::load_newest`]: the snapshot used, if any, and every newer
/// file that was skipped (newest first). Both are reported, also when nothing was loaded.
#[derive(Debug)]
pub struct LoadOutcome<T> {
    /// The newest valid snapshot, or `None` when there is none.
    pub loaded: Option<Loaded<T>>,
    /// Files tried before `loaded` (or all files when `loaded` is `None`), newest first.
    pub skipped: Vec<Skipped>,
}

impl<T> LoadOutcome<T> {
    /// One line per skipped file for stderr: "snapshot X is damaged (reason); falling back to
    /// Y", where Y is the next file tried, or "no snapshot" when none was left.
    pub fn notices(&self) -> Vec<String> {
        (0..self.skipped.len())
            .map(|i| {
                let next = match (self.skipped.get(i + 1), &self.loaded) {
                    (Some(s), _) => format!("snapshot {}", s.path.display()),
                    (None, Some(l)) => format!("snapshot {}", l.path.display()),
                    (None, None) => "no snapshot (the whole WAL is replayed)".to_string(),
                };
                format!("{}; falling back to {next}", self.skipped[i])
            })
            .collect()
    }
}

/// What [`SnapshotDir::retain`] kept and deleted.
#[derive(Debug, Default)]
pub struct Retained {
    /// The snapshots kept, `(lsn, path)`, newest first, all verified (header and body CRC).
    pub kept: Vec<(u64, PathBuf)>,
    /// Every file deleted: older valid snapshots beyond `keep`, and damaged ones.
    pub deleted: Vec<PathBuf>,
    /// The damaged files among `deleted`, with the reason.
    pub damaged: Vec<Skipped>,
    /// LSN of the oldest kept snapshot: WAL records after it are still needed. `None` when
    /// no valid snapshot exists, in which case the whole WAL is needed.
    pub oldest_kept_lsn: Option<u64>,
}

/// The `snapshots/` directory of a data directory.
///
/// Not locked: the caller holds the data-directory lock, and runs at most one write at a
/// time (two writes of the *same* LSN at once would share a temp file).
#[derive(Clone, Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    /// The snapshot directory of `data_dir` (`<data_dir>/snapshots`). No I/O: the directory
    /// is created by the first write.
    pub fn new(data_dir: impl AsRef<Path>) -> SnapshotDir {
        SnapshotDir {
            dir: data_dir.as_ref().join(DIR_NAME),
        }
    }

    /// Path of the `snapshots/` directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Path the snapshot of `lsn` has (whether or not it exists).
    pub fn file_path(&self, lsn: u64) -> PathBuf {
        self.dir.join(file_name(lsn))
    }

    /// Writes `body` as the snapshot of `lsn`, atomically and durably (see the module docs):
    /// when this returns `Ok` the snapshot survives a crash; when it fails or the process
    /// dies midway, the existing snapshots are untouched and at most a `.tmp` file is left.
    /// An existing snapshot of the same LSN is replaced atomically. If only the final
    /// directory fsync fails, the complete file is already in place under its final name (it
    /// may or may not survive a crash) and the error is still returned.
    pub fn write(&self, lsn: u64, body: &[u8]) -> Result<SnapshotInfo, PersistError> {
        self.write_with(lsn, |w| w.write_all(body))
    }

    /// Like [`write`](Self::write), but the caller streams the body into `fill`'s writer (e.g.
    /// serialises straight into the file), so a multi-GB body never has to be in memory at
    /// once. The body length and CRC are counted as the bytes go through, and the header is
    /// filled in afterwards. Writes are buffered (1 MiB), so small writes are cheap. If `fill`
    /// returns an error (wrap your own with `io::Error::other`), the temp file is removed and
    /// the error is returned as [`PersistError::Io`] with `op` "write snapshot".
    pub fn write_with(
        &self,
        lsn: u64,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<SnapshotInfo, PersistError> {
        let start = Instant::now();
        self.ensure_dir()?;
        let path = self.file_path(lsn);
        let tmp = tmp_path(&path);
        let result = write_tmp(&tmp, lsn, fill);
        let header = match result {
            Ok(h) => h,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(PersistError::io("rename snapshot", &tmp, e));
        }
        sync_dir(&self.dir)?;
        Ok(SnapshotInfo {
            lsn,
            path,
            body_len: header.body_len,
            file_len: HEADER_LEN as u64 + header.body_len,
            body_crc: header.body_crc,
            elapsed: start.elapsed(),
        })
    }

    /// The complete snapshots, `(lsn, path)`, newest first, judged by file name only (contents
    /// are checked when loading). `.tmp` files and other names are ignored. A missing
    /// directory lists as empty. Read-only: see [`remove_stale_temps`](Self::remove_stale_temps).
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>, PersistError> {
        let mut out: Vec<(u64, PathBuf)> = self
            .entries()?
            .into_iter()
            .filter_map(|(name, path)| parse_file_name(&name).map(|lsn| (lsn, path)))
            .collect();
        out.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
        Ok(out)
    }

    /// Deletes the temp files (`<lsn>.snap.tmp`) left by writes that were interrupted, and
    /// returns their paths so the caller can report them. Call it at open, under the
    /// data-directory lock and before any write starts: it would delete the temp file of a
    /// write in progress.
    pub fn remove_stale_temps(&self) -> Result<Vec<PathBuf>, PersistError> {
        let mut removed = Vec::new();
        for (name, path) in self.entries()? {
            let is_tmp = name
                .strip_suffix(TMP_SUFFIX)
                .is_some_and(|n| parse_file_name(n).is_some());
            if is_tmp {
                match fs::remove_file(&path) {
                    Ok(()) => removed.push(path),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(PersistError::io(
                            "remove stale snapshot temp file",
                            &path,
                            e,
                        ))
                    }
                }
            }
        }
        removed.sort();
        Ok(removed)
    }

    /// Loads the newest usable snapshot, applying the fallback rule of the module docs.
    ///
    /// Each candidate, newest first, is read whole into an aligned buffer, its header, length
    /// and body CRC are checked, and `validate` is called on the body (e.g. `rkyv::access`
    /// plus any semantic checks); its `Ok` value is returned in [`Loaded::value`], its `Err`
    /// message makes the file skipped. Unreadable and damaged files are skipped too.
    ///
    /// Returns `Err` only when the directory cannot be listed, or when a file has a newer
    /// format version ([`PersistError::UnsupportedVersion`]). `Ok` with `loaded: None` means
    /// no usable snapshot: if `skipped` is non-empty, snapshots did exist, so the caller must
    /// make sure the WAL still starts at the beginning before starting from empty state.
    pub fn load_newest<T>(
        &self,
        mut validate: impl FnMut(&SnapshotHeader, &SnapshotBody) -> Result<T, String>,
    ) -> Result<LoadOutcome<T>, PersistError> {
        let mut skipped = Vec::new();
        for (lsn, path) in self.list()? {
            let start = Instant::now();
            match read_checked(&path, Some(lsn)) {
                Ok((header, body)) => match validate(&header, &body) {
                    Ok(value) => {
                        let elapsed = start.elapsed();
                        let written_at = fs::metadata(&path).and_then(|m| m.modified()).ok();
                        let loaded = Loaded {
                            lsn,
                            path,
                            header,
                            body,
                            value,
                            elapsed,
                            written_at,
                        };
                        return Ok(LoadOutcome {
                            loaded: Some(loaded),
                            skipped,
                        });
                    }
                    Err(msg) => skipped.push(Skipped {
                        lsn,
                        path,
                        reason: format!("rejected by validation: {msg}"),
                    }),
                },
                Err(Failure::Newer(found)) => return Err(Failure::Newer(found).into_error(&path)),
                Err(f) => skipped.push(Skipped {
                    lsn,
                    path,
                    reason: f.reason(),
                }),
            }
        }
        Ok(LoadOutcome {
            loaded: None,
            skipped,
        })
    }

    /// Keeps the newest `keep` valid snapshots (at least 1: the newest valid snapshot is never
    /// deleted) and deletes the older ones, plus any damaged file found among the newest.
    ///
    /// Validity here is the file-level check (header, length, body CRC, streamed with a fixed
    /// 1 MiB buffer), not the caller's validation. Files are verified newest first only until
    /// `keep` valid ones are found; older ones are deleted unread. Returns
    /// [`Retained::oldest_kept_lsn`]: delete WAL segments only if every record in them is at
    /// or before that LSN. Fails without deleting anything further on an I/O error while
    /// verifying (a read error is not proof of damage) and on a newer format version.
    pub fn retain(&self, keep: usize) -> Result<Retained, PersistError> {
        let keep = keep.max(1);
        let mut out = Retained::default();
        for (lsn, path) in self.list()? {
            if out.kept.len() < keep {
                match verify_checked(&path, Some(lsn)) {
                    Ok(_) => out.kept.push((lsn, path)),
                    Err(f @ (Failure::Newer(_) | Failure::Io(..))) => {
                        return Err(f.into_error(&path))
                    }
                    Err(f) => {
                        remove(&path)?;
                        out.damaged.push(Skipped {
                            lsn,
                            path: path.clone(),
                            reason: f.reason(),
                        });
                        out.deleted.push(path);
                    }
                }
            } else {
                remove(&path)?;
                out.deleted.push(path);
            }
        }
        if !out.deleted.is_empty() {
            sync_dir(&self.dir)?;
        }
        out.oldest_kept_lsn = out.kept.last().map(|k| k.0);
        Ok(out)
    }

    fn ensure_dir(&self) -> Result<(), PersistError> {
        if self.dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&self.dir)
            .map_err(|e| PersistError::io("create snapshot directory", &self.dir, e))?;
        match self.dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
            _ => Ok(()),
        }
    }

    /// `(file name, path)` of every entry with a UTF-8 name; empty if the directory is missing.
    fn entries(&self) -> Result<Vec<(String, PathBuf)>, PersistError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PersistError::io("list snapshot directory", &self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry =
                entry.map_err(|e| PersistError::io("list snapshot directory", &self.dir, e))?;
            if let Ok(name) = entry.file_name().into_string() {
                out.push((name, entry.path()));
            }
        }
        Ok(out)
    }
}

/// File name of the snapshot of `lsn`: 20 zero-padded digits + `.snap`.
pub fn file_name(lsn: u64) -> String {
    format!("{lsn:0width$}{SNAP_SUFFIX}", width = LSN_DIGITS)
}

/// The LSN of a snapshot file name made by [`file_name`]; `None` for any other name
/// (including `.tmp` names and unpadded numbers).
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SNAP_SUFFIX)?;
    if digits.len() != LSN_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(feature = "testing")]
/// Reads one snapshot file whole and checks it (magic, version, header CRCs, length, body
/// CRC). No check of the file name. Errors: [`PersistError::Io`], [`PersistError::BadMagic`],
/// [`PersistError::UnsupportedVersion`], [`PersistError::CorruptSnapshot`].
pub fn read_file(path: &Path) -> Result<(SnapshotHeader, SnapshotBody), PersistError> {
    read_checked(path, None).map_err(|f| f.into_error(path))
}

#[cfg(feature = "testing")]
/// Checks one snapshot file like [`read_file`], streaming the body through a fixed 1 MiB
/// buffer instead of keeping it.
pub fn verify_file(path: &Path) -> Result<SnapshotHeader, PersistError> {
    verify_checked(path, None).map_err(|f| f.into_error(path))
}

/// Why [`check_parts`] refused a snapshot.
#[cfg(feature = "object-store")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// Written by a newer strata, in this format version.
    Newer(u32),
    /// Damaged, with the reason.
    Damaged(String),
}

/// Checks a snapshot held in memory (e.g. an object read from a store) like [`read_file`]
/// checks a file, and that it covers `lsn`: `head` is its first [`HEADER_LEN`] bytes (fewer
/// only if the whole snapshot is shorter) and `body` the rest. Returns its header.
#[cfg(feature = "object-store")]
pub fn check_parts(head: &[u8], body: &[u8], lsn: u64) -> Result<SnapshotHeader, CheckError> {
    let to_check = |f: Failure| match f {
        Failure::Newer(v) => CheckError::Newer(v),
        f => CheckError::Damaged(f.reason()),
    };
    let header = decode_header(head, (head.len() + body.len()) as u64).map_err(to_check)?;
    if header.lsn != lsn {
        return Err(CheckError::Damaged(format!(
            "the header says LSN {} but its name says {lsn}",
            header.lsn
        )));
    }
    check_body_crc(&header, crc32c::crc32c(body)).map_err(to_check)?;
    Ok(header)
}

/// Why a file could not be used.
enum Failure {
    Io(&'static str, io::Error),
    BadMagic,
    Newer(u32),
    Corrupt(String),
}

impl Failure {
    fn reason(&self) -> String {
        match self {
            Failure::Io(op, e) => format!("cannot {op} it: {e}"),
            Failure::BadMagic => "bad magic bytes: not a strata snapshot file".to_string(),
            Failure::Newer(v) => {
                format!("format version {v} is newer than this strata reads ({FORMAT_VERSION})")
            }
            Failure::Corrupt(r) => r.clone(),
        }
    }

    fn into_error(self, path: &Path) -> PersistError {
        let file = path.display().to_string();
        match self {
            Failure::Io(op, e) => PersistError::io(op, path, e),
            Failure::BadMagic => PersistError::BadMagic {
                file,
                kind: "snapshot",
            },
            Failure::Newer(found) => PersistError::UnsupportedVersion {
                file,
                found,
                supported: FORMAT_VERSION,
            },
            Failure::Corrupt(reason) => PersistError::CorruptSnapshot { file, reason },
        }
    }
}

fn read_checked(
    path: &Path,
    expected_lsn: Option<u64>,
) -> Result<(SnapshotHeader, SnapshotBody), Failure> {
    let (mut file, header) = open_checked(path, expected_lsn)?;
    let len = usize::try_from(header.body_len)
        .ok()
        .filter(|&l| l <= SnapshotBody::MAX_CAPACITY)
        .ok_or_else(|| {
            Failure::Corrupt(format!(
                "body of {} bytes is too large for this platform",
                header.body_len
            ))
        })?;
    // `len` is at most the file's size (checked by `open_checked`), so this allocation is
    // bounded by what is really on disk.
    let mut body = SnapshotBody::with_capacity(len);
    body.resize(len, 0);
    let mut crc = 0u32;
    for chunk in body.chunks_mut(CHUNK) {
        read_body_chunk(&mut file, chunk)?;
        crc = crc32c::crc32c_append(crc, chunk);
    }
    check_body_crc(&header, crc)?;
    Ok((header, body))
}

fn verify_checked(path: &Path, expected_lsn: Option<u64>) -> Result<SnapshotHeader, Failure> {
    let (mut file, header) = open_checked(path, expected_lsn)?;
    let mut buf = vec![0u8; usize::try_from(header.body_len).map_or(CHUNK, |l| l.min(CHUNK))];
    let mut left = header.body_len;
    let mut crc = 0u32;
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        read_body_chunk(&mut file, &mut buf[..n])?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        left -= n as u64;
    }
    check_body_crc(&header, crc)?;
    Ok(header)
}

fn read_body_chunk(file: &mut File, chunk: &mut [u8]) -> Result<(), Failure> {
    file.read_exact(chunk).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            Failure::Corrupt("truncated: the file shrank while it was being read".to_string())
        }
        _ => Failure::Io("read", e),
    })
}

fn check_body_crc(header: &SnapshotHeader, computed: u32) -> Result<(), Failure> {
    if computed != header.body_crc {
        return Err(Failure::Corrupt(format!(
            "body checksum mismatch: stored {:#010x}, computed {computed:#010x}",
            header.body_crc
        )));
    }
    Ok(())
}

/// Opens a snapshot file and checks everything but the body CRC; the file is left positioned
/// at the start of the body.
fn open_checked(path: &Path, expected_lsn: Option<u64>) -> Result<(File, SnapshotHeader), Failure> {
    let mut file = File::open(path).map_err(|e| Failure::Io("open", e))?;
    let file_len = file
        .metadata()
        .map_err(|e| Failure::Io("read metadata of", e))?
        .len();
    let mut buf = [0u8; HEADER_LEN];
    let mut n = 0;
    while n < HEADER_LEN {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Io("read", e)),
        }
    }
    let header = decode_header(&buf[..n], file_len)?;
    if let Some(expected) = expected_lsn {
        if header.lsn != expected {
            return Err(Failure::Corrupt(format!(
                "the header says LSN {} but the file name says {expected}",
                header.lsn
            )));
        }
    }
    Ok((file, header))
}

/// Decodes and checks a header from the first (up to [`HEADER_LEN`]) bytes of a file of
/// `file_len` bytes.
fn decode_header(bytes: &[u8], file_len: u64) -> Result<SnapshotHeader, Failure> {
    let truncated = || {
        Failure::Corrupt(format!(
            "truncated: the file is {file_len} bytes, shorter than the {HEADER_LEN}-byte header"
        ))
    };
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(Failure::BadMagic);
    }
    if bytes.len() < PREFIX_LEN {
        return Err(truncated());
    }
    let version = u32_at(bytes, 8);
    let prefix_crc = crc32c::crc32c(&bytes[0..12]);
    if prefix_crc != u32_at(bytes, 12) {
        return Err(Failure::Corrupt(format!(
            "header checksum mismatch in the magic/version prefix: stored {:#010x}, computed \
             {prefix_crc:#010x}",
            u32_at(bytes, 12)
        )));
    }
    if version == 0 {
        return Err(Failure::Corrupt("invalid format version 0".to_string()));
    }
    if version > FORMAT_VERSION {
        return Err(Failure::Newer(version));
    }
    if bytes.len() < HEADER_LEN {
        return Err(truncated());
    }
    let header_crc = crc32c::crc32c(&bytes[0..44]);
    if header_crc != u32_at(bytes, 44) {
        return Err(Failure::Corrupt(format!(
            "header checksum mismatch: stored {:#010x}, computed {header_crc:#010x}",
            u32_at(bytes, 44)
        )));
    }
    if bytes[36..44].iter().any(|&b| b != 0) {
        return Err(Failure::Corrupt(
            "reserved header bytes are not zero".to_string(),
        ));
    }
    let header = SnapshotHeader {
        version,
        lsn: u64_at(bytes, 16),
        body_len: u64_at(bytes, 24),
        body_crc: u32_at(bytes, 32),
    };
    // `file_len` comes from metadata taken before the read; a file that grew in between
    // must not underflow this.
    let held = file_len
        .checked_sub(HEADER_LEN as u64)
        .ok_or_else(truncated)?;
    if header.body_len > held {
        return Err(Failure::Corrupt(format!(
            "truncated: the header says the body is {} bytes but the file holds {held}",
            header.body_len
        )));
    }
    if header.body_len < held {
        return Err(Failure::Corrupt(format!(
            "{} unexpected bytes after the {}-byte body",
            held - header.body_len,
            header.body_len
        )));
    }
    Ok(header)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(TMP_SUFFIX);
    PathBuf::from(s)
}

/// Steps 2–4 of the protocol: the whole temp file, synced. Returns the header written.
fn write_tmp(
    tmp: &Path,
    lsn: u64,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<SnapshotHeader, PersistError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(|e| PersistError::io("create snapshot temp file", tmp, e))?;
    let mut out = BufWriter::with_capacity(CHUNK, file);
    out.write_all(&[0u8; HEADER_LEN])
        .map_err(|e| PersistError::io("write snapshot", tmp, e))?;
    let mut body = BodyWriter {
        out: &mut out,
        crc: 0,
        len: 0,
    };
    fill(&mut body).map_err(|e| PersistError::io("write snapshot", tmp, e))?;
    let header = SnapshotHeader {
        version: FORMAT_VERSION,
        lsn,
        body_len: body.len,
        body_crc: body.crc,
    };
    let mut file = out
        .into_inner()
        .map_err(|e| PersistError::io("write snapshot", tmp, e.into_error()))?;
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.write_all(&header.encode()))
        .map_err(|e| PersistError::io("write snapshot header", tmp, e))?;
    file.sync_all()
        .map_err(|e| PersistError::io("fsync snapshot", tmp, e))?;
    Ok(header)
}

/// Passes the body through to the file, counting its length and CRC.
struct BodyWriter<'a> {
    out: &'a mut BufWriter<File>,
    crc: u32,
    len: u64,
}

impl Write for BodyWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // At most a chunk per call, so the CRC reads bytes that are still in cache.
        let buf = &buf[..buf.len().min(CHUNK)];
        let n = self.out.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn remove(path: &Path) -> Result<(), PersistError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PersistError::io("remove snapshot", path, e)),
    }
}

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
fn sync_dir(dir: &Path) -> Result<(), PersistError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| PersistError::io("fsync directory", dir, e))
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened as files on this platform; renames are durable
        // through the file system's own journal.
        let _ = dir;
        Ok(())
    }
}
