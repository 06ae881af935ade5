//! The byte layout of WAL segments (see the [module docs](super)): constants, the segment
//! header and record frames.

use std::path::{Path, PathBuf};

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

pub(super) const SEGMENT_EXT: &str = ".wal";
pub(super) const TMP_EXT: &str = ".wal.tmp";
pub(super) const READ_BUF: usize = 256 * 1024;
/// The write buffer is shrunk back to this after an append of a larger batch.
pub(super) const KEEP_BUF: usize = 8 << 20;

/// The WAL directory of a data directory: `<data_dir>/wal`.
pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(WAL_DIR)
}

#[cfg(feature = "object-store")]
/// Whether the WAL directory `dir` holds any record: a segment longer than its header.
/// (A missing directory holds none.)
pub fn holds_records(dir: &Path) -> std::io::Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let is_segment = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(SEGMENT_EXT));
        if is_segment && entry.metadata()?.len() > HEADER_LEN {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The file name of the segment whose first record has LSN `first_lsn`.
pub fn segment_file_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}{SEGMENT_EXT}")
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

pub(super) fn encode_header(first_lsn: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

pub(super) fn frame_crc(lsn: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&lsn.to_le_bytes()), payload)
}

pub(super) fn encode_frame(buf: &mut Vec<u8>, lsn: u64, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&frame_crc(lsn, payload).to_le_bytes());
    buf.extend_from_slice(&lsn.to_le_bytes());
    buf.extend_from_slice(payload);
}

pub(super) fn parse_frame_header(h: &[u8]) -> (u32, u32, u64) {
    let len = u32::from_le_bytes(h[0..4].try_into().unwrap());
    let crc = u32::from_le_bytes(h[4..8].try_into().unwrap());
    let lsn = u64::from_le_bytes(h[8..16].try_into().unwrap());
    (len, crc, lsn)
}
