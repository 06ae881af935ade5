//! The in-process benchmark behind `strata bench`: typed batch ingest into a view with
//! COUNT/SUM/MIN/MAX grouped by a BIGINT key, against a hand-written `FxHashMap` loop doing
//! the same aggregation over the same data in the same run.

use crate::batch::{Batch, Column};
use crate::engine::Engine;
use crate::profile::PhysicalProfile;
use rustc_hash::FxHashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// One measured configuration.
#[derive(Clone, Debug)]
pub struct IngestResult {
    pub keys: usize,
    pub rows: usize,
    pub batch_rows: usize,
    /// Rows per second through `Engine::insert_batch` into the view.
    pub strata_rows_per_sec: f64,
    /// Rows per second of the `FxHashMap` loop.
    pub baseline_rows_per_sec: f64,
}

impl IngestResult {
    pub fn ratio(&self) -> f64 {
        self.strata_rows_per_sec / self.baseline_rows_per_sec
    }
}

/// Deterministic pseudo-random keys and values (xorshift), so both sides see the same data.
pub fn workload(keys: usize, rows: usize) -> (Vec<i64>, Vec<i64>) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut ks = Vec::with_capacity(rows);
    let mut vs = Vec::with_capacity(rows);
    for _ in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ks.push((x % keys as u64) as i64);
        vs.push((x >> 32) as i64 % 1000);
    }
    (ks, vs)
}

/// What the baseline keeps per key.
#[derive(Clone, Copy)]
struct Agg {
    count: i64,
    sum: i64,
    min: i64,
    max: i64,
}

/// The hand-written ceiling: one `FxHashMap` entry update per row.
fn baseline_aggregate(keys: &[i64], values: &[i64], capacity: usize) -> usize {
    let mut map: FxHashMap<i64, Agg> = FxHashMap::default();
    map.reserve(capacity);
    for (&k, &v) in keys.iter().zip(values) {
        let e = map.entry(k).or_insert(Agg {
            count: 0,
            sum: 0,
            min: i64::MAX,
            max: i64::MIN,
        });
        e.count += 1;
        e.sum += v;
        e.min = e.min.min(v);
        e.max = e.max.max(v);
    }
    black_box(&map);
    map.len()
}

/// Builds the engine, source and view used by the benchmark.
pub fn bench_engine<P: PhysicalProfile>(capacity: usize) -> crate::Result<Engine<P>> {
    let mut engine = crate::engine::EngineBuilder::<P>::default()
        .ephemeral()
        .capacity(capacity)
        .build()?;
    engine.execute(
        "CREATE SOURCE events (k BIGINT NOT NULL, v BIGINT NOT NULL);
         CREATE MATERIALIZED VIEW stats AS
           SELECT k, COUNT(*) AS n, SUM(v) AS total, MIN(v) AS lo, MAX(v) AS hi FROM events GROUP BY k",
    )?;
    Ok(engine)
}

/// Runs the comparison for `keys` distinct keys over `rows` rows, `batch_rows` per batch,
/// taking the best of `repeats` runs of each side.
pub fn ingest_vs_fxhashmap<P: PhysicalProfile>(
    keys: usize,
    rows: usize,
    batch_rows: usize,
    repeats: usize,
) -> crate::Result<IngestResult> {
    let (ks, vs) = workload(keys, rows);
    let batches: Vec<Batch> = ks
        .chunks(batch_rows)
        .zip(vs.chunks(batch_rows))
        .map(|(k, v)| {
            Batch::new()
                .with_column("k", Column::bigint(k.to_vec()))
                .with_column("v", Column::bigint(v.to_vec()))
        })
        .collect();
    let capacity = keys.next_power_of_two().min(P::MAX_KEYS);
    let mut best_strata = Duration::MAX;
    let mut best_base = Duration::MAX;
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        black_box(baseline_aggregate(&ks, &vs, capacity));
        best_base = best_base.min(start.elapsed());

        let mut engine = bench_engine::<P>(capacity)?;
        let start = Instant::now();
        for b in &batches {
            engine.insert_batch("events", b)?;
        }
        best_strata = best_strata.min(start.elapsed());
        black_box(&engine);
    }
    Ok(IngestResult {
        keys,
        rows,
        batch_rows,
        strata_rows_per_sec: rows as f64 / best_strata.as_secs_f64(),
        baseline_rows_per_sec: rows as f64 / best_base.as_secs_f64(),
    })
}
