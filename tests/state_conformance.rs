//! The conformance suite every `StateBackend` runs: the same tests, instantiated per backend
//! by `conformance!` at the bottom. Where the contract differs between fixed and growing
//! backends, the tests branch on `B::GROWS`.

use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use strata::state::{ElasticTable, FixedTable, Full, StateBackend};

// ---------------------------------------------------------------------------------------
// Allocation counting, per thread (tests run in parallel), to check that a fixed backend
// never allocates after `with_capacity`.

struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: the thread-local may be gone while a thread shuts down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: forwards to `System`, only counting calls.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations made by this thread while running `f`.
fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// The entries `iter` yields, checking that none is yielded twice and that they number `len`.
fn contents<B, K, V>(b: &B) -> HashMap<K, V>
where
    B: StateBackend<K, V>,
    K: Eq + std::hash::Hash + Clone + std::fmt::Debug,
    V: Clone,
{
    let mut out = HashMap::new();
    for (k, v) in b.iter() {
        assert!(
            out.insert(k.clone(), v.clone()).is_none(),
            "iter yielded {k:?} twice"
        );
    }
    assert_eq!(out.len(), b.len(), "iter count differs from len");
    out
}

/// Keys that collide in the low or middle bits of a weak hash.
fn spread_key(i: usize) -> i64 {
    match i % 4 {
        0 => i as i64,
        1 => -(i as i64),
        2 => (i as i64) << 40,
        _ => (i as i64).wrapping_mul(0x1000_0000_0000_0001),
    }
}

// ---------------------------------------------------------------------------------------
// The tests, generic over the backend.

fn insert_get_replace_remove<B: StateBackend<i64, u32>>() {
    let mut b = B::with_capacity(16);
    assert!(b.is_empty());
    assert_eq!(b.len(), 0);
    assert_eq!(b.get(&1), None);
    assert_eq!(b.insert(1, 10), Ok(None));
    assert_eq!(b.insert(2, 20), Ok(None));
    assert_eq!(b.len(), 2);
    assert!(!b.is_empty());
    assert_eq!(b.get(&1), Some(&10));
    assert_eq!(b.get(&2), Some(&20));
    assert_eq!(b.get(&3), None);

    *b.get_mut(&1).unwrap() += 1;
    assert_eq!(b.get(&1), Some(&11));
    assert_eq!(b.get_mut(&3), None);

    assert_eq!(b.insert(1, 12), Ok(Some(11)));
    assert_eq!(b.len(), 2);
    assert_eq!(b.get(&1), Some(&12));

    assert_eq!(b.remove(&1), Some(12));
    assert_eq!(b.remove(&1), None);
    assert_eq!(b.remove(&3), None);
    assert_eq!(b.len(), 1);
    assert_eq!(b.get(&1), None);
    assert_eq!(b.get(&2), Some(&20));

    assert_eq!(b.remove(&2), Some(20));
    assert!(b.is_empty());
    assert_eq!(b.iter().count(), 0);
}

fn get_or_insert_with_flags<B: StateBackend<i64, u32>>() {
    let mut b = B::with_capacity(8);
    let calls = Cell::new(0);
    let make = |v: u32| {
        calls.set(calls.get() + 1);
        v
    };

    let (v, inserted) = b.get_or_insert_with(5, || make(50)).unwrap();
    assert!(inserted);
    assert_eq!(*v, 50);
    *v += 1;
    assert_eq!(calls.get(), 1);

    let (v, inserted) = b.get_or_insert_with(5, || make(99)).unwrap();
    assert!(!inserted, "present key reported as inserted");
    assert_eq!(*v, 51, "present key's value not returned");
    assert_eq!(calls.get(), 1, "make called for a present key");

    let (v, inserted) = b.get_or_insert_with(6, || make(60)).unwrap();
    assert!(inserted);
    assert_eq!(*v, 60);
    assert_eq!(calls.get(), 2);
    assert_eq!(b.len(), 2);
    assert_eq!(b.get(&5), Some(&51));

    b.remove(&5);
    let (v, inserted) = b.get_or_insert_with(5, || make(70)).unwrap();
    assert!(inserted, "removed key not re-inserted");
    assert_eq!(*v, 70);
}

fn iter_yields_present_entries<B: StateBackend<i64, u32>>() {
    let mut b = B::with_capacity(1000);
    let mut model = HashMap::new();
    for i in 0..1000 {
        let k = spread_key(i);
        b.insert(k, i as u32).unwrap();
        model.insert(k, i as u32);
    }
    for i in (0..1000).step_by(3) {
        let k = spread_key(i);
        assert_eq!(b.remove(&k), model.remove(&k));
    }
    for i in (0..1000).step_by(7) {
        let k = spread_key(i);
        b.insert(k, 7).unwrap();
        model.insert(k, 7);
    }
    assert_eq!(contents(&b), model);
}

fn clear_empties_and_keeps_working<B: StateBackend<i64, u32>>() {
    let n = 500;
    let mut b = B::with_capacity(n);
    for i in 0..n {
        b.insert(spread_key(i), i as u32).unwrap();
    }
    let capacity = b.capacity();
    b.clear();
    assert!(b.is_empty());
    assert_eq!(b.iter().count(), 0);
    assert_eq!(b.capacity(), capacity);
    for i in 0..n {
        assert_eq!(b.get(&spread_key(i)), None);
    }
    b.clear();
    assert!(b.is_empty());
    // The full capacity is usable again.
    for i in 0..n {
        assert_eq!(b.insert(spread_key(i + n), 1), Ok(None));
    }
    assert_eq!(b.len(), n);
}

fn remove_reinsert_cycles<B: StateBackend<i64, u32>>() {
    let n = 1000;
    let mut b = B::with_capacity(n);
    let mut live: Vec<i64> = (0..n).map(spread_key).collect();
    for (i, k) in live.iter().enumerate() {
        b.insert(*k, i as u32).unwrap();
    }
    let mut next = n;
    for round in 0..100 {
        // Remove half of the keys (a different half each round), insert as many new ones.
        let mut kept = Vec::with_capacity(n);
        for (i, k) in live.iter().enumerate() {
            if (i + round) % 2 == 0 {
                assert!(b.remove(k).is_some(), "round {round}: {k} missing");
            } else {
                kept.push(*k);
            }
        }
        while kept.len() < n {
            let k = spread_key(next);
            next += 1;
            let (_, inserted) = b.get_or_insert_with(k, || next as u32).unwrap();
            assert!(inserted);
            kept.push(k);
        }
        live = kept;
        assert_eq!(b.len(), n);
    }
    for k in &live {
        assert!(b.get(k).is_some(), "{k} missing after churn");
    }
    assert_eq!(contents(&b).len(), n);
}

/// Owned keys and values: exercises drops, key comparison beyond the hash, and moves.
fn owned_keys_and_values<B: StateBackend<String, Vec<u32>>>() {
    let mut b = B::with_capacity(300);
    for i in 0..300u32 {
        let (v, inserted) = b.get_or_insert_with(format!("key-{i}"), Vec::new).unwrap();
        assert!(inserted);
        v.push(i);
    }
    for i in (0..300u32).step_by(2) {
        assert_eq!(b.remove(&format!("key-{i}")), Some(vec![i]));
    }
    for i in 0..300u32 {
        let (v, inserted) = b.get_or_insert_with(format!("key-{i}"), Vec::new).unwrap();
        assert_eq!(inserted, i % 2 == 0);
        v.push(i);
    }
    assert_eq!(b.get(&"key-3".to_string()), Some(&vec![3, 3]));
    assert_eq!(b.get(&"key-4".to_string()), Some(&vec![4]));
    assert_eq!(b.insert("key-4".into(), vec![]), Ok(Some(vec![4])));
    assert_eq!(b.len(), 300);
    b.clear();
    assert!(b.is_empty());
}

/// An enum key, as the SQL layer uses for group keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum GroupKey {
    Null,
    Int(i64),
    Text(String),
    Pair(i64, bool),
}

fn enum_keys<B: StateBackend<GroupKey, u32>>() {
    let keys: Vec<GroupKey> = std::iter::once(GroupKey::Null)
        .chain((0..200).map(GroupKey::Int))
        .chain((0..200).map(|i| GroupKey::Text(i.to_string())))
        .chain((0..200).map(|i| GroupKey::Pair(i, i % 2 == 0)))
        .collect();
    let mut b = B::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        let (v, inserted) = b.get_or_insert_with(k.clone(), || i as u32).unwrap();
        assert!(inserted);
        assert_eq!(*v, i as u32);
    }
    for (i, k) in keys.iter().enumerate() {
        let (v, inserted) = b.get_or_insert_with(k.clone(), || unreachable!()).unwrap();
        assert!(!inserted);
        assert_eq!(*v, i as u32);
    }
    assert_eq!(b.get(&GroupKey::Pair(3, true)), None);
    assert_eq!(b.get(&GroupKey::Pair(3, false)), Some(&(1 + 400 + 3)));
    assert_eq!(b.len(), keys.len());
}

/// Fixed: exactly `capacity` keys fit, the next new key is `Full` and changes nothing, while
/// present keys stay readable and writable. Growing: never `Full`, however far past the hint.
fn capacity_contract<B: StateBackend<i64, u32>>() {
    for n in [0, 1, 2, 7, 8, 9, 100, 1000, 4096] {
        let mut b = B::with_capacity(n);
        for i in 0..n {
            assert_eq!(b.insert(spread_key(i), i as u32), Ok(None), "n={n} i={i}");
        }
        assert_eq!(b.len(), n);
        if B::GROWS {
            assert_eq!(b.capacity(), None);
            for i in n..n * 2 + 100 {
                assert_eq!(b.insert(spread_key(i), i as u32), Ok(None));
            }
            assert_eq!(b.len(), n * 2 + 100);
            continue;
        }
        assert_eq!(b.capacity(), Some(n));
        let full = Full { capacity: n };
        let before = contents(&b);
        let new_key = spread_key(n);
        assert_eq!(b.insert(new_key, 0), Err(full));
        assert_eq!(
            b.get_or_insert_with(new_key, || unreachable!("make called when full"))
                .map(|(v, i)| (*v, i)),
            Err(full)
        );
        assert_eq!(b.get(&new_key), None);
        assert_eq!(contents(&b), before, "a Full error changed the map");
        // Present keys still work at capacity.
        if n > 0 {
            let k = spread_key(0);
            assert_eq!(b.insert(k, 77), Ok(Some(0)));
            let (v, inserted) = b.get_or_insert_with(k, || unreachable!()).unwrap();
            assert_eq!((*v, inserted), (77, false));
            *b.get_mut(&k).unwrap() = 78;
            // Removing one key makes room for exactly one new key.
            assert_eq!(b.remove(&k), Some(78));
            assert_eq!(b.insert(new_key, 5), Ok(None));
            assert_eq!(b.insert(spread_key(n + 1), 6), Err(full));
        }
        assert_eq!(b.capacity(), Some(n), "capacity changed");
        assert_eq!(b.len(), n);
    }
}

fn zero_capacity<B: StateBackend<i64, u32>>() {
    let mut b = B::with_capacity(0);
    if B::GROWS {
        assert_eq!(b.insert(1, 1), Ok(None));
        return;
    }
    assert_eq!(b.capacity(), Some(0));
    let full = Full { capacity: 0 };
    for k in [0, 1, -1, i64::MIN, i64::MAX] {
        assert_eq!(b.insert(k, 1), Err(full));
        assert_eq!(
            b.get_or_insert_with(k, || 1).map(|(v, i)| (*v, i)),
            Err(full)
        );
        assert_eq!(b.get(&k), None);
        assert_eq!(b.get_mut(&k), None);
        assert_eq!(b.remove(&k), None);
    }
    assert!(b.is_empty());
    assert_eq!(b.iter().count(), 0);
    b.clear();
    assert_eq!(b.capacity(), Some(0));
}

fn full_error_reports_capacity<B: StateBackend<i64, u32>>() {
    if B::GROWS {
        return;
    }
    let mut b = B::with_capacity(3);
    for k in 0..3 {
        b.insert(k, 0).unwrap();
    }
    let err = b.insert(3, 0).unwrap_err();
    assert_eq!(err, Full { capacity: 3 });
    assert_eq!(err.capacity, 3);
    assert_eq!(err.to_string(), "state is full: capacity is 3 keys");
}

/// A fixed backend allocates nothing after `with_capacity`: not on insert, get, replace,
/// remove, `Full` or clear.
fn fixed_never_allocates<B: StateBackend<i64, u32>>() {
    if B::GROWS {
        return;
    }
    // The counter works.
    assert!(allocations_during(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(8)))) > 0);
    let n = 10_000;
    let mut b = B::with_capacity(n);
    let allocations = allocations_during(|| {
        for round in 0..3 {
            for i in 0..n + 100 {
                let _ = b.get_or_insert_with(spread_key(i + round), || i as u32);
            }
            for i in (0..n).step_by(2) {
                b.remove(&spread_key(i + round));
                let _ = b.insert(spread_key(i + n * 2), 1);
            }
            assert_eq!(b.len(), n);
            assert_eq!(b.iter().count(), n);
            b.clear();
        }
    });
    assert_eq!(allocations, 0, "allocated after with_capacity");
    assert_eq!(b.capacity(), Some(n));
}

// ---------------------------------------------------------------------------------------
// Model check: random operation sequences against `std::collections::HashMap`.

#[derive(Clone, Debug)]
enum Op {
    Insert(i64, u32),
    GetOrInsert(i64, u32),
    Get(i64),
    GetMut(i64, u32),
    Remove(i64),
    Clear,
}

/// Up to 48 distinct keys (a small key space so that hits, removes of present keys and,
/// with a small capacity, `Full` are all frequent), spread by a per-case shift.
fn ops() -> impl Strategy<Value = (usize, u32, Vec<Op>)> {
    let key = 0i64..48;
    let op = prop_oneof![
        6 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        6 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::GetOrInsert(k, v)),
        3 => key.clone().prop_map(Op::Get),
        2 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::GetMut(k, v)),
        5 => key.prop_map(Op::Remove),
        1 => Just(Op::Clear),
    ];
    (
        0usize..40,
        prop::sample::select(vec![0u32, 20, 40, 56]),
        prop::collection::vec(op, 0..300),
    )
}

fn check_against_model<B: StateBackend<i64, u32>>(
    capacity: usize,
    shift: u32,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let mut b = B::with_capacity(capacity);
    let mut model: HashMap<i64, u32> = HashMap::new();
    let expected_capacity = if B::GROWS { None } else { Some(capacity) };
    let full = Full { capacity };
    // Whether a new key must be refused.
    let at_capacity = |model: &HashMap<i64, u32>, k: &i64| {
        !B::GROWS && !model.contains_key(k) && model.len() == capacity
    };
    for op in ops {
        match op {
            Op::Insert(k, v) => {
                let k = k << shift;
                if at_capacity(&model, &k) {
                    prop_assert_eq!(b.insert(k, v), Err(full));
                    prop_assert_eq!(&contents(&b), &model, "Full changed the map");
                } else {
                    prop_assert_eq!(b.insert(k, v), Ok(model.insert(k, v)));
                }
            }
            Op::GetOrInsert(k, v) => {
                let k = k << shift;
                let got = b.get_or_insert_with(k, || v).map(|(v, i)| (*v, i));
                if at_capacity(&model, &k) {
                    prop_assert_eq!(got, Err(full));
                    prop_assert_eq!(&contents(&b), &model, "Full changed the map");
                } else {
                    let inserted = !model.contains_key(&k);
                    let want = *model.entry(k).or_insert(v);
                    prop_assert_eq!(got, Ok((want, inserted)));
                }
            }
            Op::Get(k) => {
                let k = k << shift;
                prop_assert_eq!(b.get(&k), model.get(&k));
            }
            Op::GetMut(k, v) => {
                let k = k << shift;
                match (b.get_mut(&k), model.get_mut(&k)) {
                    (Some(got), Some(want)) => {
                        prop_assert_eq!(*got, *want);
                        *got = v;
                        *want = v;
                    }
                    (None, None) => {}
                    (got, want) => prop_assert!(false, "get_mut({k}): {got:?} vs {want:?}"),
                }
            }
            Op::Remove(k) => {
                let k = k << shift;
                prop_assert_eq!(b.remove(&k), model.remove(&k));
            }
            Op::Clear => {
                b.clear();
                model.clear();
            }
        }
        prop_assert_eq!(b.len(), model.len());
        prop_assert_eq!(b.capacity(), expected_capacity);
    }
    prop_assert_eq!(contents(&b), model.clone());
    for (k, v) in &model {
        prop_assert_eq!(b.get(k), Some(v));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Instantiation: every backend runs every test.

macro_rules! conformance {
    ($module:ident, $backend:ident) => {
        mod $module {
            use super::*;

            #[test]
            fn insert_get_replace_remove() {
                super::insert_get_replace_remove::<$backend<i64, u32>>();
            }

            #[test]
            fn get_or_insert_with_flags() {
                super::get_or_insert_with_flags::<$backend<i64, u32>>();
            }

            #[test]
            fn iter_yields_present_entries() {
                super::iter_yields_present_entries::<$backend<i64, u32>>();
            }

            #[test]
            fn clear_empties_and_keeps_working() {
                super::clear_empties_and_keeps_working::<$backend<i64, u32>>();
            }

            #[test]
            fn remove_reinsert_cycles() {
                super::remove_reinsert_cycles::<$backend<i64, u32>>();
            }

            #[test]
            fn owned_keys_and_values() {
                super::owned_keys_and_values::<$backend<String, Vec<u32>>>();
            }

            #[test]
            fn enum_keys() {
                super::enum_keys::<$backend<GroupKey, u32>>();
            }

            #[test]
            fn capacity_contract() {
                super::capacity_contract::<$backend<i64, u32>>();
            }

            #[test]
            fn zero_capacity() {
                super::zero_capacity::<$backend<i64, u32>>();
            }

            #[test]
            fn full_error_reports_capacity() {
                super::full_error_reports_capacity::<$backend<i64, u32>>();
            }

            #[test]
            fn fixed_never_allocates() {
                super::fixed_never_allocates::<$backend<i64, u32>>();
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(256))]

                #[test]
                fn matches_hashmap_model((capacity, shift, ops) in ops()) {
                    check_against_model::<$backend<i64, u32>>(capacity, shift, ops)?;
                }
            }
        }
    };
}

conformance!(fixed, FixedTable);
conformance!(elastic, ElasticTable);

#[test]
fn backends_declare_growth() {
    const { assert!(!<FixedTable<i64, u32> as StateBackend<i64, u32>>::GROWS) };
    const { assert!(<ElasticTable<i64, u32> as StateBackend<i64, u32>>::GROWS) };
}

/// FixedTable's sizing: a power of two of slots, at most 7/8 full, fixed for its lifetime.
#[test]
fn fixed_slot_count_is_fixed() {
    for n in [0usize, 1, 7, 100, 10_000] {
        let mut t = FixedTable::<i64, u32>::with_capacity(n);
        let slots = t.slot_count();
        assert!(slots.is_power_of_two() && slots >= 8);
        assert!(n * 8 < slots * 7);
        for i in 0..n + 10 {
            let _ = t.insert(spread_key(i), 0);
        }
        assert_eq!(t.slot_count(), slots);
        assert_eq!(t.capacity(), Some(n));
    }
}
