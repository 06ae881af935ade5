//! The durable tier's checkpointer (a local WAL plus checkpoints in an object store), run
//! against every kind of store: `memory://`, `file://`, and a real S3-compatible server
//! when `STRATA_TEST_S3_ENDPOINT` names one (`scripts/s3-test-server start` and
//! `eval "$(scripts/s3-test-server env)"`; `scripts/test-all` does this, and sets
//! `STRATA_REQUIRE_S3=1` so that a missing server fails instead of skipping).
#![cfg(all(feature = "object-store", not(feature = "cluster")))]

mod common;

use async_trait::async_trait;
use common::cli;
use common::stores::{store_settings, stores, unique};
use futures_util::stream::BoxStream;
use futures_util::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use strata::checkpoint::{ObjectStoreSettings, PersistSettings, SyncMode};
use strata::testing::object_snapshots::{open_store, register_store, PART_BYTES};
use strata::testing::{futures_util, object_store, tokio};
use strata::{Batch, Column, ConfigError, Engine, Error};

// ---------------------------------------------------------------------------------------
// Stores under test
// ---------------------------------------------------------------------------------------

fn persist(data: &Path, url: &str) -> PersistSettings {
    PersistSettings {
        data_dir: data.to_path_buf(),
        sync: SyncMode::Always,
        checkpoint_interval: None,
        keep: 2,
        object_store: store_settings(url),
        ..PersistSettings::default()
    }
}

fn open(settings: &PersistSettings) -> Engine {
    Engine::builder()
        .persist(settings.clone())
        .build()
        .unwrap_or_else(|e| panic!("open {settings:?}: {e}"))
}

/// The index is created separately: an ephemeral engine (the reference) keeps none.
const INDEX: &str = "CREATE INDEX kv_v ON kv (v)";
const SCHEMA: &str = "
    CREATE TABLE kv (k BIGINT PRIMARY KEY, v VARCHAR);
    CREATE SOURCE events (k BIGINT NOT NULL, x BIGINT NOT NULL);
    CREATE MATERIALIZED VIEW by_k AS SELECT k, COUNT(*) AS n, SUM(x) AS s FROM events GROUP BY k;
";

/// Rows `from..=to` into the table and the source (one statement each).
fn write_rows(engine: &mut Engine, from: i64, to: i64) {
    let kv: Vec<String> = (from..=to)
        .map(|i| format!("({i}, 'v{}')", i % 7))
        .collect();
    engine
        .execute(&format!("INSERT INTO kv VALUES {}", kv.join(", ")))
        .unwrap();
    let ev: Vec<String> = (from..=to).map(|i| format!("({}, {i})", i % 5)).collect();
    engine
        .execute(&format!("INSERT INTO events VALUES {}", ev.join(", ")))
        .unwrap();
}

/// What the engine holds, as text: the table, the view, and an indexed lookup.
fn contents(engine: &mut Engine) -> String {
    let mut out = String::new();
    for q in [
        "SELECT COUNT(*), SUM(k) FROM kv",
        "SELECT k, n, s FROM by_k ORDER BY k",
        "SELECT COUNT(*) FROM kv WHERE v = 'v3'",
    ] {
        let rs = engine.query(q).unwrap();
        for row in rs.rows {
            let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    out
}

/// The contents after writing rows `1..=to` into a fresh engine, for comparison.
fn expected(to: i64) -> String {
    let mut e = Engine::builder().ephemeral().build().unwrap();
    e.execute(SCHEMA).unwrap();
    if to > 0 {
        write_rows(&mut e, 1, to);
    }
    contents(&mut e)
}

/// The epochs of the complete checkpoints (those with a manifest), newest first. Lists the
/// store directly: connecting would put a probe object (and trip a fault injection).
fn checkpoints(url: &str) -> Vec<u64> {
    let (store, prefix, _) = open_store(&store_settings(url)).unwrap();
    let rt = runtime();
    let metas: Vec<ObjectMeta> = rt
        .block_on(
            store
                .list(Some(&prefix.clone().join("checkpoints")))
                .try_collect(),
        )
        .unwrap();
    let mut epochs: Vec<u64> = metas
        .iter()
        .filter_map(|m| {
            let mut parts = m.location.as_ref().rsplit('/');
            (parts.next() == Some("MANIFEST.json"))
                .then(|| parts.next()?.parse().ok())
                .flatten()
        })
        .collect();
    epochs.sort_unstable_by(|a, b| b.cmp(a));
    epochs
}

/// A runtime for reaching into a store directly.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// The conformance suite: every store
// ---------------------------------------------------------------------------------------

#[test]
fn recovers_from_the_store_and_the_local_log() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, url) in stores("recover", tmp.path()) {
        let data = tmp.path().join(format!("{kind}-data"));
        let settings = persist(&data, &url);
        {
            let mut e = open(&settings);
            e.execute(SCHEMA).unwrap();
            e.execute(INDEX).unwrap();
            write_rows(&mut e, 1, 50);
            e.checkpoint().unwrap();
            write_rows(&mut e, 51, 80); // only in the local WAL
        }
        assert_eq!(checkpoints(&url).len(), 1, "{kind}");
        // The local log carries what came after the checkpoint.
        let mut e = open(&settings);
        assert_eq!(contents(&mut e), expected(80), "{kind}: store + local WAL");
        drop(e);
        // Without the local disk, the state is as of the checkpoint.
        std::fs::remove_dir_all(&data).unwrap();
        let mut e = open(&settings);
        assert_eq!(contents(&mut e), expected(50), "{kind}: store only");
        // A clean shutdown checkpoints: nothing depends on the local disk after it.
        write_rows(&mut e, 51, 60);
        e.close().unwrap();
        std::fs::remove_dir_all(&data).unwrap();
        let mut e = open(&settings);
        assert_eq!(contents(&mut e), expected(60), "{kind}: after close");
    }
}

#[test]
fn keeps_the_newest_checkpoints_and_replays_from_the_oldest_kept() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, url) in stores("retain", tmp.path()) {
        let data = tmp.path().join(format!("{kind}-data"));
        let settings = persist(&data, &url);
        let mut e = open(&settings);
        e.execute(SCHEMA).unwrap();
        e.execute(INDEX).unwrap();
        for round in 0..4 {
            write_rows(&mut e, round * 10 + 1, round * 10 + 10);
            e.checkpoint().unwrap();
        }
        drop(e);
        let kept = checkpoints(&url);
        assert_eq!(kept.len(), 2, "{kind}: keep = 2, got {kept:?}");
        assert!(kept[0] > kept[1], "{kind}: newest first");
        let mut e = open(&settings);
        assert_eq!(contents(&mut e), expected(40), "{kind}");
    }
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, url) in stores("fallback", tmp.path()) {
        let data = tmp.path().join(format!("{kind}-data"));
        let settings = persist(&data, &url);
        {
            let mut e = open(&settings);
            e.execute(SCHEMA).unwrap();
            e.execute(INDEX).unwrap();
            write_rows(&mut e, 1, 20);
            e.checkpoint().unwrap();
            write_rows(&mut e, 21, 30);
            e.checkpoint().unwrap();
            write_rows(&mut e, 31, 35);
        }
        let newest = checkpoints(&url)[0];
        // Flip a byte in the middle of the newest state object.
        let (store, prefix, _) = open_store(&store_settings(&url)).unwrap();
        let object = prefix
            .clone()
            .join("checkpoints")
            .join(format!("{newest:020}"))
            .join("state.snap");
        let rt = runtime();
        rt.block_on(async {
            let mut bytes = store
                .get(&object)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x55;
            store.put(&object, PutPayload::from(bytes)).await.unwrap();
        });
        // The previous checkpoint plus the local log (kept from it on) give everything.
        let mut e = open(&settings);
        assert_eq!(contents(&mut e), expected(35), "{kind}");
    }
}

#[test]
fn an_interrupted_upload_is_not_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, url) in stores("orphan", tmp.path()) {
        let data = tmp.path().join(format!("{kind}-data"));
        let settings = persist(&data, &url);
        {
            let mut e = open(&settings);
            e.execute(SCHEMA).unwrap();
            e.execute(INDEX).unwrap();
            write_rows(&mut e, 1, 10);
            e.checkpoint().unwrap();
        }
        // A state object with no manifest, at a later epoch: what a crash mid-upload leaves.
        let (store, prefix, _) = open_store(&store_settings(&url)).unwrap();
        let orphan = prefix
            .clone()
            .join("checkpoints")
            .join(format!("{:020}", 1_000_000))
            .join("state.snap");
        let rt = runtime();
        rt.block_on(store.put(&orphan, PutPayload::from_static(b"half an upload")))
            .unwrap();
        std::fs::remove_dir_all(&data).unwrap();
        let mut e = open(&settings);
        assert_eq!(contents(&mut e), expected(10), "{kind}");
        assert_eq!(checkpoints(&url).len(), 1, "{kind}");
    }
}

#[test]
fn large_states_come_back_and_go_to_s3_in_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let keys: i64 = 250_000;
    for (kind, url) in stores("large", tmp.path()) {
        let data = tmp.path().join(format!("{kind}-data"));
        let settings = persist(&data, &url);
        let mut e = open(&settings);
        e.execute(SCHEMA).unwrap();
        let batch = Batch::new()
            .with_column("k", Column::bigint((0..keys).collect()))
            .with_column("x", Column::bigint((0..keys).map(|i| i * 3).collect()));
        e.insert_batch("events", &batch).unwrap();
        let report = e.checkpoint().unwrap();
        assert!(
            report.bytes as usize > PART_BYTES,
            "{kind}: the state ({} bytes) must exceed one part",
            report.bytes
        );
        let before = e
            .query("SELECT COUNT(*), SUM(s), MAX(n) FROM by_k")
            .unwrap();
        drop(e);
        std::fs::remove_dir_all(&data).unwrap();
        let mut e = open(&settings);
        let after = e
            .query("SELECT COUNT(*), SUM(s), MAX(n) FROM by_k")
            .unwrap();
        assert_eq!(
            format!("{:?}", after.rows),
            format!("{:?}", before.rows),
            "{kind}"
        );
        assert_eq!(after.rows[0][0].to_string(), keys.to_string(), "{kind}");
    }
}

// ---------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------

/// An in-memory store whose puts fail on command: `fail_put(n)` makes the n-th put from
/// now (1 = the next) and every later one fail, until `heal()`.
#[derive(Debug)]
struct FaultyStore {
    inner: InMemory,
    /// Puts left before failing; u64::MAX: never fail.
    puts_left: AtomicU64,
}

impl FaultyStore {
    fn new() -> FaultyStore {
        FaultyStore {
            inner: InMemory::new(),
            puts_left: AtomicU64::new(u64::MAX),
        }
    }
    fn fail_put(&self, nth: u64) {
        self.puts_left.store(nth - 1, Ordering::SeqCst);
    }
    fn heal(&self) {
        self.puts_left.store(u64::MAX, Ordering::SeqCst);
    }
    fn check(&self) -> object_store::Result<()> {
        let left = self.puts_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(object_store::Error::Generic {
                store: "FaultyStore",
                source: "injected put failure".into(),
            });
        }
        if left != u64::MAX {
            self.puts_left.store(left - 1, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl std::fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultyStore")
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check()?;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check()?;
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
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

#[test]
fn a_store_failing_mid_checkpoint_loses_nothing_and_the_next_checkpoint_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("faulty");
    let faults = Arc::new(FaultyStore::new());
    register_store(&name, faults.clone());
    let url = format!("memory://{name}");
    let data = tmp.path().join("data");
    let settings = persist(&data, &url);
    let mut e = open(&settings);
    e.execute(SCHEMA).unwrap();
    e.execute(INDEX).unwrap();
    write_rows(&mut e, 1, 10);
    e.checkpoint().unwrap();
    let first = checkpoints(&url);
    // The state object goes up, the manifest does not.
    faults.fail_put(2);
    write_rows(&mut e, 11, 20);
    let err = e.checkpoint().unwrap_err().report();
    assert!(
        err.contains("injected put failure") && err.contains("MANIFEST.json"),
        "{err}"
    );
    assert_eq!(
        checkpoints(&url),
        first,
        "the previous checkpoint is intact"
    );
    // Ingestion goes on.
    write_rows(&mut e, 21, 30);
    assert_eq!(contents(&mut e), expected(30));
    // Every put fails, including the state object's.
    faults.fail_put(1);
    assert!(e.checkpoint().is_err());
    faults.heal();
    e.checkpoint().unwrap();
    assert_eq!(checkpoints(&url).len(), 2);
    drop(e);
    let mut e = open(&settings);
    assert_eq!(
        contents(&mut e),
        expected(30),
        "reopened with the local log"
    );
    drop(e);
    std::fs::remove_dir_all(&data).unwrap();
    let mut e = open(&settings);
    assert_eq!(contents(&mut e), expected(30), "from the store alone");
}

#[test]
fn periodic_checkpoints_that_fail_do_not_fail_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("periodic");
    let faults = Arc::new(FaultyStore::new());
    register_store(&name, faults.clone());
    let url = format!("memory://{name}");
    let mut settings = persist(&tmp.path().join("data"), &url);
    settings.checkpoint_interval = Some(Duration::from_millis(1));
    let mut e = open(&settings);
    faults.fail_put(1);
    e.execute(SCHEMA).unwrap();
    e.execute(INDEX).unwrap();
    for round in 0..5 {
        std::thread::sleep(Duration::from_millis(2));
        write_rows(&mut e, round * 10 + 1, round * 10 + 10);
    }
    assert!(checkpoints(&url).is_empty());
    faults.heal();
    // The retry waits for its backoff (1 s after the first failure, then longer).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut round = 5;
    while checkpoints(&url).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        write_rows(&mut e, round * 10 + 1, round * 10 + 10);
        round += 1;
    }
    assert!(
        !checkpoints(&url).is_empty(),
        "a periodic checkpoint succeeds once the store works again"
    );
    assert_eq!(contents(&mut e), expected(round * 10));
}

fn requirement_error(settings: ObjectStoreSettings) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let persist = PersistSettings {
        data_dir: tmp.path().join("data"),
        object_store: settings,
        ..PersistSettings::default()
    };
    match Engine::builder().persist(persist).build() {
        Err(Error::Config(e @ ConfigError::ProfileRequirementError { .. })) => e.to_string(),
        other => panic!("expected a requirement error, got {other:?}"),
    }
}

#[test]
fn a_missing_malformed_or_unreachable_store_is_a_startup_error() {
    let msg = requirement_error(ObjectStoreSettings::default());
    assert!(msg.contains("[object_store] url"), "{msg}");
    let msg = requirement_error(store_settings("not a url"));
    assert!(msg.contains("does not parse"), "{msg}");
    let msg = requirement_error(store_settings("ftp://host/x"));
    assert!(msg.contains("scheme `ftp`"), "{msg}");
    // No credentials anywhere.
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        let msg = requirement_error(ObjectStoreSettings {
            url: Some("s3://bucket/prefix".into()),
            ..ObjectStoreSettings::default()
        });
        assert!(msg.contains("credentials"), "{msg}");
    }
    // Nothing listens on port 9 of loopback: the probe fails at once, naming the URL.
    let mut unreachable = store_settings("s3://bucket/prefix");
    unreachable.endpoint = Some("http://127.0.0.1:9".into());
    unreachable.timeout = Duration::from_secs(3);
    let msg = requirement_error(unreachable);
    assert!(
        msg.contains("s3://bucket/prefix") && msg.contains("probe failed"),
        "{msg}"
    );
}

#[test]
fn a_store_that_hangs_times_out_at_startup() {
    let name = unique("slow");
    let slow = ThrottledStore::new(
        InMemory::new(),
        ThrottleConfig {
            wait_put_per_call: Duration::from_secs(30),
            ..ThrottleConfig::default()
        },
    );
    register_store(&name, Arc::new(slow));
    let mut settings = store_settings(&format!("memory://{name}"));
    settings.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let msg = requirement_error(settings);
    assert!(msg.contains("timed out"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

// ---------------------------------------------------------------------------------------
// Moving data: migrate, backup, restore (through the CLI)
// ---------------------------------------------------------------------------------------

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/embedded-v1")
}

/// `strata --data DATA ARGS` with the store `url`; returns (exit code, stdout, stderr).
fn cli(data: &Path, url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = cli::strata(Some(data))
        .env("STRATA_OBJECT_STORE_URL", url)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    )
}

#[test]
fn migrate_backup_and_restore_keep_every_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let embedded = root.join("embedded");
    cli::copy_dir(&fixture_dir().join("data"), &embedded);
    let queries = fixture_dir().join("make/queries.sql");
    let queries = queries.to_str().unwrap();
    let expected = std::fs::read_to_string(fixture_dir().join("expected.csv")).unwrap();
    let store = format!("file://{}", root.join("store").display());
    let query = |data: &Path, url: &str| {
        let (code, out, err) = cli(data, url, &["sql", "-f", queries, "--format", "csv"]);
        assert_eq!(code, Some(0), "{err}");
        out
    };

    // Opening an embedded data directory directly would hide its snapshot: refused, with
    // the way out.
    let (code, _, err) = cli(&embedded, &store, &["sql", "SHOW TABLES"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("strata migrate --from"), "{err}");

    // An embedded data directory into the store; a fresh node reads it.
    let migrate_from = embedded.to_str().unwrap();
    let (code, _, err) = cli(
        &root.join("node1"),
        &store,
        &["migrate", "--from", migrate_from],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("migrated"), "{err}");
    assert_eq!(
        query(&root.join("node1"), &store),
        expected,
        "after migrate"
    );
    // Migrating into a store that already holds checkpoints is refused.
    let (code, _, err) = cli(
        &root.join("node1"),
        &store,
        &["migrate", "--from", migrate_from],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("already holds checkpoints"), "{err}");

    // Backup to another URL, restore into a third store, read it from a fresh node.
    let backup = format!("file://{}", root.join("backup").display());
    let (code, _, err) = cli(&root.join("node1"), &store, &["backup", "--to", &backup]);
    assert_eq!(code, Some(0), "{err}");
    let restored = format!("file://{}", root.join("restored").display());
    let create = ["sql", "CREATE TABLE written_later (k BIGINT PRIMARY KEY)"];
    let (code, _, err) = cli(&root.join("node1"), &store, &create);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = cli(
        &root.join("node1"),
        &restored,
        &["restore", "--from", &backup],
    );
    assert_eq!(
        code,
        1.into(),
        "node1 has a WAL: restoring under it is refused: {err}"
    );
    let (code, _, err) = cli(
        &root.join("node2"),
        &restored,
        &["restore", "--from", &backup],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        query(&root.join("node2"), &restored),
        expected,
        "after restore"
    );
}
