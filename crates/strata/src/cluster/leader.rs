//! The owner of the log: it orders every write of the cluster. Requests queue here (from
//! this node's clients and from the other nodes); one thread takes them in order, validates
//! each against the catalog as of the log's end — exactly what a single engine would check,
//! with the same messages — and appends the valid ones in groups: one object-store put for
//! every change waiting (group commit). A change is acknowledged once its entry is in the
//! log; the owners of its keys apply it when the entry reaches them.
//!
//! Some statements depend on the state, not only on the catalog: an `INSERT` into a table
//! (a key that exists is an error, skipped or updated with `ON CONFLICT`), a `DELETE` and an
//! `UPDATE` (their `WHERE` is evaluated on the rows). For those the leader first appends
//! what is waiting, then asks the owners of the shards involved, as of the log's end, and
//! appends the statement alone — an `UPDATE` or `ON CONFLICT` as the upsert of the rows it
//! computed: nothing can come between the answer and the append.

use super::entry::PayloadBuilder;
use super::log::{AppendError, Writer};
use super::node::Inner;
use super::rpc::{Response, WriteBody};
use crate::change::{Change, OwnedChange};
use crate::engine::{Assignments, Conflict, Origin, Plan};
use crate::error::{ExecError, Result, SqlError};
use crate::persist::image;
use crate::profile::PhysicalProfile;
use crate::types::{Key, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Changes in one entry, at most.
const GROUP_CHANGES: usize = 1024;
/// Bytes of changes in one entry, at most (a larger single change gets an entry of its own).
const GROUP_BYTES: usize = 8 << 20;
/// Outcomes kept for requests that may be retried.
const SETTLED: usize = 1 << 16;

/// A write waiting to be ordered.
pub struct Pending {
    pub request: u128,
    pub body: WriteBody,
    pub reply: tokio::sync::oneshot::Sender<Response>,
}

/// The log's owner on this node.
pub struct Leader {
    writer: Mutex<Writer>,
    queue: Mutex<VecDeque<Pending>>,
    wake: Condvar,
    /// Outcomes of recent requests, and their order (oldest first), for retries.
    settled: Mutex<(HashMap<u128, SettledOutcome>, VecDeque<u128>)>,
    fenced: std::sync::atomic::AtomicBool,
}

#[derive(Clone)]
enum SettledOutcome {
    Written(u64),
    Failed {
        kind: u8,
        sqlstate: String,
        message: String,
    },
}

impl SettledOutcome {
    fn response(&self) -> Response {
        match self {
            SettledOutcome::Written(rows) => Response::Written { rows: *rows },
            SettledOutcome::Failed {
                kind,
                sqlstate,
                message,
            } => Response::Failed {
                kind: *kind,
                sqlstate: sqlstate.clone(),
                message: message.clone(),
            },
        }
    }
}

/// One validated change waiting for its entry.
struct Grouped {
    pending: Pending,
    change: Vec<u8>,
    rows: u64,
}

impl Leader {
    pub fn new(writer: Writer) -> Leader {
        Leader {
            writer: Mutex::new(writer),
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            settled: Mutex::new((HashMap::new(), VecDeque::new())),
            fenced: Default::default(),
        }
    }

    /// The LSN of the last entry appended (0: none).
    pub fn last_lsn(&self) -> u64 {
        lock(&self.writer).next_lsn() - 1
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Queues a write; the answer comes on `pending.reply`.
    pub fn submit(&self, pending: Pending) {
        if self.is_fenced() {
            let _ = pending.reply.send(Response::NotLeader { owner: None });
            return;
        }
        lock(&self.queue).push_back(pending);
        self.wake.notify_one();
    }

    /// Wakes the sequencer (to see that the node stops).
    pub fn nudge(&self) {
        self.wake.notify_all();
    }

    fn settle(&self, request: u128, outcome: SettledOutcome) {
        let mut guard = lock(&self.settled);
        let (map, order) = &mut *guard;
        if map.insert(request, outcome).is_none() {
            order.push_back(request);
            if order.len() > SETTLED {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }

    fn settled(&self, request: u128) -> Option<SettledOutcome> {
        lock(&self.settled).0.get(&request).cloned()
    }

    fn reply(&self, pending: Pending, response: Response) {
        match &response {
            Response::Written { rows } => {
                self.settle(pending.request, SettledOutcome::Written(*rows))
            }
            Response::Failed {
                kind,
                sqlstate,
                message,
            } => self.settle(
                pending.request,
                SettledOutcome::Failed {
                    kind: *kind,
                    sqlstate: sqlstate.clone(),
                    message: message.clone(),
                },
            ),
            _ => {}
        }
        let _ = pending.reply.send(response);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The sequencer: runs until the node stops or another node takes the log over.
pub fn run<P: PhysicalProfile>(inner: Arc<Inner<P>>, leader: Arc<Leader>) {
    while !inner.stopping() && !leader.is_fenced() {
        let batch: Vec<Pending> = {
            let mut queue = lock(&leader.queue);
            while queue.is_empty() && !inner.stopping() {
                queue = leader
                    .wake
                    .wait_timeout(queue, Duration::from_millis(200))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            queue.drain(..).collect()
        };
        let mut group: Vec<Grouped> = Vec::new();
        for pending in batch {
            if leader.is_fenced() {
                let _ = pending.reply.send(Response::NotLeader { owner: None });
                continue;
            }
            // A retried request: answer what happened to it.
            if let Some(outcome) = leader.settled(pending.request) {
                let _ = pending.reply.send(outcome.response());
                continue;
            }
            if inner.applied_request(pending.request) {
                leader.reply(pending, Response::Written { rows: 0 });
                continue;
            }
            match classify(&inner, &pending.body) {
                Err(e) => leader.reply(pending, Response::failed(&e)),
                Ok(Classified::Grouped { change, rows }) => {
                    group.push(Grouped {
                        pending,
                        change,
                        rows,
                    });
                    let bytes: usize = group.iter().map(|g| g.change.len()).sum();
                    if group.len() >= GROUP_CHANGES || bytes >= GROUP_BYTES {
                        flush(&inner, &leader, std::mem::take(&mut group));
                    }
                }
                Ok(Classified::Alone(work)) => {
                    flush(&inner, &leader, std::mem::take(&mut group));
                    alone(&inner, &leader, pending, work);
                }
                Ok(Classified::Nothing) => leader.reply(pending, Response::Written { rows: 0 }),
            }
        }
        flush(&inner, &leader, group);
    }
    if leader.is_fenced() {
        inner.lost_leadership(&leader);
    }
    // Whatever is still queued goes back to its sender, who retries with the new owner.
    for pending in lock(&leader.queue).drain(..) {
        let _ = pending.reply.send(Response::NotLeader { owner: None });
    }
}

/// How a write is recorded.
enum Classified {
    /// A change that depends only on the catalog: validated, appended with others.
    Grouped { change: Vec<u8>, rows: u64 },
    /// A change that must be appended alone, after what is waiting.
    Alone(Alone),
    /// Nothing to record (`DROP … IF EXISTS` of an object that does not exist).
    Nothing,
}

enum Alone {
    /// DDL: the catalog changes; later statements are validated against it.
    Ddl(String),
    /// A table insert without replace: its keys must not exist.
    Insert {
        table: String,
        columns: Vec<crate::batch::Column>,
    },
    /// A delete: its WHERE is evaluated on the owners' rows.
    Delete { sql: String, table: String },
    /// An update: its new rows are computed from the rows its WHERE selects.
    Update {
        sql: String,
        table: String,
        assignments: Assignments,
    },
    /// An insert with ON CONFLICT DO NOTHING / DO UPDATE: resolved against the rows of its
    /// keys that exist.
    Resolve {
        table: String,
        columns: Vec<crate::batch::Column>,
        conflict: Conflict,
    },
}

/// Validates a write against the catalog, as a single engine would.
fn classify<P: PhysicalProfile>(inner: &Inner<P>, body: &WriteBody) -> Result<Classified> {
    let mut state = inner.state();
    let catalog = &mut state.catalog;
    match body {
        WriteBody::Sql(text) => {
            let stmt = crate::sql::parse_one(text)?;
            let plan = catalog.plan(stmt.parsed(), Origin::Client)?;
            match plan {
                Plan::Nothing => Ok(Classified::Nothing),
                Plan::Insert {
                    target,
                    columns,
                    conflict: conflict @ (Conflict::Fail | Conflict::Replace),
                } => insert(
                    catalog,
                    target,
                    columns,
                    matches!(conflict, Conflict::Replace),
                ),
                Plan::Insert {
                    target,
                    columns,
                    conflict,
                } => Ok(Classified::Alone(Alone::Resolve {
                    table: target,
                    columns,
                    conflict,
                })),
                Plan::Delete { table, .. } => Ok(Classified::Alone(Alone::Delete {
                    sql: text.clone(),
                    table,
                })),
                Plan::Update { table, assignments } => Ok(Classified::Alone(Alone::Update {
                    sql: text.clone(),
                    table,
                    assignments,
                })),
                // Planning checked it; it is applied when its entry comes back from the log.
                ref ddl if ddl.ddl_text().is_some() => Ok(Classified::Alone(Alone::Ddl(
                    ddl.ddl_text().expect("checked").to_string(),
                ))),
                _ => Err(SqlError::Unsupported(
                    "a statement that returns rows sent to be recorded".into(),
                )
                .into()),
            }
        }
        WriteBody::Change(bytes) => {
            let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
            aligned.extend_from_slice(bytes);
            let record = rkyv::access::<image::ArchivedLogRecord, rkyv::rancor::Error>(&aligned)
                .map_err(|e| ExecError::Remote(format!("a batch that does not decode: {e}")))?;
            match image::owned_change(record) {
                OwnedChange::Insert {
                    target,
                    columns,
                    replace,
                } => {
                    catalog.check_insert_columns(&target, &columns)?;
                    insert(catalog, target, columns, replace)
                }
                _ => Err(ExecError::Remote("a batch that is not an insert".into()).into()),
            }
        }
    }
}

fn insert<P: PhysicalProfile>(
    catalog: &mut crate::engine::Kernel<P>,
    target: String,
    columns: Vec<crate::batch::Column>,
    replace: bool,
) -> Result<Classified> {
    let rows = columns.first().map_or(0, |c| c.len()) as u64;
    if catalog.is_table(&target) && !replace {
        return Ok(Classified::Alone(Alone::Insert {
            table: target,
            columns,
        }));
    }
    // A source (every view on it evaluates the rows: errors come out here) or an upsert.
    catalog.validate_insert(&target, &columns, replace)?;
    if rows == 0 && !catalog.is_table(&target) {
        // An append of no rows changes nothing, and is not recorded (as in one engine).
        return Ok(Classified::Nothing);
    }
    let change = Change::Insert {
        target: &target,
        columns: &columns,
        replace,
    };
    Ok(Classified::Grouped {
        change: encode(&change)?,
        rows,
    })
}

fn encode(change: &Change<'_>) -> Result<Vec<u8>> {
    image::encode_change(change, rkyv::util::AlignedVec::new())
        .map(|v| v.into_vec())
        .map_err(|e| {
            crate::error::PersistError::Encode {
                what: "change",
                cause: e.to_string(),
            }
            .into()
        })
}

/// Appends a group as one entry and answers each of its requests.
fn flush<P: PhysicalProfile>(inner: &Inner<P>, leader: &Leader, group: Vec<Grouped>) {
    if group.is_empty() {
        return;
    }
    let mut payload = PayloadBuilder::default();
    for g in &group {
        payload.push(g.pending.request, &g.change);
    }
    match append(inner, leader, payload) {
        Ok(()) => {
            for g in group {
                leader.reply(g.pending, Response::Written { rows: g.rows });
            }
        }
        Err(response) => {
            for g in group {
                let _ = g.pending.reply.send(match &response {
                    Response::Failed {
                        kind,
                        sqlstate,
                        message,
                    } => Response::Failed {
                        kind: *kind,
                        sqlstate: sqlstate.clone(),
                        message: message.clone(),
                    },
                    _ => Response::NotLeader { owner: None },
                });
            }
        }
    }
}

/// Appends one entry, resolving an unknown outcome before anything else is appended. `Err`
/// is the answer for the entry's requests (fenced: nothing of it was appended).
fn append<P: PhysicalProfile>(
    inner: &Inner<P>,
    leader: &Leader,
    payload: PayloadBuilder,
) -> std::result::Result<(), Response> {
    let changes = payload.len() as u64;
    let bytes = payload.finish();
    let mut writer = lock(&leader.writer);
    let deadline = Instant::now() + Duration::from_secs(120);
    let started = Instant::now();
    let mut result = inner.block_on(inner.log.append(&mut writer, bytes.clone()));
    // An unknown outcome is resolved by appending again (the writer first settles the
    // pending object): the entry lands at most once, at its position.
    while let Err(AppendError::Unknown { source, .. }) = &result {
        if Instant::now() >= deadline || inner.stopping() {
            tracing::error!("the log's store stays unreachable ({source}); giving the log up");
            leader
                .fenced
                .store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(Response::NotLeader { owner: None });
        }
        tracing::warn!("a log append has an unknown outcome ({source}); resolving it");
        std::thread::sleep(Duration::from_millis(200));
        result = inner.block_on(inner.log.resolve(&mut writer));
    }
    match result {
        Ok(lsn) => {
            inner.appended(writer.epoch(), lsn, bytes, changes, started.elapsed());
            Ok(())
        }
        Err(AppendError::Fenced { by, epoch }) => {
            tracing::warn!("node `{by}` took the cluster log over (epoch {epoch}); this node stops ordering writes");
            inner.count_fenced(changes);
            leader
                .fenced
                .store(true, std::sync::atomic::Ordering::SeqCst);
            Err(Response::NotLeader { owner: Some(by) })
        }
        Err(AppendError::Unknown { .. }) => unreachable!("resolved above"),
    }
}

/// A statement appended alone, after what was waiting.
fn alone<P: PhysicalProfile>(inner: &Inner<P>, leader: &Leader, pending: Pending, work: Alone) {
    // The owners answer as of the log's end, which this node's catalog must have reached too.
    let at = leader.last_lsn();
    if let Err(e) = inner.wait_applied(at, Duration::from_secs(30)) {
        leader.reply(pending, Response::failed(&e));
        return;
    }
    let checked = match work {
        Alone::Ddl(text) => encode(&Change::Ddl(&text)).map(|c| (c, 0)),
        Alone::Insert { table, columns } => {
            check_keys(inner, &table, &columns, at).and_then(|()| {
                let rows = columns.first().map_or(0, |c| c.len()) as u64;
                encode(&Change::Insert {
                    target: &table,
                    columns: &columns,
                    replace: false,
                })
                .map(|c| (c, rows))
            })
        }
        Alone::Delete { sql, table } => inner.matching_keys(&sql, at).and_then(|keys| {
            encode(&Change::Delete {
                table: &table,
                keys: &keys,
            })
            .map(|c| (c, 0))
        }),
        Alone::Update {
            sql,
            table,
            assignments,
        } => inner.matching_rows(&sql, at).and_then(|current| {
            let rows = inner.state().catalog.updated_rows(
                &table,
                &assignments,
                current.iter().map(|r| &r[..]),
            )?;
            upsert(&table, &rows)
        }),
        Alone::Resolve {
            table,
            columns,
            conflict,
        } => resolve(inner, &table, &columns, &conflict, at).and_then(|rows| upsert(&table, &rows)),
    };
    let (change, rows) = match checked {
        Ok(c) => c,
        Err(e) => {
            leader.reply(pending, Response::failed(&e));
            return;
        }
    };
    if change.is_empty() {
        // Nothing to write (an UPDATE that selects no row), as in one engine.
        leader.reply(pending, Response::Written { rows: 0 });
        return;
    }
    let mut payload = PayloadBuilder::default();
    payload.push(pending.request, &change);
    match append(inner, leader, payload) {
        Ok(()) => {
            // Later statements are validated against the catalog with this change in it.
            let _ = inner.wait_applied(leader.last_lsn(), Duration::from_secs(30));
            leader.reply(pending, Response::Written { rows });
        }
        Err(response) => {
            let _ = pending.reply.send(response);
        }
    }
}

/// An upsert of whole rows, as recorded; no bytes when there are no rows.
fn upsert(table: &str, columns: &[crate::batch::Column]) -> Result<(Vec<u8>, u64)> {
    let rows = columns.first().map_or(0, |c| c.len()) as u64;
    if rows == 0 {
        return Ok((Vec::new(), 0));
    }
    let change = encode(&Change::Insert {
        target: table,
        columns,
        replace: true,
    })?;
    Ok((change, rows))
}

/// The keys of an insert into a table, and the rows of those that exist.
struct InsertKeys {
    keys: Vec<Key>,
    existing: HashMap<Key, Vec<Value>>,
}

fn existing<P: PhysicalProfile>(
    inner: &Inner<P>,
    table: &str,
    columns: &[crate::batch::Column],
    at: u64,
) -> Result<InsertKeys> {
    let keys = inner.state().catalog.primary_keys(table, columns)?;
    let rows = inner.existing_rows(table, &keys, at)?;
    let state = inner.state();
    let existing = rows
        .into_iter()
        .map(|row| Ok((state.catalog.row_key(table, &row)?, row)))
        .collect::<Result<_>>()?;
    Ok(InsertKeys { keys, existing })
}

/// An insert into a table fails at the first row whose key exists already or came earlier
/// in the same statement, as in one engine.
fn check_keys<P: PhysicalProfile>(
    inner: &Inner<P>,
    table: &str,
    columns: &[crate::batch::Column],
    at: u64,
) -> Result<()> {
    let found = existing(inner, table, columns, at)?;
    let mut seen = rustc_hash::FxHashSet::default();
    for key in &found.keys {
        let first_in_batch = seen.insert(key.clone());
        if found.existing.contains_key(key) || !first_in_batch {
            let key = inner.state().catalog.key_text(table, key)?;
            return Err(ExecError::DuplicateKey {
                table: table.to_string(),
                key,
            }
            .into());
        }
    }
    Ok(())
}

/// The rows an insert with ON CONFLICT writes, given the rows of its keys that exist.
fn resolve<P: PhysicalProfile>(
    inner: &Inner<P>,
    table: &str,
    columns: &[crate::batch::Column],
    conflict: &Conflict,
    at: u64,
) -> Result<Vec<crate::batch::Column>> {
    let found = existing(inner, table, columns, at)?;
    let lookup = |key: &Key| found.existing.get(key).map(|row| &row[..]);
    inner
        .state()
        .catalog
        .resolve_conflicts(table, columns, conflict, &lookup)
}
