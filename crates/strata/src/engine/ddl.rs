//! The catalog's changes: creating and dropping sources, tables, views and indexes, as the
//! prepare and apply steps of the [pipeline](super::pipeline).

use super::aggregate::AggState;
use super::kernel::{IndexDef, Kernel, Part, Source, Table, View};
use super::pipeline::{Replaying, Work};
use super::plan::Plan;
use super::schema::Schema;
use crate::error::Result;
use crate::index::IndexBackend;
use crate::profile::PhysicalProfile;
use crate::sql::ObjectKind;
use crate::state::StateBackend;

impl<P: PhysicalProfile> Kernel<P> {
    /// Builds the object a DDL plan creates (allocating its state), or names what it drops.
    /// The plan was checked against the catalog; nothing is visible until it is applied.
    pub(super) fn prepare_ddl<'a>(
        &mut self,
        plan: &Plan,
        replaying: Option<&Replaying>,
    ) -> Result<Work<'a, P>> {
        Ok(match plan {
            Plan::CreateSource { name, columns, ddl } => Work::CreateSource {
                name: name.clone(),
                source: Source {
                    schema: Schema::new(columns.clone()),
                },
                ddl: ddl.clone(),
            },
            Plan::CreateTable {
                name,
                columns,
                primary_key,
                ddl,
            } => Work::CreateTable {
                name: name.clone(),
                table: Table {
                    schema: Schema::new(columns.clone()),
                    primary_key: primary_key.clone(),
                    rows: StateBackend::with_capacity(self.capacity),
                },
                ddl: ddl.clone(),
            },
            Plan::CreateView {
                name,
                source,
                columns,
                agg,
                definition,
                ddl,
            } => Work::CreateView {
                name: name.clone(),
                view: Box::new(View {
                    source: source.clone(),
                    columns: columns.clone(),
                    state: AggState::new(agg.clone(), self.capacity),
                    definition: definition.clone(),
                    subscribers: Vec::new(),
                }),
                ddl: ddl.clone(),
            },
            Plan::CreateIndex {
                name,
                table,
                column,
                ddl,
            } => Work::CreateIndex {
                name: name.clone(),
                def: IndexDef {
                    table: table.clone(),
                    column: *column,
                },
                ddl: ddl.clone(),
                replayed: replaying.map(|r| (r.snapshot_lsn, r.index_rebuild_reason.clone())),
            },
            Plan::Drop { kind, name, ddl } => Work::Drop {
                kind: *kind,
                name: name.clone(),
                ddl: ddl.clone(),
            },
            other => unreachable!("not a DDL plan: {other:?}"),
        })
    }

    pub(super) fn apply_ddl(&mut self, work: Work<'_, P>) {
        match work {
            Work::CreateSource { name, source, ddl } => {
                self.catalog.push((name.clone(), ddl));
                self.sources.insert(name, source);
            }
            Work::CreateTable { name, table, ddl } => {
                self.catalog.push((name.clone(), ddl));
                self.tables.insert(name, table);
            }
            Work::CreateView { name, view, ddl } => {
                self.catalog.push((name.clone(), ddl));
                self.views.insert(name, *view);
            }
            Work::CreateIndex {
                name,
                def,
                ddl,
                replayed,
            } => {
                self.catalog.push((name.clone(), ddl));
                self.build_index(&name, &def, replayed);
                self.indexes.insert(name, def);
            }
            Work::Drop { kind, name, .. } => self.drop_object(kind, &name),
            _ => unreachable!("not a DDL change"),
        }
    }

    /// Brings the stored entries of a new index up to date: rebuilds them from the table,
    /// unless recovery replays an index whose stored entries are already current.
    fn build_index(&mut self, name: &str, def: &IndexDef, replayed: Option<(u64, Option<String>)>) {
        if self.part == Part::Catalog {
            return; // no entries: the shards' kernels keep them
        }
        let table = &def.table;
        let Some(backend) = self.index_backend.as_mut() else {
            // Index storage is off ([indexes] enabled = false) for a directory whose log or
            // snapshot has this index: it stays in the catalog (and in later snapshots), and
            // queries scan. With storage on again, it is rebuilt or caught up at startup.
            crate::notice!(
                "index `{name}` on `{table}` is kept but not maintained while [indexes] \
                 enabled = false; queries on `{table}` scan"
            );
            return;
        };
        // The stored index holds the exact entries as of some log position: the last
        // `mark_durable` after a crash, or everything written before a clean close (`None`).
        // From any position at or after the snapshot, replaying the log after the snapshot
        // ends at the current entries (each record's change is computed from the table), so
        // only an index older than the snapshot, or missing, is rebuilt.
        let current = replayed.as_ref().is_some_and(|(lsn, _)| {
            backend.exists(name) && backend.durable_lsn().is_none_or(|marked| marked >= *lsn)
        });
        if current {
            return;
        }
        // Without a snapshot the index storage was never made durable: rebuilding is routine.
        match &replayed {
            Some((_, Some(reason))) => crate::notice!(
                "{reason}: rebuilding index `{name}` on `{table}` from the table"
            ),
            Some((lsn, None)) if *lsn > 0 => crate::notice!(
                "index `{name}` on `{table}` is not as of the snapshot: rebuilding it from the table"
            ),
            _ => {}
        }
        let column = def.column;
        let rows = &self.tables[table].rows;
        let rebuilt = backend.rebuild(
            name,
            &mut rows.iter().map(|(k, row)| (row[column].clone(), k.clone())),
        );
        if let Err(e) = rebuilt {
            self.index_storage_failed(&e);
        }
    }

    fn drop_object(&mut self, kind: ObjectKind, name: &str) {
        self.catalog.retain(|(n, _)| n != name);
        match kind {
            ObjectKind::Source => drop(self.sources.remove(name)),
            ObjectKind::Table => drop(self.tables.remove(name)),
            ObjectKind::View => drop(self.views.remove(name)),
            ObjectKind::Index => self.drop_index(name),
        }
        if kind == ObjectKind::Table {
            // A table's indexes go with it.
            let doomed: Vec<String> = self
                .indexes
                .iter()
                .filter(|(_, d)| d.table == name)
                .map(|(n, _)| n.clone())
                .collect();
            for index in doomed {
                self.catalog.retain(|(n, _)| *n != index);
                self.drop_index(&index);
            }
        }
    }

    fn drop_index(&mut self, name: &str) {
        self.indexes.remove(name);
        if let Some(b) = self.index_backend.as_mut() {
            if let Err(e) = b.drop_index(name) {
                self.index_storage_failed(&e);
            }
        }
    }
}
