//! Reading a WAL's records back, in order: what recovery applies after a snapshot.

use super::format::{
    frame_crc, parse_frame_header, FRAME_HEADER_LEN, HEADER_LEN, KEEP_BUF, MAX_RECORD_BYTES,
    READ_BUF,
};
use super::recovery::changed;
use super::Segment;
use crate::error::PersistError;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

/// The records of a WAL after some LSN, read segment by segment from the files
/// ([`Wal::replay`](super::Wal::replay)). Not an `Iterator`: each payload is lent from one
/// reused buffer.
pub struct Replay {
    /// The segments still to read, oldest first, with their valid lengths.
    segments: std::vec::IntoIter<Segment>,
    after_lsn: u64,
    current: Option<Reading>,
    payload: Vec<u8>,
}

/// The segment being read.
struct Reading {
    segment: Segment,
    reader: BufReader<File>,
    offset: u64,
    lsn: u64,
}

impl Replay {
    pub(super) fn new(segments: Vec<Segment>, after_lsn: u64) -> Replay {
        Replay {
            segments: segments.into_iter(),
            after_lsn,
            current: None,
            payload: Vec::new(),
        }
    }

    /// The next record after the starting LSN: its LSN and payload; `None` at the end.
    pub fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, PersistError> {
        loop {
            let reading = match &mut self.current {
                Some(r) if r.offset < r.segment.len => r,
                _ => {
                    let Some(segment) = self.segments.next() else {
                        return Ok(None);
                    };
                    let path = &segment.path;
                    let file = File::open(path).map_err(|e| PersistError::io("open", path, e))?;
                    let mut reader = BufReader::with_capacity(READ_BUF, file);
                    reader
                        .seek(SeekFrom::Start(HEADER_LEN))
                        .map_err(|e| PersistError::io("read", path, e))?;
                    let lsn = segment.first_lsn;
                    self.current.insert(Reading {
                        segment,
                        reader,
                        offset: HEADER_LEN,
                        lsn,
                    })
                }
            };
            let path = &reading.segment.path;
            let read_err = |e| PersistError::io("read", path, e);
            let (off, lsn, len) = (reading.offset, reading.lsn, reading.segment.len);
            if len - off < FRAME_HEADER_LEN {
                return Err(changed(path, off));
            }
            let mut head = [0u8; FRAME_HEADER_LEN as usize];
            reading.reader.read_exact(&mut head).map_err(read_err)?;
            let (payload_len, crc, frame_lsn) = parse_frame_header(&head);
            let frame_len = FRAME_HEADER_LEN + payload_len as u64;
            if payload_len as usize > MAX_RECORD_BYTES || frame_len > len - off || frame_lsn != lsn
            {
                return Err(changed(path, off));
            }
            reading.offset += frame_len;
            reading.lsn += 1;
            if lsn <= self.after_lsn {
                reading
                    .reader
                    .seek_relative(payload_len as i64)
                    .map_err(read_err)?;
                continue;
            }
            if self.payload.capacity() > KEEP_BUF {
                self.payload = Vec::new();
            }
            self.payload.resize(payload_len as usize, 0);
            reading
                .reader
                .read_exact(&mut self.payload)
                .map_err(read_err)?;
            if frame_crc(lsn, &self.payload) != crc {
                return Err(changed(path, off));
            }
            return Ok(Some((lsn, &self.payload)));
        }
    }
}
