//! Group keys: fixed-width keys of one or two values (grouping on them never allocates),
//! general keys, the index from key to slot, and the key columns of a prepared batch.

use crate::batch::{Column, ColumnData};
use crate::engine::batch_rows::BatchRow;
use crate::error::ExecError;
use crate::profile::PhysicalProfile;
use crate::sql::expr::Expr;
use crate::state::{Full, StateBackend};
use crate::types::{DataType, Key, Value};
use std::borrow::Cow;
use std::hash::{Hash, Hasher};

/// A key of up to `N` fixed-width values (BIGINT, TIMESTAMP, BOOLEAN, DOUBLE bits) with a
/// NULL mask: grouping on such columns never allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FixedKey<const N: usize> {
    pub(super) values: [i64; N],
    pub(super) nulls: u8,
}

impl<const N: usize> Hash for FixedKey<N> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The NULL mask is left out: it only separates keys whose values are equal.
        for v in self.values {
            state.write_i64(v);
        }
    }
}

/// Group key → slot, specialised by key shape.
pub(super) enum GroupIndex<P: PhysicalProfile> {
    Fixed1 {
        map: P::State<FixedKey<1>, u32>,
        keys: Vec<FixedKey<1>>,
    },
    Fixed2 {
        map: P::State<FixedKey<2>, u32>,
        keys: Vec<FixedKey<2>>,
    },
    General {
        map: P::State<Key, u32>,
        keys: Vec<Key>,
    },
}

/// A fixed-width key column as i64 values with its NULL mask.
pub(super) type FixedColumn<'a> = (Cow<'a, [i64]>, Option<Cow<'a, [bool]>>);

/// Group keys of a prepared batch, one per selected row.
pub(super) enum PreparedKeys<'a> {
    Fixed { columns: Vec<FixedColumn<'a>> },
    General(Vec<Key>),
}

impl PreparedKeys<'_> {
    pub(super) fn into_owned(self) -> PreparedKeys<'static> {
        match self {
            PreparedKeys::Fixed { columns } => PreparedKeys::Fixed {
                columns: columns
                    .into_iter()
                    .map(|(values, nulls)| {
                        (
                            Cow::Owned(values.into_owned()),
                            nulls.map(|n| Cow::Owned(n.into_owned())),
                        )
                    })
                    .collect(),
            },
            PreparedKeys::General(keys) => PreparedKeys::General(keys),
        }
    }
}

pub(super) fn fixed_to_key<const N: usize>(k: &FixedKey<N>) -> Key {
    let part = |i: usize| {
        if k.nulls & (1 << i) != 0 {
            Key::Null
        } else {
            Key::Int(k.values[i])
        }
    };
    if N == 1 {
        part(0)
    } else {
        Key::Composite((0..N).map(part).collect())
    }
}

pub(super) fn key_to_fixed<const N: usize>(key: &Key, width: usize) -> Option<FixedKey<N>> {
    let parts: &[Key] = match key {
        Key::Composite(parts) if width != 1 => parts,
        single if width == 1 => std::slice::from_ref(single),
        _ => return None,
    };
    if parts.len() != N {
        return None;
    }
    let mut k = FixedKey {
        values: [0; N],
        nulls: 0,
    };
    for (i, p) in parts.iter().enumerate() {
        match p {
            Key::Int(v) => k.values[i] = *v,
            Key::Null => k.nulls |= 1 << i,
            _ => return None,
        }
    }
    Some(k)
}

/// Always inlined: it runs once per row, and a call per row costs a fifth of the ingest rate
/// at small key counts (measured: `benches/ingest.rs`, 1k keys).
#[inline(always)]
pub(super) fn slot_for<K: Eq + Hash + Clone, S: StateBackend<K, u32>>(
    map: &mut S,
    keys: &mut Vec<K>,
    key: K,
) -> Result<u32, Full> {
    let next = keys.len() as u32;
    let (slot, inserted) = map.get_or_insert_with(key.clone(), || next)?;
    if inserted {
        keys.push(key);
    }
    Ok(*slot)
}

/// The values of a column as i64 (BIGINT, TIMESTAMP, BOOLEAN as 0/1, DOUBLE as canonical bits).
/// `selected`: the rows the view's WHERE keeps (`None`: all); the others are not evaluated
/// (their values are never read), so a row the filter drops cannot fail the statement.
pub(super) fn fixed_column<'a>(
    e: &Expr,
    columns: &'a [Column],
    rows: usize,
    selected: Option<&[bool]>,
) -> Result<FixedColumn<'a>, ExecError> {
    if let Some(i) = e.as_column() {
        let col = &columns[i];
        let nulls = col.nulls.as_deref().map(Cow::Borrowed);
        return Ok(match &col.data {
            ColumnData::BigInt(v) | ColumnData::Timestamp(v) => {
                (Cow::Borrowed(v.as_slice()), nulls)
            }
            ColumnData::Double(v) => (
                Cow::Owned(
                    v.iter()
                        .map(|d| crate::types::normalize_bits(*d) as i64)
                        .collect(),
                ),
                nulls,
            ),
            ColumnData::Boolean(v) => (Cow::Owned(v.iter().map(|b| *b as i64).collect()), nulls),
            ColumnData::Text(_) => unreachable!("text keys use the general index"),
        });
    }
    // A computed key (e.g. a tumbling window): evaluated per row.
    let mut vals = Vec::with_capacity(rows);
    let mut null_rows: Option<Vec<bool>> = None;
    for r in 0..rows {
        if selected.is_some_and(|s| !s[r]) {
            vals.push(0);
            continue;
        }
        let v = e.eval(&BatchRow { columns, row: r })?;
        match Key::from_value(&v) {
            Key::Int(x) => vals.push(x),
            _ => {
                vals.push(0);
                null_rows.get_or_insert_with(|| vec![false; rows])[r] = true;
            }
        }
    }
    Ok((Cow::Owned(vals), null_rows.map(Cow::Owned)))
}

pub(super) fn push_fixed<const N: usize>(
    row: &mut Vec<Value>,
    key: &FixedKey<N>,
    types: &[DataType],
) {
    for (i, (v, t)) in key.values.iter().zip(types).enumerate() {
        row.push(if key.nulls & (1 << i) != 0 {
            Value::Null
        } else {
            Key::Int(*v).to_value(*t)
        });
    }
}

/// The canonical key of row `row` of fixed key columns (`Key::from_value` of its group
/// values): one column gives `Int` or `Null`, several a `Composite`.
pub(super) fn fixed_key_at(columns: &[FixedColumn<'_>], row: usize) -> Key {
    let part = |(vals, nulls): &FixedColumn<'_>| {
        if nulls.as_ref().is_some_and(|n| n[row]) {
            Key::Null
        } else {
            Key::Int(vals[row])
        }
    };
    match columns {
        [one] => part(one),
        many => Key::Composite(many.iter().map(part).collect()),
    }
}

/// Calls `$body` with `map`, `keys` and a conversion `to_index(&Key) -> Option<index key>`
/// for whichever shape the index has.
macro_rules! with_index {
    ($index:expr, $width:expr, |$map:ident, $keys:ident, $to_index:ident| $body:expr) => {
        match $index {
            GroupIndex::Fixed1 {
                map: $map,
                keys: $keys,
            } => {
                let $to_index = |k: &Key| key_to_fixed::<1>(k, $width);
                $body
            }
            GroupIndex::Fixed2 {
                map: $map,
                keys: $keys,
            } => {
                let $to_index = |k: &Key| key_to_fixed::<2>(k, $width);
                $body
            }
            GroupIndex::General {
                map: $map,
                keys: $keys,
            } => {
                let $to_index = |k: &Key| Some(k.clone());
                $body
            }
        }
    };
}

impl<P: PhysicalProfile> GroupIndex<P> {
    /// The canonical key of group `slot`.
    pub(super) fn key_at(&self, slot: usize) -> Key {
        match self {
            GroupIndex::Fixed1 { keys, .. } => fixed_to_key(&keys[slot]),
            GroupIndex::Fixed2 { keys, .. } => fixed_to_key(&keys[slot]),
            GroupIndex::General { keys, .. } => keys[slot].clone(),
        }
    }

    /// The slot of the group whose canonical key is `key` (of `width` group columns).
    pub(super) fn slot_of(&self, key: &Key, width: usize) -> Option<u32> {
        with_index!(self, width, |map, _keys, to_index| to_index(key)
            .and_then(|k| map.get(&k).copied()))
    }

    /// Gives group `slot` the key `key` in place of its own.
    pub(super) fn rekey(&mut self, slot: u32, key: &Key, width: usize) {
        fn rekey_in<K: Eq + Hash + Clone, S: StateBackend<K, u32>>(
            map: &mut S,
            keys: &mut [K],
            slot: u32,
            new: K,
        ) {
            map.remove(&keys[slot as usize]);
            map.insert(new.clone(), slot)
                .expect("a key was removed first, so there is room");
            keys[slot as usize] = new;
        }
        with_index!(self, width, |map, keys, to_index| rekey_in(
            map,
            keys,
            slot,
            to_index(key).expect("a key of the index's own shape")
        ))
    }

    /// Removes the group whose canonical key is `key` from the map (its slot stays until
    /// [`swap_remove`](Self::swap_remove)).
    pub(super) fn unmap(&mut self, key: &Key, width: usize) {
        with_index!(self, width, |map, _keys, to_index| {
            if let Some(k) = to_index(key) {
                map.remove(&k);
            }
        })
    }

    /// Drops the (unmapped) slot `slot`; the last group moves into it.
    pub(super) fn swap_remove(&mut self, slot: usize, width: usize) {
        fn swap_remove_in<K: Eq + Hash + Clone, S: StateBackend<K, u32>>(
            map: &mut S,
            keys: &mut Vec<K>,
            slot: usize,
        ) {
            keys.swap_remove(slot);
            if let Some(moved) = keys.get(slot) {
                map.insert(moved.clone(), slot as u32)
                    .expect("the moved key is present, so it is replaced");
            }
        }
        with_index!(self, width, |map, keys, _to_index| swap_remove_in(
            map, keys, slot
        ))
    }
}
