//! Secondary indexes of keyed tables, stored in one redb file: `<data_dir>/indexes.redb`.
//!
//! The file is derived data: the WAL and the snapshots are the source of truth, and every
//! index can be rebuilt from its table. So writes are fast ([`Durability::None`]) and made
//! durable only at checkpoints ([`IndexStore::mark_durable`]); a missing or damaged file is
//! replaced by an empty one and reported, and the engine rebuilds every index.
//!
//! # Layout
//!
//! - one redb table per index, named `idx:<index name>`, key = [`encode_entry`]`(column value,
//!   primary key)`, value = `()`. Equal column values are distinct entries (the primary key
//!   follows), and all entries of one column value are one contiguous key range;
//! - `strata:meta` (`&str → u64`): `format_version` ([`FORMAT_VERSION`]), `durable_lsn` (set by
//!   [`IndexStore::mark_durable`]) and `dirty` (present once an index changed after the last
//!   `mark_durable`);
//! - `strata:kinds` (`&str → u64`): per index, a bit set of the value tags it has ever held
//!   since it was created or rebuilt, so lookups skip the key ranges of absent types.
//!
//! # Byte encoding
//!
//! Every value and key starts with a one-byte tag; byte order of encodings (plain `memcmp`) is
//! the order of [`Value::total_cmp`] within one type, NULL before everything:
//!
//! ```text
//! tag   type        payload
//! 0x00  -           end of a composite key (never a value's tag)
//! 0x01  NULL        -
//! 0x02  BOOLEAN     0x00 false | 0x01 true
//! 0x03  BIGINT      8 bytes big-endian, sign bit flipped (i64::MIN → 00.., i64::MAX → ff..)
//! 0x04  DOUBLE      8 bytes: the bits of the value (-0.0 folded into 0.0, every NaN into one
//!                   positive NaN) big-endian, sign bit flipped if positive, all bits inverted
//!                   if negative: -inf < … < -0 = 0 < … < +inf < NaN
//! 0x05  TIMESTAMP   as BIGINT (milliseconds since the epoch)
//! 0x06  TEXT        UTF-8 bytes with each 0x00 written as 0x00 0xff, then 0x00 0x01
//! 0x07  composite   (keys only) each part's encoding, then 0x00
//! ```
//!
//! Tags follow the rank order of `total_cmp` (NULL < BOOLEAN < numbers < TIMESTAMP < TEXT),
//! so values of different types also compare as `total_cmp` does, except BIGINT against
//! DOUBLE (an index column has one type; lookups with a probe of the other numeric type are
//! translated, see [`IndexStore::lookup_range`]). The text escape keeps order ("a" < "a\0" <
//! "a\u{1}" < "ab") and makes every encoding prefix-free: no encoding is a prefix of another,
//! so `(value, key)` pairs compare by value first, then by key, and the entries of one value
//! are exactly the keys that start with its encoding. Primary keys ([`Key`]) use the same
//! tags (`Key::Int` as BIGINT, `Key::Text` as TEXT, `Key::Null` as NULL) and decode exactly.
//!
//! # Durability protocol (what the engine relies on)
//!
//! [`IndexStore::durable_lsn`] is `Some(lsn)` only when the file holds exactly the index
//! contents at the moment of `mark_durable(lsn)`: every write after a `mark_durable` also
//! writes a `dirty` marker in the same transaction, and `mark_durable` clears it. After a
//! crash redb rolls back to its last `Immediate` commit — the last `mark_durable` — so
//! `durable_lsn` is then exact; after a clean close redb makes pending writes durable, the
//! marker with them, and `durable_lsn` is `None` unless `mark_durable` ran after the last write.
//! The engine keeps the indexes if `durable_lsn` equals the LSN of the snapshot it loads and
//! replays the WAL after it; otherwise it rebuilds every index from its table.
//!
//! # Damage
//!
//! The file is opened with redb's integrity check (every page checksum is verified, and the
//! last durable commit is restored after a crash). A file redb refuses (not a redb file,
//! truncated, failed checksums it cannot repair, an old or newer format), or that panics redb
//! while opening, or that lacks this module's metadata, is deleted and recreated empty, and
//! [`OpenReport::rebuilt_all`] says so. Errors that do not mean damage (the file is locked by
//! another handle, permission denied, …) are returned and the file is left alone.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::ops::Bound;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{
    Database, DatabaseError, Durability, ReadableDatabase, StorageError, TableDefinition,
    TableHandle, WriteTransaction,
};

use crate::error::PersistError;
use crate::types::{normalize_bits, Key, Value};

/// Format version of the tables and encoding this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;
/// Prefix of the redb table name of an index.
pub const TABLE_PREFIX: &str = "idx:";

const META: TableDefinition<&str, u64> = TableDefinition::new("strata:meta");
const KINDS: TableDefinition<&str, u64> = TableDefinition::new("strata:kinds");
const META_VERSION: &str = "format_version";
const META_LSN: &str = "durable_lsn";
const META_DIRTY: &str = "dirty";

/// Encoded entries buffered by [`IndexStore::rebuild`] before they are sorted and inserted.
const REBUILD_CHUNK_BYTES: usize = 64 << 20;

const TAG_END: u8 = 0x00;
const TAG_NULL: u8 = 0x01;
const TAG_BOOL: u8 = 0x02;
const TAG_INT: u8 = 0x03;
const TAG_DOUBLE: u8 = 0x04;
const TAG_TIMESTAMP: u8 = 0x05;
const TAG_TEXT: u8 = 0x06;
const TAG_COMPOSITE: u8 = 0x07;
/// Deepest nesting of composite keys accepted when decoding (guards against damaged bytes).
const MAX_KEY_DEPTH: usize = 32;

// ---------------------------------------------------------------------------------------------
// Encoding

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

fn get_i64(bytes: &[u8]) -> Option<i64> {
    let raw: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(raw) ^ (1 << 63)) as i64)
}

/// The order-preserving bits of a double, after folding -0.0 into 0.0 and NaNs into one NaN.
fn double_order_bits(v: f64) -> u64 {
    let bits = normalize_bits(v);
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

#[cfg(feature = "testing")]
fn double_from_order_bits(ordered: u64) -> f64 {
    let bits = if ordered >> 63 == 1 {
        ordered & !(1 << 63)
    } else {
        !ordered
    };
    f64::from_bits(bits)
}

fn put_text(out: &mut Vec<u8>, text: &[u8]) {
    out.push(TAG_TEXT);
    let mut parts = text.split(|&b| b == 0);
    if let Some(first) = parts.next() {
        out.extend_from_slice(first);
    }
    for part in parts {
        out.extend_from_slice(&[0x00, 0xff]);
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

/// Decodes the payload of a TEXT encoding (after its tag): the text and the bytes consumed.
fn get_text(bytes: &[u8]) -> Option<(String, usize)> {
    let mut text = Vec::new();
    let mut pos = 0;
    loop {
        let zero = pos + bytes[pos..].iter().position(|&b| b == 0)?;
        text.extend_from_slice(&bytes[pos..zero]);
        match bytes.get(zero + 1)? {
            0xff => {
                text.push(0);
                pos = zero + 2;
            }
            0x01 => return Some((String::from_utf8(text).ok()?, zero + 2)),
            _ => return None,
        }
    }
}

/// The length of the TEXT encoding at the start of `bytes` (tag included), without decoding.
fn text_len(bytes: &[u8]) -> Option<usize> {
    let mut pos = 1;
    loop {
        let zero = pos + bytes.get(pos..)?.iter().position(|&b| b == 0)?;
        match bytes.get(zero + 1)? {
            0xff => pos = zero + 2,
            0x01 => return Some(zero + 2),
            _ => return None,
        }
    }
}

fn tag_of(value: &Value) -> u8 {
    match value {
        Value::Null => TAG_NULL,
        Value::Bool(_) => TAG_BOOL,
        Value::Int(_) => TAG_INT,
        Value::Double(_) => TAG_DOUBLE,
        Value::Timestamp(_) => TAG_TIMESTAMP,
        Value::Text(_) => TAG_TEXT,
    }
}

/// Appends the order-preserving encoding of `value` to `out` (see the module docs).
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Bool(b) => out.extend_from_slice(&[TAG_BOOL, *b as u8]),
        Value::Int(v) => {
            out.push(TAG_INT);
            put_i64(out, *v);
        }
        Value::Double(v) => {
            out.push(TAG_DOUBLE);
            out.extend_from_slice(&double_order_bits(*v).to_be_bytes());
        }
        Value::Timestamp(v) => {
            out.push(TAG_TIMESTAMP);
            put_i64(out, *v);
        }
        Value::Text(t) => put_text(out, t.as_bytes()),
    }
}

/// Appends the encoding of a primary key to `out`: the same tags and payloads as
/// [`encode_value`] (`Key::Int` as BIGINT, `Key::Text` as TEXT), composite keys as their
/// parts between a 0x07 tag and a 0x00 end byte.
pub fn encode_key(key: &Key, out: &mut Vec<u8>) {
    match key {
        Key::Null => out.push(TAG_NULL),
        Key::Int(v) => {
            out.push(TAG_INT);
            put_i64(out, *v);
        }
        Key::Text(t) => put_text(out, t.as_bytes()),
        Key::Composite(parts) => {
            out.push(TAG_COMPOSITE);
            for part in parts.iter() {
                encode_key(part, out);
            }
            out.push(TAG_END);
        }
    }
}

/// Appends the index entry of `(value, key)`: `encode_value(value) ++ encode_key(key)`.
pub fn encode_entry(value: &Value, key: &Key, out: &mut Vec<u8>) {
    encode_value(value, out);
    encode_key(key, out);
}

#[cfg(feature = "testing")]
/// Decodes the value encoding at the start of `bytes`: the value and the bytes it took.
/// `None` if the bytes are not a valid encoding. DOUBLE comes back normalised (-0.0 as 0.0,
/// NaN as the one canonical NaN).
pub fn decode_value(bytes: &[u8]) -> Option<(Value, usize)> {
    let payload = bytes.get(1..)?;
    Some(match *bytes.first()? {
        TAG_NULL => (Value::Null, 1),
        TAG_BOOL => match *payload.first()? {
            0 => (Value::Bool(false), 2),
            1 => (Value::Bool(true), 2),
            _ => return None,
        },
        TAG_INT => (Value::Int(get_i64(payload)?), 9),
        TAG_TIMESTAMP => (Value::Timestamp(get_i64(payload)?), 9),
        TAG_DOUBLE => {
            let raw: [u8; 8] = payload.get(..8)?.try_into().ok()?;
            (
                Value::Double(double_from_order_bits(u64::from_be_bytes(raw))),
                9,
            )
        }
        TAG_TEXT => {
            let (text, used) = get_text(payload)?;
            (Value::Text(Arc::from(text)), 1 + used)
        }
        _ => return None,
    })
}

/// The length of the value encoding at the start of `bytes`, without decoding it.
fn value_len(bytes: &[u8]) -> Option<usize> {
    let len = match *bytes.first()? {
        TAG_NULL => 1,
        TAG_BOOL => 2,
        TAG_INT | TAG_DOUBLE | TAG_TIMESTAMP => 9,
        TAG_TEXT => return text_len(bytes),
        _ => return None,
    };
    (bytes.len() >= len).then_some(len)
}

/// Decodes the key encoding at the start of `bytes`: the key and the bytes it took. `None`
/// if the bytes are not a valid key encoding.
pub fn decode_key(bytes: &[u8]) -> Option<(Key, usize)> {
    decode_key_at(bytes, 0)
}

fn decode_key_at(bytes: &[u8], depth: usize) -> Option<(Key, usize)> {
    let payload = bytes.get(1..)?;
    Some(match *bytes.first()? {
        TAG_NULL => (Key::Null, 1),
        TAG_INT => (Key::Int(get_i64(payload)?), 9),
        TAG_TEXT => {
            let (text, used) = get_text(payload)?;
            (Key::Text(Arc::from(text)), 1 + used)
        }
        TAG_COMPOSITE if depth < MAX_KEY_DEPTH => {
            let mut parts = Vec::new();
            let mut pos = 1;
            while *bytes.get(pos)? != TAG_END {
                let (part, used) = decode_key_at(&bytes[pos..], depth + 1)?;
                parts.push(part);
                pos += used;
            }
            (Key::Composite(parts.into_boxed_slice()), pos + 1)
        }
        _ => return None,
    })
}

#[cfg(feature = "testing")]
/// Decodes a whole index entry back into `(value, key)`; `None` unless `bytes` is exactly one
/// value encoding followed by one key encoding.
pub fn decode_entry(bytes: &[u8]) -> Option<(Value, Key)> {
    let (value, used) = decode_value(bytes)?;
    let (key, rest) = decode_key(&bytes[used..])?;
    (used + rest == bytes.len()).then_some((value, key))
}

/// The primary key of an index entry, skipping the value without decoding it.
fn entry_key(bytes: &[u8]) -> Option<Key> {
    let used = value_len(bytes)?;
    let (key, rest) = decode_key(&bytes[used..])?;
    (used + rest == bytes.len()).then_some(key)
}

/// The smallest byte string greater than every string that starts with `prefix`; `None` if
/// there is none (the prefix is empty or all 0xff).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn encoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    encode_value(value, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Lookup planning: which byte ranges hold the values between two bounds

/// The key ranges of one value type, in tag order, with the rank `total_cmp` gives the type.
const REGIONS: [(u8, u8); 5] = [
    (TAG_BOOL, 1),
    (TAG_INT, 2),
    (TAG_DOUBLE, 2),
    (TAG_TIMESTAMP, 3),
    (TAG_TEXT, 4),
];

fn rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) | Value::Double(_) => 2,
        Value::Timestamp(_) => 3,
        Value::Text(_) => 4,
    }
}

/// The first `i64` for which the monotone (false… then true…) `pred` holds.
fn first_int(pred: impl Fn(i64) -> bool) -> Option<i64> {
    if !pred(i64::MAX) {
        return None;
    }
    let (mut lo, mut hi) = (i64::MIN as i128, i64::MAX as i128);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid as i64) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(hi as i64)
}

/// Where the region `tag` starts for `lower`: `None` if no value of the region is above it.
fn region_start(tag: u8, region_rank: u8, lower: Bound<&Value>) -> Option<Vec<u8>> {
    let (v, inclusive) = match lower {
        Bound::Unbounded => return Some(vec![tag]),
        Bound::Included(v) => (v, true),
        Bound::Excluded(v) => (v, false),
    };
    if rank(v) < region_rank {
        return Some(vec![tag]);
    }
    if rank(v) > region_rank {
        return None;
    }
    match (tag, v) {
        // BIGINT entries against a DOUBLE bound, compared as `total_cmp` does: `i as f64`.
        (TAG_INT, Value::Double(d)) => {
            let d = f64::from_bits(normalize_bits(*d));
            let i = first_int(|i| {
                let c = (i as f64).total_cmp(&d);
                if inclusive {
                    c.is_ge()
                } else {
                    c.is_gt()
                }
            })?;
            Some(encoded(&Value::Int(i)))
        }
        (TAG_DOUBLE, Value::Int(i)) => {
            let d = Value::Double(*i as f64);
            region_start(
                tag,
                region_rank,
                if inclusive {
                    Bound::Included(&d)
                } else {
                    Bound::Excluded(&d)
                },
            )
        }
        _ if inclusive => Some(encoded(v)),
        _ => prefix_end(&encoded(v)),
    }
}

/// Where the region `tag` ends (exclusive) for `upper`: `None` if no value of the region is
/// below it.
fn region_end(tag: u8, region_rank: u8, upper: Bound<&Value>) -> Option<Vec<u8>> {
    let (v, inclusive) = match upper {
        Bound::Unbounded => return Some(vec![tag + 1]),
        Bound::Included(v) => (v, true),
        Bound::Excluded(v) => (v, false),
    };
    if rank(v) > region_rank {
        return Some(vec![tag + 1]);
    }
    if rank(v) < region_rank {
        return None;
    }
    match (tag, v) {
        (TAG_INT, Value::Double(d)) => {
            let d = f64::from_bits(normalize_bits(*d));
            // The last i with i <= d (or < d) is one before the first i with i > d (or >= d).
            let past = first_int(|i| {
                let c = (i as f64).total_cmp(&d);
                if inclusive {
                    c.is_gt()
                } else {
                    c.is_ge()
                }
            });
            match past {
                None => Some(vec![tag + 1]),
                Some(i64::MIN) => None,
                Some(p) => prefix_end(&encoded(&Value::Int(p - 1))),
            }
        }
        (TAG_DOUBLE, Value::Int(i)) => {
            let d = Value::Double(*i as f64);
            region_end(
                tag,
                region_rank,
                if inclusive {
                    Bound::Included(&d)
                } else {
                    Bound::Excluded(&d)
                },
            )
        }
        _ if inclusive => prefix_end(&encoded(v)),
        _ => Some(encoded(v)),
    }
}

/// The byte ranges `[start, end)` holding the non-NULL values between the bounds, for the
/// regions whose bit is set in `kinds`.
fn plan_ranges(kinds: u64, lower: Bound<&Value>, upper: Bound<&Value>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut ranges = Vec::new();
    for (tag, region_rank) in REGIONS {
        if kinds & (1 << tag) == 0 {
            continue;
        }
        let (Some(start), Some(end)) = (
            region_start(tag, region_rank, lower),
            region_end(tag, region_rank, upper),
        ) else {
            continue;
        };
        if start < end {
            ranges.push((start, end));
        }
    }
    ranges
}

fn is_null_bound(bound: Bound<&Value>) -> bool {
    matches!(
        bound,
        Bound::Included(Value::Null) | Bound::Excluded(Value::Null)
    )
}

// ---------------------------------------------------------------------------------------------
// The store

/// What [`IndexStore::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The file was missing, empty or damaged and has been replaced by an empty one: every
    /// index the catalog has must be rebuilt from its table ([`IndexStore::rebuild`]).
    pub rebuilt_all: bool,
    /// Why, as one line for a notice (names the file and the damage); `None` if the file
    /// opened normally.
    pub reason: Option<String>,
}

/// Secondary indexes stored in `<data_dir>/indexes.redb`. See the module docs for the layout,
/// the encoding and the durability protocol.
pub struct IndexStore {
    db: Database,
    path: PathBuf,
    /// Every index in the file, with its bit set of value tags (`1 << tag`).
    indexes: HashMap<String, u64>,
    /// The `durable_lsn` recorded in the file's current state.
    recorded_lsn: Option<u64>,
    /// Whether the file's current state carries the `dirty` marker.
    dirty: bool,
}

impl fmt::Debug for IndexStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.indexes.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("IndexStore")
            .field("path", &self.path)
            .field("indexes", &names)
            .field("durable_lsn", &self.durable_lsn())
            .finish()
    }
}

/// Why a file could not be opened: damage (replace the file) or another failure (report it).
enum OpenFailure {
    Damaged(String),
    Fatal(PersistError),
}

fn table_name(index: &str) -> String {
    format!("{TABLE_PREFIX}{index}")
}

fn redb_error<E>(op: &'static str, path: &Path, e: E) -> PersistError
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    PersistError::io(op, path, io::Error::other(e))
}

/// Classifies an open error: corruption and unreadable formats are damage; locks, permissions
/// and other I/O failures are not.
fn classify_open_error(path: &Path, e: DatabaseError) -> OpenFailure {
    match e {
        DatabaseError::Storage(StorageError::Io(io_err))
            if matches!(
                io_err.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ) =>
        {
            OpenFailure::Damaged(io_err.to_string())
        }
        DatabaseError::Storage(StorageError::Io(io_err)) => {
            OpenFailure::Fatal(PersistError::io("open index file", path, io_err))
        }
        e @ (DatabaseError::Storage(
            StorageError::Corrupted(_) | StorageError::ValueTooLarge(_),
        )
        | DatabaseError::RepairAborted
        | DatabaseError::UpgradeRequired(_)) => OpenFailure::Damaged(e.to_string()),
        e => OpenFailure::Fatal(redb_error("open index file", path, e)),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

impl IndexStore {
    /// Opens the index file at `path` (`<data_dir>/indexes.redb` unless `[indexes] db_path`
    /// says otherwise), creating it if missing.
    ///
    /// Its directory must exist. A missing or empty file is created; a damaged one
    /// (refused by redb, failing its integrity check, written in another format, without this
    /// module's metadata) is deleted and recreated empty. In those cases the report has
    /// `rebuilt_all = true` and a `reason`, and [`durable_lsn`](Self::durable_lsn) is `None`:
    /// the caller must rebuild every index of its catalog. A failure that is not damage (the
    /// file is open in another handle or process, permission denied, a disk error) is
    /// returned as [`PersistError::Io`] and the file is left as it is.
    ///
    /// Opening verifies every page checksum of the file, so it takes time proportional to the
    /// file's size.
    pub fn open(path: impl AsRef<Path>) -> Result<(IndexStore, OpenReport), PersistError> {
        let path = path.as_ref();
        let reason = match fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                format!(
                    "index file {} is missing; created an empty one, every index must be rebuilt",
                    path.display()
                )
            }
            Err(e) => return Err(PersistError::io("open index file", path, e)),
            Ok(meta) if meta.len() == 0 => {
                format!(
                    "index file {} is empty; recreated it, every index must be rebuilt",
                    path.display()
                )
            }
            Ok(_) => match Self::open_existing(path) {
                Ok(store) => return Ok((store, OpenReport::default())),
                Err(OpenFailure::Fatal(e)) => return Err(e),
                Err(OpenFailure::Damaged(why)) => {
                    fs::remove_file(path)
                        .map_err(|e| PersistError::io("remove damaged index file", path, e))?;
                    format!("index file {} is damaged ({why}); recreated it, every index must be rebuilt", path.display())
                }
            },
        };
        let store = Self::create_new(path)?;
        Ok((
            store,
            OpenReport {
                rebuilt_all: true,
                reason: Some(reason),
            },
        ))
    }

    fn open_existing(path: &Path) -> Result<IndexStore, OpenFailure> {
        // redb may panic on a file altered outside it (in debug builds, on checks no file it
        // wrote can fail): treat that as damage too.
        match panic::catch_unwind(AssertUnwindSafe(|| Self::open_existing_inner(path))) {
            Ok(result) => result,
            Err(payload) => Err(OpenFailure::Damaged(format!(
                "redb panicked while opening it: {}",
                panic_message(&*payload)
            ))),
        }
    }

    fn open_existing_inner(path: &Path) -> Result<IndexStore, OpenFailure> {
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .open(path)
            .map_err(|e| classify_open_error(path, e))?;
        let damaged =
            |what: &str, e: &dyn fmt::Display| OpenFailure::Damaged(format!("{what}: {e}"));
        let txn = db.begin_read().map_err(|e| damaged("cannot read it", &e))?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Err(OpenFailure::Damaged(
                    "it has no strata index metadata".into(),
                ));
            }
            Err(e) => return Err(damaged("cannot read its metadata", &e)),
        };
        let get = |key: &str| -> Result<Option<u64>, OpenFailure> {
            Ok(meta
                .get(key)
                .map_err(|e| damaged("cannot read its metadata", &e))?
                .map(|v| v.value()))
        };
        match get(META_VERSION)? {
            Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(OpenFailure::Damaged(format!(
                    "it has index format version {v}, this strata reads version {FORMAT_VERSION}"
                )))
            }
            None => return Err(OpenFailure::Damaged("it has no format version".into())),
        }
        let recorded_lsn = get(META_LSN)?;
        let dirty = get(META_DIRTY)?.is_some();
        drop(meta);

        let mut indexes = HashMap::new();
        let tables = txn
            .list_tables()
            .map_err(|e| damaged("cannot list its tables", &e))?;
        for handle in tables {
            if let Some(index) = handle.name().strip_prefix(TABLE_PREFIX) {
                indexes.insert(index.to_string(), u64::MAX);
            }
        }
        match txn.open_table(KINDS) {
            Ok(kinds) => {
                for (index, bits) in indexes.iter_mut() {
                    if let Some(v) = kinds
                        .get(index.as_str())
                        .map_err(|e| damaged("cannot read its metadata", &e))?
                    {
                        *bits = v.value();
                    }
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(damaged("cannot read its metadata", &e)),
        }
        drop(txn);
        Ok(IndexStore {
            db,
            path: path.to_path_buf(),
            indexes,
            recorded_lsn,
            dirty,
        })
    }

    fn create_new(path: &Path) -> Result<IndexStore, PersistError> {
        let db = Database::create(path).map_err(|e| match e {
            DatabaseError::Storage(StorageError::Io(io_err)) => {
                PersistError::io("create index file", path, io_err)
            }
            e => redb_error("create index file", path, e),
        })?;
        let txn = db
            .begin_write()
            .map_err(|e| redb_error("redb begin write", path, e))?;
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| redb_error("redb open table", path, e))?;
            meta.insert(META_VERSION, FORMAT_VERSION)
                .map_err(|e| redb_error("redb insert", path, e))?;
            txn.open_table(KINDS)
                .map_err(|e| redb_error("redb open table", path, e))?;
        }
        txn.commit()
            .map_err(|e| redb_error("redb commit", path, e))?;
        Ok(IndexStore {
            db,
            path: path.to_path_buf(),
            indexes: HashMap::new(),
            recorded_lsn: None,
            dirty: false,
        })
    }

    #[cfg(feature = "testing")]
    /// The path of the index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err<E>(&self, op: &'static str) -> impl FnOnce(E) -> PersistError + '_
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        move |e| redb_error(op, &self.path, e)
    }

    fn unknown(&self, index: &str) -> PersistError {
        PersistError::Io {
            op: "use index",
            path: format!("{} (index `{index}`)", self.path.display()),
            cause: io::Error::new(
                io::ErrorKind::NotFound,
                "no such index in the index file; create or rebuild it first",
            ),
        }
    }

    fn kinds(&self, index: &str) -> Result<u64, PersistError> {
        self.indexes
            .get(index)
            .copied()
            .ok_or_else(|| self.unknown(index))
    }

    /// Begins a non-durable write transaction that marks the file dirty (see the module docs).
    fn begin_dirty_write(&self) -> Result<WriteTransaction, PersistError> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(self.err("redb begin write"))?;
        txn.set_durability(Durability::None)
            .map_err(self.err("redb set durability"))?;
        if !self.dirty {
            let mut meta = txn.open_table(META).map_err(self.err("redb open table"))?;
            meta.insert(META_DIRTY, 1)
                .map_err(self.err("redb insert"))?;
        }
        Ok(txn)
    }

    fn commit_dirty(&mut self, txn: WriteTransaction) -> Result<(), PersistError> {
        txn.commit().map_err(self.err("redb commit"))?;
        self.dirty = true;
        Ok(())
    }

    fn set_kinds(
        &self,
        txn: &WriteTransaction,
        index: &str,
        kinds: Option<u64>,
    ) -> Result<(), PersistError> {
        let mut table = txn.open_table(KINDS).map_err(self.err("redb open table"))?;
        match kinds {
            Some(bits) => table.insert(index, bits).map(drop),
            None => table.remove(index).map(drop),
        }
        .map_err(self.err("redb write metadata"))
    }

    /// Whether `index` exists in the file.
    pub fn exists(&self, index: &str) -> bool {
        self.indexes.contains_key(index)
    }

    #[cfg(feature = "testing")]
    /// The names of the indexes in the file, in no particular order (to find indexes the
    /// catalog no longer has).
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.indexes.keys().map(String::as_str)
    }

    #[cfg(feature = "testing")]
    /// Creates `index`, empty. An index of that name that already exists is emptied. Not
    /// durable until the next [`mark_durable`](Self::mark_durable).
    pub fn create(&mut self, index: &str) -> Result<(), PersistError> {
        let name = table_name(index);
        let def: TableDefinition<&[u8], ()> = TableDefinition::new(&name);
        let txn = self.begin_dirty_write()?;
        txn.delete_table(def)
            .map_err(self.err("redb delete table"))?;
        txn.open_table(def).map_err(self.err("redb open table"))?;
        self.set_kinds(&txn, index, Some(0))?;
        self.commit_dirty(txn)?;
        self.indexes.insert(index.to_string(), 0);
        Ok(())
    }

    /// Removes `index` and all its entries; returns whether it existed (absent is not an
    /// error). Not durable until the next [`mark_durable`](Self::mark_durable).
    pub fn drop_index(&mut self, index: &str) -> Result<bool, PersistError> {
        if !self.exists(index) {
            return Ok(false);
        }
        let name = table_name(index);
        let def: TableDefinition<&[u8], ()> = TableDefinition::new(&name);
        let txn = self.begin_dirty_write()?;
        txn.delete_table(def)
            .map_err(self.err("redb delete table"))?;
        self.set_kinds(&txn, index, None)?;
        self.commit_dirty(txn)?;
        self.indexes.remove(index);
        Ok(true)
    }

    /// Removes the entries `removed`, then adds the entries `added`, of `index`, in one write
    /// transaction ([`Durability::None`]: atomic, visible to later lookups at once, durable at
    /// the next [`mark_durable`](Self::mark_durable)). Each entry is `(column value, primary
    /// key)`; NULL values are entries too. Removing an absent entry and adding a present one
    /// do nothing, so an unchanged row may appear in both lists. An error leaves the index as
    /// it was. `index` must exist.
    pub fn apply(
        &mut self,
        index: &str,
        removed: &[(Value, Key)],
        added: &[(Value, Key)],
    ) -> Result<(), PersistError> {
        let old_kinds = self.kinds(index)?;
        if removed.is_empty() && added.is_empty() {
            return Ok(());
        }
        let name = table_name(index);
        let def: TableDefinition<&[u8], ()> = TableDefinition::new(&name);
        let mut kinds = old_kinds;
        let txn = self.begin_dirty_write()?;
        {
            let mut table = txn.open_table(def).map_err(self.err("redb open table"))?;
            let mut buf = Vec::with_capacity(64);
            for (value, key) in removed {
                buf.clear();
                encode_entry(value, key, &mut buf);
                table
                    .remove(buf.as_slice())
                    .map_err(self.err("redb remove"))?;
            }
            for (value, key) in added {
                buf.clear();
                encode_entry(value, key, &mut buf);
                table
                    .insert(buf.as_slice(), ())
                    .map_err(self.err("redb insert"))?;
                kinds |= 1 << tag_of(value);
            }
        }
        if kinds != old_kinds {
            self.set_kinds(&txn, index, Some(kinds))?;
        }
        self.commit_dirty(txn)?;
        self.indexes.insert(index.to_string(), kinds);
        Ok(())
    }

    /// Replaces every entry of `index` by `entries` (creating the index if it does not exist),
    /// in one write transaction ([`Durability::None`]). Entries are sorted before they are
    /// inserted, in chunks of about 64 MiB of encoded bytes; duplicates are kept once.
    pub fn rebuild(
        &mut self,
        index: &str,
        entries: impl IntoIterator<Item = (Value, Key)>,
    ) -> Result<(), PersistError> {
        let name = table_name(index);
        let def: TableDefinition<&[u8], ()> = TableDefinition::new(&name);
        let mut kinds = 0u64;
        let txn = self.begin_dirty_write()?;
        txn.delete_table(def)
            .map_err(self.err("redb delete table"))?;
        {
            let mut table = txn.open_table(def).map_err(self.err("redb open table"))?;
            let mut chunk: Vec<Vec<u8>> = Vec::new();
            let mut chunk_bytes = 0usize;
            let mut flush = |chunk: &mut Vec<Vec<u8>>| -> Result<(), PersistError> {
                chunk.sort_unstable();
                chunk.dedup();
                for entry in chunk.drain(..) {
                    table
                        .insert(entry.as_slice(), ())
                        .map_err(|e| redb_error("redb insert", &self.path, e))?;
                }
                Ok(())
            };
            for (value, key) in entries {
                let mut buf = Vec::with_capacity(24);
                encode_entry(&value, &key, &mut buf);
                kinds |= 1 << tag_of(&value);
                chunk_bytes += buf.len() + std::mem::size_of::<Vec<u8>>();
                chunk.push(buf);
                if chunk_bytes >= REBUILD_CHUNK_BYTES {
                    flush(&mut chunk)?;
                    chunk_bytes = 0;
                }
            }
            flush(&mut chunk)?;
        }
        self.set_kinds(&txn, index, Some(kinds))?;
        self.commit_dirty(txn)?;
        self.indexes.insert(index.to_string(), kinds);
        Ok(())
    }

    #[cfg(feature = "testing")]
    /// Primary keys of the rows whose column value equals `value`, in the order of their entries
    /// (by primary-key encoding for a probe of the column's type).
    /// NULL equals nothing (as in SQL): `lookup_eq(NULL)` is empty; use
    /// [`lookup_null`](Self::lookup_null) for `IS NULL`. Equality is that of
    /// [`Value::total_cmp`] with -0.0 = 0.0 and all NaNs equal; a BIGINT probe on a DOUBLE
    /// column (and the reverse) compares as `total_cmp` does (`i as f64`), other type
    /// mismatches match nothing. `index` must exist.
    pub fn lookup_eq(&self, index: &str, value: &Value) -> Result<Vec<Key>, PersistError> {
        self.lookup_range(index, Bound::Included(value), Bound::Included(value))
    }

    /// Primary keys of the rows whose column value `v` satisfies `lower ≤/< v ≤/< upper`
    /// (`Included` / `Excluded` / `Unbounded` bounds), in the order of `(v, key)`. NULL values
    /// never match, and a NULL bound matches nothing (comparisons with NULL are unknown in SQL).
    /// Values compare as [`Value::total_cmp`] with -0.0 = 0.0 and NaN above every number,
    /// BIGINT against DOUBLE included; bounds of another type than the column compare by type
    /// rank as `total_cmp` does (NULL < BOOLEAN < numbers < TIMESTAMP < TEXT). `index` must
    /// exist.
    pub fn lookup_range(
        &self,
        index: &str,
        lower: Bound<&Value>,
        upper: Bound<&Value>,
    ) -> Result<Vec<Key>, PersistError> {
        let kinds = self.kinds(index)?;
        if is_null_bound(lower) || is_null_bound(upper) {
            return Ok(Vec::new());
        }
        let ranges = plan_ranges(kinds, lower, upper);
        self.scan(index, &ranges)
    }

    #[cfg(feature = "testing")]
    /// Primary keys of the rows whose column value is NULL (`IS NULL`). `index` must exist.
    pub fn lookup_null(&self, index: &str) -> Result<Vec<Key>, PersistError> {
        let kinds = self.kinds(index)?;
        if kinds & (1 << TAG_NULL) == 0 {
            return Ok(Vec::new());
        }
        self.scan(index, &[(vec![TAG_NULL], vec![TAG_NULL + 1])])
    }

    #[cfg(feature = "testing")]
    /// Every `(value, key)` entry of `index`, in index order (for checks and debugging).
    pub fn entries(&self, index: &str) -> Result<Vec<(Value, Key)>, PersistError> {
        self.kinds(index)?;
        let mut out = Vec::new();
        self.for_each_entry(index, &[(vec![0], vec![0xff])], |bytes| {
            out.push(decode_entry(bytes)?);
            Some(())
        })?;
        Ok(out)
    }

    fn scan(&self, index: &str, ranges: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<Key>, PersistError> {
        let mut keys = Vec::new();
        if ranges.is_empty() {
            return Ok(keys);
        }
        self.for_each_entry(index, ranges, |bytes| {
            keys.push(entry_key(bytes)?);
            Some(())
        })?;
        Ok(keys)
    }

    /// Calls `f` with the bytes of every entry in `ranges`; `f` returns `None` for bytes that
    /// do not decode, which is reported as damage.
    fn for_each_entry(
        &self,
        index: &str,
        ranges: &[(Vec<u8>, Vec<u8>)],
        mut f: impl FnMut(&[u8]) -> Option<()>,
    ) -> Result<(), PersistError> {
        let name = table_name(index);
        let def: TableDefinition<&[u8], ()> = TableDefinition::new(&name);
        let txn = self.db.begin_read().map_err(self.err("redb begin read"))?;
        let table = txn.open_table(def).map_err(self.err("redb open table"))?;
        for (start, end) in ranges {
            let range = table
                .range::<&[u8]>(start.as_slice()..end.as_slice())
                .map_err(self.err("redb read"))?;
            for item in range {
                let (key, _) = item.map_err(self.err("redb read"))?;
                if f(key.value()).is_none() {
                    return Err(PersistError::Io {
                        op: "read index",
                        path: format!("{} (index `{index}`)", self.path.display()),
                        cause: io::Error::new(
                            io::ErrorKind::InvalidData,
                            "an entry does not decode; the index file is damaged, delete it to rebuild every index",
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Makes every change so far durable (an `Immediate` commit, fsynced) and records that the
    /// indexes now reflect the WAL up to `lsn` exactly. The caller must have applied every
    /// change up to `lsn` and none after it. Typically called right after a snapshot at `lsn`
    /// is written, including the one at a clean close.
    pub fn mark_durable(&mut self, lsn: u64) -> Result<(), PersistError> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(self.err("redb begin write"))?;
        txn.set_durability(Durability::Immediate)
            .map_err(self.err("redb set durability"))?;
        {
            let mut meta = txn.open_table(META).map_err(self.err("redb open table"))?;
            meta.insert(META_LSN, lsn)
                .map_err(self.err("redb insert"))?;
            meta.remove(META_DIRTY).map_err(self.err("redb remove"))?;
        }
        txn.commit().map_err(self.err("redb commit"))?;
        self.recorded_lsn = Some(lsn);
        self.dirty = false;
        Ok(())
    }

    /// The WAL LSN the index contents reflect exactly: that of the last
    /// [`mark_durable`](Self::mark_durable), as long as no index changed after it. `None` for a
    /// new or recreated file and once any index changes after the last `mark_durable` (a
    /// change survives a clean close but not a crash, so after it the contents can no longer
    /// be tied to one LSN). At startup, `Some(lsn)` equal to the loaded snapshot's LSN means
    /// the indexes are at that snapshot and replaying the WAL after it brings them up to date;
    /// anything else means rebuild every index.
    pub fn durable_lsn(&self) -> Option<u64> {
        if self.dirty {
            None
        } else {
            self.recorded_lsn
        }
    }

    #[cfg(feature = "testing")]
    /// Closes the file, making pending changes durable (without recording an LSN), and reports
    /// errors that dropping the store would ignore.
    pub fn close(self) -> Result<(), PersistError> {
        let path = self.path;
        self.db
            .close()
            .map_err(|e| redb_error("close index file", &path, e))
    }
}
