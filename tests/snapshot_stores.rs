#![cfg(feature = "persistence")]
//! One conformance suite for every `SnapshotStore`: the data directory's `snapshots/`
//! (`SnapshotDir`) and, with an object store, `ObjectSnapshots` on `memory://`, `file://` and
//! the S3 test server. Each runs the same contract (see `snapshot_store.rs`): a written
//! snapshot is the newest one loaded, writing an LSN again replaces it, a snapshot the
//! caller's validation rejects is skipped for the previous one, retention keeps the newest
//! and reports the oldest kept, and an empty store loads nothing.

mod common;

use strata::testing::snapshot::{SnapshotBody, SnapshotDir, SnapshotHeader};
use strata::testing::snapshot_store::SnapshotStore;

fn body(lsn: u64, version: u8) -> SnapshotBody {
    let mut b = SnapshotBody::new();
    b.extend_from_slice(format!("snapshot {lsn} v{version} ").repeat(40).as_bytes());
    b
}

/// The bytes of what `load_newest` returns, with a validation that rejects `reject`.
fn newest(store: &mut impl SnapshotStore, reject: Option<u64>) -> Option<(u64, Vec<u8>, usize)> {
    let mut validate = |h: &SnapshotHeader, _: &SnapshotBody| match reject {
        Some(lsn) if h.lsn == lsn => Err(format!("snapshot {lsn} is rejected")),
        _ => Ok(()),
    };
    let outcome = store.load_newest(&mut validate).expect("the store reads");
    let skipped = outcome.skipped.len();
    outcome
        .loaded
        .map(|l| (l.lsn, l.body.as_slice().to_vec(), skipped))
}

fn conformance(kind: &str, mut store: impl SnapshotStore) {
    assert!(
        !store.location().is_empty(),
        "{kind}: a location for messages"
    );
    store
        .probe()
        .unwrap_or_else(|e| panic!("{kind}: probe: {e}"));
    assert_eq!(newest(&mut store, None), None, "{kind}: empty");
    assert_eq!(store.retain(2).unwrap(), None, "{kind}: nothing to keep");

    for lsn in [5, 9, 12] {
        store.write(lsn, body(lsn, 1)).unwrap();
    }
    let want = |lsn, v| Some((lsn, body(lsn, v).as_slice().to_vec(), 0));
    assert_eq!(newest(&mut store, None), want(12, 1), "{kind}: newest");

    // The same LSN again replaces the snapshot.
    store.write(12, body(12, 2)).unwrap();
    assert_eq!(newest(&mut store, None), want(12, 2), "{kind}: replaced");

    // A rejected newest snapshot falls back to the previous one, and says so.
    let (lsn, bytes, skipped) = newest(&mut store, Some(12)).unwrap();
    assert_eq!(
        (lsn, bytes, skipped),
        (9, body(9, 1).as_slice().to_vec(), 1),
        "{kind}"
    );

    // Retention keeps the newest two and reports the oldest kept.
    assert_eq!(store.retain(2).unwrap(), Some(9), "{kind}: retain");
    assert_eq!(newest(&mut store, Some(12)).map(|n| n.0), Some(9), "{kind}");
    assert_eq!(newest(&mut store, Some(9)).map(|n| n.0), Some(12), "{kind}");
    let mut only_older = |h: &SnapshotHeader, _: &SnapshotBody| {
        if h.lsn >= 9 {
            Err("too new".to_string())
        } else {
            Ok(())
        }
    };
    let outcome = store.load_newest(&mut only_older).unwrap();
    assert!(outcome.loaded.is_none(), "{kind}: snapshot 5 was not kept");
    assert_eq!(outcome.skipped.len(), 2, "{kind}");
    assert_eq!(store.retain(1).unwrap(), Some(12), "{kind}: keep one");
}

#[test]
fn the_data_directory_keeps_snapshots_by_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    conformance("snapshots/", SnapshotDir::new(tmp.path()));
}

#[cfg(feature = "object-store")]
#[test]
fn object_stores_keep_snapshots_by_the_contract() {
    use common::stores::{store_settings, stores};
    use strata::testing::object_snapshots::ObjectSnapshots;
    let tmp = tempfile::tempdir().unwrap();
    for (kind, url) in stores("conformance", tmp.path()) {
        let store = ObjectSnapshots::connect(&store_settings(&url)).unwrap();
        conformance(kind, store);
    }
}
