//! The rkyv encodings of logged changes (WAL payloads) and of snapshots, and their
//! conversions from and to the engine's types. Formats are versioned by the WAL segment and
//! snapshot file headers; a change here needs a new format version and a reader for the old.

use crate::batch::{Column, ColumnData};
use crate::change::{Change, OwnedChange};
use crate::checkpoint::ObjectState;
use crate::types::Key;
use rkyv::munge::munge;
use rkyv::rancor::{self, Fallible, Source};
use rkyv::ser::{Allocator, Writer};
use rkyv::string::{ArchivedString, StringResolver};
use rkyv::util::AlignedVec;
use rkyv::vec::{ArchivedVec, VecResolver};
use rkyv::with::{ArchiveWith, AsString, Map, SerializeWith, With};
use rkyv::{Archive, Deserialize, Place, Serialize};
use std::marker::PhantomData;
use std::sync::Arc;

/// One logged change.
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub enum LogRecord {
    Ddl(String),
    Insert {
        target: String,
        replace: bool,
        columns: Vec<ColumnImage>,
    },
    Delete {
        table: String,
        keys: Vec<KeyImage>,
    },
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub struct ColumnImage {
    pub data: DataImage,
    pub nulls: Option<Vec<bool>>,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub enum DataImage {
    BigInt(Vec<i64>),
    Double(Vec<f64>),
    Text(Vec<String>),
    Boolean(Vec<bool>),
    Timestamp(Vec<i64>),
}

/// A key: one part, or several (composite keys are one level deep).
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub struct KeyImage {
    pub composite: bool,
    pub parts: Vec<KeyPartImage>,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub enum KeyPartImage {
    Null,
    Int(i64),
    Text(String),
}

/// A whole snapshot: the catalog in creation order with each object's state.
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub struct SnapshotImage {
    /// The last log record the snapshot includes.
    pub lsn: u64,
    pub objects: Vec<ObjectImage>,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub struct ObjectImage {
    pub name: String,
    pub ddl: String,
    pub state: StateImage,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub enum StateImage {
    Source,
    Table {
        columns: Vec<ColumnImage>,
    },
    View {
        keys: Vec<KeyImage>,
        records: Vec<i64>,
        texts: Vec<Vec<Option<String>>>,
    },
}

/// A whole snapshot, body format 2 (snapshot file format version 2): as
/// [`SnapshotImage`], with view keys stored as a column when they are single integers.
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub struct SnapshotImageV2 {
    /// The last log record the snapshot includes.
    pub lsn: u64,
    pub objects: Vec<ObjectImageV2>,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub struct ObjectImageV2 {
    pub name: String,
    pub ddl: String,
    pub state: StateImageV2,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub enum StateImageV2 {
    Source,
    Table {
        columns: Vec<ColumnImage>,
    },
    View {
        keys: KeyColumn,
        records: Vec<i64>,
        texts: Vec<Vec<Option<String>>>,
    },
}

/// A whole snapshot, body format 3 (snapshot file format version 3): as
/// [`SnapshotImageV2`], with the pairs of each view's DISTINCT aggregates beside its state.
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub struct SnapshotImageV3 {
    /// The last log record the snapshot includes.
    pub lsn: u64,
    pub objects: Vec<ObjectImageV3>,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub struct ObjectImageV3 {
    pub name: String,
    pub ddl: String,
    pub state: StateImageV2,
    /// One set per DISTINCT aggregate of a view, in the order of its aggregates.
    pub distinct: Vec<DistinctImage>,
}

/// The (group slot, value) pairs a DISTINCT aggregate has seen, as two columns.
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub struct DistinctImage {
    pub slots: Vec<u32>,
    pub values: Vec<KeyImage>,
}

/// The group keys of a view, in slot order.
#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
pub enum KeyColumn {
    /// Every key is one non-NULL integer (BIGINT or TIMESTAMP): 8 bytes a key, no per-key
    /// allocation on either side. The common case.
    Ints(Vec<i64>),
    /// Any other keys, one small list each.
    General(Vec<KeyImage>),
}

/// The snapshot image of an object, format 3. Takes the state by value: the accumulator
/// records move into the image instead of being copied.
pub fn object_image_v3(name: String, ddl: String, state: Option<ObjectState>) -> ObjectImageV3 {
    let (state, distinct) = match state {
        None => (StateImageV2::Source, Vec::new()),
        Some(state) => state_image_v2(state),
    };
    ObjectImageV3 {
        name,
        ddl,
        state,
        distinct,
    }
}

fn state_image_v2(state: ObjectState) -> (StateImageV2, Vec<DistinctImage>) {
    match state {
        ObjectState::Source => (StateImageV2::Source, Vec::new()),
        ObjectState::Table { columns } => (
            StateImageV2::Table {
                columns: columns.iter().map(column_image).collect(),
            },
            Vec::new(),
        ),
        ObjectState::View {
            keys,
            records,
            texts,
            distinct,
        } => {
            let distinct = distinct
                .into_iter()
                .map(|pairs| DistinctImage {
                    slots: pairs.iter().map(|(s, _)| *s).collect(),
                    values: pairs.iter().map(|(_, v)| key_image(v)).collect(),
                })
                .collect();
            let ints: Option<Vec<i64>> = keys
                .iter()
                .map(|k| match k {
                    Key::Int(v) => Some(*v),
                    _ => None,
                })
                .collect();
            let state = StateImageV2::View {
                keys: match ints {
                    Some(ints) => KeyColumn::Ints(ints),
                    None => KeyColumn::General(keys.iter().map(key_image).collect()),
                },
                records,
                texts: texts
                    .iter()
                    .map(|t| {
                        t.iter()
                            .map(|s| s.as_ref().map(|s| s.to_string()))
                            .collect()
                    })
                    .collect(),
            };
            (state, distinct)
        }
    }
}

/// The pairs of a format-3 object's DISTINCT aggregates.
pub fn distinct_from(sets: &rkyv::vec::ArchivedVec<ArchivedDistinctImage>) -> Vec<Vec<(u32, Key)>> {
    sets.iter()
        .map(|set| {
            set.slots
                .iter()
                .zip(set.values.iter())
                .map(|(slot, value)| (slot.to_native(), key_from(value)))
                .collect()
        })
        .collect()
}

/// An object's state from a format-2 snapshot image.
pub fn state_from_v2(a: &ArchivedStateImageV2) -> ObjectState {
    match a {
        ArchivedStateImageV2::Source => ObjectState::Source,
        ArchivedStateImageV2::Table { columns } => ObjectState::Table {
            columns: columns.iter().map(column_from).collect(),
        },
        ArchivedStateImageV2::View {
            keys,
            records,
            texts,
        } => ObjectState::View {
            keys: match keys {
                ArchivedKeyColumn::Ints(v) => v.iter().map(|x| Key::Int(x.to_native())).collect(),
                ArchivedKeyColumn::General(v) => v.iter().map(key_from).collect(),
            },
            records: records.iter().map(|x| x.to_native()).collect(),
            texts: texts_from(texts),
            distinct: Vec::new(),
        },
    }
}

fn texts_from(
    texts: &rkyv::vec::ArchivedVec<
        rkyv::vec::ArchivedVec<rkyv::option::ArchivedOption<rkyv::string::ArchivedString>>,
    >,
) -> Vec<Vec<Option<Arc<str>>>> {
    texts
        .iter()
        .map(|t| {
            t.iter()
                .map(|s| s.as_ref().map(|s| Arc::from(s.as_str())))
                .collect()
        })
        .collect()
}

pub fn column_image(c: &Column) -> ColumnImage {
    let data = match &c.data {
        ColumnData::BigInt(v) => DataImage::BigInt(v.clone()),
        ColumnData::Double(v) => DataImage::Double(v.clone()),
        ColumnData::Text(v) => DataImage::Text(v.iter().map(|s| s.to_string()).collect()),
        ColumnData::Boolean(v) => DataImage::Boolean(v.clone()),
        ColumnData::Timestamp(v) => DataImage::Timestamp(v.clone()),
    };
    ColumnImage {
        data,
        nulls: c.nulls.clone(),
    }
}

pub fn column_from(a: &ArchivedColumnImage) -> Column {
    let data = match &a.data {
        ArchivedDataImage::BigInt(v) => {
            ColumnData::BigInt(v.iter().map(|x| x.to_native()).collect())
        }
        ArchivedDataImage::Double(v) => {
            ColumnData::Double(v.iter().map(|x| x.to_native()).collect())
        }
        ArchivedDataImage::Text(v) => {
            ColumnData::Text(v.iter().map(|s| Arc::from(s.as_str())).collect())
        }
        ArchivedDataImage::Boolean(v) => ColumnData::Boolean(v.to_vec()),
        ArchivedDataImage::Timestamp(v) => {
            ColumnData::Timestamp(v.iter().map(|x| x.to_native()).collect())
        }
    };
    Column {
        data,
        nulls: a.nulls.as_ref().map(|n| n.to_vec()),
    }
}

/// A column from its (deserialized) image.
#[cfg(feature = "cluster")]
pub fn column_from_owned(c: ColumnImage) -> Column {
    let data = match c.data {
        DataImage::BigInt(v) => ColumnData::BigInt(v),
        DataImage::Double(v) => ColumnData::Double(v),
        DataImage::Text(v) => ColumnData::Text(v.into_iter().map(Arc::from).collect()),
        DataImage::Boolean(v) => ColumnData::Boolean(v),
        DataImage::Timestamp(v) => ColumnData::Timestamp(v),
    };
    Column {
        data,
        nulls: c.nulls,
    }
}

/// A key from its (deserialized) image.
#[cfg(feature = "cluster")]
pub fn key_from_owned(k: KeyImage) -> Key {
    let part = |p: KeyPartImage| match p {
        KeyPartImage::Null => Key::Null,
        KeyPartImage::Int(v) => Key::Int(v),
        KeyPartImage::Text(t) => Key::Text(Arc::from(t)),
    };
    if k.composite {
        Key::Composite(k.parts.into_iter().map(part).collect())
    } else {
        k.parts.into_iter().next().map_or(Key::Null, part)
    }
}

fn part_image(k: &Key) -> KeyPartImage {
    match k {
        Key::Int(v) => KeyPartImage::Int(*v),
        Key::Text(t) => KeyPartImage::Text(t.to_string()),
        Key::Null | Key::Composite(_) => KeyPartImage::Null,
    }
}

pub fn key_image(k: &Key) -> KeyImage {
    match k {
        Key::Composite(parts) => KeyImage {
            composite: true,
            parts: parts.iter().map(part_image).collect(),
        },
        single => KeyImage {
            composite: false,
            parts: vec![part_image(single)],
        },
    }
}

fn part_from(p: &ArchivedKeyPartImage) -> Key {
    match p {
        ArchivedKeyPartImage::Null => Key::Null,
        ArchivedKeyPartImage::Int(v) => Key::Int(v.to_native()),
        ArchivedKeyPartImage::Text(t) => Key::Text(Arc::from(t.as_str())),
    }
}

pub fn key_from(k: &ArchivedKeyImage) -> Key {
    if k.composite {
        Key::Composite(k.parts.iter().map(part_from).collect())
    } else {
        k.parts.first().map_or(Key::Null, part_from)
    }
}

/// A decoded WAL record, as the change it logged.
pub fn owned_change(record: &ArchivedLogRecord) -> OwnedChange {
    match record {
        ArchivedLogRecord::Ddl(text) => OwnedChange::Ddl(text.to_string()),
        ArchivedLogRecord::Insert {
            target,
            replace,
            columns,
        } => OwnedChange::Insert {
            target: target.to_string(),
            columns: columns.iter().map(column_from).collect(),
            replace: *replace,
        },
        ArchivedLogRecord::Delete { table, keys } => OwnedChange::Delete {
            table: table.to_string(),
            keys: keys.iter().map(key_from).collect(),
        },
    }
}

/// Encodes a change as a WAL payload into `buf` (cleared first; reusing one buffer saves
/// allocating and faulting in fresh pages for every record).
///
/// Serializes straight from the borrowed change (no owned [`LogRecord`] in between) into
/// exactly the bytes `rkyv::to_bytes(&LogRecord { .. })` gives: the types below archive as
/// [`ArchivedLogRecord`] and its parts and serialize their fields in the same order (the
/// unit tests compare the two byte for byte).
pub fn encode_change(
    change: &Change<'_>,
    mut buf: AlignedVec,
) -> Result<AlignedVec, rancor::Error> {
    buf.clear();
    let record = match *change {
        Change::Ddl(text) => LogRecordRef::Ddl(text),
        Change::Insert {
            target,
            columns,
            replace,
        } => LogRecordRef::Insert {
            target,
            replace,
            columns,
        },
        Change::Delete { table, keys } => LogRecordRef::Delete { table, keys },
    };
    rkyv::api::high::to_bytes_in::<_, rancor::Error>(&record, buf)
}

// Borrowed twins of the WAL types: each archives as the owned type's archived form (rkyv's
// `as = ..` and `remote = ..`), field for field in the same order, and serializes its
// dependencies in the same order, so the output is byte-identical. For structs the derive
// checks field names and types against the archived struct; for enums it only casts to its
// own variant layout, so variant order and field types must match by hand. Any change to
// `LogRecord`, `ColumnImage`, `DataImage`, `KeyImage` or `KeyPartImage` must be mirrored
// here (the tests below catch a mismatch).

/// [`LogRecord`] borrowing the change's text, columns and keys.
#[derive(Archive, Serialize)]
#[rkyv(as = ArchivedLogRecord)]
enum LogRecordRef<'a> {
    Ddl(#[rkyv(with = AsString)] &'a str),
    Insert {
        #[rkyv(with = AsString)]
        target: &'a str,
        replace: bool,
        #[rkyv(with = MapSlice<ColumnAsImage>)]
        columns: &'a [Column],
    },
    Delete {
        #[rkyv(with = AsString)]
        table: &'a str,
        #[rkyv(with = MapSlice<KeyAsImage>)]
        keys: &'a [Key],
    },
}

/// Archives a [`Column`] in place as an [`ArchivedColumnImage`] (what [`column_image`] gives).
#[derive(Archive, Serialize)]
#[rkyv(remote = Column, as = ArchivedColumnImage)]
#[allow(dead_code)] // only a description of `Column` for the derive; never built
struct ColumnAsImage {
    #[rkyv(with = DataAsImage)]
    data: ColumnData,
    nulls: Option<Vec<bool>>,
}

/// Archives a [`ColumnData`] in place as an [`ArchivedDataImage`].
#[derive(Archive, Serialize)]
#[rkyv(remote = ColumnData, as = ArchivedDataImage)]
#[allow(dead_code)] // only a description of `ColumnData` for the derive; never built
enum DataAsImage {
    BigInt(Vec<i64>),
    Double(Vec<f64>),
    Text(#[rkyv(with = Map<ArcStrAsString>)] Vec<Arc<str>>),
    Boolean(Vec<bool>),
    Timestamp(Vec<i64>),
}

/// Archives an `Arc<str>` as an [`ArchivedString`], like the `String` it would be cloned into.
struct ArcStrAsString;

impl ArchiveWith<Arc<str>> for ArcStrAsString {
    type Archived = ArchivedString;
    type Resolver = StringResolver;

    fn resolve_with(field: &Arc<str>, resolver: StringResolver, out: Place<ArchivedString>) {
        ArchivedString::resolve_from_str(field, resolver, out);
    }
}

impl<S> SerializeWith<Arc<str>, S> for ArcStrAsString
where
    S: Fallible + Writer + ?Sized,
    S::Error: Source,
{
    fn serialize_with(field: &Arc<str>, serializer: &mut S) -> Result<StringResolver, S::Error> {
        ArchivedString::serialize_from_str(field, serializer)
    }
}

/// `rkyv::with::Map` for a borrowed slice: archives `&[O]` as an [`ArchivedVec`] of `A`'s
/// archived form, exactly as `Map<A>` archives a `Vec<O>` (and as a `Vec` of the converted
/// values would be archived).
struct MapSlice<A>(PhantomData<A>);

impl<A: ArchiveWith<O>, O> ArchiveWith<&[O]> for MapSlice<A> {
    type Archived = ArchivedVec<A::Archived>;
    type Resolver = VecResolver;

    fn resolve_with(field: &&[O], resolver: VecResolver, out: Place<Self::Archived>) {
        ArchivedVec::resolve_from_len(field.len(), resolver, out);
    }
}

impl<A, O, S> SerializeWith<&[O], S> for MapSlice<A>
where
    A: ArchiveWith<O> + SerializeWith<O, S>,
    S: Fallible + Allocator + Writer + ?Sized,
{
    fn serialize_with(field: &&[O], serializer: &mut S) -> Result<VecResolver, S::Error> {
        ArchivedVec::serialize_from_iter::<With<O, A>, _, _>(
            field.iter().map(With::<O, A>::cast),
            serializer,
        )
    }
}

/// Archives a [`Key`] as an [`ArchivedKeyImage`] (what [`key_image`] gives).
struct KeyAsImage;

/// The parts of `key` as [`key_image`] lists them.
fn key_parts(key: &Key) -> (bool, &[Key]) {
    match key {
        Key::Composite(parts) => (true, parts),
        single => (false, std::slice::from_ref(single)),
    }
}

impl ArchiveWith<Key> for KeyAsImage {
    type Archived = ArchivedKeyImage;
    type Resolver = VecResolver;

    fn resolve_with(field: &Key, resolver: VecResolver, out: Place<ArchivedKeyImage>) {
        let (is_composite, key_parts) = key_parts(field);
        munge!(let ArchivedKeyImage { composite, parts } = out);
        composite.write(is_composite);
        ArchivedVec::resolve_from_len(key_parts.len(), resolver, parts);
    }
}

impl<S> SerializeWith<Key, S> for KeyAsImage
where
    S: Fallible + Allocator + Writer + ?Sized,
    S::Error: Source,
{
    fn serialize_with(field: &Key, serializer: &mut S) -> Result<VecResolver, S::Error> {
        let (_, parts) = key_parts(field);
        ArchivedVec::serialize_from_iter::<KeyPartRef<'_>, _, _>(
            parts.iter().map(KeyPartRef::from),
            serializer,
        )
    }
}

/// [`KeyPartImage`] borrowing the text (what [`part_image`] gives).
#[derive(Archive, Serialize)]
#[rkyv(as = ArchivedKeyPartImage)]
enum KeyPartRef<'a> {
    Null,
    Int(i64),
    Text(#[rkyv(with = AsString)] &'a str),
}

impl<'a> From<&'a Key> for KeyPartRef<'a> {
    fn from(k: &'a Key) -> KeyPartRef<'a> {
        match k {
            Key::Int(v) => KeyPartRef::Int(*v),
            Key::Text(t) => KeyPartRef::Text(t),
            Key::Null | Key::Composite(_) => KeyPartRef::Null,
        }
    }
}

/// The state of one object as a snapshot stores it.
/// An object's state from a format-1 snapshot image (files written by strata 0.1.0).
pub fn state_from(a: &ArchivedStateImage) -> ObjectState {
    match a {
        ArchivedStateImage::Source => ObjectState::Source,
        ArchivedStateImage::Table { columns } => ObjectState::Table {
            columns: columns.iter().map(column_from).collect(),
        },
        ArchivedStateImage::View {
            keys,
            records,
            texts,
        } => ObjectState::View {
            keys: keys.iter().map(key_from).collect(),
            records: records.iter().map(|x| x.to_native()).collect(),
            texts: texts_from(texts),
            distinct: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::SyncMode;
    use crate::persist::wal::{wal_dir, OnCorruption, Wal};
    use std::path::Path;

    /// The owned record `encode_change` used to build (and clone every column into).
    fn log_record(change: &Change<'_>) -> LogRecord {
        match change {
            Change::Ddl(text) => LogRecord::Ddl(text.to_string()),
            Change::Insert {
                target,
                columns,
                replace,
            } => LogRecord::Insert {
                target: target.to_string(),
                replace: *replace,
                columns: columns.iter().map(column_image).collect(),
            },
            Change::Delete { table, keys } => LogRecord::Delete {
                table: table.to_string(),
                keys: keys.iter().map(key_image).collect(),
            },
        }
    }

    /// The WAL payload as the owned path encodes it.
    fn owned_bytes(change: &Change<'_>) -> AlignedVec {
        rkyv::to_bytes::<rancor::Error>(&log_record(change)).unwrap()
    }

    /// Encodes `change` both ways (the borrowed one into a fresh and into a dirty reused
    /// buffer), asserts equal bytes, and that they decode to a record that encodes the same.
    fn assert_same_bytes(change: &Change<'_>) {
        let owned = owned_bytes(change);
        let fresh = encode_change(change, AlignedVec::new()).unwrap();
        assert_eq!(fresh.as_slice(), owned.as_slice(), "{change:?}");
        let mut dirty = AlignedVec::new();
        dirty.extend_from_slice(&[0xAB; 300]);
        let reused = encode_change(change, dirty).unwrap();
        assert_eq!(
            reused.as_slice(),
            owned.as_slice(),
            "{change:?} (reused buffer)"
        );
        let archived = rkyv::access::<ArchivedLogRecord, rancor::Error>(&fresh).unwrap();
        let back: LogRecord = rkyv::deserialize::<_, rancor::Error>(archived).unwrap();
        // (bytes, not `==`: NaN)
        let again = rkyv::to_bytes::<rancor::Error>(&back).unwrap();
        assert_eq!(
            again.as_slice(),
            owned.as_slice(),
            "{change:?} (round trip)"
        );
    }

    fn with_nulls(mut c: Column, nulls: Vec<bool>) -> Column {
        c.nulls = Some(nulls);
        c
    }

    /// Texts around the 8-byte inline limit of `ArchivedString`, empty and non-ASCII.
    fn texts() -> Vec<&'static str> {
        vec![
            "",
            "a",
            "12345678",
            "123456789",
            "a longer text that is stored out of line",
            "é",
            "ünïcødé ✓ text",
        ]
    }

    fn columns() -> Vec<Column> {
        vec![
            Column::bigint(vec![1, -2, i64::MAX, i64::MIN, 0]),
            with_nulls(Column::bigint(vec![7, 0, 9]), vec![false, true, false]),
            Column::double(vec![1.5, -0.0, f64::NAN, f64::INFINITY, 1e300]),
            with_nulls(Column::double(vec![0.0, 2.25]), vec![true, false]),
            Column::text(texts()),
            with_nulls(
                Column::text(["x", "", "some text over eight"]),
                vec![false, true, false],
            ),
            Column::boolean(vec![true, false, true]),
            with_nulls(Column::boolean(vec![false, false]), vec![true, true]),
            Column::new(ColumnData::Timestamp(vec![0, 1_700_000_000_000, -1])),
            with_nulls(
                Column::new(ColumnData::Timestamp(vec![5, 6])),
                vec![false, true],
            ),
        ]
    }

    fn empty_columns() -> Vec<Column> {
        vec![
            Column::bigint(vec![]),
            Column::double(vec![]),
            Column::text(Vec::<&str>::new()),
            Column::boolean(vec![]),
            Column::new(ColumnData::Timestamp(vec![])),
            with_nulls(Column::bigint(vec![]), vec![]),
            with_nulls(Column::text(Vec::<&str>::new()), vec![]),
        ]
    }

    fn keys() -> Vec<Key> {
        let t = |s: &str| Key::Text(Arc::from(s));
        vec![
            Key::Null,
            Key::Int(42),
            Key::Int(i64::MIN),
            t(""),
            t("short"),
            t("a key longer than eight bytes"),
            Key::Composite(Box::new([Key::Int(1), t("x"), Key::Null])),
            Key::Composite(Box::new([t("a text part over eight"), Key::Int(-5)])),
            // Not produced by the engine; encoded as a Null part by both paths.
            Key::Composite(Box::new([
                Key::Composite(Box::new([Key::Int(3)])),
                Key::Int(4),
            ])),
            Key::Composite(Box::new([])),
        ]
    }

    #[test]
    fn ddl_bytes_match_the_owned_encoding() {
        for text in texts() {
            assert_same_bytes(&Change::Ddl(text));
        }
        assert_same_bytes(&Change::Ddl(
            "CREATE TABLE t (k BIGINT PRIMARY KEY, v TEXT, d DOUBLE, b BOOLEAN, ts TIMESTAMP)",
        ));
    }

    #[test]
    fn insert_bytes_match_the_owned_encoding() {
        let all = columns();
        for replace in [false, true] {
            for target in ["t", "a_target_name_longer_than_eight"] {
                // every column alone, all together, none, and the zero-row columns
                for c in &all {
                    assert_same_bytes(&Change::Insert {
                        target,
                        columns: std::slice::from_ref(c),
                        replace,
                    });
                }
                for columns in [&all[..], &[], &empty_columns()[..]] {
                    assert_same_bytes(&Change::Insert {
                        target,
                        columns,
                        replace,
                    });
                }
            }
        }
        // odd lengths of bools and texts between 8-byte values shift the alignment
        let mixed = vec![
            Column::boolean(vec![true; 3]),
            Column::bigint(vec![1]),
            Column::text(["abc"]),
            with_nulls(Column::double(vec![1.0; 3]), vec![false, true, true]),
            Column::text(texts()),
            Column::boolean(vec![false]),
        ];
        assert_same_bytes(&Change::Insert {
            target: "mixed",
            columns: &mixed,
            replace: false,
        });
    }

    #[test]
    fn delete_bytes_match_the_owned_encoding() {
        let all = keys();
        for table in ["t", "a_table_name_longer_than_eight"] {
            for k in &all {
                assert_same_bytes(&Change::Delete {
                    table,
                    keys: std::slice::from_ref(k),
                });
            }
            assert_same_bytes(&Change::Delete { table, keys: &all });
            assert_same_bytes(&Change::Delete { table, keys: &[] });
        }
    }

    /// Every record of the `embedded-v1` fixture's WAL, decoded into a change and encoded
    /// again, gives back the bytes on disk.
    #[test]
    fn fixture_wal_records_encode_to_the_same_bytes() {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/embedded-v1/data");
        let tmp = tempfile::tempdir().unwrap();
        let wal_copy = wal_dir(tmp.path());
        std::fs::create_dir_all(&wal_copy).unwrap();
        for entry in std::fs::read_dir(wal_dir(&fixture)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), wal_copy.join(entry.file_name())).unwrap();
        }
        let (wal, _) =
            Wal::open(&wal_copy, SyncMode::Never, 64 << 20, OnCorruption::Refuse).unwrap();
        let mut records = 0;
        let mut buf = AlignedVec::new();
        let mut replay = wal.replay(0).unwrap();
        while let Some((lsn, payload)) = replay.next_record().unwrap() {
            let mut aligned = AlignedVec::<16>::new();
            aligned.extend_from_slice(payload);
            let record = rkyv::access::<ArchivedLogRecord, rancor::Error>(&aligned).unwrap();
            let change = owned_change(record);
            let again = encode_change(&change.as_change(), std::mem::take(&mut buf)).unwrap();
            assert_eq!(again.as_slice(), payload, "record at LSN {lsn}");
            buf = again;
            records += 1;
        }
        assert!(records > 10, "only {records} records in the fixture WAL");
    }

    /// A view's state through a format-3 object image and back.
    fn view_round_trip(keys: Vec<Key>) {
        let n = keys.len();
        let state = ObjectState::View {
            distinct: vec![keys
                .iter()
                .enumerate()
                .map(|(i, k)| (i as u32, k.clone()))
                .collect()],
            keys,
            records: (0..n as i64 * 3).collect(),
            texts: vec![(0..n)
                .map(|i| (i % 2 == 0).then(|| Arc::from(format!("t{i}").as_str())))
                .collect()],
        };
        let image = object_image_v3("v".into(), "ddl".into(), Some(state.clone()));
        let bytes = rkyv::to_bytes::<rancor::Error>(&image).unwrap();
        let archived = rkyv::access::<ArchivedObjectImageV3, rancor::Error>(&bytes).unwrap();
        let mut back = state_from_v2(&archived.state);
        if let ObjectState::View { distinct, .. } = &mut back {
            *distinct = distinct_from(&archived.distinct);
        }
        assert_eq!(back, state);
    }

    #[test]
    fn snapshot_v2_stores_single_integer_keys_as_a_column_and_others_as_before() {
        let ints = vec![Key::Int(7), Key::Int(i64::MIN), Key::Int(0)];
        let (image, _) = state_image_v2(ObjectState::View {
            keys: ints.clone(),
            records: vec![],
            texts: vec![],
            distinct: vec![],
        });
        assert!(matches!(
            image,
            StateImageV2::View { keys: KeyColumn::Ints(ref v), .. } if v == &[7, i64::MIN, 0]
        ));
        view_round_trip(ints);
        // A NULL, a text or a composite key anywhere: the general form, still exact.
        let mut mixed = vec![Key::Int(1)];
        mixed.extend(keys().into_iter().filter(|k| {
            !matches!(k, Key::Composite(parts) if parts.iter().any(|p| matches!(p, Key::Composite(_))))
        }));
        let (image, _) = state_image_v2(ObjectState::View {
            keys: mixed.clone(),
            records: vec![],
            texts: vec![],
            distinct: vec![],
        });
        assert!(matches!(
            image,
            StateImageV2::View {
                keys: KeyColumn::General(_),
                ..
            }
        ));
        view_round_trip(mixed);
        view_round_trip(vec![]);
    }
}
