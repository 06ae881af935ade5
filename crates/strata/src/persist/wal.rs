//! The write-ahead log: an append-only sequence of opaque records, each with a log sequence
//! number (LSN), stored in segment files under `<data_dir>/wal/`.
//!
//! The WAL knows nothing about what a record means: the engine encodes its logical changes
//! (DDL, inserted batches, table writes) elsewhere and hands the bytes to [`Wal::append`].
//! LSNs are consecutive `u64`s starting at 1; the LSN of a record never changes.
//!
//! # Format (version 1)
//!
//! A segment file is named after the LSN of its first record, zero-padded to 20 digits so
//! that names sort like LSNs: `00000000000000000001.wal`, `00000000000000004097.wal`, …
//! All integers are little-endian.
//!
//! ```text
//! segment header (24 bytes)
//! +----------------+-----------+-----------------+-------------------+
//! | magic (8)      | version   | first LSN       | CRC32C of the     |
//! | "STRATAWL"     | u32 (= 1) | u64             | 20 bytes before   |
//! +----------------+-----------+-----------------+-------------------+
//!
//! then zero or more record frames, back to back, up to the end of the file
//! +-------------+----------------------+---------+-------------------------+
//! | payload len | CRC32C of            | LSN     | payload                 |
//! | u32         | LSN bytes ++ payload | u64     | (len bytes, ≤ 1 GiB)    |
//! +-------------+----------------------+---------+-------------------------+
//!   4 bytes       4 bytes                8 bytes
//! ```
//!
//! The first frame of a segment has the LSN of its name and header, every next frame the
//! LSN after it, and the first LSN of a segment is the one after the last record of the
//! previous segment. A new segment is started when appending to the current one would take
//! it past the configured segment size (a single larger record gets a segment of its own).
//! New segments are written under a temporary name with their header, fsynced, renamed and
//! the directory fsynced, so a segment file always has a complete header. Deleting segments
//! is also followed by a directory fsync.
//!
//! # Sync policies and what a crash can lose
//!
//! - [`SyncPolicy::Always`]: [`Wal::append`] returns `Ok` only after `fdatasync` of the
//!   segment. A crash (of the process, the OS or the power) loses no acknowledged record.
//!   [`Wal::append_batch`] writes several records with one write and one fsync (group
//!   commit).
//! - [`SyncPolicy::Interval`]: appends return once the bytes are written to the OS. A
//!   background thread fsyncs the current segment every `ms` milliseconds if anything was
//!   written since. A crash of the process alone loses nothing (the OS still holds the
//!   bytes); a crash of the OS or a power failure loses at most the records of the last
//!   `ms` milliseconds (plus the duration of one fsync). A failed background fsync poisons
//!   the WAL: records acknowledged since the previous sync may be gone from the disk, so the
//!   process must restart and recover from what the disk holds.
//! - [`SyncPolicy::Never`]: strata does not fsync appended records; the OS writes them back
//!   when it likes (typically within ~30 s on Linux). A process crash loses nothing, an OS
//!   crash or power failure may lose any record since the last explicit [`Wal::sync`].
//!
//! Under every policy a segment is fsynced before the next one is started, so that the
//! disk never holds a later segment behind a hole in an earlier one (which recovery would
//! have to call corruption). [`Wal::sync`] fsyncs explicitly (checkpoints call it before
//! writing a snapshot; closing calls it). Dropping a [`Wal`] with the interval policy stops
//! the thread and fsyncs what is left.
//!
//! # Recovery: torn tail versus corruption
//!
//! [`Wal::open`] reads every segment in order and checks every frame (length, CRC, LSN).
//! The first bad frame ends the valid log. What happens next depends on where it is:
//!
//! - **Torn tail**: the bad frame is in the *last* segment and no valid frame follows it in
//!   that file (a partial frame header, a length that runs past the end of the file, or a
//!   bad checksum with nothing valid after it). This is what a crash in the middle of an
//!   append leaves behind; such a record was never acknowledged under `Always` (its fsync
//!   had not returned). The file is truncated to the end of the last good frame (and
//!   fsynced) and [`Recovered::truncated_tail`] says where and how many bytes were dropped;
//!   the caller prints a warning.
//!
//!   A flipped byte in the very last record is handled the same way on purpose: it cannot
//!   be told apart from a write that the disk only partly persisted (the size made it to
//!   disk, one of the data blocks did not), and refusing to start after every such crash
//!   would make the log unusable. The price is that bit rot in exactly the last record of
//!   the log drops that record with a warning instead of stopping startup.
//! - **Corruption**: the bad frame is followed by a valid frame in the same file, or by
//!   later segments; or a segment header is damaged; or the LSNs of two segments do not
//!   follow each other (a missing or reordered segment). Records after it cannot be
//!   trusted to be complete, so [`Wal::open`] fails with [`PersistError::CorruptWal`] naming
//!   the file and offset — unless it is called with `repair = true`, in which case the log
//!   is cut at that offset (later segments are deleted) and [`Recovered::repaired`] says
//!   what was dropped.
//!
//!   Limitation: after a *power failure* (not a process kill, which always leaves a prefix
//!   of a write), a large multi-record write that the disk persisted out of order can leave
//!   a hole followed by valid frames; it is reported as corruption although none of those
//!   records was acknowledged. Repairing drops exactly those unacknowledged records.
//!
//! A segment with a different magic is refused with [`PersistError::BadMagic`], and one of a
//! newer format version with [`PersistError::UnsupportedVersion`]; neither is repaired.
//!
//! # Write errors
//!
//! If a write or fsync of an append fails, the segment is truncated back to its length
//! before that append and fsynced, and the error (naming the file and the operation) is
//! returned: the record is not in the log and a later [`Wal::open`] will not see it. If
//! that rollback fails too, the WAL is *poisoned*: the failing call and every later call
//! return [`PersistError::Poisoned`], and the caller must restart (recovery then treats the
//! unacknowledged bytes as a torn tail, or, if the disk lost earlier pages, reports them).
//!
//! # Fault injection
//!
//! Appends, fsyncs and truncations of segments go through [`SegmentFile`] handles that a
//! [`SegmentOpener`] opens. [`Wal::open`] uses the real files ([`FsOpener`]);
//! [`Wal::open_with`] takes another opener, such as [`FaultInjector`], which makes the
//! n-th write, fsync or truncation fail and counts the calls, for tests.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::SyncPolicy;
use crate::error::PersistError;
use crate::metrics::Histogram;

/// The magic bytes at the start of every segment file.
pub const MAGIC: [u8; 8] = *b"STRATAWL";
/// The format version this build writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the segment header: magic, version, first LSN, CRC.
pub const HEADER_LEN: u64 = 24;
/// Length of a record frame's header: payload length, CRC, LSN.
pub const FRAME_HEADER_LEN: u64 = 16;
/// The largest payload of one record (1 GiB).
pub const MAX_RECORD_BYTES: usize = 1 << 30;
/// The name of the WAL directory inside the data directory.
pub const WAL_DIR: &str = "wal";

const SEGMENT_EXT: &str = ".wal";
const TMP_EXT: &str = ".wal.tmp";
const READ_BUF: usize = 256 * 1024;
/// The write buffer is shrunk back to this after an append of a larger batch.
const KEEP_BUF: usize = 8 << 20;

/// The WAL directory of a data directory: `<data_dir>/wal`.
pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(WAL_DIR)
}

/// The file name of the segment whose first record has LSN `first_lsn`.
pub fn segment_file_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}{SEGMENT_EXT}")
}

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
    fn open_file(path: &Path) -> io::Result<File> {
        OpenOptions::new().append(true).open(path)
    }
}

impl SegmentOpener for FsOpener {
    fn open(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(FsOpener::open_file(path)?))
    }
}

/// A [`SegmentOpener`] for tests: real files whose n-th write, fsync or truncation fails on
/// command, with counters of those calls. Clones share the same state, so keep one clone
/// and pass another to [`Wal::open_with`].
///
/// ```no_run
/// # use strata::persist::{SyncPolicy, wal::{Wal, FaultInjector, OnCorruption}};
/// # use std::sync::Arc;
/// let faults = FaultInjector::new();
/// let opener = Arc::new(faults.clone());
/// let (mut wal, _) = Wal::open_with(
///     "wal".as_ref(), SyncPolicy::Always, 64 << 20, OnCorruption::Refuse, opener,
/// )?;
/// faults.fail_sync(1); // the next fsync fails
/// assert!(wal.append(b"x").is_err()); // rolled back: not in the log
/// # Ok::<(), strata::PersistError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct FaultInjector {
    state: Arc<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    writes: AtomicU64,
    syncs: AtomicU64,
    set_lens: AtomicU64,
    fail_write_in: AtomicU64,
    fail_sync_in: AtomicU64,
    fail_set_len_in: AtomicU64,
}

impl FaultInjector {
    /// An injector that fails nothing until told to.
    pub fn new() -> FaultInjector {
        FaultInjector::default()
    }
    /// Makes the `nth` write from now fail (1 = the next one), once; 0 disarms. A failing
    /// write first writes half of its bytes, like a disk that filled up in the middle.
    pub fn fail_write(&self, nth: u64) {
        self.state.fail_write_in.store(nth, Ordering::SeqCst);
    }
    /// Makes the `nth` fsync from now fail (1 = the next one), once; 0 disarms. The written
    /// bytes stay in the file, as after a real fsync error.
    pub fn fail_sync(&self, nth: u64) {
        self.state.fail_sync_in.store(nth, Ordering::SeqCst);
    }
    /// Makes the `nth` truncation (`set_len`) from now fail (1 = the next one), once;
    /// 0 disarms. Truncation is how a failed append is rolled back.
    pub fn fail_set_len(&self, nth: u64) {
        self.state.fail_set_len_in.store(nth, Ordering::SeqCst);
    }
    /// How many writes were attempted through files of this injector.
    pub fn writes(&self) -> u64 {
        self.state.writes.load(Ordering::SeqCst)
    }
    /// How many fsyncs succeeded through files of this injector.
    pub fn syncs(&self) -> u64 {
        self.state.syncs.load(Ordering::SeqCst)
    }
    /// How many truncations were attempted through files of this injector.
    pub fn set_lens(&self) -> u64 {
        self.state.set_lens.load(Ordering::SeqCst)
    }
}

/// Counts down an armed trigger; true when this call is the one that must fail.
fn fires(countdown: &AtomicU64) -> bool {
    countdown.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) == Ok(1)
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

impl SegmentOpener for FaultInjector {
    fn open(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let file = FsOpener::open_file(path)?;
        Ok(Box::new(FaultyFile {
            file,
            state: Arc::clone(&self.state),
        }))
    }
}

struct FaultyFile {
    file: File,
    state: Arc<FaultState>,
}

impl SegmentFile for FaultyFile {
    fn write_all_at_end(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.state.writes.fetch_add(1, Ordering::SeqCst);
        if fires(&self.state.fail_write_in) {
            self.file.write_all(&bytes[..bytes.len() / 2])?;
            return Err(injected("write"));
        }
        self.file.write_all(bytes)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        if fires(&self.state.fail_sync_in) {
            return Err(injected("fsync"));
        }
        self.file.sync_data()?;
        self.state.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.state.set_lens.fetch_add(1, Ordering::SeqCst);
        if fires(&self.state.fail_set_len_in) {
            return Err(injected("truncate"));
        }
        self.file.set_len(len)
    }
    fn try_clone(&self) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(FaultyFile {
            file: self.file.try_clone()?,
            state: Arc::clone(&self.state),
        }))
    }
}

// ---------------------------------------------------------------------------------------
// Recovery report
// ---------------------------------------------------------------------------------------

/// Where recovery cut the log, and how much it dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The segment file that was cut.
    pub file: PathBuf,
    /// The offset in `file` where the dropped bytes began (0 when the whole file went).
    pub offset: u64,
    /// How many bytes were dropped: from `offset` to the end of `file`, plus the sizes of any
    /// later segments that were deleted.
    pub bytes_dropped: u64,
    /// What was wrong at `offset`.
    pub reason: String,
}

impl fmt::Display for Truncation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at offset {}: dropped {} bytes ({})",
            self.file.display(),
            self.offset,
            self.bytes_dropped,
            self.reason
        )
    }
}

/// What [`Wal::open`] does with corruption in the middle of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnCorruption {
    /// Fail with [`PersistError::CorruptWal`] naming the file and offset.
    Refuse,
    /// Keep what can be trusted and drop the rest, reporting it in [`Recovered::repaired`].
    /// Records up to `covered_lsn` are in a snapshot (0: none): damage among them does not
    /// cost the records after them, which are kept if they are intact. Otherwise the log is
    /// cut at the damage.
    Repair { covered_lsn: u64 },
}

/// What [`Wal::open`] found. The records themselves are read with [`Wal::replay`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// LSN of the first record in the log (`last_lsn + 1` when the log holds none).
    pub first_lsn: u64,
    /// LSN of the last valid record, 0 if none was ever written.
    pub last_lsn: u64,
    /// Number of segment files kept.
    pub segments: usize,
    /// Total size of the kept segment files, headers included.
    pub bytes: u64,
    /// A torn tail that was truncated (the caller should warn).
    pub truncated_tail: Option<Truncation>,
    /// Corruption that was cut away because `repair` was requested.
    pub repaired: Option<Truncation>,
}

impl Recovered {
    /// Number of records in the log.
    pub fn records(&self) -> u64 {
        self.last_lsn + 1 - self.first_lsn
    }
}

// ---------------------------------------------------------------------------------------
// The WAL
// ---------------------------------------------------------------------------------------

struct Segment {
    first_lsn: u64,
    path: PathBuf,
    /// Length of the valid part of the file (the whole file once open returned).
    len: u64,
}

/// A write-ahead log in one directory. See the [module docs](self) for the format, the sync
/// policies and recovery.
///
/// Not internally synchronised: appends take `&mut self`. One process must own a WAL
/// directory at a time (the engine's data-directory lock ensures that).
pub struct Wal {
    dir: PathBuf,
    policy: SyncPolicy,
    segment_bytes: u64,
    opener: Arc<dyn SegmentOpener>,
    /// Oldest first; the last one is the current segment. Empty only before the first
    /// append, or after [`Wal::advance_past`].
    segments: Vec<Segment>,
    /// Handle of the current segment; `Some` exactly when `segments` is not empty.
    file: Option<Box<dyn SegmentFile>>,
    next_lsn: u64,
    /// Bytes were written since this handle last fsynced (the interval thread's fsyncs
    /// are not counted).
    unsynced: bool,
    buf: Vec<u8>,
    poisoned: Option<String>,
    syncer: Option<Syncer>,
    /// Bytes appended and fsync durations since open (the interval thread's not counted).
    appended_bytes: u64,
    fsync_seconds: Histogram,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("policy", &self.policy)
            .field("segments", &self.segments.len())
            .field("next_lsn", &self.next_lsn)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens (creating it if missing) the WAL in directory `dir` — normally
    /// [`wal_dir`]`(data_dir)` — and recovers it: every frame of every segment is checked,
    /// a torn tail is truncated, and corruption is an error unless `repair` is true, in
    /// which case the log is cut before it (see the module docs). Nothing is read into
    /// memory; read the records with [`Wal::replay`].
    ///
    /// `segment_bytes` is the size at which a new segment is started (e.g. 64 MiB).
    /// Leftover temporary files of an interrupted segment creation are deleted.
    ///
    /// With [`SyncPolicy::Interval`] this starts the background sync thread.
    pub fn open(
        dir: &Path,
        sync: SyncPolicy,
        segment_bytes: u64,
        on_corruption: OnCorruption,
    ) -> Result<(Wal, Recovered), PersistError> {
        Wal::open_with(dir, sync, segment_bytes, on_corruption, Arc::new(FsOpener))
    }

    /// [`Wal::open`], with segment files opened for appending by `opener` (for fault
    /// injection with [`FaultInjector`]). Recovery itself reads and truncates with plain
    /// files.
    pub fn open_with(
        dir: &Path,
        sync: SyncPolicy,
        segment_bytes: u64,
        on_corruption: OnCorruption,
        opener: Arc<dyn SegmentOpener>,
    ) -> Result<(Wal, Recovered), PersistError> {
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(|e| PersistError::io("create directory", dir, e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent).map_err(|e| PersistError::io("fsync", parent, e))?;
            }
        }
        let (segments, next_lsn, truncated_tail, repaired) = recover(dir, on_corruption)?;
        let file = match segments.last() {
            Some(seg) => Some(
                opener
                    .open(&seg.path)
                    .map_err(|e| PersistError::io("open", &seg.path, e))?,
            ),
            None => None,
        };
        let recovered = Recovered {
            first_lsn: segments.first().map_or(next_lsn, |s| s.first_lsn),
            last_lsn: next_lsn - 1,
            segments: segments.len(),
            bytes: segments.iter().map(|s| s.len).sum(),
            truncated_tail,
            repaired,
        };
        let syncer = match sync {
            SyncPolicy::Interval { ms } => {
                let handle = match (&file, segments.last()) {
                    (Some(f), Some(seg)) => Some((
                        seg.path.clone(),
                        f.try_clone()
                            .map_err(|e| PersistError::io("open", &seg.path, e))?,
                    )),
                    _ => None,
                };
                Some(Syncer::start(ms, handle, dir)?)
            }
            SyncPolicy::Always | SyncPolicy::Never => None,
        };
        let wal = Wal {
            dir: dir.to_path_buf(),
            policy: sync,
            segment_bytes,
            opener,
            segments,
            file,
            next_lsn,
            unsynced: false,
            buf: Vec::new(),
            poisoned: None,
            syncer,
            appended_bytes: 0,
            fsync_seconds: Histogram::default(),
        };
        Ok((wal, recovered))
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sync policy it was opened with.
    pub fn policy(&self) -> SyncPolicy {
        self.policy
    }

    /// LSN of the last record in the log, 0 if none was ever written.
    pub fn last_lsn(&self) -> u64 {
        self.next_lsn - 1
    }

    /// LSN of the oldest record still in the log (`last_lsn() + 1` if it holds none).
    pub fn first_lsn(&self) -> u64 {
        self.segments.first().map_or(self.next_lsn, |s| s.first_lsn)
    }

    /// Appends one record and returns its LSN. The record goes at the end of the current
    /// segment (a new segment is started first if the record would take the current one
    /// past `segment_bytes`), written with a single `write`; then:
    /// - `Always`: it is fsynced before this returns, so `Ok` means durable;
    /// - `Interval`: it returns at once; the background thread fsyncs within `ms`;
    /// - `Never`: it returns at once.
    ///
    /// On error nothing was appended (the segment was truncated back), unless the error is
    /// [`PersistError::Poisoned`]: then the WAL refuses all further calls and the process
    /// must restart. A payload over [`MAX_RECORD_BYTES`] is refused before any I/O.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, PersistError> {
        self.append_batch(&[payload])
    }

    /// Appends several records with one write and (under `Always`) one fsync — group
    /// commit — and returns the LSN of the last one (the first is `last - n + 1`). All of
    /// them go into the same segment. Either all are appended or, on error, none (as for
    /// [`Wal::append`]). An empty batch does nothing and returns [`Wal::last_lsn`].
    pub fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<u64, PersistError> {
        self.check_usable()?;
        if payloads.is_empty() {
            return Ok(self.last_lsn());
        }
        let mut total = 0u64;
        for payload in payloads {
            if payload.len() > MAX_RECORD_BYTES {
                return Err(PersistError::io(
                    "append to",
                    &self.dir,
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "a WAL record of {} bytes exceeds the limit of {MAX_RECORD_BYTES} \
                             bytes; split the batch into smaller ones",
                            payload.len()
                        ),
                    ),
                ));
            }
            total += FRAME_HEADER_LEN + payload.len() as u64;
        }
        let n = payloads.len() as u64;
        if self.next_lsn.checked_add(n).is_none() {
            return Err(PersistError::io(
                "append to",
                &self.dir,
                io::Error::other("the WAL ran out of LSNs"),
            ));
        }
        self.prepare_segment(total)?;

        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.reserve(total as usize);
        for (i, payload) in payloads.iter().enumerate() {
            encode_frame(&mut buf, self.next_lsn + i as u64, payload);
        }
        let result = self.write_frames(&buf, n);
        if buf.capacity() > KEEP_BUF {
            buf = Vec::new();
        }
        self.buf = buf;
        result
    }

    /// Fsyncs the current segment, whatever the policy. Checkpoints call it before writing
    /// a snapshot, and it should be called before a clean shutdown under `Never`. An fsync
    /// error poisons the WAL (acknowledged records may not be on disk).
    pub fn sync(&mut self) -> Result<(), PersistError> {
        self.check_usable()?;
        if let Some(syncer) = &self.syncer {
            syncer.lock().dirty = false;
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let start = Instant::now();
        if let Err(e) = file.sync_data() {
            let path = &self.segments[self.segments.len() - 1].path;
            return Err(self.poison(PersistError::io("fsync", path, e).to_string()));
        }
        self.fsync_seconds.observe(start.elapsed().as_secs_f64());
        self.unsynced = false;
        Ok(())
    }

    /// Bytes appended since open, and the durations of the fsyncs of appends and of
    /// [`Wal::sync`] (the interval policy's background fsyncs are not timed).
    pub fn stats(&self) -> (u64, &Histogram) {
        (self.appended_bytes, &self.fsync_seconds)
    }

    /// Calls `f(lsn, payload)` for every record with an LSN greater than `after_lsn`, in
    /// order, reading the segments one after the other from disk (segments wholly at or
    /// before `after_lsn` are not read; one payload is in memory at a time). Stops at the
    /// first error of `f` and returns it; returns the number of records passed to `f`.
    ///
    /// Fails with [`PersistError::CorruptWal`] if records after `after_lsn` are needed but
    /// were removed (the log starts after `after_lsn + 1`), or if a file changed since
    /// [`Wal::open`] checked it. If `after_lsn >= last_lsn()` nothing is replayed; when a
    /// snapshot is newer than the log, call [`Wal::advance_past`] before appending.
    pub fn replay<E: From<PersistError>>(
        &self,
        after_lsn: u64,
        mut f: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        self.check_poison()?;
        if after_lsn >= self.last_lsn() {
            return Ok(0);
        }
        if let Some(first) = self.segments.first() {
            if after_lsn + 1 < first.first_lsn {
                return Err(corrupt(
                    &first.path,
                    0,
                    format!(
                        "records after LSN {after_lsn} are needed but the log starts at LSN {} \
                         (segments were removed)",
                        first.first_lsn
                    ),
                )
                .into());
            }
        }
        let mut replayed = 0;
        let mut payload = Vec::new();
        for (i, seg) in self.segments.iter().enumerate() {
            let seg_end = self
                .segments
                .get(i + 1)
                .map_or(self.next_lsn, |s| s.first_lsn);
            if seg_end <= after_lsn + 1 {
                continue; // every record of this segment is <= after_lsn
            }
            let file = File::open(&seg.path).map_err(|e| PersistError::io("open", &seg.path, e))?;
            let mut reader = BufReader::with_capacity(READ_BUF, file);
            let read_err = |e| PersistError::io("read", &seg.path, e);
            reader.seek(SeekFrom::Start(HEADER_LEN)).map_err(read_err)?;
            let mut off = HEADER_LEN;
            let mut lsn = seg.first_lsn;
            while off < seg.len {
                let mut head = [0u8; FRAME_HEADER_LEN as usize];
                if seg.len - off < FRAME_HEADER_LEN {
                    return Err(changed(&seg.path, off).into());
                }
                reader.read_exact(&mut head).map_err(read_err)?;
                let (len, crc, frame_lsn) = parse_frame_header(&head);
                let frame_len = FRAME_HEADER_LEN + len as u64;
                if len as usize > MAX_RECORD_BYTES || frame_len > seg.len - off || frame_lsn != lsn
                {
                    return Err(changed(&seg.path, off).into());
                }
                if lsn <= after_lsn {
                    reader.seek_relative(len as i64).map_err(read_err)?;
                } else {
                    payload.resize(len as usize, 0);
                    reader.read_exact(&mut payload).map_err(read_err)?;
                    if frame_crc(lsn, &payload) != crc {
                        return Err(changed(&seg.path, off).into());
                    }
                    f(lsn, &payload)?;
                    replayed += 1;
                    if payload.capacity() > KEEP_BUF {
                        payload = Vec::new();
                    }
                }
                off += frame_len;
                lsn += 1;
            }
        }
        Ok(replayed)
    }

    /// Deletes the segments all of whose records have LSNs below `lsn` (never the current
    /// segment), oldest first, then fsyncs the directory; returns how many were deleted.
    /// After a snapshot that covers every record up to LSN `s` is durable, call it with the
    /// `s + 1` of the oldest snapshot still kept, so that falling back to that snapshot
    /// still finds the records after it.
    pub fn remove_segments_before(&mut self, lsn: u64) -> Result<usize, PersistError> {
        self.check_usable()?;
        let mut n = 0;
        while n + 1 < self.segments.len() && self.segments[n + 1].first_lsn <= lsn {
            n += 1;
        }
        self.remove_oldest(n)
    }

    /// Makes the next appended record get an LSN greater than `lsn`. Does nothing if
    /// `lsn <= last_lsn()`. Otherwise the log is behind a snapshot at `lsn` (its tail was
    /// lost, e.g. under `Never` after a power failure): every segment is deleted (their
    /// records are all covered by that snapshot) and the next append starts a segment at
    /// `lsn + 1`. Without this, new records would reuse LSNs the snapshot already covers and
    /// be skipped by the next replay.
    pub fn advance_past(&mut self, lsn: u64) -> Result<(), PersistError> {
        self.check_usable()?;
        if lsn < self.next_lsn {
            return Ok(());
        }
        let next = lsn.checked_add(1).ok_or_else(|| {
            PersistError::io("advance", &self.dir, io::Error::other("LSN out of range"))
        })?;
        // Oldest first: an interruption leaves a shorter log, never one with a hole.
        let all = self.segments.len();
        self.remove_oldest(all.saturating_sub(1))?;
        if let Some(last) = self.segments.last() {
            let path = last.path.clone();
            fs::remove_file(&path).map_err(|e| PersistError::io("remove", &path, e))?;
            self.segments.clear();
            self.file = None;
            self.unsynced = false;
            sync_dir(&self.dir).map_err(|e| PersistError::io("fsync", &self.dir, e))?;
        }
        self.next_lsn = next;
        Ok(())
    }

    // -- internals ------------------------------------------------------------------------

    fn check_poison(&self) -> Result<(), PersistError> {
        match &self.poisoned {
            Some(m) => Err(PersistError::Poisoned(m.clone())),
            None => Ok(()),
        }
    }

    /// Fails if poisoned, or if the interval thread reported an fsync error (which poisons).
    fn check_usable(&mut self) -> Result<(), PersistError> {
        self.check_poison()?;
        let failed = self.syncer.as_ref().and_then(|s| s.lock().error.clone());
        match failed {
            Some(m) => Err(self.poison(m)),
            None => Ok(()),
        }
    }

    fn poison(&mut self, message: String) -> PersistError {
        self.poisoned = Some(message.clone());
        PersistError::Poisoned(message)
    }

    fn current_path(&self) -> &Path {
        &self.segments[self.segments.len() - 1].path
    }

    /// Makes sure a current segment exists with room for `total` more bytes.
    fn prepare_segment(&mut self, total: u64) -> Result<(), PersistError> {
        let Some(seg) = self.segments.last() else {
            return self.create_segment();
        };
        if seg.len == HEADER_LEN || seg.len + total <= self.segment_bytes {
            return Ok(());
        }
        if self.unsynced {
            // The next segment must not reach the disk before this one's tail does.
            let file = self.file.as_mut().expect("current segment is open");
            if let Err(e) = file.sync_data() {
                let msg = PersistError::io("fsync", self.current_path(), e).to_string();
                return Err(self.poison(msg));
            }
            self.unsynced = false;
        }
        self.create_segment()
    }

    /// Creates the segment starting at `next_lsn` and makes it current: header written to a
    /// temporary file, fsynced, renamed, directory fsynced.
    fn create_segment(&mut self) -> Result<(), PersistError> {
        let name = segment_file_name(self.next_lsn);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let header = encode_header(self.next_lsn);
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&header)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(PersistError::io("create", &tmp, e));
        }
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(PersistError::io("rename", &tmp, e));
        }
        let opened = sync_dir(&self.dir)
            .map_err(|e| PersistError::io("fsync", &self.dir, e))
            .and_then(|()| {
                let file = self
                    .opener
                    .open(&path)
                    .map_err(|e| PersistError::io("open", &path, e))?;
                let clone = match &self.syncer {
                    Some(_) => Some(
                        file.try_clone()
                            .map_err(|e| PersistError::io("open", &path, e))?,
                    ),
                    None => None,
                };
                Ok((file, clone))
            });
        let (file, clone) = match opened {
            Ok(x) => x,
            Err(err) => {
                // Leaving an empty segment behind while appending to the previous one would
                // put the LSNs out of order on disk.
                let undone = fs::remove_file(&path).and_then(|()| sync_dir(&self.dir));
                return Err(match undone {
                    Ok(()) => err,
                    Err(e) => self.poison(format!(
                        "{err}; removing the new segment {} also failed: {e}",
                        path.display()
                    )),
                });
            }
        };
        if let (Some(syncer), Some(clone)) = (&self.syncer, clone) {
            syncer.lock().new_file = Some((path.clone(), clone));
        }
        self.segments.push(Segment {
            first_lsn: self.next_lsn,
            path,
            len: HEADER_LEN,
        });
        self.file = Some(file);
        self.unsynced = false;
        Ok(())
    }

    /// Writes `n` encoded frames at the end of the current segment and syncs per policy;
    /// on failure rolls the segment back to its previous length.
    fn write_frames(&mut self, bytes: &[u8], n: u64) -> Result<u64, PersistError> {
        let before = self.segments[self.segments.len() - 1].len;
        let file = self.file.as_mut().expect("current segment is open");
        if let Err(e) = file.write_all_at_end(bytes) {
            return Err(self.roll_back(before, "write", e));
        }
        if self.policy == SyncPolicy::Always {
            let start = Instant::now();
            if let Err(e) = file.sync_data() {
                return Err(self.roll_back(before, "fsync", e));
            }
            self.fsync_seconds.observe(start.elapsed().as_secs_f64());
        } else {
            self.unsynced = true;
            if let Some(syncer) = &self.syncer {
                syncer.lock().dirty = true;
            }
        }
        let last = self.segments.len() - 1;
        self.segments[last].len += bytes.len() as u64;
        self.appended_bytes += bytes.len() as u64;
        self.next_lsn += n;
        Ok(self.next_lsn - 1)
    }

    fn roll_back(&mut self, before: u64, op: &'static str, err: io::Error) -> PersistError {
        let failed = PersistError::io(op, self.current_path(), err);
        let file = self.file.as_mut().expect("current segment is open");
        match file.set_len(before).and_then(|()| file.sync_data()) {
            Ok(()) => failed,
            Err(e) => self.poison(format!(
                "{failed}; truncating it back to {before} bytes also failed: {e}"
            )),
        }
    }

    /// Deletes the `n` oldest segments (never all of them), then fsyncs the directory.
    fn remove_oldest(&mut self, n: usize) -> Result<usize, PersistError> {
        if n == 0 {
            return Ok(0);
        }
        let mut removed = 0;
        let mut result = Ok(());
        for seg in &self.segments[..n] {
            match fs::remove_file(&seg.path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => removed += 1,
                Err(e) => {
                    result = Err(PersistError::io("remove", &seg.path, e));
                    break;
                }
            }
        }
        self.segments.drain(..removed);
        if removed > 0 {
            sync_dir(&self.dir).map_err(|e| PersistError::io("fsync", &self.dir, e))?;
        }
        result.map(|()| removed)
    }
}

impl Drop for Wal {
    /// Under `Interval`, stops the sync thread, which fsyncs whatever was written since its
    /// last fsync. An error there can only be logged.
    fn drop(&mut self) {
        if let Some(syncer) = self.syncer.take() {
            syncer.stop();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The interval sync thread
// ---------------------------------------------------------------------------------------

struct Syncer {
    shared: Arc<SyncShared>,
    thread: Option<JoinHandle<()>>,
}

struct SyncShared {
    ctl: Mutex<SyncCtl>,
    wake: Condvar,
}

#[derive(Default)]
struct SyncCtl {
    stop: bool,
    /// Written since the thread's last fsync.
    dirty: bool,
    /// A handle to a new current segment, for the thread to adopt.
    new_file: Option<(PathBuf, Box<dyn SegmentFile>)>,
    /// The thread's fsync failed; the WAL is poisoned.
    error: Option<String>,
}

impl Syncer {
    fn start(
        ms: u64,
        file: Option<(PathBuf, Box<dyn SegmentFile>)>,
        dir: &Path,
    ) -> Result<Syncer, PersistError> {
        let shared = Arc::new(SyncShared {
            ctl: Mutex::new(SyncCtl {
                new_file: file,
                ..SyncCtl::default()
            }),
            wake: Condvar::new(),
        });
        let interval = Duration::from_millis(ms.max(1));
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("strata-wal-sync".into())
            .spawn(move || sync_loop(&thread_shared, interval))
            .map_err(|e| PersistError::io("start the sync thread for", dir, e))?;
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SyncCtl> {
        lock(&self.shared.ctl)
    }

    fn stop(mut self) {
        self.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(m: &Mutex<SyncCtl>) -> MutexGuard<'_, SyncCtl> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn sync_loop(shared: &SyncShared, interval: Duration) {
    let mut file: Option<(PathBuf, Box<dyn SegmentFile>)> = None;
    let mut ctl = lock(&shared.ctl);
    loop {
        if !ctl.stop {
            ctl = shared
                .wake
                .wait_timeout(ctl, interval)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if let Some(new) = ctl.new_file.take() {
            file = Some(new);
        }
        let dirty = std::mem::take(&mut ctl.dirty) && ctl.error.is_none();
        let stop = ctl.stop;
        drop(ctl);
        if dirty {
            if let Some((path, f)) = file.as_mut() {
                if let Err(e) = f.sync_data() {
                    let msg = PersistError::io("fsync", path, e).to_string();
                    tracing::error!("WAL background {msg}");
                    lock(&shared.ctl).error = Some(msg);
                }
            }
        }
        if stop {
            return;
        }
        ctl = lock(&shared.ctl);
    }
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

fn encode_header(first_lsn: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

fn frame_crc(lsn: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&lsn.to_le_bytes()), payload)
}

fn encode_frame(buf: &mut Vec<u8>, lsn: u64, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&frame_crc(lsn, payload).to_le_bytes());
    buf.extend_from_slice(&lsn.to_le_bytes());
    buf.extend_from_slice(payload);
}

fn parse_frame_header(h: &[u8]) -> (u32, u32, u64) {
    let len = u32::from_le_bytes(h[0..4].try_into().unwrap());
    let crc = u32::from_le_bytes(h[4..8].try_into().unwrap());
    let lsn = u64::from_le_bytes(h[8..16].try_into().unwrap());
    (len, crc, lsn)
}

fn corrupt(file: &Path, offset: u64, reason: String) -> PersistError {
    PersistError::CorruptWal {
        file: file.display().to_string(),
        offset,
        reason,
    }
}

fn changed(file: &Path, offset: u64) -> PersistError {
    corrupt(
        file,
        offset,
        "the record changed on disk since the WAL was opened".into(),
    )
}

fn sync_dir(dir: &Path) -> io::Result<()> {
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

// ---------------------------------------------------------------------------------------
// Recovery
// ---------------------------------------------------------------------------------------

/// The kept segments, the next LSN, and what was truncated or repaired.
type RecoveryResult = (Vec<Segment>, u64, Option<Truncation>, Option<Truncation>);

/// Lists the segments, oldest first, and deletes leftover temporary files.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, PersistError> {
    let mut found = Vec::new();
    let mut removed_tmp = false;
    let entries = fs::read_dir(dir).map_err(|e| PersistError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| PersistError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TMP_EXT) {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| PersistError::io("remove", &path, e))?;
            removed_tmp = true;
        } else if let Some(stem) = name.strip_suffix(SEGMENT_EXT) {
            if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(lsn) = stem.parse::<u64>() {
                    found.push((lsn, entry.path()));
                }
            }
        }
    }
    if removed_tmp {
        sync_dir(dir).map_err(|e| PersistError::io("fsync", dir, e))?;
    }
    found.sort();
    Ok(found)
}

/// A bad spot in the log: the segment index, the offset, the LSN the record there should
/// have had, and why.
struct Damage {
    index: usize,
    offset: u64,
    lsn: u64,
    reason: String,
}

fn recover(dir: &Path, on_corruption: OnCorruption) -> Result<RecoveryResult, PersistError> {
    let files = list_segments(dir)?;
    let mut kept: Vec<Segment> = Vec::new();
    // The LSN the next record must have; None until the first segment fixes it.
    let mut expected: Option<u64> = None;
    let mut truncated_tail = None;
    let mut damage = None;

    for (index, (name_lsn, path)) in files.iter().enumerate() {
        let is_last = index + 1 == files.len();
        let file_len = fs::metadata(path)
            .map_err(|e| PersistError::io("stat", path, e))?
            .len();
        let file = File::open(path).map_err(|e| PersistError::io("open", path, e))?;
        let mut reader = BufReader::with_capacity(READ_BUF, file);

        // Header.
        let mut header = [0u8; HEADER_LEN as usize];
        let got =
            read_up_to(&mut reader, &mut header).map_err(|e| PersistError::io("read", path, e))?;
        let magic_len = got.min(MAGIC.len());
        if header[..magic_len] != MAGIC[..magic_len] {
            return Err(PersistError::BadMagic {
                file: path.display().to_string(),
                kind: "WAL segment",
            });
        }
        if got < HEADER_LEN as usize {
            if is_last {
                // Only an interrupted creation can leave this (segments are renamed into
                // place complete), so it holds no records: drop the file.
                fs::remove_file(path).map_err(|e| PersistError::io("remove", path, e))?;
                sync_dir(dir).map_err(|e| PersistError::io("fsync", dir, e))?;
                truncated_tail = Some(Truncation {
                    file: path.clone(),
                    offset: 0,
                    bytes_dropped: file_len,
                    reason: format!("partial segment header ({got} of {HEADER_LEN} bytes)"),
                });
                expected.get_or_insert(*name_lsn);
                break;
            }
            damage = Some(Damage {
                index,
                offset: 0,
                lsn: expected.unwrap_or(*name_lsn),
                reason: format!("partial segment header ({got} of {HEADER_LEN} bytes)"),
            });
            break;
        }
        let version = u32::from_le_bytes(header[8..12].try_into().unwrap());
        if version > FORMAT_VERSION {
            return Err(PersistError::UnsupportedVersion {
                file: path.display().to_string(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let first_lsn = u64::from_le_bytes(header[12..20].try_into().unwrap());
        let crc = u32::from_le_bytes(header[20..24].try_into().unwrap());
        let header_problem = if crc32c::crc32c(&header[..20]) != crc {
            Some("segment header checksum mismatch".to_string())
        } else if version == 0 {
            Some("segment header has format version 0".to_string())
        } else if first_lsn != *name_lsn || first_lsn == 0 {
            Some(format!(
                "segment header says first LSN {first_lsn}, the file name {name_lsn}"
            ))
        } else {
            match expected {
                Some(e) if e != first_lsn => Some(format!(
                    "segment starts at LSN {first_lsn} but the previous one ends at LSN {} \
                     (a segment is missing or out of order)",
                    e - 1
                )),
                _ => None,
            }
        };
        if let Some(reason) = header_problem {
            damage = Some(Damage {
                index,
                offset: 0,
                lsn: expected.unwrap_or(*name_lsn),
                reason,
            });
            break;
        }

        // Frames.
        match scan_frames(&mut reader, path, file_len, first_lsn)? {
            ScanEnd::Clean { next_lsn } => {
                kept.push(Segment {
                    first_lsn,
                    path: path.clone(),
                    len: file_len,
                });
                expected = Some(next_lsn);
            }
            ScanEnd::Bad {
                offset,
                lsn,
                reason,
            } => {
                let valid_after = valid_frame_after(path, offset + 1, file_len, lsn)?;
                if is_last && valid_after.is_none() {
                    truncate_file(path, offset)?;
                    truncated_tail = Some(Truncation {
                        file: path.clone(),
                        offset,
                        bytes_dropped: file_len - offset,
                        reason,
                    });
                    kept.push(Segment {
                        first_lsn,
                        path: path.clone(),
                        len: offset,
                    });
                    expected = Some(lsn);
                } else {
                    let reason = match valid_after {
                        Some(at) => format!("{reason}; a valid record follows at offset {at}"),
                        None => format!("{reason}; later segments follow"),
                    };
                    // The good prefix of this segment is kept if repairing.
                    kept.push(Segment {
                        first_lsn,
                        path: path.clone(),
                        len: offset,
                    });
                    expected = Some(lsn);
                    damage = Some(Damage {
                        index,
                        offset,
                        lsn,
                        reason,
                    });
                }
                break;
            }
        }
    }

    let mut repaired = None;
    if let Some(Damage {
        index,
        offset,
        lsn,
        reason,
    }) = damage
    {
        let path = &files[index].1;
        let covered_lsn = match on_corruption {
            OnCorruption::Refuse => return Err(corrupt(path, offset, reason)),
            OnCorruption::Repair { covered_lsn } => covered_lsn,
        };
        if lsn <= covered_lsn {
            if let Some(dropped) = skip_covered_damage(dir, &files, index, offset, covered_lsn)? {
                // The log now starts after the damage; check what is left the same way.
                let (kept, next, tail, _) = recover(dir, on_corruption)?;
                let repaired = Truncation {
                    file: path.clone(),
                    offset,
                    bytes_dropped: dropped,
                    reason: format!(
                        "{reason}; a snapshot covers every record up to LSN {covered_lsn}, so \
                         the log before LSN {} was dropped and the records from it on kept",
                        covered_lsn + 1
                    ),
                };
                return Ok((kept, next, tail, Some(repaired)));
            }
        }
        // Cut the log at the damage: truncate (or delete) this file, delete the later ones.
        let mut dropped = 0;
        for (i, (_, p)) in files.iter().enumerate().skip(index) {
            let len = fs::metadata(p)
                .map_err(|e| PersistError::io("stat", p, e))?
                .len();
            if i == index && offset > 0 {
                truncate_file(p, offset)?;
                dropped += len - offset;
            } else {
                fs::remove_file(p).map_err(|e| PersistError::io("remove", p, e))?;
                dropped += len;
            }
        }
        sync_dir(dir).map_err(|e| PersistError::io("fsync", dir, e))?;
        if offset == 0 {
            // The damaged segment is gone; the log continues where the previous one ended.
            expected.get_or_insert(files[index].0);
        }
        repaired = Some(Truncation {
            file: path.clone(),
            offset,
            bytes_dropped: dropped,
            reason,
        });
    }
    Ok((kept, expected.unwrap_or(1), truncated_tail, repaired))
}

/// Damage at `offset` of `files[index]` hit a record that a snapshot covers (every LSN up
/// to `covered_lsn`). If the records from `covered_lsn + 1` on are there after the damage,
/// drops the log before them instead of cutting it at the damage: segments that hold only
/// covered records are deleted, and a damaged segment holding both is replaced by a new
/// segment with its records from `covered_lsn + 1` on. Returns the bytes dropped, or `None`
/// (nothing changed) if record `covered_lsn + 1` is not found intact after the damage.
///
/// Crash-safe: the new segment is complete before any old file is deleted, and old files are
/// deleted oldest first, so an interruption leaves a log that recovery repairs the same way.
fn skip_covered_damage(
    dir: &Path,
    files: &[(u64, PathBuf)],
    index: usize,
    offset: u64,
    covered_lsn: u64,
) -> Result<Option<u64>, PersistError> {
    let wanted = covered_lsn + 1;
    let size = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| PersistError::io("stat", p, e))
    };
    let remove = |p: &Path| fs::remove_file(p).map_err(|e| PersistError::io("remove", p, e));
    // A later segment that starts at or before the wanted record: every record before it
    // goes, including the damage.
    if let Some(keep_from) = (index + 1..files.len()).rfind(|&j| files[j].0 <= wanted) {
        let mut dropped = 0;
        for (_, p) in &files[..keep_from] {
            dropped += size(p)?;
            remove(p)?;
        }
        sync_dir(dir).map_err(|e| PersistError::io("fsync", dir, e))?;
        return Ok(Some(dropped));
    }
    // Otherwise the wanted record must be in the damaged segment itself, after the damage.
    let path = &files[index].1;
    let file_len = size(path)?;
    // A damaged header (offset 0) may still be followed by intact frames.
    let search_from = if offset == 0 { HEADER_LEN } else { offset + 1 };
    let Some(at) = valid_frame_after(path, search_from, file_len, wanted)? else {
        return Ok(None);
    };
    let mut file = File::open(path).map_err(|e| PersistError::io("open", path, e))?;
    let mut head = [0u8; FRAME_HEADER_LEN as usize];
    file.seek(SeekFrom::Start(at))
        .and_then(|_| file.read_exact(&mut head))
        .map_err(|e| PersistError::io("read", path, e))?;
    if parse_frame_header(&head).2 != wanted {
        // The first intact record after the damage is a later one: the wanted one is lost.
        return Ok(None);
    }
    let name = segment_file_name(wanted);
    let tmp = dir.join(format!("{name}.tmp"));
    let copied = (|| {
        let mut out = File::create(&tmp)?;
        out.write_all(&encode_header(wanted))?;
        file.seek(SeekFrom::Start(at))?;
        io::copy(&mut file, &mut out)?;
        out.sync_all()?;
        fs::rename(&tmp, dir.join(&name))
    })();
    if let Err(e) = copied {
        let _ = fs::remove_file(&tmp);
        return Err(PersistError::io("rewrite", path, e));
    }
    sync_dir(dir).map_err(|e| PersistError::io("fsync", dir, e))?;
    let mut dropped = at - HEADER_LEN;
    for (_, p) in &files[..index] {
        dropped += size(p)?;
    }
    for (_, p) in &files[..=index] {
        remove(p)?;
    }
    sync_dir(dir).map_err(|e| PersistError::io("fsync", dir, e))?;
    Ok(Some(dropped))
}

enum ScanEnd {
    /// Every frame was valid up to the end of the file.
    Clean { next_lsn: u64 },
    /// The frame at `offset`, which should have had LSN `lsn`, is bad.
    Bad {
        offset: u64,
        lsn: u64,
        reason: String,
    },
}

/// Checks the frames of one segment from just after its header to the end of the file,
/// streaming (payloads are checksummed in chunks, never held whole).
fn scan_frames(
    reader: &mut BufReader<File>,
    path: &Path,
    file_len: u64,
    first_lsn: u64,
) -> Result<ScanEnd, PersistError> {
    let read_err = |e| PersistError::io("read", path, e);
    let mut offset = HEADER_LEN;
    let mut lsn = first_lsn;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            return Ok(ScanEnd::Clean { next_lsn: lsn });
        }
        let bad = |reason: String| {
            Ok(ScanEnd::Bad {
                offset,
                lsn,
                reason,
            })
        };
        if remaining < FRAME_HEADER_LEN {
            return bad(format!(
                "partial record header ({remaining} of {FRAME_HEADER_LEN} bytes)"
            ));
        }
        let mut head = [0u8; FRAME_HEADER_LEN as usize];
        reader.read_exact(&mut head).map_err(read_err)?;
        let (len, crc, frame_lsn) = parse_frame_header(&head);
        if len as usize > MAX_RECORD_BYTES {
            return bad(format!(
                "record length {len} exceeds the limit of {MAX_RECORD_BYTES}"
            ));
        }
        if FRAME_HEADER_LEN + len as u64 > remaining {
            return bad(format!(
                "record of {len} bytes runs past the end of the file ({} bytes left)",
                remaining - FRAME_HEADER_LEN
            ));
        }
        let mut actual = crc32c::crc32c(&frame_lsn.to_le_bytes());
        let mut left = len as usize;
        while left > 0 {
            let n = left.min(chunk.len());
            reader.read_exact(&mut chunk[..n]).map_err(read_err)?;
            actual = crc32c::crc32c_append(actual, &chunk[..n]);
            left -= n;
        }
        if actual != crc {
            return bad("record checksum mismatch".into());
        }
        if frame_lsn != lsn {
            return bad(format!("record has LSN {frame_lsn}, expected {lsn}"));
        }
        offset += FRAME_HEADER_LEN + len as u64;
        lsn += 1;
    }
}

/// Searches `path` from offset `start` to its end for a valid frame with an LSN of at least
/// `min_lsn` (one that a bad frame could have hidden). Returns its offset. Runs only after
/// a bad frame was found, so a byte-by-byte search is fine; a cheap plausibility check on
/// each position keeps checksum verification rare.
fn valid_frame_after(
    path: &Path,
    start: u64,
    file_len: u64,
    min_lsn: u64,
) -> Result<Option<u64>, PersistError> {
    if start + FRAME_HEADER_LEN > file_len {
        return Ok(None);
    }
    let read_err = |e| PersistError::io("read", path, e);
    // Every frame takes at least FRAME_HEADER_LEN bytes, which bounds the LSN a frame in
    // the rest of the file can have.
    let max_lsn = min_lsn.saturating_add((file_len - start) / FRAME_HEADER_LEN + 1);
    let mut file = File::open(path).map_err(|e| PersistError::io("open", path, e))?;
    let mut verify = File::open(path).map_err(|e| PersistError::io("open", path, e))?;
    file.seek(SeekFrom::Start(start)).map_err(read_err)?;
    let mut window: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut base = start; // file offset of window[0]
    let mut chunk = vec![0u8; 1 << 20];
    let mut eof = false;
    loop {
        if !eof {
            let n = file.read(&mut chunk).map_err(read_err)?;
            if n == 0 {
                eof = true;
            }
            window.extend_from_slice(&chunk[..n]);
        }
        let h = FRAME_HEADER_LEN as usize;
        let mut p = 0;
        while p + h <= window.len() {
            let (len, crc, lsn) = parse_frame_header(&window[p..p + h]);
            let at = base + p as u64;
            if (min_lsn..=max_lsn).contains(&lsn)
                && len as usize <= MAX_RECORD_BYTES
                && at + FRAME_HEADER_LEN + len as u64 <= file_len
                && crc_matches(&mut verify, at + FRAME_HEADER_LEN, len, lsn, crc)
                    .map_err(read_err)?
            {
                return Ok(Some(at));
            }
            p += 1;
        }
        if eof {
            return Ok(None);
        }
        window.drain(..p);
        base += p as u64;
    }
}

fn crc_matches(file: &mut File, offset: u64, len: u32, lsn: u64, crc: u32) -> io::Result<bool> {
    file.seek(SeekFrom::Start(offset))?;
    let mut actual = crc32c::crc32c(&lsn.to_le_bytes());
    let mut chunk = vec![0u8; (len as usize).min(64 * 1024)];
    let mut left = len as usize;
    while left > 0 {
        let n = left.min(chunk.len());
        file.read_exact(&mut chunk[..n])?;
        actual = crc32c::crc32c_append(actual, &chunk[..n]);
        left -= n;
    }
    Ok(actual == crc)
}

fn truncate_file(path: &Path, len: u64) -> Result<(), PersistError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| PersistError::io("open", path, e))?;
    f.set_len(len)
        .map_err(|e| PersistError::io("truncate", path, e))?;
    f.sync_all().map_err(|e| PersistError::io("fsync", path, e))
}

/// Reads until `buf` is full or the end of the input; returns how many bytes were read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
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
