//! The kernel's side of durability: applying what a checkpointer's storage holds (a
//! snapshot's objects, then the changes logged after it) through the same prepare and apply
//! steps as live changes, and showing its catalog and state for a snapshot.

use super::aggregate::ImportError;
use super::kernel::{state_full, unknown, Kernel};
use super::pipeline::Replaying;
use crate::batch::Column;
use crate::change::Change;
use crate::checkpoint::{ObjectState, Recovery, StateView};
use crate::error::{Error, ExecError, PersistError, Result};
use crate::profile::PhysicalProfile;
use crate::sql::ObjectKind;
use crate::state::StateBackend;

impl<P: PhysicalProfile> Kernel<P> {
    /// Brings this (empty) kernel to the state `recovery` holds. `index_rebuild_reason`:
    /// why the index storage was recreated at open, if it was.
    pub fn recover(
        &mut self,
        recovery: Recovery,
        index_rebuild_reason: Option<String>,
    ) -> Result<()> {
        let replaying = Replaying {
            snapshot_lsn: recovery.snapshot_lsn,
            index_rebuild_reason,
        };
        let corrupt = |reason: String| PersistError::CorruptSnapshot {
            file: recovery.snapshot_location.clone(),
            reason,
        };
        for (name, ddl, state) in recovery.objects {
            self.replay(&Change::Ddl(&ddl), &replaying)
                .and_then(|()| self.import(&name, state))
                .map_err(|e| corrupt(format!("cannot restore it: {e}")))?;
        }
        for record in recovery.log {
            let (lsn, change) = record?;
            self.replay(&change.as_change(), &replaying)
                .map_err(|e| PersistError::BadRecord {
                    dir: recovery.log_location.clone(),
                    lsn,
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// Replaces the state of an object just created from a snapshot's catalog.
    fn import(&mut self, name: &str, state: ObjectState) -> Result<()> {
        match state {
            ObjectState::Source => Ok(()),
            ObjectState::Table { columns } => {
                self.table(name)?.schema.check_shape(name, &columns)?;
                let prepared = self.prepare_insert(name, &columns, true)?;
                self.apply(prepared);
                Ok(())
            }
            ObjectState::View {
                keys,
                records,
                texts,
                distinct,
            } => {
                let Some(view) = self.views.get_mut(name) else {
                    return Err(unknown(ObjectKind::View, name));
                };
                view.state
                    .import(keys, records, texts, distinct)
                    .map_err(|e| match e {
                        ImportError::Full(f) => {
                            state_full::<P>(format!("materialized view `{name}`"), f)
                        }
                        ImportError::Shape(reason) => Error::from(ExecError::Eval(format!(
                            "snapshot state of materialized view `{name}` does not match its \
                         definition: {reason}"
                        ))),
                    })
            }
        }
    }
}

impl<P: PhysicalProfile> StateView for Kernel<P> {
    fn catalog(&self) -> Vec<(String, String)> {
        self.catalog.clone()
    }

    fn export(&self, name: &str) -> Option<ObjectState> {
        if self.sources.contains_key(name) {
            return Some(ObjectState::Source);
        }
        if let Some(t) = self.tables.get(name) {
            let mut values: Vec<Vec<crate::types::Value>> = t
                .schema
                .columns
                .iter()
                .map(|_| Vec::with_capacity(t.rows.len()))
                .collect();
            for (_, row) in t.rows.iter() {
                for (col, v) in values.iter_mut().zip(row.iter()) {
                    col.push(v.clone());
                }
            }
            let columns = t
                .schema
                .columns
                .iter()
                .zip(&values)
                .map(|(c, v)| Column::from_values(c.ty, v))
                .collect();
            return Some(ObjectState::Table { columns });
        }
        self.views.get(name).map(|v| v.state.export())
    }
}
