//! `COUNT(DISTINCT x)`, `SUM(DISTINCT x)`, `AVG(DISTINCT x)`: each aggregate keeps the set of
//! (group, value) pairs it has seen, and folds a row into its group's accumulator only when
//! its pair is new. The set lives in the tier's state backend (fixed capacity in
//! `bare-metal`, where a full set fails the batch like a full view) and in snapshots.
//!
//! The phases of the [module](super) hold: phase 2 finds the new pairs of a batch and checks
//! that they fit (nothing inserted), phase 3 inserts them and folds their rows.

use super::{AggState, Prepared};
use crate::batch::Column;
use crate::profile::PhysicalProfile;
use crate::state::{Full, StateBackend};
use crate::types::Key;
use rustc_hash::FxHashSet;

/// One value of one group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct DistinctKey {
    pub slot: u32,
    pub value: Key,
}

/// The pairs a batch adds to one DISTINCT aggregate's set: the rows to fold (each with its
/// group's slot) and their keys.
#[derive(Default)]
pub(super) struct NewPairs {
    pub slots: Vec<u32>,
    pub rows: Vec<u32>,
    pub keys: Vec<DistinctKey>,
}

impl<P: PhysicalProfile> AggState<P> {
    /// Phase 2, after the slots are assigned: the new pairs of every DISTINCT aggregate, or
    /// `Full` when a set cannot take them (nothing is inserted either way).
    pub(super) fn find_new_pairs(&self, prepared: &mut Prepared<'_>) -> Result<(), Full> {
        let mut found = Vec::with_capacity(self.distinct.len());
        for (layout, arg) in self.layout.iter().zip(&prepared.args) {
            let (Some(set), Some(column)) = (layout.distinct.map(|d| &self.distinct[d]), arg)
            else {
                continue;
            };
            let new = new_pairs(set, column, &prepared.slots, prepared.selection.as_deref());
            if let Some(capacity) = set.capacity() {
                if set.len() + new.keys.len() > capacity {
                    return Err(Full { capacity });
                }
            }
            found.push(new);
        }
        prepared.distinct = found;
        Ok(())
    }

    /// Phase 3: inserts a batch's new pairs (their room was checked in phase 2).
    pub(super) fn insert_new_pairs(&mut self, prepared: &Prepared<'_>) {
        for (set, new) in self.distinct.iter_mut().zip(&prepared.distinct) {
            for key in &new.keys {
                set.insert(key.clone(), ())
                    .expect("room for the new pairs is checked when slots are assigned");
            }
        }
    }

    /// Every DISTINCT aggregate's pairs, for a snapshot.
    pub(super) fn export_pairs(&self) -> Vec<Vec<(u32, Key)>> {
        self.distinct
            .iter()
            .map(|set| {
                set.iter()
                    .map(|(k, ())| (k.slot, k.value.clone()))
                    .collect()
            })
            .collect()
    }

    /// Loads the pairs of a snapshot; `groups` is the number of groups loaded with them.
    pub(super) fn import_pairs(
        &mut self,
        pairs: Vec<Vec<(u32, Key)>>,
        groups: usize,
    ) -> Result<(), super::ImportError> {
        if pairs.len() != self.distinct.len() {
            return Err(super::ImportError::Shape(format!(
                "{} sets of distinct values, expected {}",
                pairs.len(),
                self.distinct.len()
            )));
        }
        for (set, pairs) in self.distinct.iter_mut().zip(pairs) {
            for (slot, value) in pairs {
                if slot as usize >= groups {
                    return Err(super::ImportError::Shape(format!(
                        "a distinct value of group {slot}, of {groups} groups"
                    )));
                }
                set.insert(DistinctKey { slot, value }, ())
                    .map_err(super::ImportError::Full)?;
            }
        }
        Ok(())
    }
}

fn new_pairs<S: StateBackend<DistinctKey, ()>>(
    set: &S,
    column: &Column,
    slots: &[u32],
    selection: Option<&[u32]>,
) -> NewPairs {
    let mut new = NewPairs::default();
    let mut in_batch = FxHashSet::default();
    let rows: Box<dyn Iterator<Item = u32>> = match selection {
        Some(sel) => Box::new(sel.iter().copied()),
        None => Box::new(0..slots.len() as u32),
    };
    for (&slot, row) in slots.iter().zip(rows) {
        if column.is_null(row as usize) {
            continue;
        }
        let key = DistinctKey {
            slot,
            value: Key::from_value(&column.value(row as usize)),
        };
        if set.get(&key).is_none() && in_batch.insert(key.clone()) {
            new.slots.push(slot);
            new.rows.push(row);
            new.keys.push(key);
        }
    }
    new
}
