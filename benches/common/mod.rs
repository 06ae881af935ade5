//! What the benchmarks share: report formatting and machine facts, the reference answer
//! every side of a comparison is checked against, the baselines' raw file I/O, and the
//! workload's keys. Included by each benchmark with `mod common;`.
#![allow(dead_code)] // each benchmark uses what it needs

#[cfg(feature = "server")]
pub mod http;
pub mod report;

use rustc_hash::FxHashMap;
use std::fs::{self, File};
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use strata::{Engine, PhysicalProfile, Value};

/// A benchmark step's outcome: a failure is a message naming the step.
pub type Fallible<T> = Result<T, String>;

/// Prefixes an error with the step that failed.
pub fn err<E: std::fmt::Display>(context: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{context}: {e}")
}

/// Keys per table or view for `keys` distinct keys in this tier (`strata bench`'s sizing;
/// the bound is read at run time: it is `usize::MAX` in growing tiers).
pub fn capacity_for(keys: usize) -> usize {
    keys.next_power_of_two()
        .min(strata::profile::active().max_keys)
}

/// The i-th key: distinct (an odd multiplier is a bijection mod 2^64) and spread over the
/// whole key space.
pub fn key_of(i: usize) -> i64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) as i64
}

/// The value stored with key `k`.
pub fn value_of(k: i64) -> i64 {
    ((k as u64) >> 40) as i64 % 1000
}

/// A row of BIGINTs.
pub fn ints(row: &[Value]) -> Fallible<Vec<i64>> {
    row.iter()
        .map(|v| match v {
            Value::Int(x) => Ok(*x),
            other => Err(format!("unexpected value {other:?}")),
        })
        .collect()
}

/// Per-key `[COUNT, SUM, MIN, MAX]`: what the benchmarks' view `stats` holds, to check
/// every side of a comparison.
pub type Aggregates = FxHashMap<i64, [i64; 4]>;

/// The view's expected contents, computed directly from the workload.
pub fn reference_aggregates(keys: &[i64], values: &[i64]) -> Aggregates {
    let mut map = Aggregates::default();
    for (&k, &v) in keys.iter().zip(values) {
        let e = map.entry(k).or_insert([0, 0, i64::MAX, i64::MIN]);
        e[0] += 1;
        e[1] += v;
        e[2] = e[2].min(v);
        e[3] = e[3].max(v);
    }
    map
}

/// Compares one side's aggregates with the reference: every key, every column.
pub fn compare_aggregates(side: &str, got: &Aggregates, want: &Aggregates) -> Fallible<()> {
    if got.len() != want.len() {
        return Err(format!(
            "{side}: {} groups, expected {}",
            got.len(),
            want.len()
        ));
    }
    for (k, w) in want {
        match got.get(k) {
            Some(g) if g == w => {}
            Some(g) => {
                return Err(format!(
                    "{side}: key {k} has (n, total, lo, hi) = {g:?}, expected {w:?}"
                ))
            }
            None => return Err(format!("{side}: key {k} is missing")),
        }
    }
    Ok(())
}

/// What an engine's view `stats` holds.
pub fn engine_aggregates<P: PhysicalProfile>(engine: &mut Engine<P>) -> Fallible<Aggregates> {
    let rs = engine
        .query("SELECT k, n, total, lo, hi FROM stats")
        .map_err(err("strata query"))?;
    let mut map = Aggregates::default();
    for row in rs.rows {
        let x = ints(&row)?;
        map.insert(x[0], [x[1], x[2], x[3], x[4]]);
    }
    Ok(map)
}

/// What SQLite's table `stats` holds.
pub fn sqlite_aggregates(conn: &rusqlite::Connection) -> Fallible<Aggregates> {
    let mut stmt = conn
        .prepare("SELECT k, n, total, lo, hi FROM stats")
        .map_err(err("sqlite"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?],
            ))
        })
        .map_err(err("sqlite"))?;
    rows.collect::<Result<Aggregates, _>>()
        .map_err(err("sqlite"))
}

/// The raw-disk ceiling: writes `len` bytes (`chunk` repeated) to a fresh file and fsyncs.
pub fn raw_write(path: &Path, len: u64, chunk: &[u8]) -> Fallible<Duration> {
    let _ = fs::remove_file(path);
    let start = Instant::now();
    let mut f = File::create(path).map_err(err("raw create"))?;
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).map_err(err("raw write"))?;
        left -= n as u64;
    }
    f.sync_all().map_err(err("raw fsync"))?;
    Ok(start.elapsed())
}

/// Reads a whole file into memory.
pub fn raw_read(path: &Path, len: u64) -> Fallible<Duration> {
    let start = Instant::now();
    let bytes = fs::read(path).map_err(err("raw read"))?;
    let time = start.elapsed();
    if bytes.len() as u64 != len {
        return Err(format!("read {} bytes, expected {len}", bytes.len()));
    }
    black_box(&bytes);
    Ok(time)
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => out.extend(files_under(&p)),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

/// Bytes of every file under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// The filesystem holding `path`: (mount point, type, device), from /proc/mounts.
pub fn filesystem_of(path: &Path) -> String {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let Ok(mounts) = fs::read_to_string("/proc/mounts") else {
        return "unknown (no /proc/mounts)".to_string();
    };
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3).then(|| (f[1].to_string(), f[2].to_string(), f[0].to_string()))
        })
        .filter(|(mnt, _, _)| path.starts_with(mnt))
        .max_by_key(|(mnt, _, _)| mnt.len())
        .map(|(mnt, ty, dev)| format!("{ty} on {dev}, mounted at {mnt}"))
        .unwrap_or_else(|| "unknown".to_string())
}
