//! Checkpoints in an object store (the durable tier), each figure against its baseline in the
//! same run:
//!
//! - checkpoint (`Engine::checkpoint`) and restore (`build()` on a data directory that was
//!   deleted, so the state comes from the store alone) of a view with 1M and 10M keys, to
//!   `file://` and to the local S3 server, in MB/s of snapshot body size. Baselines: for
//!   `file://` a sequential write (8 MiB writes) + fsync and a read (`fs::read`, right after
//!   the write, so from the page cache) of a plain file of the same size on the same
//!   filesystem; for `s3://` (and `memory://`) a plain `object_store` put (multipart, 8 MiB
//!   parts, 4 in flight, as `src/persist/object_snapshots.rs` uploads) and get of the same
//!   number of bytes on the same server. Target for `file://`: ≥ 0.5.
//! - where the time goes (each part alone, best of as many runs): the encoding (export,
//!   image, rkyv), the store write and read through `ObjectSnapshots` alone, the price of
//!   one CRC32C pass and of one copy of the body, the rkyv validation, the image-to-state
//!   conversion, and the rest of `build()`.
//! - time from process start to ready after a crash with 10M keys: a checkpoint of 10M keys
//!   in the store, 1M more rows in the local WAL, the engine dropped without `close()`; then
//!   the real binary, `strata --data DIR sql --format csv "SELECT COUNT(*), SUM(n), SUM(s)
//!   FROM agg"`, wall time from spawn until the result is printed (start, store probe,
//!   download, checks, rebuilding the state, WAL replay, the query) and until exit (plus the
//!   checkpoint `close()` writes).
//!
//! Results are checked: every restore and the binary's answer are compared with the expected
//! group count and sums, plus SQL spot checks of a few keys.
//!
//! `harness = false`: a plain `main`, built only with `--features durable`. `cargo bench
//! --no-default-features --features durable --bench checkpoint_store` runs the full sizes
//! (some minutes, a few GB of RAM); `STRATA_BENCH_QUICK=1` 1M keys only; without `--bench`
//! (as `cargo test` runs it) a smoke run with 20k keys to `file://` and `memory://`. The
//! S3 part needs `STRATA_TEST_S3_ENDPOINT` (see `scripts/s3-test-server`); without it, it is
//! skipped with a note.

mod common;

use common::report::{gib, load_average, pattern, proc_kb, secs, thousands, verdict};
use common::{
    capacity_for, dir_bytes, err, filesystem_of, ints, key_of, raw_read, raw_write, value_of,
    Fallible,
};
use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use rkyv::rancor;
use std::fs;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strata::checkpoint::{ObjectStoreSettings, PersistSettings, SyncMode};
use strata::testing::crc32c;
use strata::testing::image::{self, ArchivedSnapshotImageV3};
use strata::testing::local::snapshot_body;
use strata::testing::object_snapshots::{open_store, ObjectSnapshots, PART_BYTES};
use strata::testing::snapshot::HEADER_LEN;
use strata::testing::snapshot_store::SnapshotStore;
use strata::testing::{futures_util, object_store, rkyv, tokio};
use strata::{ActiveProfile, Engine, PhysicalProfile};
use strata::{Batch, Column};

type P = ActiveProfile;

const DDL: &str = "CREATE SOURCE ev (k BIGINT NOT NULL, x BIGINT NOT NULL);
     CREATE MATERIALIZED VIEW agg AS SELECT k, COUNT(*) AS n, SUM(x) AS s FROM ev GROUP BY k";

/// The query the binary runs after the crash (the sums show the WAL tail was replayed).
const CRASH_QUERY: &str = "SELECT COUNT(*), SUM(n), SUM(s) FROM agg";

const TARGET_FILE: f64 = 0.5;
const MB: f64 = 1e6;
/// Write size of the raw file baseline and part size of the object store baseline (the same
/// as Strata's multipart part size).
const CHUNK: usize = PART_BYTES;
/// Parts in flight in the object store baseline, as in `object_snapshots.rs`.
const PARTS_IN_FLIGHT: usize = 4;
/// Per-request timeout of the object stores (10M keys are several hundred MB per object).
const STORE_TIMEOUT: Duration = Duration::from_secs(120);

/// The command that reproduces a run of `mode`.
fn reproduce(mode: Mode) -> String {
    format!(
        "scripts/s3-test-server start && eval \"$(scripts/s3-test-server env)\" && {}cargo bench \
         --no-default-features --features durable --bench checkpoint_store",
        if mode == Mode::Quick {
            "STRATA_BENCH_QUICK=1 "
        } else {
            ""
        }
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Smoke,
    Quick,
    Full,
}

/// Sizes of one run.
struct Plan {
    mode: Mode,
    /// Keys (one group each) of the states measured, in order.
    keys: Vec<usize>,
    /// Rows per `insert_batch` when building a state (not timed).
    build_batch: usize,
    /// Time the binary after a crash at this size (the largest).
    crash_keys: Option<usize>,
}

impl Plan {
    fn new(mode: Mode) -> Plan {
        match mode {
            Mode::Smoke => Plan {
                mode,
                keys: vec![20_000],
                build_batch: 5_000,
                crash_keys: None,
            },
            Mode::Quick => Plan {
                mode,
                keys: vec![1_000_000],
                build_batch: 1_000_000,
                crash_keys: Some(1_000_000),
            },
            Mode::Full => Plan {
                mode,
                keys: vec![1_000_000, 10_000_000],
                build_batch: 1_000_000,
                crash_keys: Some(10_000_000),
            },
        }
    }

    /// Timed runs per measurement (the best is reported).
    fn repeats(&self, keys: usize) -> usize {
        match self.mode {
            Mode::Smoke => 1,
            Mode::Quick => 2,
            Mode::Full if keys <= 1_000_000 => 3,
            Mode::Full => 2,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers

fn memory() -> String {
    format!(
        "RSS {}, peak {}",
        gib(proc_kb("/proc/self/status", "VmRSS:").unwrap_or(0)),
        gib(proc_kb("/proc/self/status", "VmHWM:").unwrap_or(0))
    )
}

/// A progress line, with the time since the start of the run.
struct Progress {
    started: Instant,
}

impl Progress {
    fn say(&self, tag: &str, msg: &str) {
        println!(
            "  [{:>7.1} s] {tag}: {msg}",
            self.started.elapsed().as_secs_f64()
        );
        let _ = std::io::stdout().flush();
    }
}

// ---------------------------------------------------------------------------------------
// Stores

#[derive(Clone)]
enum StoreKind {
    File,
    Memory,
    S3 { endpoint: String, bucket: String },
}

impl StoreKind {
    fn label(&self) -> &'static str {
        match self {
            StoreKind::File => "file://",
            StoreKind::Memory => "memory://",
            StoreKind::S3 { .. } => "s3://",
        }
    }

    /// The store settings of one measurement: a directory, name or prefix of its own.
    fn settings(&self, root: &Path, run_id: &str, tag: &str) -> ObjectStoreSettings {
        let mut s = ObjectStoreSettings {
            timeout: STORE_TIMEOUT,
            ..ObjectStoreSettings::default()
        };
        match self {
            StoreKind::File => {
                s.url = Some(format!(
                    "file://{}",
                    root.join(format!("store-{tag}")).display()
                ))
            }
            StoreKind::Memory => s.url = Some(format!("memory://{run_id}/{tag}")),
            StoreKind::S3 { endpoint, bucket } => {
                s.url = Some(format!("s3://{bucket}/{run_id}/{tag}"));
                s.endpoint = Some(endpoint.clone());
                s.allow_http = true;
                s.region = Some("us-east-1".into());
                s.access_key_id = Some("test".into());
                s.secret_access_key = Some("test".into());
            }
        }
        s
    }

    /// The `STRATA_*` variables that give the binary the same store.
    fn cli_env(&self, s: &ObjectStoreSettings) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "STRATA_OBJECT_STORE_URL".into(),
                s.url.clone().unwrap_or_default(),
            ),
            (
                "STRATA_OBJECT_STORE_TIMEOUT".into(),
                format!("{}s", s.timeout.as_secs()),
            ),
        ];
        if let StoreKind::S3 { .. } = self {
            let mut set = |k: &str, v: &Option<String>| {
                if let Some(v) = v {
                    env.push((format!("STRATA_OBJECT_STORE_{k}"), v.clone()));
                }
            };
            set("ENDPOINT", &s.endpoint);
            set("REGION", &s.region);
            set("ACCESS_KEY_ID", &s.access_key_id);
            set("SECRET_ACCESS_KEY", &s.secret_access_key);
            env.push(("STRATA_OBJECT_STORE_ALLOW_HTTP".into(), "true".into()));
        }
        env
    }
}

fn persist_settings(data_dir: &Path, store: ObjectStoreSettings) -> PersistSettings {
    PersistSettings {
        data_dir: data_dir.to_path_buf(),
        sync: SyncMode::Never,
        checkpoint_interval: None,
        keep: 2,
        object_store: store,
        // Whatever else later versions add keeps its default.
        ..PersistSettings::default()
    }
}

fn open_engine(settings: &PersistSettings, capacity: usize) -> Fallible<Engine<P>> {
    Engine::builder()
        .capacity(capacity)
        .persist(settings.clone())
        .build()
        .map_err(|e| format!("opening {}: {e}", settings.data_dir.display()))
}

/// Plain `object_store` calls for the baselines, on a current-thread runtime like Strata's.
struct Raw {
    rt: tokio::runtime::Runtime,
}

impl Raw {
    fn new() -> Fallible<Raw> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(err("tokio runtime"))?;
        Ok(Raw { rt })
    }

    /// Puts `len` bytes as one object: one put up to a part's size, else a multipart upload
    /// in parts of `CHUNK` with `PARTS_IN_FLIGHT` in flight (copied from `chunk`, as Strata
    /// copies its snapshot buffer into the parts).
    fn put(
        &self,
        store: &Arc<dyn ObjectStore>,
        path: &ObjectPath,
        len: u64,
        chunk: &[u8],
    ) -> Fallible<Duration> {
        let start = Instant::now();
        self.rt
            .block_on(async {
                if len as usize <= CHUNK {
                    let body = chunk[..len as usize].to_vec();
                    store.put(path, PutPayload::from(body)).await?;
                    return Ok(());
                }
                let upload = store.put_multipart(path).await?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
                let mut left = len;
                while left > 0 {
                    writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                    let n = left.min(chunk.len() as u64) as usize;
                    writer.write(&chunk[..n]);
                    left -= n as u64;
                }
                writer.finish().await.map(|_| ())
            })
            .map_err(|e: object_store::Error| format!("object_store put {path}: {e}"))?;
        Ok(start.elapsed())
    }

    /// Gets a whole object into memory.
    fn get(&self, store: &Arc<dyn ObjectStore>, path: &ObjectPath, len: u64) -> Fallible<Duration> {
        let start = Instant::now();
        let bytes = self
            .rt
            .block_on(async { store.get(path).await?.bytes().await })
            .map_err(|e| format!("object_store get {path}: {e}"))?;
        let time = start.elapsed();
        if bytes.len() as u64 != len {
            return Err(format!(
                "got {} bytes from {path}, expected {len}",
                bytes.len()
            ));
        }
        black_box(&bytes);
        Ok(time)
    }

    /// Deletes every object under `prefix`.
    fn clear(&self, store: &Arc<dyn ObjectStore>, prefix: &ObjectPath) -> Fallible<()> {
        self.rt
            .block_on(async {
                let metas: Vec<_> = store.list(Some(prefix)).try_collect().await?;
                for m in metas {
                    store.delete(&m.location).await?;
                }
                Ok(())
            })
            .map_err(|e: object_store::Error| format!("clearing {prefix}: {e}"))
    }
}

/// Removes everything a measurement left in its store.
fn clear_store(raw: &Raw, kind: &StoreKind, settings: &ObjectStoreSettings) -> Fallible<()> {
    if let StoreKind::File = kind {
        let url = settings.url.as_deref().unwrap_or_default();
        let dir = PathBuf::from(url.trim_start_matches("file://"));
        return match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("removing {}: {e}", dir.display())),
        };
    }
    let (store, prefix, _) = open_store(settings).map_err(err("open_store"))?;
    raw.clear(&store, &prefix)
}

// ---------------------------------------------------------------------------------------
// States and checks

/// Builds the state: one row per key, `batch` rows per `insert_batch` (WAL without fsync).
fn fill(engine: &mut Engine<P>, keys: usize, batch: usize) -> Fallible<()> {
    engine.execute(DDL).map_err(err("DDL"))?;
    let mut i = 0;
    while i < keys {
        let n = batch.min(keys - i);
        let ks: Vec<i64> = (i..i + n).map(key_of).collect();
        let xs: Vec<i64> = ks.iter().map(|&k| value_of(k)).collect();
        let b = Batch::new()
            .with_column("k", Column::bigint(ks))
            .with_column("x", Column::bigint(xs));
        engine.insert_batch("ev", &b).map_err(err("insert_batch"))?;
        i += n;
    }
    Ok(())
}

/// Rows after the checkpoint, for the crash: `x = 1` for the first `extra` keys again.
fn add_tail(engine: &mut Engine<P>, extra: usize, batch: usize) -> Fallible<()> {
    let mut i = 0;
    while i < extra {
        let n = batch.min(extra - i);
        let b = Batch::new()
            .with_column("k", Column::bigint((i..i + n).map(key_of).collect()))
            .with_column("x", Column::bigint(vec![1; n]));
        engine.insert_batch("ev", &b).map_err(err("insert_batch"))?;
        i += n;
    }
    Ok(())
}

/// `COUNT(*), SUM(n), SUM(s)` of the view after `keys` keys and a tail of `extra` rows.
fn expected_totals(keys: usize, extra: usize) -> Vec<i64> {
    let sum: i64 = (0..keys).map(|i| value_of(key_of(i))).sum();
    vec![keys as i64, (keys + extra) as i64, sum + extra as i64]
}

/// SQL checks of a state: the totals and a few keys.
fn check_state(engine: &mut Engine<P>, keys: usize, extra: usize) -> Fallible<()> {
    let rs = engine.query(CRASH_QUERY).map_err(err("strata query"))?;
    let got = ints(rs.rows.first().ok_or("no row")?)?;
    let want = expected_totals(keys, extra);
    if got != want {
        return Err(format!(
            "COUNT(*), SUM(n), SUM(s) = {got:?}, expected {want:?}"
        ));
    }
    let picks = [0, 1, keys / 2, keys - 1];
    let wh = picks
        .iter()
        .map(|&i| format!("k = {}", key_of(i)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let rs = engine
        .query(&format!("SELECT k, n, s FROM agg WHERE {wh}"))
        .map_err(err("strata query"))?;
    let mut got: Vec<Vec<i64>> = rs.rows.iter().map(|r| ints(r)).collect::<Fallible<_>>()?;
    got.sort();
    let mut want: Vec<Vec<i64>> = picks
        .iter()
        .map(|&i| {
            let k = key_of(i);
            let more = i64::from(i < extra);
            vec![k, 1 + more, value_of(k) + more]
        })
        .collect();
    want.sort();
    want.dedup();
    if got != want {
        return Err(format!(
            "spot check of keys {picks:?}: got {got:?}, expected {want:?}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The binary

/// `target/<profile>/strata` next to this bench's `deps/` directory.
fn strata_binary() -> Result<PathBuf, String> {
    let name = format!("strata{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().map_err(err("current_exe"))?;
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join(&name))
        .ok_or_else(|| format!("no target directory above {}", exe.display()))?;
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()));
    }
    let out = Command::new(&path)
        .arg("--version")
        .output()
        .map_err(err(&path.display().to_string()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !version.contains("profile durable") {
        return Err(format!(
            "{} is not a durable build (`--version`: {version})",
            path.display()
        ));
    }
    Ok(path)
}

/// One run of the binary.
struct CliRun {
    /// Spawn until the first line of output (the query's result, printed in one flush).
    ready: Duration,
    /// Spawn until exit.
    exit: Duration,
    stdout: Vec<String>,
    stderr: String,
    /// The spawn instant as UTC seconds since midnight, to place the binary's log lines.
    spawned_tod: f64,
}

/// The UTC time of day, in seconds, of a log line that starts with an RFC 3339 timestamp
/// (`2026-01-02T03:04:05.123456Z …`, tracing-subscriber's default).
fn log_tod(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    let time = stamp.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = time.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

fn run_cli(bin: &Path, data_dir: &Path, env: &[(String, String)], sql: &str) -> Fallible<CliRun> {
    let mut cmd = Command::new(bin);
    cmd.arg("--data")
        .arg(data_dir)
        .args(["sql", "--format", "csv", sql])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (var, _) in std::env::vars() {
        if var.starts_with("STRATA_") {
            cmd.env_remove(var);
        }
    }
    cmd.envs(env.iter().cloned());
    let spawned_tod = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        % 86_400.0;
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(err(&bin.display().to_string()))?;
    let mut stderr_pipe = child.stderr.take().ok_or("no stderr pipe")?;
    let stderr_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let mut ready = None;
    let mut stdout = Vec::new();
    for line in BufReader::new(child.stdout.take().ok_or("no stdout pipe")?).lines() {
        let line = line.map_err(err("reading the binary's output"))?;
        ready.get_or_insert_with(|| start.elapsed());
        stdout.push(line);
    }
    let status = child.wait().map_err(err("waiting for the binary"))?;
    let exit = start.elapsed();
    let stderr = stderr_thread.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "`strata sql` exited with {status}; stderr: {}",
            stderr.trim()
        ));
    }
    Ok(CliRun {
        ready: ready.unwrap_or(exit),
        exit,
        stdout,
        stderr,
        spawned_tod,
    })
}

// ---------------------------------------------------------------------------------------
// One measurement: a store and a number of keys

/// The best times of one store and size.
struct Figures {
    store: &'static str,
    keys: usize,
    bytes: u64,
    checkpoint: Duration,
    base_write: Duration,
    restore: Duration,
    base_read: Duration,
    target: Option<f64>,
    /// Breakdown and crash lines, printed under the table.
    notes: Vec<String>,
    /// The crash run failed (its error is in `notes`).
    failed: bool,
}

struct Ctx<'a> {
    plan: &'a Plan,
    root: &'a Path,
    run_id: &'a str,
    raw: &'a Raw,
    chunk: &'a [u8],
    binary: &'a Result<PathBuf, String>,
    progress: &'a Progress,
}

/// The parts of a checkpoint, each timed alone.
struct CheckpointParts {
    /// `snapshot_body`: export, image, rkyv.
    encode: Duration,
    /// `ObjectSnapshots::write` of that body: the same epoch once more, byte for byte the
    /// same snapshot (CRCs, header, upload, manifest).
    store_write: Duration,
    /// One CRC32C pass over the body, and one copy of it into a fresh buffer, for scale
    /// (`ObjectSnapshots` makes two CRC passes when writing, two plus a copy when reading).
    crc_pass: Duration,
    copy_pass: Duration,
    /// The parts of the encoding: export (the view's state copied out), the image (the
    /// exported state converted into the snapshot's types); rkyv is the remainder.
    export: Duration,
    to_image: Duration,
}

impl CheckpointParts {
    /// Each part's best of two runs.
    fn min(self, o: CheckpointParts) -> CheckpointParts {
        CheckpointParts {
            encode: self.encode.min(o.encode),
            store_write: self.store_write.min(o.store_write),
            crc_pass: self.crc_pass.min(o.crc_pass),
            copy_pass: self.copy_pass.min(o.copy_pass),
            export: self.export.min(o.export),
            to_image: self.to_image.min(o.to_image),
        }
    }
}

fn checkpoint_parts(
    engine: &Engine<P>,
    snapshots: &mut ObjectSnapshots,
    lsn: u64,
    bytes: u64,
) -> Fallible<CheckpointParts> {
    let t = Instant::now();
    let body = snapshot_body(engine.state(), lsn).map_err(err("snapshot_body"))?;
    let encode = t.elapsed();
    if body.len() as u64 != bytes {
        return Err(format!(
            "snapshot_body gave {} bytes, the checkpoint {bytes}",
            body.len()
        ));
    }
    let t = Instant::now();
    black_box(crc32c::crc32c(&body));
    let crc_pass = t.elapsed();
    let t = Instant::now();
    let copy = body.to_vec();
    let copy_pass = t.elapsed();
    drop(copy);
    let t = Instant::now();
    snapshots
        .write(lsn, body)
        .map_err(err("ObjectSnapshots::write"))?;
    let store_write = t.elapsed();
    let t = Instant::now();
    let state = engine
        .state()
        .export("agg")
        .ok_or("no view `agg` to export")?;
    let export = t.elapsed();
    let t = Instant::now();
    let img = image::object_image_v3("agg".into(), String::new(), Some(state));
    let to_image = t.elapsed();
    drop(img);
    Ok(CheckpointParts {
        encode,
        store_write,
        crc_pass,
        copy_pass,
        export,
        to_image,
    })
}

/// The parts of a restore from the store, each timed alone.
struct RestoreParts {
    /// `ObjectSnapshots::connect`: open and probe (put, get, delete of a small object).
    probe: Duration,
    /// `load_newest` without validation: list, manifest, get, CRCs, aligned copy.
    read: Duration,
    /// rkyv validation and the image-to-state conversion, for the body's format version.
    validate: Duration,
    from_image: Duration,
    version: u32,
}

impl RestoreParts {
    /// Each part's best of two runs.
    fn min(self, o: RestoreParts) -> RestoreParts {
        RestoreParts {
            probe: self.probe.min(o.probe),
            read: self.read.min(o.read),
            validate: self.validate.min(o.validate),
            from_image: self.from_image.min(o.from_image),
            version: o.version,
        }
    }
}

fn restore_parts(store_settings: &ObjectStoreSettings) -> Fallible<RestoreParts> {
    let t = Instant::now();
    let mut snapshots =
        ObjectSnapshots::connect(store_settings).map_err(err("ObjectSnapshots::connect"))?;
    let probe = t.elapsed();
    let t = Instant::now();
    let outcome = snapshots
        .load_newest(&mut |_, _| Ok(()))
        .map_err(err("ObjectSnapshots::load_newest"))?;
    let read = t.elapsed();
    let loaded = outcome.loaded.ok_or("load_newest found no checkpoint")?;
    let version = loaded.header.version;
    // This build writes format version 3, the only one measured here.
    if version != 3 {
        return Err(format!(
            "the checkpoint has snapshot format {version}, expected 3"
        ));
    }
    let t = Instant::now();
    let archived = rkyv::access::<ArchivedSnapshotImageV3, rancor::Error>(&loaded.body)
        .map_err(err("rkyv validation"))?;
    let validate = t.elapsed();
    let t = Instant::now();
    let states: Vec<_> = archived
        .objects
        .iter()
        .map(|o| image::state_from_v2(&o.state))
        .collect();
    let from_image = t.elapsed();
    black_box(&states);
    Ok(RestoreParts {
        probe,
        read,
        validate,
        from_image,
        version,
    })
}

fn measure(cx: &Ctx<'_>, kind: &StoreKind, keys: usize) -> Fallible<Figures> {
    let tag = format!("{} {}", kind.label(), thousands(keys as f64));
    let say = |msg: &str| cx.progress.say(&tag, msg);
    let store_settings = kind.settings(cx.root, cx.run_id, &keys.to_string());
    let data_dir = cx.root.join(format!(
        "data-{}-{keys}",
        kind.label().trim_end_matches("://")
    ));
    let settings = persist_settings(&data_dir, store_settings.clone());
    let capacity = capacity_for(keys);
    let repeats = cx.plan.repeats(keys);
    let (store, prefix, url) = open_store(&store_settings).map_err(err("open_store"))?;
    let raw_object = prefix.clone().join("raw-baseline").join("blob");
    let raw_file = cx.root.join(format!("raw-{keys}.bin"));
    let is_file = matches!(kind, StoreKind::File);
    let mut notes = Vec::new();
    let mut failed = false;

    // Build the state (not timed).
    say(&format!(
        "building the state ({} rows, one per key) …",
        thousands(keys as f64)
    ));
    let t = Instant::now();
    let mut engine = open_engine(&settings, capacity)?;
    fill(&mut engine, keys, cx.plan.build_batch)?;
    say(&format!(
        "built in {}; WAL {:.1} MB; {}",
        secs(t.elapsed()),
        dir_bytes(&data_dir.join("wal")) as f64 / MB,
        memory()
    ));

    // Checkpoint: the first (untimed) also fsyncs the WAL written without sync; the timed
    // ones write the snapshot of the same state at the same LSN again (same epoch, replaced).
    let first = engine.checkpoint().map_err(err("checkpoint"))?;
    let bytes = first.bytes;
    say(&format!(
        "first checkpoint (untimed): {:.1} MB at LSN {} in {} ms, to {url}",
        bytes as f64 / MB,
        first.lsn,
        first.millis
    ));
    let (mut ckpt, mut base_w) = (Duration::MAX, Duration::MAX);
    for r in 0..repeats {
        let t = Instant::now();
        let report = engine.checkpoint().map_err(err("checkpoint"))?;
        let took = t.elapsed();
        if report.bytes != bytes || report.lsn != first.lsn {
            return Err(format!(
                "checkpoint {r} wrote {} bytes at LSN {}, the first {bytes} at {}",
                report.bytes, report.lsn, first.lsn
            ));
        }
        let base = if is_file {
            raw_write(&raw_file, bytes, cx.chunk)?
        } else {
            cx.raw.put(&store, &raw_object, bytes, cx.chunk)?
        };
        say(&format!(
            "checkpoint {}/{repeats}: {} ({:.0} MB/s); baseline write {} ({:.0} MB/s)",
            r + 1,
            secs(took),
            bytes as f64 / MB / took.as_secs_f64(),
            secs(base),
            bytes as f64 / MB / base.as_secs_f64()
        ));
        ckpt = ckpt.min(took);
        base_w = base_w.min(base);
    }

    // Where a checkpoint's time goes: each part alone, the best of `repeats` runs.
    let mut snapshots =
        ObjectSnapshots::connect(&store_settings).map_err(err("ObjectSnapshots::connect"))?;
    let mut cp = checkpoint_parts(&engine, &mut snapshots, first.lsn, bytes)?;
    for _ in 1..repeats {
        cp = cp.min(checkpoint_parts(&engine, &mut snapshots, first.lsn, bytes)?);
    }
    let (encode, store_write) = (cp.encode, cp.store_write);
    let file_put = if is_file {
        let mut best = Duration::MAX;
        for _ in 0..repeats {
            best = best.min(cx.raw.put(&store, &raw_object, bytes, cx.chunk)?);
        }
        Some(best)
    } else {
        None
    };
    drop(engine);
    let mbs = |d: Duration| bytes as f64 / MB / d.as_secs_f64();
    notes.push(format!(
        "{tag}: checkpoint {} ≈ encode (snapshot_body) {} ({:.0} MB/s) + store write \
         (ObjectSnapshots::write: CRCs, upload, manifest) {} ({:.0} MB/s) + the rest (WAL sync, retain) {}",
        secs(ckpt),
        secs(encode),
        mbs(encode),
        secs(store_write),
        mbs(store_write),
        secs(ckpt.saturating_sub(encode + store_write))
    ));
    notes.push(format!(
        "{tag}:   encode = export (engine.export) {} + image (image::object_image_v3) {} + rkyv serialization ≈ {}; \
         for scale: one CRC32C pass over the body {}, one copy of it into a fresh buffer {}",
        secs(cp.export),
        secs(cp.to_image),
        secs(encode.saturating_sub(cp.export + cp.to_image)),
        secs(cp.crc_pass),
        secs(cp.copy_pass)
    ));
    if let Some(put) = file_put {
        notes.push(format!(
            "{tag}: a plain object_store put of the same bytes to this file:// store (multipart, \
             {} MiB parts, {PARTS_IN_FLIGHT} in flight, fsync): {} ({:.0} MB/s) vs raw write+fsync {} ({:.0} MB/s)",
            CHUNK >> 20,
            secs(put),
            mbs(put),
            secs(base_w),
            mbs(base_w)
        ));
    }

    // Restore: drop the engine, delete the data dir, time build() (store probe, download,
    // checks, rebuilding the state; the WAL is new and empty).
    let (mut restore, mut base_r) = (Duration::MAX, Duration::MAX);
    let mut restored: Option<Engine<P>> = None;
    for r in 0..repeats {
        drop(restored.take());
        fs::remove_dir_all(&data_dir).map_err(err(&data_dir.display().to_string()))?;
        let t = Instant::now();
        let mut e = open_engine(&settings, capacity)?;
        let took = t.elapsed();
        if r == 0 {
            check_state(&mut e, keys, 0).map_err(|m| format!("after restore: {m}"))?;
        }
        restored = Some(e);
        let base = if is_file {
            raw_read(&raw_file, bytes)?
        } else {
            cx.raw.get(&store, &raw_object, bytes)?
        };
        say(&format!(
            "restore {}/{repeats}: {} ({:.0} MB/s); baseline read {} ({:.0} MB/s); {}",
            r + 1,
            secs(took),
            mbs(took),
            secs(base),
            mbs(base),
            memory()
        ));
        restore = restore.min(took);
        base_r = base_r.min(base);
    }
    let engine = restored.ok_or("no restore ran")?;

    // Where a restore's time goes (with the engine alive): the store probe, the store read
    // with its checks, the rkyv validation, the image to state; the best of `repeats` runs.
    let mut rp = restore_parts(&store_settings)?;
    for _ in 1..repeats {
        rp = rp.min(restore_parts(&store_settings)?);
    }
    let RestoreParts {
        probe,
        read,
        validate,
        from_image,
        version,
    } = rp;
    let file_get = if is_file {
        let mut best = Duration::MAX;
        for _ in 0..repeats {
            best = best.min(cx.raw.get(&store, &raw_object, bytes)?);
        }
        Some(best)
    } else {
        None
    };
    let accounted = probe + read + validate + from_image;
    notes.push(format!(
        "{tag}: restore {} (snapshot format version {version}) ≈ store probe {} + store read (load_newest: list, manifest, get, CRCs, \
         aligned copy) {} ({:.0} MB/s) + rkyv validation {} + image to state (image::state_from*) {} + \
         the rest (DDL, import into the view's table, WAL and index open) {}",
        secs(restore),
        secs(probe),
        secs(read),
        mbs(read),
        secs(validate),
        secs(from_image),
        secs(restore.saturating_sub(accounted))
    ));
    if let Some(get) = file_get {
        notes.push(format!(
            "{tag}: a plain object_store get of the same bytes from this file:// store: {} ({:.0} MB/s) \
             vs raw read {} ({:.0} MB/s)",
            secs(get),
            mbs(get),
            secs(base_r),
            mbs(base_r)
        ));
    }

    // Time to ready after a crash, with the real binary.
    match (cx.plan.crash_keys == Some(keys), cx.binary) {
        (false, _) => drop(engine),
        (true, Err(why)) => {
            drop(engine);
            notes.push(format!(
                "{tag}: crash recovery with the binary not measured: {why}; build it with \
                 `cargo build --release --no-default-features --features durable`"
            ));
        }
        (true, Ok(bin)) => {
            let crash = Crash {
                bin,
                kind,
                store: &store_settings,
                data_dir: &data_dir,
                keys,
                bytes,
                restore,
            };
            match crash_run(cx, &crash, engine, &say) {
                Ok(lines) => notes.extend(lines),
                Err(e) => {
                    say(&format!("crash run FAILED: {e}"));
                    notes.push(format!("{tag}: crash recovery with the binary FAILED: {e}"));
                    failed = true;
                }
            }
        }
    }

    // Clean up: this size's store, raw baseline and data dir.
    let _ = fs::remove_file(&raw_file);
    clear_store(cx.raw, kind, &store_settings)?;
    let _ = fs::remove_dir_all(&data_dir);
    say(&format!("done; {}", memory()));
    Ok(Figures {
        store: kind.label(),
        keys,
        bytes,
        checkpoint: ckpt,
        base_write: base_w,
        restore,
        base_read: base_r,
        target: (is_file && cx.plan.mode != Mode::Smoke).then_some(TARGET_FILE),
        notes,
        failed,
    })
}

/// What a crash run needs from its measurement.
struct Crash<'a> {
    bin: &'a Path,
    kind: &'a StoreKind,
    store: &'a ObjectStoreSettings,
    data_dir: &'a Path,
    keys: usize,
    bytes: u64,
    /// The best in-process restore of this size, for scale.
    restore: Duration,
}

/// Adds a tail of rows to the local WAL of `engine` (whose state is checkpointed), drops it
/// without `close()`, and times the binary on its data dir. Returns the lines to print.
fn crash_run(
    cx: &Ctx<'_>,
    c: &Crash<'_>,
    mut engine: Engine<P>,
    say: &dyn Fn(&str),
) -> Fallible<Vec<String>> {
    let tag = format!("{} {}", c.kind.label(), thousands(c.keys as f64));
    let extra = c.keys / 10;
    say(&format!(
        "crash: {} more rows into the local WAL, then drop without close()",
        thousands(extra as f64)
    ));
    // For scale, in this process: the query on the restored state, and the tail ingested live
    // (what its replay redoes).
    let t = Instant::now();
    black_box(engine.query(CRASH_QUERY).map_err(err("strata query"))?);
    let query = t.elapsed();
    let t = Instant::now();
    add_tail(&mut engine, extra, cx.plan.build_batch)?;
    let tail = t.elapsed();
    drop(engine);
    let wal = dir_bytes(&c.data_dir.join("wal"));
    let extras = [
        (
            "STRATA_STATE_CAPACITY".to_string(),
            capacity_for(c.keys).to_string(),
        ),
        ("STRATA_CHECKPOINT_INTERVAL".to_string(), "0".to_string()),
        // The one info line of recovery: `loaded snapshot … in …`, timestamped.
        ("STRATA_LOG".to_string(), "warn,strata=info".to_string()),
    ];

    // The fixed cost: the same command on an empty data dir and an empty store.
    let empty_store = c
        .kind
        .settings(cx.root, cx.run_id, &format!("empty-{}", c.keys));
    let mut env = c.kind.cli_env(&empty_store);
    env.extend(extras.iter().cloned());
    let empty_dir = cx.root.join(format!("data-empty-{}", c.keys));
    let empty = run_cli(c.bin, &empty_dir, &env, &format!("{DDL}; {CRASH_QUERY}"))?;
    let _ = fs::remove_dir_all(&empty_dir);
    clear_store(cx.raw, c.kind, &empty_store)?;

    say("crash: timing `strata sql` on the crashed data dir …");
    let mut env = c.kind.cli_env(c.store);
    env.extend(extras.iter().cloned());
    let run = run_cli(c.bin, c.data_dir, &env, CRASH_QUERY)?;
    let last = run
        .stdout
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| format!("the binary printed nothing; stderr: {}", run.stderr.trim()))?;
    let got = last
        .split(',')
        .map(|v| v.trim().parse::<i64>())
        .collect::<Result<Vec<i64>, _>>()
        .map_err(|e| format!("binary output {:?}: {e}", run.stdout))?;
    let want = expected_totals(c.keys, extra);
    if got != want {
        return Err(format!(
            "the binary answered {got:?} (output {:?}), expected {want:?}",
            run.stdout
        ));
    }
    say(&format!(
        "crash: ready after {}, exit after {}",
        secs(run.ready),
        secs(run.exit)
    ));
    let (loaded, warnings): (Vec<&str>, Vec<&str>) = run
        .stderr
        .lines()
        .filter(|l| !l.is_empty())
        .partition(|l| l.contains("loaded snapshot"));
    let split = match loaded.first() {
        Some(line) => {
            let took = line.rsplit_once(" in ").map_or("?", |(_, t)| t.trim());
            match log_tod(line) {
                Some(tod) => {
                    let at = Duration::from_secs_f64((tod - run.spawned_tod).rem_euclid(86_400.0));
                    format!(
                        "in the binary (its log line `loaded snapshot … in {took}`, the read and \
                         validation): {} from spawn to the snapshot read, validated and imported \
                         (start, probe, download, checks, image to state, import), then {} to the \
                         answer (WAL open and replay, the query, printing); in this process the \
                         query alone took {} and ingesting the tail live {}",
                        secs(at),
                        secs(run.ready.saturating_sub(at)),
                        secs(query),
                        secs(tail)
                    )
                }
                None => format!("in the binary: snapshot read in {took}"),
            }
        }
        None => "the binary logged no `loaded snapshot` line".to_string(),
    };
    Ok(vec![
        format!(
            "{tag}: CRASH RECOVERY with the binary: from spawn to the answer of `{CRASH_QUERY}` {} \
             (start, probe, download {:.1} MB, checks, rebuild, replay of {} rows = {:.1} MB of local WAL, \
             the query); to exit {} (+ the checkpoint close() writes); answer checked {want:?}",
            secs(run.ready),
            c.bytes as f64 / MB,
            thousands(extra as f64),
            wal as f64 / MB,
            secs(run.exit)
        ),
        format!("{tag}:   {split}"),
        format!(
            "{tag}: for scale: the DDL and the same query on an empty data dir and store: {} to the answer, \
             {} to exit; the in-process restore above (no WAL tail): {}{}",
            secs(empty.ready),
            secs(empty.exit),
            secs(c.restore),
            if warnings.is_empty() {
                String::new()
            } else {
                format!("; the binary's stderr: {}", warnings.join(" | "))
            }
        ),
    ])
}

// ---------------------------------------------------------------------------------------

fn print_table(figures: &[Figures]) {
    println!(
        "{:<10} {:>10} {:>9}  {:<34} {:>9} {:>8}  {:<43} {:>9} {:>8} {:>6}  target",
        "store", "keys", "snap MB", "strata", "time", "MB/s", "baseline", "time", "MB/s", "ratio"
    );
    for f in figures {
        let mbs = |d: Duration| f.bytes as f64 / MB / d.as_secs_f64();
        let (bw, br) = if f.store == "file://" {
            (
                "raw write (8 MiB writes) + fsync",
                "raw read (fs::read, warm page cache)",
            )
        } else {
            (
                "object_store put (8 MiB parts, 4 in flight)",
                "object_store get",
            )
        };
        for (what, t, base, bt) in [
            (
                "checkpoint: engine.checkpoint()",
                f.checkpoint,
                bw,
                f.base_write,
            ),
            (
                "restore: build(), data dir deleted",
                f.restore,
                br,
                f.base_read,
            ),
        ] {
            let ratio = mbs(t) / mbs(bt);
            println!(
                "{:<10} {:>10} {:>9.1}  {:<34} {:>9} {:>8.1}  {:<43} {:>9} {:>8.1} {:>6.2}  {}",
                f.store,
                thousands(f.keys as f64),
                f.bytes as f64 / MB,
                what,
                secs(t),
                mbs(t),
                base,
                secs(bt),
                mbs(bt),
                ratio,
                verdict(ratio, f.target)
            );
        }
    }
}

fn main() {
    for arg in std::env::args().skip(1) {
        if arg != "--bench" {
            eprintln!("note: ignoring argument `{arg}`");
        }
    }
    let smoke = !std::env::args().any(|a| a == "--bench");
    let quick = std::env::var("STRATA_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let mode = match (smoke, quick) {
        (true, _) => Mode::Smoke,
        (false, true) => Mode::Quick,
        (false, false) => Mode::Full,
    };
    let plan = Plan::new(mode);
    let progress = Progress {
        started: Instant::now(),
    };
    if P::NAME != "durable" {
        println!(
            "checkpoint_store benchmark: profile {} keeps no checkpoints in an object store; build \
             with --no-default-features --features durable",
            P::NAME
        );
        return;
    }
    if mode == Mode::Smoke {
        println!(
            "smoke run (no --bench): 20k keys, file:// and memory://, results checked, rates \
             meaningless, no targets, no binary"
        );
    }
    println!("reproduce: {}", reproduce(mode));

    let mut stores = vec![StoreKind::File];
    if mode == Mode::Smoke {
        stores.push(StoreKind::Memory);
    } else {
        match std::env::var("STRATA_TEST_S3_ENDPOINT") {
            Ok(endpoint) if !endpoint.is_empty() => stores.push(StoreKind::S3 {
                endpoint,
                bucket: std::env::var("STRATA_TEST_S3_BUCKET")
                    .ok()
                    .filter(|b| !b.is_empty())
                    .unwrap_or_else(|| "strata-test".into()),
            }),
            _ => println!(
                "note: STRATA_TEST_S3_ENDPOINT is not set: s3:// skipped (start the local server with \
                 `scripts/s3-test-server start && eval \"$(scripts/s3-test-server env)\"`)"
            ),
        }
    }

    let root = match tempfile::Builder::new()
        .prefix("strata-checkpoint-store-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot create a temp dir: {e}");
            std::process::exit(1);
        }
    };
    let raw = match Raw::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let binary = if plan.crash_keys.is_some() {
        strata_binary()
    } else {
        Err("not in this mode".into())
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let run_id = format!("checkpoint-bench-{}-{nanos}", std::process::id());
    let chunk = pattern(CHUNK);

    println!(
        "profile {} ({} mode), {} hardware threads, RAM {} (MemAvailable {})",
        P::NAME,
        match mode {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        gib(proc_kb("/proc/meminfo", "MemTotal:").unwrap_or(0)),
        gib(proc_kb("/proc/meminfo", "MemAvailable:").unwrap_or(0)),
    );
    println!(
        "stores: {}; data dirs, file:// stores and raw files under {} — filesystem: {}",
        stores
            .iter()
            .map(|s| match s {
                StoreKind::S3 { endpoint, bucket } =>
                    format!("s3://{bucket}/{run_id}/… at {endpoint}"),
                other => other.label().to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        root.path().display(),
        filesystem_of(root.path())
    );
    println!(
        "view `SELECT k, COUNT(*) AS n, SUM(x) AS s FROM ev GROUP BY k`, one group per key (BIGINT keys spread \
         over the key space); sync = never while building; MB = 10^6 bytes of snapshot body \
         (CheckpointReport::bytes; the stored object adds a {HEADER_LEN}-byte header)"
    );
    println!(
        "each figure is the best of {} (strata and its baseline taking turns); checkpoints rewrite the same \
         state at the same LSN",
        plan.keys
            .iter()
            .map(|&k| format!("{} runs at {} keys", plan.repeats(k), thousands(k as f64)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "restores delete the data dir first, so each prints `warning: the WAL … ends at record 0 …` on \
         stderr: expected. file:// reads come from the page cache (the files were just written; the raw \
         baseline too)"
    );
    println!(
        "load average at start: {} (other processes skew rates; compare within a run)",
        load_average()
    );
    println!();

    let cx = Ctx {
        plan: &plan,
        root: root.path(),
        run_id: &run_id,
        raw: &raw,
        chunk: &chunk,
        binary: &binary,
        progress: &progress,
    };
    let mut all_ok = true;
    let mut figures = Vec::new();
    let mut failures = Vec::new();
    for &keys in &plan.keys {
        for kind in &stores {
            match measure(&cx, kind, keys) {
                Ok(f) => {
                    all_ok &= !f.failed;
                    figures.push(f)
                }
                Err(e) => {
                    all_ok = false;
                    let line = format!("{} {}: FAILED: {e}", kind.label(), thousands(keys as f64));
                    println!("  {line}");
                    failures.push(line);
                    // Leave nothing behind in a shared store.
                    let s = kind.settings(root.path(), &run_id, &keys.to_string());
                    let _ = clear_store(&raw, kind, &s);
                }
            }
        }
    }

    println!();
    println!(
        "Checkpoint and restore, MB/s of snapshot body; ratio = strata MB/s ÷ baseline MB/s (target ≥ {TARGET_FILE} \
         for file://)"
    );
    print_table(&figures);
    println!();
    for f in &figures {
        for n in &f.notes {
            println!("  {n}");
        }
    }
    for line in &failures {
        println!("  {line}");
    }
    if plan.crash_keys.is_some()
        && !figures
            .iter()
            .any(|f| f.notes.iter().any(|n| n.contains("CRASH")))
    {
        if let Err(why) = &binary {
            println!(
                "  crash recovery with the binary not measured: {why}; build it with \
                 `cargo build --release --no-default-features --features durable`"
            );
        }
    }
    println!();
    println!(
        "load average at end: {}; total {}",
        load_average(),
        secs(progress.started.elapsed())
    );
    println!("reproduce: {}", reproduce(mode));
    drop(root);
    if !all_ok {
        eprintln!("error: some measurements failed or their results disagreed; see FAILED above");
        std::process::exit(1);
    }
}
