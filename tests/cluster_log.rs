//! The constellation tier's shared log, run against every kind of store (`memory://`,
//! `file://`, and the S3-compatible test server): taking the log over fences the previous
//! owner, two candidates for one epoch cannot both win, an append whose outcome was lost
//! lands exactly once, and truncation never lets a stale owner append again. Everything
//! rests on the store's create-if-absent; these tests are what says it holds.
#![cfg(feature = "cluster")]

mod common;

use async_trait::async_trait;
use common::stores::{store_settings, stores, unique};
use futures_util::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use strata::testing::cluster_log::{AcquireError, AppendError, Cursor, SharedLog};
use strata::testing::object_snapshots::open_store;
use strata::testing::{futures_util, object_store, tokio};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The start of an empty log.
const START: Cursor = Cursor {
    epoch: 0,
    next_lsn: 1,
};

/// A log on a store wrapped in [`Flaky`], for each kind of store.
fn logs(test: &str, tmp: &std::path::Path) -> Vec<(&'static str, SharedLog, Arc<Flaky>)> {
    stores(test, tmp)
        .into_iter()
        .map(|(kind, url)| {
            let (store, prefix, display) = open_store(&store_settings(&url)).unwrap();
            let flaky = Arc::new(Flaky::new(store));
            let log = SharedLog::new(flaky.clone(), &prefix, &display, Duration::from_secs(10));
            (kind, log, flaky)
        })
        .collect()
}

/// Every entry from the start: `(lsn, payload)`.
async fn read_all(log: &SharedLog) -> Vec<(u64, String)> {
    let mut cursor = log.cursor_for(0).await.unwrap();
    let mut out = Vec::new();
    loop {
        // Small batches, so that batches end at fences and at the head alike.
        let batch = log.read_ahead(&mut cursor, 2).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        for (_, lsn, payload) in batch {
            out.push((lsn, String::from_utf8(payload.to_vec()).unwrap()));
        }
    }
}

fn entry(lsn: u64, text: &str) -> (u64, String) {
    (lsn, text.to_string())
}

#[test]
fn a_new_owner_fences_the_old_one_and_the_log_stays_one_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    for (kind, log, _) in logs("fence", tmp.path()) {
        rt.block_on(async {
            log.probe_conditional_create().await.unwrap();
            let mut a = log.acquire("a", START).await.unwrap();
            assert_eq!(a.epoch(), 1, "{kind}");
            for text in ["a1", "a2", "a3"] {
                log.append(&mut a, text.into()).await.unwrap();
            }
            let mut b = log.acquire("b", START).await.unwrap();
            assert_eq!((b.epoch(), b.next_lsn()), (2, 4), "{kind}");
            assert_eq!(log.current_owner().await.unwrap(), Some((2, "b".into())));
            // The old owner can never append again, not even after a retry.
            for _ in 0..2 {
                match log.append(&mut a, "stale".into()).await {
                    Err(AppendError::Fenced { by, epoch }) => {
                        assert_eq!((by.as_str(), epoch), ("b", 2), "{kind}")
                    }
                    other => panic!("{kind}: a fenced owner appended: {other:?}"),
                }
            }
            log.append(&mut b, "b4".into()).await.unwrap();
            // A third owner, reading from an older position, fences b where b stopped.
            let mut c = log
                .acquire(
                    "c",
                    Cursor {
                        epoch: 1,
                        next_lsn: 2,
                    },
                )
                .await
                .unwrap();
            assert_eq!((c.epoch(), c.next_lsn()), (3, 5), "{kind}");
            assert!(matches!(
                log.append(&mut b, "b5".into()).await,
                Err(AppendError::Fenced { .. })
            ));
            log.append(&mut c, "c5".into()).await.unwrap();
            assert_eq!(
                read_all(&log).await,
                [
                    entry(1, "a1"),
                    entry(2, "a2"),
                    entry(3, "a3"),
                    entry(4, "b4"),
                    entry(5, "c5")
                ],
                "{kind}"
            );
            // A reader starting after a position finds the epoch it is in.
            let mut cursor = log.cursor_for(4).await.unwrap();
            let rest = log.read_ahead(&mut cursor, 10).await.unwrap();
            let lsns: Vec<u64> = rest.iter().map(|(_, lsn, _)| *lsn).collect();
            assert_eq!(lsns, [5], "{kind}");
            assert!(log.read_ahead(&mut cursor, 10).await.unwrap().is_empty());
        });
    }
}

#[test]
fn two_candidates_for_one_epoch_cannot_both_own_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (kind, log, _) in logs("race", tmp.path()) {
        rt.block_on(async {
            let mut owner = log.acquire("first", START).await.unwrap();
            log.append(&mut owner, "x1".into()).await.unwrap();
            for round in 0..5 {
                let (l1, l2) = (log.clone(), log.clone());
                let p = tokio::spawn(async move { l1.acquire("p", START).await });
                let q = tokio::spawn(async move { l2.acquire("q", START).await });
                let (p, q) = (p.await.unwrap(), q.await.unwrap());
                let mut winners = Vec::new();
                for (name, outcome) in [("p", p), ("q", q)] {
                    match outcome {
                        Ok(writer) => winners.push((name, writer)),
                        Err(AcquireError::Lost { .. }) => {}
                        Err(e) => panic!("{kind}: {e}"),
                    }
                }
                // Each may have won an epoch of its own, one after the other; then only
                // the newest can append.
                let appended: Vec<&str> = {
                    let mut ok = Vec::new();
                    for (name, writer) in &mut winners {
                        let text = format!("{name}{round}");
                        if log.append(writer, text.into()).await.is_ok() {
                            ok.push(*name);
                        }
                    }
                    ok
                };
                assert!(
                    appended.len() <= 1,
                    "{kind}: both owned the log: {appended:?}"
                );
            }
            // The log is one gap-free sequence.
            let all = read_all(&log).await;
            let lsns: Vec<u64> = all.iter().map(|(l, _)| *l).collect();
            assert_eq!(lsns, (1..=all.len() as u64).collect::<Vec<_>>(), "{kind}");
        });
    }
}

#[test]
fn an_append_whose_answer_was_lost_lands_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    for (kind, log, flaky) in logs("lost", tmp.path()) {
        rt.block_on(async {
            let mut w = log.acquire("a", START).await.unwrap();
            log.append(&mut w, "e1".into()).await.unwrap();
            // The create succeeds, but its answer is lost: the writer reads it back.
            flaky.next_put(Fault::AfterPut);
            assert_eq!(log.append(&mut w, "e2".into()).await.unwrap(), 2, "{kind}");
            // The create never reached the store: the writer creates it again, same place.
            flaky.next_put(Fault::BeforePut);
            assert_eq!(log.append(&mut w, "e3".into()).await.unwrap(), 3, "{kind}");
            log.append(&mut w, "e4".into()).await.unwrap();
            assert_eq!(
                read_all(&log).await,
                [
                    entry(1, "e1"),
                    entry(2, "e2"),
                    entry(3, "e3"),
                    entry(4, "e4")
                ],
                "{kind}"
            );
        });
    }
}

#[test]
fn an_unknown_outcome_is_resolved_before_the_next_append() {
    let rt = runtime();
    let name = unique("unknown");
    let flaky = Arc::new(Flaky::new(Arc::new(InMemory::new())));
    let log = SharedLog::new(
        flaky.clone(),
        &ObjectPath::from(name.as_str()),
        "memory://t",
        Duration::from_millis(200),
    );
    rt.block_on(async {
        let mut w = log.acquire("a", START).await.unwrap();
        // Every create and read fails for a while: the outcome cannot be known.
        flaky.always(Fault::Unreachable);
        match log.append(&mut w, "maybe".into()).await {
            Err(AppendError::Unknown { lsn: 1, .. }) => {}
            other => panic!("expected an unknown outcome, got {other:?}"),
        }
        flaky.always(Fault::None);
        // Resolving puts it in place, once; the next append follows it.
        assert_eq!(log.resolve(&mut w).await.unwrap(), 1);
        assert_eq!(log.append(&mut w, "next".into()).await.unwrap(), 2);
        assert_eq!(read_all(&log).await, [entry(1, "maybe"), entry(2, "next")]);
    });
}

#[test]
fn truncation_keeps_every_namespace_s_last_object_so_a_stale_owner_stays_fenced() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    for (kind, log, _) in logs("truncate", tmp.path()) {
        rt.block_on(async {
            let mut a = log.acquire("a", START).await.unwrap();
            for i in 1..=5 {
                log.append(&mut a, format!("a{i}").into()).await.unwrap();
            }
            let mut b = log.acquire("b", START).await.unwrap();
            for i in 6..=8 {
                log.append(&mut b, format!("b{i}").into()).await.unwrap();
            }
            // Every checkpoint covers LSN 7: entries before it go.
            let deleted = log.truncate_before(7).await.unwrap();
            assert!(deleted >= 5, "{kind}: deleted {deleted}");
            let mut cursor = log.cursor_for(6).await.unwrap();
            let rest: Vec<u64> = log
                .read_ahead(&mut cursor, 10)
                .await
                .unwrap()
                .iter()
                .map(|(_, lsn, _)| *lsn)
                .collect();
            assert_eq!(rest, [7, 8], "{kind}");
            assert!(
                matches!(
                    log.append(&mut a, "stale".into()).await,
                    Err(AppendError::Fenced { .. })
                ),
                "{kind}"
            );
            assert_eq!(log.append(&mut b, "b9".into()).await.unwrap(), 9, "{kind}");
        });
    }
}

#[test]
fn the_number_of_shards_is_fixed_when_the_cluster_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    for (kind, log, _) in logs("shards", tmp.path()) {
        rt.block_on(async {
            assert_eq!(log.shards(Some(8)).await, Ok(8), "{kind}");
            assert_eq!(log.shards(None).await, Ok(8), "{kind}");
            let err = log.shards(Some(16)).await.unwrap_err();
            assert!(
                err.contains("created with 8 shards; remove the key or set it to 8"),
                "{kind}: {err}"
            );
        });
    }
}

// ---------------------------------------------------------------------------------------
// A store with faults on command
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Fault {
    None = 0,
    /// The put happens; its answer is an error (a lost response).
    AfterPut = 1,
    /// The put fails before it reaches the store.
    BeforePut = 2,
    /// Every put and get fails.
    Unreachable = 3,
}

/// Wraps a store: the next put (or every request) fails as told.
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn ObjectStore>,
    next_put: AtomicU8,
    always: AtomicU8,
}

impl Flaky {
    fn new(inner: Arc<dyn ObjectStore>) -> Flaky {
        Flaky {
            inner,
            next_put: AtomicU8::new(Fault::None as u8),
            always: AtomicU8::new(Fault::None as u8),
        }
    }
    fn next_put(&self, fault: Fault) {
        self.next_put.store(fault as u8, Ordering::SeqCst);
    }
    fn always(&self, fault: Fault) {
        self.always.store(fault as u8, Ordering::SeqCst);
    }
    fn unreachable(&self) -> object_store::Result<()> {
        if self.always.load(Ordering::SeqCst) == Fault::Unreachable as u8 {
            return Err(injected("unreachable"));
        }
        Ok(())
    }
}

fn injected(what: &'static str) -> object_store::Error {
    object_store::Error::Generic {
        store: "Flaky",
        source: what.into(),
    }
}

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Flaky({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Flaky {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.unreachable()?;
        match self.next_put.swap(Fault::None as u8, Ordering::SeqCst) {
            x if x == Fault::AfterPut as u8 => {
                self.inner.put_opts(location, payload, opts).await?;
                Err(injected("the answer was lost"))
            }
            x if x == Fault::BeforePut as u8 => Err(injected("the put never arrived")),
            _ => self.inner.put_opts(location, payload, opts).await,
        }
    }
    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.unreachable()?;
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
