//! What [`Wal::open`](super::Wal::open) does first: scan every segment, truncate a torn
//! tail, and refuse or repair corruption (see the [module docs](super)).

use super::format::*;
use super::segment::{read_up_to, sync_dir, truncate_file};
use super::Segment;
use crate::error::PersistError;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

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
    #[cfg(feature = "testing")]
    /// Number of records in the log.
    pub fn records(&self) -> u64 {
        self.last_lsn + 1 - self.first_lsn
    }
}

pub(super) fn corrupt(file: &Path, offset: u64, reason: String) -> PersistError {
    PersistError::CorruptWal {
        file: file.display().to_string(),
        offset,
        reason,
    }
}

pub(super) fn changed(file: &Path, offset: u64) -> PersistError {
    corrupt(
        file,
        offset,
        "the record changed on disk since the WAL was opened".into(),
    )
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

pub(super) fn recover(
    dir: &Path,
    on_corruption: OnCorruption,
) -> Result<RecoveryResult, PersistError> {
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
