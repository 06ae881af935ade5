//! Durability of the embedded tier (issue 3, "Benchmarks"), each figure against its baseline
//! in the same run:
//!
//! - (a) typed `insert_batch` with `sync = always` (one WAL record and one fsync per batch) at
//!   10k and 100k rows per batch into a source with the COUNT/SUM/MIN/MAX GROUP BY view of
//!   `strata::bench`, 100k keys, vs appending the same number of WAL bytes to a plain file in
//!   the same number of appends, each followed by `sync_data`. Target ≥ 0.7.
//! - (b) the same aggregation in SQLite (`journal_mode=WAL`, `synchronous=FULL`, a file in the
//!   same temp directory), one transaction per 10k / 100k rows, UPSERT through a prepared
//!   statement reused per row, vs Strata's rows/s of (a) at the same batch size. Targets:
//!   ≥ 2× at 10k rows per batch, ≥ 5× at 100k.
//! - (c) snapshot write (`Engine::checkpoint`) and restore (`build()` on a directory whose WAL
//!   the snapshot already covers) of views with 1M and 10M keys (5M if 10M would not fit
//!   comfortably in memory or time; the output says which), in MB/s of snapshot file size,
//!   vs sequential write+fsync and read of a plain file of the same size. Target ≥ 0.5. Also
//!   the recovery time for 1M keys, from the snapshot and from WAL replay alone.
//!
//! Results are checked: after (a) and (b) the view (the `stats` table) equals a direct
//! computation; after (c) the recovered states equal the state before (every group, plus SQL
//! spot checks of a few keys and of the group count).
//!
//! `harness = false`: a plain `main`. `cargo bench --bench durability` runs the full sizes
//! (about 3–5 minutes on 2 cores), `STRATA_BENCH_QUICK=1` a short run (under a minute);
//! without `--bench` (as `cargo test --all-targets` runs it) a smoke run with tiny sizes.

mod common;

use common::report::{gib, load_average, pattern, proc_kb, secs, thousands, verdict};
use common::{
    capacity_for, compare_aggregates, dir_bytes, engine_aggregates, err, files_under,
    filesystem_of, ints, key_of, raw_read, raw_write, reference_aggregates, sqlite_aggregates,
    value_of, Aggregates, Fallible,
};
use rusqlite::Connection;
use rustc_hash::FxHashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use strata::bench::workload;
use strata::checkpoint::{ObjectState, PersistSettings, SyncMode};
use strata::{ActiveProfile, Engine, Key, PhysicalProfile};
use strata::{Batch, Column};

type P = ActiveProfile;

const DDL: &str = "CREATE SOURCE events (k BIGINT NOT NULL, v BIGINT NOT NULL);
     CREATE MATERIALIZED VIEW stats AS
       SELECT k, COUNT(*) AS n, SUM(v) AS total, MIN(v) AS lo, MAX(v) AS hi FROM events GROUP BY k";

const SQLITE_SCHEMA: &str = "CREATE TABLE stats (k INTEGER PRIMARY KEY, n INTEGER NOT NULL, \
     total INTEGER NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL)";
const SQLITE_UPSERT: &str = "INSERT INTO stats VALUES (?1, 1, ?2, ?2, ?2) \
     ON CONFLICT(k) DO UPDATE SET n = n + 1, total = total + excluded.total, \
     lo = min(lo, excluded.lo), hi = max(hi, excluded.hi)";

const TARGET_A: f64 = 0.7;
const TARGET_C: f64 = 0.5;
const MB: f64 = 1e6;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Smoke,
    Quick,
    Full,
}

/// Sizes of one run.
struct Sizes {
    mode: Mode,
    /// Distinct keys in (a) and (b).
    keys: usize,
    /// `(rows per batch, rows in total)` of (a) and (b).
    batches: Vec<(usize, usize)>,
    /// Runs per measurement; the best is reported.
    repeats: usize,
    /// Keys of the first state of (c) (the README's recovery figure in full and quick mode).
    snapshot_keys: usize,
    /// Keys of the big state of (c), tried after the first if it fits: 10M, else 5M.
    big_keys: Option<usize>,
    /// Rows per `insert_batch` when building the states of (c) (not timed).
    build_batch: usize,
}

impl Sizes {
    fn new(mode: Mode) -> Sizes {
        match mode {
            Mode::Smoke => Sizes {
                mode,
                keys: 1_000,
                batches: vec![(1_000, 20_000), (5_000, 50_000)],
                repeats: 1,
                snapshot_keys: 10_000,
                big_keys: None,
                build_batch: 4_000,
            },
            Mode::Quick => Sizes {
                mode,
                keys: 100_000,
                batches: vec![(10_000, 1_000_000), (100_000, 4_000_000)],
                repeats: 3,
                snapshot_keys: 1_000_000,
                big_keys: None,
                build_batch: 500_000,
            },
            Mode::Full => Sizes {
                mode,
                keys: 100_000,
                batches: vec![(10_000, 4_000_000), (100_000, 10_000_000)],
                repeats: 5,
                snapshot_keys: 1_000_000,
                big_keys: Some(10_000_000),
                build_batch: 500_000,
            },
        }
    }

    /// The target for (b) at this batch size (only the sizes have one).
    fn target_b(&self, batch_rows: usize) -> Option<f64> {
        match (self.mode, batch_rows) {
            (Mode::Smoke, _) => None,
            (_, 10_000) => Some(2.0),
            (_, 100_000) => Some(5.0),
            _ => None,
        }
    }

    fn has_targets(&self) -> bool {
        self.mode != Mode::Smoke
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers

fn settings(dir: &Path, sync: SyncMode) -> PersistSettings {
    PersistSettings {
        data_dir: dir.to_path_buf(),
        sync,
        checkpoint_interval: None,
        keep: 2,
        truncate_at_corruption: false,
        // Whatever else later versions add keeps its default.
        ..PersistSettings::default()
    }
}

/// Opens (and recovers) a data directory.
fn open(dir: &Path, sync: SyncMode, capacity: usize) -> Fallible<Engine<P>> {
    Engine::builder()
        .capacity(capacity)
        .persist(settings(dir, sync))
        .build()
        .map_err(|e| format!("opening {}: {e}", dir.display()))
}

fn tempdir_in(root: &Path, prefix: &str) -> Fallible<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(root)
        .map_err(|e| format!("creating a temp dir in {}: {e}", root.display()))
}

fn rss() -> u64 {
    proc_kb("/proc/self/status", "VmRSS:").unwrap_or(0)
}

fn peak_rss() -> u64 {
    proc_kb("/proc/self/status", "VmHWM:").unwrap_or(0)
}

/// Resets the peak RSS to the current RSS (Linux: `5` to /proc/self/clear_refs).
fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Drops the page cache of a file (it is fsynced first so its pages are clean):
/// `posix_fadvise(POSIX_FADV_DONTNEED)`. Returns false where that is not available.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn drop_cache(path: &Path) -> Fallible<bool> {
    use std::os::fd::AsRawFd;
    unsafe extern "C" {
        // off_t is 64 bits on 64-bit Linux.
        fn posix_fadvise(fd: i32, offset: i64, len: i64, advice: i32) -> i32;
    }
    const POSIX_FADV_DONTNEED: i32 = 4;
    let f = File::open(path).map_err(err(&path.display().to_string()))?;
    f.sync_all()
        .map_err(err("fsync before dropping the cache"))?;
    // SAFETY: a valid open descriptor; the call only advises the kernel.
    let rc = unsafe { posix_fadvise(f.as_raw_fd(), 0, 0, POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(format!("posix_fadvise({}): error {rc}", path.display()));
    }
    Ok(true)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn drop_cache(_path: &Path) -> Fallible<bool> {
    Ok(false)
}

// ---------------------------------------------------------------------------------------
// Aggregates and checks

/// The exported state of the `stats` view.
fn view_state(engine: &Engine<P>) -> Fallible<ObjectState> {
    engine
        .state()
        .export("stats")
        .ok_or_else(|| "the view `stats` is missing".to_string())
}

/// Compares two exports of the view: identical (same groups in the same slot order), or
/// else the same groups as a set.
fn same_view(before: &ObjectState, after: &ObjectState) -> Fallible<&'static str> {
    if before == after {
        return Ok("identical export (every group, same order)");
    }
    let groups = |s: &ObjectState| -> Fallible<FxHashMap<Key, Vec<i64>>> {
        let ObjectState::View { keys, records, .. } = s else {
            return Err("not a view state".to_string());
        };
        let stride = if keys.is_empty() {
            0
        } else {
            records.len() / keys.len()
        };
        Ok(keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), records[i * stride..(i + 1) * stride].to_vec()))
            .collect())
    };
    let (b, a) = (groups(before)?, groups(after)?);
    if a.len() != b.len() {
        return Err(format!("{} groups after, {} before", a.len(), b.len()));
    }
    for (k, r) in &b {
        match a.get(k) {
            Some(x) if x == r => {}
            Some(x) => return Err(format!("group {k:?} is {x:?}, was {r:?}")),
            None => return Err(format!("group {k:?} is missing")),
        }
    }
    Ok("same groups (slot order differs)")
}

// ---------------------------------------------------------------------------------------
// (a) ingest with sync = always vs raw append+fsync, and (b) SQLite — interleaved

/// Slices per timed run: the three sides take turns slice by slice, so that all of them see
/// the same disk and the same neighbours (other processes' I/O makes fsync latency vary a lot
/// over seconds).
const SLICES: usize = 20;

/// The WAL growth of each batch, from an untimed ingest that also checks the view.
fn wal_bytes_per_batch(
    root: &Path,
    keys: usize,
    batches: &[Batch],
    want: &Aggregates,
) -> Fallible<Vec<usize>> {
    let dir = tempdir_in(root, "strata-sizes-")?;
    let mut engine = open(dir.path(), SyncMode::Always, capacity_for(keys))?;
    engine.execute(DDL).map_err(err("DDL"))?;
    let wal = dir.path().join("wal");
    let mut last = dir_bytes(&wal);
    let mut sizes = Vec::with_capacity(batches.len());
    for b in batches {
        engine
            .insert_batch("events", b)
            .map_err(err("insert_batch"))?;
        let now = dir_bytes(&wal);
        sizes.push(now.saturating_sub(last) as usize);
        last = now;
    }
    compare_aggregates(
        "strata view after ingest (untimed pass)",
        &engine_aggregates(&mut engine)?,
        want,
    )?;
    Ok(sizes)
}

/// A SQLite database file with the pragmas of (b) and the `stats` table.
fn sqlite_db(dir: &Path) -> Fallible<Connection> {
    let conn = Connection::open(dir.join("stats.db")).map_err(err("sqlite open"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(err("sqlite pragma"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("SQLite journal_mode is {mode}, not wal"));
    }
    conn.execute_batch("PRAGMA synchronous=FULL")
        .map_err(err("sqlite pragma"))?;
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .map_err(err("sqlite pragma"))?;
    if sync != 2 {
        return Err(format!("SQLite synchronous is {sync}, not 2 (FULL)"));
    }
    conn.execute_batch(SQLITE_SCHEMA)
        .map_err(err("sqlite schema"))?;
    Ok(conn)
}

/// Summed times of one interleaved run.
struct Sides {
    strata: Duration,
    raw: Duration,
    sqlite: Duration,
}

/// One timed run: Strata (`sync = always`), raw appends of `sizes` with `sync_data`, and
/// SQLite, each from empty, taking turns slice by slice. `check`: compare both results.
fn interleaved_run(
    root: &Path,
    keys: usize,
    batch_rows: usize,
    batches: &[Batch],
    rows: (&[i64], &[i64]),
    sizes: &[usize],
    check: Option<&Aggregates>,
) -> Fallible<Sides> {
    let strata_dir = tempdir_in(root, "strata-ingest-")?;
    let mut engine = open(strata_dir.path(), SyncMode::Always, capacity_for(keys))?;
    engine.execute(DDL).map_err(err("DDL"))?;
    let wal = strata_dir.path().join("wal");
    let wal_before = dir_bytes(&wal);

    let raw_dir = tempdir_in(root, "raw-append-")?;
    let raw_path = raw_dir.path().join("raw.log");
    let mut raw = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&raw_path)
        .map_err(err("raw file"))?;
    raw.sync_all().map_err(err("raw fsync"))?;
    let buf = pattern(sizes.iter().copied().max().unwrap_or(0));

    let sqlite_dir = tempdir_in(root, "sqlite-")?;
    let conn = sqlite_db(sqlite_dir.path())?;
    let mut stmt = conn.prepare(SQLITE_UPSERT).map_err(err("sqlite prepare"))?;

    let per_slice = batches.len().div_ceil(SLICES).max(1);
    let mut t = [Duration::ZERO; 3];
    for (i, first) in (0..batches.len()).step_by(per_slice).enumerate() {
        let last = (first + per_slice).min(batches.len());
        for side in [(i) % 3, (i + 1) % 3, (i + 2) % 3] {
            let start = Instant::now();
            match side {
                0 => {
                    for b in &batches[first..last] {
                        engine
                            .insert_batch("events", b)
                            .map_err(err("insert_batch"))?;
                    }
                }
                1 => {
                    for &n in &sizes[first..last] {
                        raw.write_all(&buf[..n]).map_err(err("raw write"))?;
                        raw.sync_data().map_err(err("raw fsync"))?;
                    }
                }
                _ => {
                    let (ks, vs) = (&rows.0[first * batch_rows..], &rows.1[first * batch_rows..]);
                    let n = ((last - first) * batch_rows).min(ks.len());
                    for (k, v) in ks[..n].chunks(batch_rows).zip(vs[..n].chunks(batch_rows)) {
                        conn.execute_batch("BEGIN").map_err(err("sqlite BEGIN"))?;
                        for (k, v) in k.iter().zip(v) {
                            stmt.execute([k, v]).map_err(err("sqlite upsert"))?;
                        }
                        conn.execute_batch("COMMIT").map_err(err("sqlite COMMIT"))?;
                    }
                }
            }
            t[side] += start.elapsed();
        }
    }
    drop(stmt);

    let wal_grew = dir_bytes(&wal).saturating_sub(wal_before);
    let raw_len = raw.metadata().map_err(err("raw file"))?.len();
    let want_len: usize = sizes.iter().sum();
    if wal_grew != want_len as u64 || raw_len != want_len as u64 {
        return Err(format!(
            "byte counts differ: the WAL grew by {wal_grew} bytes, the raw file holds {raw_len}, the untimed pass wrote {want_len}"
        ));
    }
    if let Some(want) = check {
        compare_aggregates("strata view", &engine_aggregates(&mut engine)?, want)?;
        compare_aggregates("SQLite stats table", &sqlite_aggregates(&conn)?, want)?;
    }
    Ok(Sides {
        strata: t[0],
        raw: t[1],
        sqlite: t[2],
    })
}

/// Strata with `sync = never`: a diagnostic of what the fsyncs cost (not interleaved).
fn strata_never(root: &Path, keys: usize, batches: &[Batch]) -> Fallible<Duration> {
    let dir = tempdir_in(root, "strata-never-")?;
    let mut engine = open(dir.path(), SyncMode::Never, capacity_for(keys))?;
    engine.execute(DDL).map_err(err("DDL"))?;
    let start = Instant::now();
    for b in batches {
        engine
            .insert_batch("events", b)
            .map_err(err("insert_batch"))?;
    }
    Ok(start.elapsed())
}

/// The best times of (a) and (b) at one batch size.
struct IngestFigures {
    batch_rows: usize,
    rows: usize,
    appends: usize,
    wal_bytes: u64,
    groups: usize,
    strata: Duration,
    raw: Duration,
    sqlite: Duration,
    never: Duration,
}

fn ingest_figures(
    root: &Path,
    s: &Sizes,
    batch_rows: usize,
    rows: usize,
) -> Fallible<IngestFigures> {
    let (ks, vs) = workload(s.keys, rows);
    let want = reference_aggregates(&ks, &vs);
    let batches: Vec<Batch> = ks
        .chunks(batch_rows)
        .zip(vs.chunks(batch_rows))
        .map(|(k, v)| {
            Batch::new()
                .with_column("k", Column::bigint(k.to_vec()))
                .with_column("v", Column::bigint(v.to_vec()))
        })
        .collect();
    let sizes = wal_bytes_per_batch(root, s.keys, &batches, &want)?;
    let mut f = IngestFigures {
        batch_rows,
        rows,
        appends: batches.len(),
        wal_bytes: sizes.iter().sum::<usize>() as u64,
        groups: want.len(),
        strata: Duration::MAX,
        raw: Duration::MAX,
        sqlite: Duration::MAX,
        never: Duration::MAX,
    };
    for r in 0..s.repeats.max(1) {
        let sides = interleaved_run(
            root,
            s.keys,
            batch_rows,
            &batches,
            (&ks, &vs),
            &sizes,
            (r == 0).then_some(&want),
        )?;
        f.strata = f.strata.min(sides.strata);
        f.raw = f.raw.min(sides.raw);
        f.sqlite = f.sqlite.min(sides.sqlite);
        f.never = f.never.min(strata_never(root, s.keys, &batches)?);
    }
    Ok(f)
}

fn print_a(s: &Sizes, f: &IngestFigures) {
    let rate = |d: Duration| f.rows as f64 / d.as_secs_f64();
    let mbs = |d: Duration| f.wal_bytes as f64 / MB / d.as_secs_f64();
    let ratio = rate(f.strata) / rate(f.raw);
    println!(
        "{:>10} {:>10} {:>8} {:>9.1} {:>14} {:>9.1} {:>14} {:>9.1} {:>9.3} {:>6.2}  {:<14} {:>14} {:>9.2}  ok ({} groups)",
        f.batch_rows,
        f.rows,
        f.appends,
        f.wal_bytes as f64 / MB,
        thousands(rate(f.strata)),
        mbs(f.strata),
        thousands(rate(f.raw)),
        mbs(f.raw),
        f.raw.as_secs_f64() * 1e3 / f.appends as f64,
        ratio,
        verdict(ratio, s.has_targets().then_some(TARGET_A)),
        thousands(rate(f.never)),
        rate(f.never) / rate(f.raw),
        f.groups
    );
    let never_ratio = rate(f.never) / rate(f.raw);
    if s.has_targets() && ratio < TARGET_A && never_ratio < TARGET_A {
        println!(
            "{:>10} note: an fsync cost {:.3} ms here; even without fsyncs (sync = never) strata reaches only {never_ratio:.2} \
             of the raw rate, so the gap is strata's CPU per batch (aggregation, WAL encoding, copies), not the log's I/O",
            "",
            f.raw.as_secs_f64() * 1e3 / f.appends as f64
        );
    }
}

fn print_b(s: &Sizes, f: &IngestFigures) {
    let rate = |d: Duration| f.rows as f64 / d.as_secs_f64();
    let ratio = rate(f.strata) / rate(f.sqlite);
    println!(
        "{:>10} {:>10} {:>14} {:>16} {:>7.2}  {:<14}  ok ({} groups)",
        f.batch_rows,
        f.rows,
        thousands(rate(f.sqlite)),
        thousands(rate(f.strata)),
        ratio,
        verdict(ratio, s.target_b(f.batch_rows)),
        f.groups
    );
}

// ---------------------------------------------------------------------------------------
// (c) snapshot write and restore

fn newest_snapshot(dir: &Path) -> Fallible<(PathBuf, u64)> {
    let snaps = dir.join("snapshots");
    let mut files: Vec<PathBuf> = fs::read_dir(&snaps)
        .map_err(err(&snaps.display().to_string()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    files.sort();
    let path = files
        .pop()
        .ok_or_else(|| format!("no snapshot in {}", snaps.display()))?;
    let len = fs::metadata(&path).map_err(err("snapshot"))?.len();
    Ok((path, len))
}

/// SQL spot checks of a restored state: a few keys and the group count.
fn sql_checks(engine: &mut Engine<P>, keys: usize) -> Fallible<()> {
    let (mut sum, mut lo, mut hi) = (0i64, i64::MAX, i64::MIN);
    for i in 0..keys {
        let v = value_of(key_of(i));
        sum += v;
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let rs = engine
        .query("SELECT COUNT(*), SUM(n), SUM(total), MIN(lo), MAX(hi) FROM stats")
        .map_err(err("strata query"))?;
    let got = ints(rs.rows.first().ok_or("no row")?)?;
    let want = vec![keys as i64, keys as i64, sum, lo, hi];
    if got != want {
        return Err(format!(
            "COUNT(*), SUM(n), SUM(total), MIN(lo), MAX(hi) = {got:?}, expected {want:?}"
        ));
    }
    let picks = [0, 1, keys / 2, keys - 1];
    let wh = picks
        .iter()
        .map(|&i| format!("k = {}", key_of(i)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let rs = engine
        .query(&format!("SELECT k, n, total, lo, hi FROM stats WHERE {wh}"))
        .map_err(err("strata query"))?;
    let mut got: Vec<Vec<i64>> = rs.rows.iter().map(|r| ints(r)).collect::<Fallible<_>>()?;
    got.sort();
    let mut want: Vec<Vec<i64>> = picks
        .iter()
        .map(|&i| {
            let (k, v) = (key_of(i), value_of(key_of(i)));
            vec![k, 1, v, v, v]
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

struct SnapshotFigures {
    keys: usize,
    phase_time: Duration,
    peak_extra: u64,
}

fn part_c(root: &Path, s: &Sizes, keys: usize, all_ok: &mut bool) -> Option<SnapshotFigures> {
    let phase_start = Instant::now();
    let rss_start = rss();
    let peak_ok = reset_peak_rss();
    let result = snapshot_round(root, s, keys);
    let peak = peak_rss();
    let peak_extra = peak.saturating_sub(rss_start);
    match result {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            println!(
                "    memory: RSS {} at the start of this size, peak {} ({} above){}",
                gib(rss_start),
                gib(peak),
                gib(peak_extra),
                if peak_ok {
                    ""
                } else {
                    " — peak not resettable here, so it is the process peak"
                }
            );
            Some(SnapshotFigures {
                keys,
                phase_time: phase_start.elapsed(),
                peak_extra,
            })
        }
        Err(e) => {
            *all_ok = false;
            println!("{keys:>10} FAILED: {e}");
            None
        }
    }
}

fn snapshot_round(root: &Path, s: &Sizes, keys: usize) -> Fallible<Vec<String>> {
    let mut out = Vec::new();
    let dir = tempdir_in(root, "strata-snapshot-")?;
    let capacity = capacity_for(keys);

    // Build the state (not timed): one row per key, WAL without fsync.
    let built = Instant::now();
    let mut engine = open(dir.path(), SyncMode::Never, capacity)?;
    engine.execute(DDL).map_err(err("DDL"))?;
    let mut i = 0;
    while i < keys {
        let n = s.build_batch.min(keys - i);
        let ks: Vec<i64> = (i..i + n).map(key_of).collect();
        let vs: Vec<i64> = ks.iter().map(|&k| value_of(k)).collect();
        let b = Batch::new()
            .with_column("k", Column::bigint(ks))
            .with_column("v", Column::bigint(vs));
        engine
            .insert_batch("events", &b)
            .map_err(err("insert_batch"))?;
        i += n;
    }
    let build_time = built.elapsed();
    let before = view_state(&engine)?;
    drop(engine);
    let wal_all = dir_bytes(&dir.path().join("wal"));

    // Recovery by WAL replay alone (no snapshot yet).
    let start = Instant::now();
    let mut engine = open(dir.path(), SyncMode::Always, capacity)?;
    let replay_time = start.elapsed();
    let replay_check =
        same_view(&before, &view_state(&engine)?).map_err(|e| format!("after WAL replay: {e}"))?;

    // Snapshot write: the first checkpoint (untimed) also fsyncs the WAL written without
    // sync; the timed ones rewrite the snapshot of the same state at the same LSN.
    engine.checkpoint().map_err(err("checkpoint"))?;
    let chunk = pattern(8 << 20);
    let raw_path = dir.path().join("raw.bin");
    let (mut best_ckpt, mut best_raw_w) = (Duration::MAX, Duration::MAX);
    let mut snap_len = 0;
    for _ in 0..s.repeats.max(1) {
        let t = Instant::now();
        let report = engine.checkpoint().map_err(err("checkpoint"))?;
        let ckpt = t.elapsed();
        let (_, len) = newest_snapshot(dir.path())?;
        if len < report.bytes {
            return Err(format!(
                "snapshot file has {len} bytes, the checkpoint reported {}",
                report.bytes
            ));
        }
        snap_len = len;
        let _ = fs::remove_file(&raw_path);
        let raw = raw_write(&raw_path, len, &chunk)?;
        best_ckpt = best_ckpt.min(ckpt);
        best_raw_w = best_raw_w.min(raw);
    }
    drop(engine);
    let wal_left = dir_bytes(&dir.path().join("wal"));

    // Restore: build() on the same dir, the WAL covered by the snapshot. Warm page cache
    // (the files were just written), then with the cache of every file dropped.
    let (mut best_warm, mut best_raw_warm) = (Duration::MAX, Duration::MAX);
    let (mut best_cold, mut best_raw_cold) = (Duration::MAX, Duration::MAX);
    let mut cold_supported = true;
    let mut restored = None;
    for _ in 0..s.repeats.max(1) {
        drop(restored.take());
        let t = Instant::now();
        let e = open(dir.path(), SyncMode::Always, capacity)?;
        best_warm = best_warm.min(t.elapsed());
        restored = Some(e);
        best_raw_warm = best_raw_warm.min(raw_read(&raw_path, snap_len)?);
    }
    for _ in 0..s.repeats.max(1) {
        drop(restored.take());
        for f in files_under(dir.path()) {
            if f != raw_path && f.file_name().is_some_and(|n| n != "LOCK") {
                cold_supported &= drop_cache(&f)?;
            }
        }
        let t = Instant::now();
        let e = open(dir.path(), SyncMode::Always, capacity)?;
        best_cold = best_cold.min(t.elapsed());
        restored = Some(e);
        cold_supported &= drop_cache(&raw_path)?;
        best_raw_cold = best_raw_cold.min(raw_read(&raw_path, snap_len)?);
    }
    let mut engine = restored.ok_or("no restore ran")?;
    let restore_check =
        same_view(&before, &view_state(&engine)?).map_err(|e| format!("after restore: {e}"))?;
    sql_checks(&mut engine, keys).map_err(|e| format!("after restore: {e}"))?;
    drop(engine);

    let mbs = |d: Duration| snap_len as f64 / MB / d.as_secs_f64();
    let target = s.has_targets().then_some(TARGET_C);
    let row = |what: &str, t: Duration, base: &str, bt: Duration| {
        let ratio = mbs(t) / mbs(bt);
        format!(
            "{:>10} {:>9.1}  {:<36} {:>10} {:>9.1}  {:<30} {:>9.1} {:>6.2}  {}",
            keys,
            snap_len as f64 / MB,
            what,
            secs(t),
            mbs(t),
            base,
            mbs(bt),
            ratio,
            verdict(ratio, target)
        )
    };
    out.push(row(
        "snapshot write: engine.checkpoint()",
        best_ckpt,
        "raw write+fsync",
        best_raw_w,
    ));
    out.push(row(
        "restore, warm cache: build()",
        best_warm,
        "raw read, warm cache",
        best_raw_warm,
    ));
    if cold_supported {
        out.push(row(
            "restore, cache dropped: build()",
            best_cold,
            "raw read, cache dropped",
            best_raw_cold,
        ));
    }
    out.push(format!(
        "    state built in {} ({} rows, one per key, sync = never); WAL {:.1} MB; at restore the WAL holds {:.1} MB, \
         all covered by the snapshot (scanned, not replayed)",
        secs(build_time),
        keys,
        wal_all as f64 / MB,
        wal_left as f64 / MB
    ));
    out.push(format!(
        "    recovery time for {} keys: {} from the snapshot (warm cache), {} with the cache dropped; \
         {} by WAL replay alone ({:.1} MB of WAL, no snapshot)",
        thousands(keys as f64),
        secs(best_warm),
        if cold_supported { secs(best_cold) } else { "not measured".to_string() },
        secs(replay_time),
        wal_all as f64 / MB
    ));
    out.push(format!(
        "    check: WAL replay — {replay_check}; restore — {restore_check}; SQL spot checks ok"
    ));
    Ok(out)
}

/// The big state of (c): 10M keys if the 1M figures say it fits comfortably, else 5M.
fn big_size(first: &SnapshotFigures, wanted: usize) -> (usize, String) {
    let scale = wanted as f64 / first.keys as f64;
    let est_mem = (first.peak_extra as f64 * scale) as u64;
    let est_time = first.phase_time.mul_f64(scale * 1.3);
    let available = proc_kb("/proc/meminfo", "MemAvailable:").unwrap_or(0);
    let mem_ok = available > 0 && est_mem.saturating_mul(2) <= available;
    let time_ok = est_time <= Duration::from_secs(150);
    let basis = format!(
        "estimated from {} keys: peak {} above start, {} for this part (MemAvailable {})",
        thousands(first.keys as f64),
        gib(est_mem),
        secs(est_time),
        gib(available)
    );
    if mem_ok && time_ok {
        (
            wanted,
            format!(
                "{} keys fit comfortably — {basis}",
                thousands(wanted as f64)
            ),
        )
    } else {
        let why = match (mem_ok, time_ok) {
            (false, false) => "memory and time",
            (false, true) => "memory",
            _ => "time",
        };
        (
            wanted / 2,
            format!(
                "falling back to {} keys: {} keys would not fit comfortably ({why}) — {basis}",
                thousands((wanted / 2) as f64),
                thousands(wanted as f64)
            ),
        )
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
    let s = Sizes::new(mode);
    let started = Instant::now();
    if P::NAME != "embedded" {
        println!("durability benchmark: profile {} keeps nothing on disk; build the embedded tier (the default)", P::NAME);
        return;
    }
    if mode == Mode::Smoke {
        println!(
            "smoke run (no --bench): tiny sizes, results checked, rates meaningless, no targets"
        );
    }
    println!(
        "reproduce: {}cargo bench --bench durability",
        if mode == Mode::Quick {
            "STRATA_BENCH_QUICK=1 "
        } else {
            ""
        }
    );
    let root = match tempfile::Builder::new()
        .prefix("strata-durability-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot create a temp dir: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "profile {} ({} mode), {} hardware threads, RAM {} (MemAvailable {}), SQLite {} (rusqlite bundled)",
        P::NAME,
        match mode {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        gib(proc_kb("/proc/meminfo", "MemTotal:").unwrap_or(0)),
        gib(proc_kb("/proc/meminfo", "MemAvailable:").unwrap_or(0)),
        rusqlite::version()
    );
    println!(
        "every file (strata data dirs, raw baseline files, SQLite database) is under {} — filesystem: {}",
        root.path().display(),
        filesystem_of(root.path())
    );
    println!(
        "every figure is the best of {} runs, each on a fresh directory; MB = 10^6 bytes",
        s.repeats
    );
    println!(
        "load average at start: {} (other processes skew rates; compare within a run)",
        load_average()
    );
    let mut all_ok = true;

    println!();
    println!(
        "(a) Engine::insert_batch with sync = always (one WAL record + one fsync per batch) into a source with \
         `SELECT k, COUNT(*), SUM(v), MIN(v), MAX(v) FROM events GROUP BY k`, {} keys (strata::bench::workload)",
        thousands(s.keys as f64)
    );
    println!(
        "    vs raw: the WAL bytes of each batch (growth of <data_dir>/wal/*, from an untimed pass that also checks the \
         view) appended to a plain file, one append + sync_data per batch; ratio = raw time ÷ strata time"
    );
    println!(
        "    strata, raw and SQLite (b) run interleaved: {SLICES} slices per run, the three taking turns in rotating \
         order, each side's time summed; byte counts are checked equal after every run"
    );
    println!(
        "    sync=never columns: the same strata ingest without fsync (not interleaved), and its rate ÷ the raw rate \
         (diagnostic, no target)"
    );
    println!(
        "{:>10} {:>10} {:>8} {:>9} {:>14} {:>9} {:>14} {:>9} {:>9} {:>6}  {:<14} {:>14} {:>9}  view check",
        "rows/batch", "rows", "fsyncs", "WAL MB", "strata rows/s", "MB/s", "raw rows/s", "raw MB/s", "ms/fsync", "ratio", "target", "sync=never r/s", "never÷raw"
    );
    let mut figures = Vec::new();
    for &(batch_rows, rows) in &s.batches {
        match ingest_figures(root.path(), &s, batch_rows, rows) {
            Ok(f) => {
                print_a(&s, &f);
                figures.push(f);
            }
            Err(e) => {
                all_ok = false;
                println!("{batch_rows:>10} {rows:>10} FAILED: {e}");
            }
        }
    }

    println!();
    println!(
        "(b) SQLite {} on a file, PRAGMA journal_mode=WAL, synchronous=FULL (other pragmas default), \
         `{SQLITE_SCHEMA}`",
        rusqlite::version()
    );
    println!(
        "    one BEGIN…COMMIT per batch of rows, `{SQLITE_UPSERT}` prepared once and executed per row; \
         same rows, measured in the same interleaved runs as (a); ratio = strata rows/s of (a) ÷ SQLite rows/s"
    );
    println!(
        "{:>10} {:>10} {:>14} {:>16} {:>7}  {:<14}  table check",
        "rows/txn", "rows", "SQLite rows/s", "strata rows/s", "ratio", "target"
    );
    for f in &figures {
        print_b(&s, f);
    }

    println!();
    println!(
        "(c) snapshot write (engine.checkpoint(), same state and LSN each time) and restore (drop the engine, time \
         Engine::builder()…build() on the same dir) of the view with one group per key"
    );
    println!(
        "    vs a plain file of the snapshot file's size: written sequentially (8 MiB writes) + fsync, read whole \
         with fs::read; MB/s = snapshot file size ÷ time; ratio = strata MB/s ÷ raw MB/s"
    );
    println!(
        "    cache dropped = posix_fadvise(DONTNEED) on every file of the data dir (resp. the raw file) before the timed \
         open (resp. read); on a VM the host may still cache"
    );
    println!(
        "{:>10} {:>9}  {:<36} {:>10} {:>9}  {:<30} {:>9} {:>6}  target",
        "keys", "snap MB", "strata", "time", "MB/s", "baseline", "MB/s", "ratio"
    );
    if let Some(first) = part_c(root.path(), &s, s.snapshot_keys, &mut all_ok) {
        if let Some(wanted) = s.big_keys {
            let (keys, why) = big_size(&first, wanted);
            println!("    next size: {why}");
            part_c(root.path(), &s, keys, &mut all_ok);
        }
    }

    println!();
    println!(
        "load average at end: {}; total {}",
        load_average(),
        secs(started.elapsed())
    );
    drop(root);
    if !all_ok {
        eprintln!("error: some measurements failed or their results disagreed; see FAILED above");
        std::process::exit(1);
    }
}
