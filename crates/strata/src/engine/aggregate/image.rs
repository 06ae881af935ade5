//! A view's groups in and out of snapshots: keys, records and text extremes in slot order.

use super::accumulate::{set_wide, AccKind};
use super::keys::{fixed_to_key, key_to_fixed, slot_for, GroupIndex};
use super::AggState;
use crate::checkpoint::ObjectState;
use crate::profile::PhysicalProfile;
use crate::state::{Full, StateBackend};
use crate::types::Key;
use std::sync::Arc;

/// Why a snapshot's view state could not be loaded.
pub enum ImportError {
    Full(Full),
    Shape(String),
}

impl<P: PhysicalProfile> AggState<P> {
    /// The groups in slot order, as keys, records and text extremes.
    pub fn export(&self) -> ObjectState {
        let keys: Vec<Key> = match &self.index {
            GroupIndex::Fixed1 { keys, .. } => keys.iter().map(fixed_to_key).collect(),
            GroupIndex::Fixed2 { keys, .. } => keys.iter().map(fixed_to_key).collect(),
            GroupIndex::General { keys, .. } => keys.clone(),
        };
        let mut records = self.records.clone();
        records.resize(keys.len() * self.stride, 0);
        let texts = self
            .texts
            .iter()
            .map(|t| {
                let mut t = t.clone();
                t.resize(keys.len(), None);
                t
            })
            .collect();
        ObjectState::View {
            keys,
            records,
            texts,
            distinct: self.export_pairs(),
        }
    }

    /// Records written before AVG over BIGINT was exact (snapshot format 2 and older) keep
    /// two words for it, `[f64 sum bits, n]`, where this build keeps three, `[i128 sum, n]`:
    /// the record width tells which. Those sums are converted (rounded to the integer they
    /// approximate); any other width is returned as it is, for `import` to judge.
    fn upgrade_records(&self, records: Vec<i64>, groups: usize) -> Vec<i64> {
        let avg_ints = self
            .layout
            .iter()
            .filter(|l| l.kind == AccKind::AvgInt)
            .count();
        let old_stride = self.stride - avg_ints;
        if avg_ints == 0 || groups == 0 || records.len() != groups * old_stride {
            return records;
        }
        let mut upgraded = Vec::with_capacity(groups * self.stride);
        for old in records.chunks_exact(old_stride) {
            let mut at = 0;
            for l in &self.layout {
                if l.kind == AccKind::AvgInt {
                    let mut words = [0i64; 3];
                    set_wide(&mut words, f64::from_bits(old[at] as u64).round() as i128);
                    words[2] = old[at + 1];
                    upgraded.extend_from_slice(&words);
                    at += 2;
                } else {
                    let n = l.kind.words();
                    upgraded.extend_from_slice(&old[at..at + n]);
                    at += n;
                }
            }
        }
        upgraded
    }

    /// Loads exported groups into this (empty) state.
    pub fn import(
        &mut self,
        keys: Vec<Key>,
        records: Vec<i64>,
        texts: Vec<Vec<Option<Arc<str>>>>,
        distinct: Vec<Vec<(u32, Key)>>,
    ) -> Result<(), ImportError> {
        if !self.is_empty() {
            return Err(ImportError::Shape("the view already holds groups".into()));
        }
        let records = self.upgrade_records(records, keys.len());
        if records.len() != keys.len() * self.stride
            || texts.len() != self.texts.len()
            || texts.iter().any(|t| t.len() != keys.len())
        {
            return Err(ImportError::Shape(format!(
                "{} groups with {} record words and {} text columns, expected {} words per group and {} text columns",
                keys.len(),
                records.len(),
                texts.len(),
                self.stride,
                self.texts.len()
            )));
        }
        if P::STATE_CAN_GROW {
            // Size the index once instead of growing it through every power of two.
            let n = keys.len();
            match &mut self.index {
                GroupIndex::Fixed1 { map, keys } => {
                    *map = StateBackend::with_capacity(n);
                    keys.reserve(n);
                }
                GroupIndex::Fixed2 { map, keys } => {
                    *map = StateBackend::with_capacity(n);
                    keys.reserve(n);
                }
                GroupIndex::General { map, keys } => {
                    *map = StateBackend::with_capacity(n);
                    keys.reserve(n);
                }
            }
        }
        let width = self.group_types.len();
        let result = keys.into_iter().try_for_each(|key| {
            let next = self.len() as u32;
            let inserted = match &mut self.index {
                GroupIndex::Fixed1 { map, keys } => key_to_fixed::<1>(&key, width)
                    .map(|k| (map, keys, k))
                    .map(|(m, ks, k)| slot_for(m, ks, k)),
                GroupIndex::Fixed2 { map, keys } => key_to_fixed::<2>(&key, width)
                    .map(|k| (map, keys, k))
                    .map(|(m, ks, k)| slot_for(m, ks, k)),
                GroupIndex::General { map, keys } => Some(slot_for(map, keys, key)),
            };
            match inserted {
                None => Err(ImportError::Shape(
                    "a group key does not fit the view's key columns".into(),
                )),
                Some(Err(full)) => Err(ImportError::Full(full)),
                Some(Ok(slot)) if slot != next => {
                    Err(ImportError::Shape("duplicate group key".into()))
                }
                Some(Ok(_)) => Ok(()),
            }
        });
        let groups = self.len();
        if let Err(e) = result.and_then(|()| self.import_pairs(distinct, groups)) {
            self.rollback(0);
            for set in &mut self.distinct {
                set.clear();
            }
            return Err(e);
        }
        self.records = records;
        self.texts = texts;
        self.index_sessions(0);
        Ok(())
    }
}
