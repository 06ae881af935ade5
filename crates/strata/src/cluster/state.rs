//! What a node holds: a catalog-only kernel at the node's position in the log, and one
//! kernel per shard it owns, every one of them at that same position. Applying a log entry
//! applies its DDL to the catalog and each change to every partition, which keeps the keys
//! of its shard (`Part::Shard`): routing happens at apply time, on every owner alike, so
//! every owner of a shard computes the same state from the same log.

use super::entry;
use super::log::Cursor;
use crate::change::{Change, OwnedChange};
use crate::engine::{Kernel, Part, Replaying};
use crate::error::{PersistError, Result};
use crate::persist::image::{self, ArchivedLogRecord};
use crate::profile::PhysicalProfile;
use bytes::Bytes;
use std::collections::{BTreeMap, HashSet, VecDeque};

/// Log entries kept after they are applied, for loading a shard without fetching them
/// again from the store (bounded by bytes; older ones are fetched when needed).
const RECENT_BYTES: usize = 512 << 20;
/// Request ids of recently applied changes kept, to recognise a retried request.
const RECENT_REQUESTS: usize = 1 << 20;

/// One shard this node owns.
pub struct Partition<P: PhysicalProfile> {
    pub kernel: Kernel<P>,
    /// The LSN its newest checkpoint covers.
    pub checkpointed: u64,
}

pub struct State<P: PhysicalProfile> {
    pub catalog: Kernel<P>,
    /// The next entry the catalog and every partition apply.
    pub cursor: Cursor,
    /// The LSN the catalog's newest checkpoint covers.
    pub catalog_checkpointed: u64,
    pub partitions: BTreeMap<u32, Partition<P>>,
    /// Applied entries, oldest first: `(lsn, payload)`.
    recent: VecDeque<(u64, Bytes)>,
    recent_bytes: usize,
    /// Request ids of the changes applied lately, oldest first, and as a set.
    requests: VecDeque<u128>,
    request_set: HashSet<u128>,
}

/// A decoded entry: each change with the request it came from.
pub struct Decoded {
    pub changes: Vec<(u128, OwnedChange)>,
}

/// Decodes an entry's payload.
pub fn decode(payload: &Bytes) -> std::result::Result<Decoded, String> {
    let mut changes = Vec::new();
    for (request, bytes) in entry::changes(payload)? {
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(&bytes);
        let record = rkyv::access::<ArchivedLogRecord, rkyv::rancor::Error>(&aligned)
            .map_err(|e| format!("a change does not decode: {e}"))?;
        changes.push((request, image::owned_change(record)));
    }
    Ok(Decoded { changes })
}

impl<P: PhysicalProfile> State<P> {
    pub fn new(catalog: Kernel<P>, cursor: Cursor, catalog_checkpointed: u64) -> Self {
        State {
            catalog,
            cursor,
            catalog_checkpointed,
            partitions: BTreeMap::new(),
            recent: VecDeque::new(),
            recent_bytes: 0,
            requests: VecDeque::new(),
            request_set: HashSet::new(),
        }
    }

    /// Applies the entry at `lsn` (which must be the cursor's next) from namespace `epoch`.
    pub fn apply(&mut self, epoch: u64, lsn: u64, payload: Bytes) -> Result<()> {
        debug_assert_eq!(lsn, self.cursor.next_lsn);
        let decoded = decode(&payload).map_err(|reason| PersistError::BadRecord {
            dir: "the cluster log".into(),
            lsn,
            reason,
        })?;
        let replaying = Replaying::default();
        for (request, change) in &decoded.changes {
            let change = change.as_change();
            let failed = |e: crate::Error| PersistError::BadRecord {
                dir: "the cluster log".into(),
                lsn,
                reason: e.report(),
            };
            if let Change::Ddl(_) = change {
                self.catalog.replay(&change, &replaying).map_err(failed)?;
            }
            for partition in self.partitions.values_mut() {
                partition
                    .kernel
                    .replay(&change, &replaying)
                    .map_err(failed)?;
            }
            self.remember_request(*request);
        }
        self.cursor = Cursor {
            epoch,
            next_lsn: lsn + 1,
        };
        self.recent_bytes += payload.len();
        self.recent.push_back((lsn, payload));
        while self.recent_bytes > RECENT_BYTES {
            let Some((_, old)) = self.recent.pop_front() else {
                break;
            };
            self.recent_bytes -= old.len();
        }
        Ok(())
    }

    fn remember_request(&mut self, request: u128) {
        if self.request_set.insert(request) {
            self.requests.push_back(request);
            if self.requests.len() > RECENT_REQUESTS {
                if let Some(old) = self.requests.pop_front() {
                    self.request_set.remove(&old);
                }
            }
        }
    }

    /// Whether a change of `request` was applied lately (a retried request must not be
    /// recorded twice).
    pub fn applied_request(&self, request: u128) -> bool {
        self.request_set.contains(&request)
    }

    /// The applied entries after LSN `after`, if every one of them is still kept.
    pub fn recent_after(&self, after: u64) -> Option<Vec<(u64, Bytes)>> {
        if after >= self.cursor.applied() {
            return Some(Vec::new());
        }
        let first = self.recent.front()?.0;
        if first > after + 1 {
            return None;
        }
        Some(
            self.recent
                .iter()
                .filter(|(lsn, _)| *lsn > after)
                .cloned()
                .collect(),
        )
    }
}

/// Applies a decoded entry to one kernel (a partition being loaded, catching up).
pub fn apply_to<P: PhysicalProfile>(
    kernel: &mut Kernel<P>,
    lsn: u64,
    payload: &Bytes,
) -> Result<()> {
    let decoded = decode(payload).map_err(|reason| PersistError::BadRecord {
        dir: "the cluster log".into(),
        lsn,
        reason,
    })?;
    let replaying = Replaying::default();
    for (_, change) in &decoded.changes {
        kernel
            .replay(&change.as_change(), &replaying)
            .map_err(|e| PersistError::BadRecord {
                dir: "the cluster log".into(),
                lsn,
                reason: e.report(),
            })?;
    }
    Ok(())
}

/// A partition kernel for `shard` of `shards`.
pub fn partition_kernel<P: PhysicalProfile>(capacity: usize, shard: u32, shards: u32) -> Kernel<P> {
    Kernel::with_part(capacity, Part::Shard { shard, shards })
}
