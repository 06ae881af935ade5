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
//! - [`SyncMode::Always`]: [`Wal::append`] returns `Ok` only after `fdatasync` of the
//!   segment. A crash (of the process, the OS or the power) loses no acknowledged record.
//!   [`Wal::append_batch`] writes several records with one write and one fsync (group
//!   commit).
//! - [`SyncMode::Interval`]: appends return once the bytes are written to the OS. A
//!   background thread fsyncs the current segment every `ms` milliseconds if anything was
//!   written since. A crash of the process alone loses nothing (the OS still holds the
//!   bytes); a crash of the OS or a power failure loses at most the records of the last
//!   `ms` milliseconds (plus the duration of one fsync). A failed background fsync poisons
//!   the WAL: records acknowledged since the previous sync may be gone from the disk, so the
//!   process must restart and recover from what the disk holds.
//! - [`SyncMode::Never`]: strata does not fsync appended records; the OS writes them back
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
//! [`Wal::open_with`] takes another opener: with the `testing` feature, `FaultInjector`,
//! which makes the n-th write, fsync or truncation fail and counts the calls.
//!
//! # Files of this module
//!
//! | file | owns |
//! |---|---|
//! | `format.rs` | the byte layout: constants, segment header and record frames |
//! | `segment.rs` | segment files: the append handle and its opener, directory fsync |
//! | `syncer.rs` | the background fsync thread of the interval policy |
//! | `recovery.rs` | the scan at open: torn tails, corruption, repair |
//! | `replay.rs` | reading the records back, in order |
//! | `faults.rs` | fault injection (feature `testing`) |

#[cfg(feature = "testing")]
mod faults;
mod format;
mod recovery;
mod replay;
mod segment;
mod syncer;

#[cfg(feature = "testing")]
pub use faults::FaultInjector;
#[cfg(feature = "object-store")]
pub use format::holds_records;
pub use format::{segment_file_name, wal_dir, FRAME_HEADER_LEN, HEADER_LEN, MAX_RECORD_BYTES};
#[cfg(feature = "testing")]
pub use format::{FORMAT_VERSION, MAGIC, WAL_DIR};
#[cfg(feature = "testing")]
pub use recovery::Truncation;
pub use recovery::{OnCorruption, Recovered};
pub use replay::Replay;
pub use segment::{FsOpener, SegmentFile, SegmentOpener};

use format::*;
use recovery::{corrupt, recover};
use segment::sync_dir;
use syncer::Syncer;

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::checkpoint::SyncMode;
use crate::error::PersistError;
use crate::metrics::Histogram;

// ---------------------------------------------------------------------------------------
// The WAL
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
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
    policy: SyncMode,
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
    /// With [`SyncMode::Interval`] this starts the background sync thread.
    pub fn open(
        dir: &Path,
        sync: SyncMode,
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
        sync: SyncMode,
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
            SyncMode::Interval { ms } => {
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
            SyncMode::Always | SyncMode::Never => None,
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

    #[cfg(feature = "testing")]
    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    #[cfg(feature = "testing")]
    /// The sync policy it was opened with.
    pub fn policy(&self) -> SyncMode {
        self.policy
    }

    /// LSN of the last record in the log, 0 if none was ever written.
    pub fn last_lsn(&self) -> u64 {
        self.next_lsn - 1
    }

    #[cfg(feature = "testing")]
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

    /// The records with an LSN greater than `after_lsn`, in order, read back from the
    /// segment files one after the other (segments wholly at or before `after_lsn` are not
    /// read; one payload is in memory at a time). The reader owns its files: it stays valid
    /// while this WAL lives on, and it reads the log as [`Wal::open`] found it.
    ///
    /// Fails with [`PersistError::CorruptWal`] if records after `after_lsn` are needed but
    /// were removed (the log starts after `after_lsn + 1`); reading fails the same way if a
    /// file changed since [`Wal::open`] checked it. If `after_lsn >= last_lsn()` there is
    /// nothing to read; when a snapshot is newer than the log, call [`Wal::advance_past`]
    /// before appending.
    pub fn replay(&self, after_lsn: u64) -> Result<Replay, PersistError> {
        self.check_poison()?;
        if after_lsn < self.last_lsn() {
            if let Some(first) = self.segments.first() {
                if after_lsn + 1 < first.first_lsn {
                    return Err(corrupt(
                        &first.path,
                        0,
                        format!(
                            "records after LSN {after_lsn} are needed but the log starts at LSN \
                             {} (segments were removed)",
                            first.first_lsn
                        ),
                    ));
                }
            }
        }
        let segments = self
            .segments
            .iter()
            .enumerate()
            .map(|(i, seg)| {
                let end = self
                    .segments
                    .get(i + 1)
                    .map_or(self.next_lsn, |s| s.first_lsn);
                (seg.clone(), end)
            })
            .filter(|(_, end)| *end > after_lsn + 1)
            .map(|(seg, _)| seg)
            .collect();
        Ok(Replay::new(segments, after_lsn))
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
        if self.policy == SyncMode::Always {
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
