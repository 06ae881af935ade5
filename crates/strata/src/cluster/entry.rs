//! The byte layout of the cluster log's objects, and of an entry's payload.
//!
//! ```text
//! object (little-endian)
//! +-----------+---------+------+----------+-------+-------+-------------+---------+--------+
//! | magic (8) | version | kind | put id   | lsn   | epoch | payload len | payload | CRC32C |
//! | STRATALG  | u32 = 1 | u8   | u128     | u64   | u64   | u32         |         | u32    |
//! +-----------+---------+------+----------+-------+-------+-------------+---------+--------+
//! kind 1: an entry; its payload is a batch of changes (below)
//! kind 2: a fence; `epoch` is the owner the log continues with, the payload is empty
//! the CRC covers every byte before it
//!
//! entry payload: one or more changes, each
//! +------------+-----------+--------------------------------------------------+
//! | request id | length    | the change, as a WAL record (persist::image)      |
//! | u128       | u32       |                                                  |
//! +------------+-----------+--------------------------------------------------+
//! ```
//!
//! The request id names the client request a change came from, so that a node whose
//! request was cut by the failure of the log's owner can learn whether it was appended.

use bytes::{BufMut, Bytes, BytesMut};

const MAGIC: [u8; 8] = *b"STRATALG";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 1 + 16 + 8 + 8 + 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Entry,
    /// The log continues in namespace `next_epoch`, at the same LSN.
    Fence {
        next_epoch: u64,
    },
}

/// One object of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogObject {
    pub kind: ObjectKind,
    /// Random: tells a writer its own object from another's when it reads one back.
    pub put_id: u128,
    pub lsn: u64,
    pub payload: Bytes,
}

pub use crate::persist::random_id;

impl LogObject {
    pub fn entry(lsn: u64, payload: Bytes) -> LogObject {
        LogObject {
            kind: ObjectKind::Entry,
            put_id: random_id(),
            lsn,
            payload,
        }
    }

    pub fn fence(lsn: u64, next_epoch: u64) -> LogObject {
        LogObject {
            kind: ObjectKind::Fence { next_epoch },
            put_id: random_id(),
            lsn,
            payload: Bytes::new(),
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(HEADER_LEN + self.payload.len() + 4);
        b.put_slice(&MAGIC);
        b.put_u32_le(VERSION);
        let (kind, epoch) = match self.kind {
            ObjectKind::Entry => (1u8, 0),
            ObjectKind::Fence { next_epoch } => (2u8, next_epoch),
        };
        b.put_u8(kind);
        b.put_u128_le(self.put_id);
        b.put_u64_le(self.lsn);
        b.put_u64_le(epoch);
        b.put_u32_le(self.payload.len() as u32);
        b.put_slice(&self.payload);
        let crc = crc32c::crc32c(&b);
        b.put_u32_le(crc);
        b.freeze()
    }

    pub fn decode(bytes: &Bytes) -> Result<LogObject, String> {
        if bytes.len() < HEADER_LEN + 4 || bytes[..8] != MAGIC {
            return Err("not a strata log object".into());
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err("checksum mismatch".into());
        }
        let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
        let version = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
        if version > VERSION {
            return Err(format!(
                "format version {version}, but this strata reads up to {VERSION}; use a newer strata"
            ));
        }
        let put_id = u128::from_le_bytes(body[13..29].try_into().expect("16 bytes"));
        let lsn = u64_at(29);
        let epoch = u64_at(37);
        let len = u32::from_le_bytes(body[45..49].try_into().expect("4 bytes")) as usize;
        if HEADER_LEN + len != body.len() {
            return Err("payload length does not match the object's size".into());
        }
        let kind = match body[12] {
            1 => ObjectKind::Entry,
            2 => ObjectKind::Fence { next_epoch: epoch },
            other => return Err(format!("unknown object kind {other}")),
        };
        Ok(LogObject {
            kind,
            put_id,
            lsn,
            payload: bytes.slice(HEADER_LEN..HEADER_LEN + len),
        })
    }
}

/// Writes the changes of one entry.
#[derive(Default)]
pub struct PayloadBuilder {
    buf: BytesMut,
    count: usize,
}

impl PayloadBuilder {
    pub fn push(&mut self, request: u128, change: &[u8]) {
        self.buf.put_u128_le(request);
        self.buf.put_u32_le(change.len() as u32);
        self.buf.put_slice(change);
        self.count += 1;
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// The changes of an entry's payload: `(request id, WAL record bytes)`.
pub fn changes(payload: &Bytes) -> Result<Vec<(u128, Bytes)>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        if payload.len() - at < 20 {
            return Err("a change header runs past the payload".into());
        }
        let request = u128::from_le_bytes(payload[at..at + 16].try_into().expect("16 bytes"));
        let len =
            u32::from_le_bytes(payload[at + 16..at + 20].try_into().expect("4 bytes")) as usize;
        at += 20;
        if payload.len() - at < len {
            return Err("a change runs past the payload".into());
        }
        out.push((request, payload.slice(at..at + len)));
        at += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_and_damage_is_caught() {
        let mut p = PayloadBuilder::default();
        p.push(7, b"first");
        p.push(8, b"second change");
        let entry = LogObject::entry(42, p.finish());
        let bytes = entry.encode();
        let back = LogObject::decode(&bytes).unwrap();
        assert_eq!(back, entry);
        let parts = changes(&back.payload).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].0, &parts[0].1[..]), (7, &b"first"[..]));
        assert_eq!((parts[1].0, &parts[1].1[..]), (8, &b"second change"[..]));
        let fence = LogObject::fence(43, 4);
        assert_eq!(LogObject::decode(&fence.encode()).unwrap(), fence);
        let mut damaged = bytes.to_vec();
        damaged[HEADER_LEN + 2] ^= 1;
        assert!(LogObject::decode(&Bytes::from(damaged)).is_err());
        assert_ne!(random_id(), random_id());
    }
}
