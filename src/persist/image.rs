//! The rkyv encodings of logged changes (WAL payloads) and of snapshots, and their
//! conversions from and to the engine's types. Formats are versioned by the WAL segment and
//! snapshot file headers; a change here needs a new format version and a reader for the old.

use crate::batch::{Column, ColumnData};
use crate::checkpoint::{Change, ObjectState};
use crate::types::Key;
use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};
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

/// Encodes a change as a WAL payload into `buf` (cleared first; reusing one buffer saves
/// allocating and faulting in fresh pages for every record).
pub fn encode_change(
    change: &Change<'_>,
    mut buf: AlignedVec,
) -> Result<AlignedVec, rancor::Error> {
    buf.clear();
    let record = match change {
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
    };
    rkyv::api::high::to_bytes_in::<_, rancor::Error>(&record, buf)
}

/// The state of one object as a snapshot stores it.
pub fn state_image(state: &ObjectState) -> StateImage {
    match state {
        ObjectState::Source => StateImage::Source,
        ObjectState::Table { columns } => StateImage::Table {
            columns: columns.iter().map(column_image).collect(),
        },
        ObjectState::View {
            keys,
            records,
            texts,
        } => StateImage::View {
            keys: keys.iter().map(key_image).collect(),
            records: records.clone(),
            texts: texts
                .iter()
                .map(|t| {
                    t.iter()
                        .map(|s| s.as_ref().map(|s| s.to_string()))
                        .collect()
                })
                .collect(),
        },
    }
}

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
            texts: texts
                .iter()
                .map(|t| {
                    t.iter()
                        .map(|s| s.as_ref().map(|s| Arc::from(s.as_str())))
                        .collect()
                })
                .collect(),
        },
    }
}
