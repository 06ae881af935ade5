//! Micro-benchmark of the state backends' hot path: lookup-or-insert of `i64` keys whose
//! values are `u32` slot numbers, as the engine's group-by does. 1M operations per
//! iteration over 1k and 100k distinct keys (each key first once, then uniformly at random),
//! against `FixedTable`, `ElasticTable` and a raw `FxHashMap`.
//!
//! `cargo bench --bench state_backends -- --quick`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rustc_hash::FxHashMap;
use std::hint::black_box;
use strata::state::{ElasticTable, FixedTable, StateBackend};
use strata::testing::SplitMix64;

const OPS: usize = 1_000_000;

/// `OPS` keys drawn from `distinct` random ids: every id once, then uniform picks.
fn key_stream(distinct: usize) -> Vec<i64> {
    let mut rng = SplitMix64(distinct as u64);
    let ids: Vec<i64> = (0..distinct).map(|_| rng.next_u64() as i64).collect();
    (0..OPS)
        .map(|i| {
            if i < distinct {
                ids[i]
            } else {
                ids[(rng.next_u64() % distinct as u64) as usize]
            }
        })
        .collect()
}

fn run_backend<B: StateBackend<i64, u32>>(keys: &[i64], distinct: usize) -> u64 {
    let mut table = B::with_capacity(distinct);
    let mut sum = 0u64;
    for &key in keys {
        let next = table.len() as u32;
        let (slot, _) = table
            .get_or_insert_with(key, || next)
            .expect("sized for every key");
        sum += u64::from(*slot);
    }
    sum
}

fn run_fxhashmap(keys: &[i64], distinct: usize) -> u64 {
    let mut map: FxHashMap<i64, u32> = FxHashMap::default();
    map.reserve(distinct);
    let mut sum = 0u64;
    for &key in keys {
        let next = map.len() as u32;
        sum += u64::from(*map.entry(key).or_insert(next));
    }
    sum
}

fn get_or_insert_i64(c: &mut Criterion) {
    let mut group = c.benchmark_group("get_or_insert_with_i64");
    group.throughput(Throughput::Elements(OPS as u64));
    group.sample_size(10);
    for (label, distinct) in [("1k", 1_000), ("100k", 100_000)] {
        let keys = key_stream(distinct);
        // All three must agree on the slot numbers handed out.
        let expected = run_fxhashmap(&keys, distinct);
        assert_eq!(
            run_backend::<FixedTable<i64, u32>>(&keys, distinct),
            expected
        );
        assert_eq!(
            run_backend::<ElasticTable<i64, u32>>(&keys, distinct),
            expected
        );

        group.bench_with_input(BenchmarkId::new("FixedTable", label), &keys, |b, keys| {
            b.iter(|| run_backend::<FixedTable<i64, u32>>(black_box(keys), distinct))
        });
        group.bench_with_input(BenchmarkId::new("ElasticTable", label), &keys, |b, keys| {
            b.iter(|| run_backend::<ElasticTable<i64, u32>>(black_box(keys), distinct))
        });
        group.bench_with_input(BenchmarkId::new("FxHashMap", label), &keys, |b, keys| {
            b.iter(|| run_fxhashmap(black_box(keys), distinct))
        });
    }
    group.finish();
}

criterion_group!(benches, get_or_insert_i64);
criterion_main!(benches);
