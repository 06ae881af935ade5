#![cfg(feature = "persistence")]
//! Secondary-index storage (`strata::testing::index_store`): the order-preserving byte encoding
//! (property tests against `Value::total_cmp`), lookups against a brute-force filter, apply /
//! rebuild / drop, durability across reopen and a real `SIGKILL`, and damaged or missing
//! files. The throughput comparison with a `BTreeMap` is `#[ignore]`d; run it by hand with
//! `cargo test --release --test index_store -- --ignored --nocapture measure`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{BufRead, BufReader};
use std::ops::Bound;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;
use strata::testing::redb;

use proptest::prelude::*;
use strata::checkpoint::DEFAULT_INDEX_FILE as FILE_NAME;
use strata::testing::index_store::{
    decode_entry, decode_key, decode_value, encode_entry, encode_key, encode_value, IndexStore,
};
use strata::testing::SplitMix64;
use strata::{Key, PersistError, Value};

// ---------------------------------------------------------------------------------------------
// Helpers

fn enc(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(v, &mut out);
    out
}

fn enc_key(k: &Key) -> Vec<u8> {
    let mut out = Vec::new();
    encode_key(k, &mut out);
    out
}

fn entry(v: &Value, k: &Key) -> Vec<u8> {
    let mut out = Vec::new();
    encode_entry(v, k, &mut out);
    out
}

/// -0.0 as 0.0 and every NaN as one NaN: the equality the index (and SQL) uses.
fn norm(v: &Value) -> Value {
    match v {
        Value::Double(d) => Value::Double(f64::from_bits(strata::testing::normalize_bits(*d))),
        v => v.clone(),
    }
}

fn cmp_norm(a: &Value, b: &Value) -> Ordering {
    norm(a).total_cmp(&norm(b))
}

fn text(s: &str) -> Value {
    Value::Text(Arc::from(s))
}

fn key_text(s: &str) -> Key {
    Key::Text(Arc::from(s))
}

/// Keys as sorted encodings, to compare result sets.
fn key_set(keys: &[Key]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = keys.iter().map(enc_key).collect();
    out.sort();
    out
}

/// Whether `v` lies between the bounds as SQL sees it: NULL never does, NULL bounds match nothing.
fn in_bounds(v: &Value, lower: Bound<&Value>, upper: Bound<&Value>) -> bool {
    if v.is_null() {
        return false;
    }
    let lo = match lower {
        Bound::Unbounded => true,
        Bound::Included(b) => !b.is_null() && cmp_norm(v, b).is_ge(),
        Bound::Excluded(b) => !b.is_null() && cmp_norm(v, b).is_gt(),
    };
    let hi = match upper {
        Bound::Unbounded => true,
        Bound::Included(b) => !b.is_null() && cmp_norm(v, b).is_le(),
        Bound::Excluded(b) => !b.is_null() && cmp_norm(v, b).is_lt(),
    };
    lo && hi
}

fn brute_range(rows: &[(Value, Key)], lower: Bound<&Value>, upper: Bound<&Value>) -> Vec<Vec<u8>> {
    let keys: Vec<Key> = rows
        .iter()
        .filter(|(v, _)| in_bounds(v, lower, upper))
        .map(|(_, k)| k.clone())
        .collect();
    key_set(&keys)
}

fn as_ref(b: &Bound<Value>) -> Bound<&Value> {
    match b {
        Bound::Included(v) => Bound::Included(v),
        Bound::Excluded(v) => Bound::Excluded(v),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn open(dir: &Path) -> IndexStore {
    let (store, report) = IndexStore::open(dir.join(FILE_NAME)).unwrap();
    assert!(
        !report.rebuilt_all,
        "unexpected rebuild: {:?}",
        report.reason
    );
    store
}

fn sorted_entries(store: &IndexStore, index: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = store
        .entries(index)
        .unwrap()
        .iter()
        .map(|(v, k)| entry(v, k))
        .collect();
    out.sort();
    out
}

fn model_entries(model: &HashMap<Key, Value>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = model.iter().map(|(k, v)| entry(v, k)).collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn text_strategy() -> impl Strategy<Value = String> {
    // A small alphabet so that prefixes, embedded zero bytes and bytes around the escape
    // (0x00, 0x01, 0xff inside UTF-8 sequences) are common.
    let ch = prop_oneof![
        Just('\0'),
        Just('\u{1}'),
        Just('a'),
        Just('b'),
        Just('\u{ff}'),
        Just('\u{10ffff}'),
        any::<char>()
    ];
    proptest::collection::vec(ch, 0..6).prop_map(String::from_iter)
}

fn double_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        (-20i32..20).prop_map(|i| i as f64 / 4.0),
        Just(0.0),
        Just(-0.0),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
        Just(-f64::NAN),
        Just(f64::MIN_POSITIVE),
        Just(-f64::MIN_POSITIVE),
        Just(9_007_199_254_740_993.0),
    ]
}

fn int_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        -20i64..20,
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0)
    ]
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Int,
    Double,
    Text,
    Timestamp,
    Bool,
}

fn value_of(kind: Kind) -> BoxedStrategy<Value> {
    match kind {
        Kind::Int => int_strategy().prop_map(Value::Int).boxed(),
        Kind::Double => double_strategy().prop_map(Value::Double).boxed(),
        Kind::Text => text_strategy()
            .prop_map(|s| Value::Text(Arc::from(s)))
            .boxed(),
        Kind::Timestamp => int_strategy().prop_map(Value::Timestamp).boxed(),
        Kind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
    }
}

fn kind_strategy() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Int),
        Just(Kind::Double),
        Just(Kind::Text),
        Just(Kind::Timestamp),
        Just(Kind::Bool)
    ]
}

/// A value of the kind, or NULL now and then.
fn nullable(kind: Kind) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Value::Null), 6 => value_of(kind)].boxed()
}

/// Two values of one type (either may be NULL).
fn same_typed_pair() -> impl Strategy<Value = (Value, Value)> {
    kind_strategy().prop_flat_map(|k| (nullable(k), nullable(k)))
}

fn any_value() -> impl Strategy<Value = Value> {
    kind_strategy().prop_flat_map(nullable)
}

fn key_strategy() -> impl Strategy<Value = Key> {
    let leaf = prop_oneof![
        Just(Key::Null),
        int_strategy().prop_map(Key::Int),
        text_strategy().prop_map(|s| Key::Text(Arc::from(s))),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        proptest::collection::vec(inner, 0..3)
            .prop_map(|parts| Key::Composite(parts.into_boxed_slice()))
    })
}

fn bound_of(kind: Kind) -> BoxedStrategy<Bound<Value>> {
    // Probes of the column's type, plus the other numeric type for numeric columns (the
    // planner lets `int_col > 2.5` and `double_col = 3` through).
    let probe = match kind {
        Kind::Int => prop_oneof![3 => value_of(Kind::Int), 1 => value_of(Kind::Double)].boxed(),
        Kind::Double => prop_oneof![3 => value_of(Kind::Double), 1 => value_of(Kind::Int)].boxed(),
        k => value_of(k),
    };
    prop_oneof![
        1 => Just(Bound::Unbounded),
        3 => probe.clone().prop_map(Bound::Included),
        3 => probe.prop_map(Bound::Excluded),
        1 => Just(Bound::Included(Value::Null)),
    ]
    .boxed()
}

/// A column of one type (rows with NULLs) and range probes.
#[allow(clippy::type_complexity)]
fn dataset() -> impl Strategy<Value = (Kind, Vec<Value>, Vec<(Bound<Value>, Bound<Value>)>)> {
    kind_strategy().prop_flat_map(|k| {
        (
            Just(k),
            proptest::collection::vec(nullable(k), 0..120),
            proptest::collection::vec((bound_of(k), bound_of(k)), 12),
        )
    })
}

/// Row `i`'s primary key: integer, text with a zero byte, or composite, by turns.
fn pk(i: usize) -> Key {
    match i % 3 {
        0 => Key::Int(i as i64 - 50),
        1 => key_text(&format!("k\0{i}")),
        _ => Key::Composite(vec![Key::Int(i as i64), key_text("x"), Key::Null].into_boxed_slice()),
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Same-typed values (NULL included) encode in the order of `total_cmp`, with -0.0 = 0.0
    /// and NaNs equal; equal encodings exactly for equal values.
    #[test]
    fn encoding_orders_like_total_cmp((a, b) in same_typed_pair()) {
        prop_assert_eq!(enc(&a).cmp(&enc(&b)), cmp_norm(&a, &b), "{:?} vs {:?}", a, b);
    }

    /// Across types the tags follow the rank order of `total_cmp` (NULL < BOOLEAN < numbers <
    /// TIMESTAMP < TEXT); only BIGINT against DOUBLE is not byte-comparable.
    #[test]
    fn encoding_orders_types_by_rank(a in any_value(), b in any_value()) {
        let numeric_mix = matches!((&a, &b), (Value::Int(_), Value::Double(_)) | (Value::Double(_), Value::Int(_)));
        prop_assume!(!numeric_mix);
        prop_assert_eq!(enc(&a).cmp(&enc(&b)), cmp_norm(&a, &b), "{:?} vs {:?}", a, b);
    }

    /// `(value, key)` entries compare by value first, then by key encoding, whatever the
    /// lengths: the encodings are prefix-free.
    #[test]
    fn entries_compare_value_first((a, b) in same_typed_pair(), ka in key_strategy(), kb in key_strategy()) {
        let expected = cmp_norm(&a, &b).then_with(|| enc_key(&ka).cmp(&enc_key(&kb)));
        prop_assert_eq!(entry(&a, &ka).cmp(&entry(&b, &kb)), expected);
    }

    /// Keys, values and entries decode exactly (doubles normalised).
    #[test]
    fn encodings_round_trip(v in any_value(), k in key_strategy()) {
        let kb = enc_key(&k);
        prop_assert_eq!(decode_key(&kb), Some((k.clone(), kb.len())));
        let vb = enc(&v);
        let (back, used) = decode_value(&vb).unwrap();
        prop_assert_eq!(used, vb.len());
        prop_assert_eq!(enc(&back), vb.clone());
        prop_assert!(back == norm(&v));
        let (bv, bk) = decode_entry(&entry(&v, &k)).unwrap();
        prop_assert!(bv == norm(&v));
        prop_assert_eq!(bk, k.clone());
        // A truncated entry never decodes as a whole entry.
        let e = entry(&v, &k);
        prop_assert_eq!(decode_entry(&e[..e.len() - 1]), None);
    }

    /// Key encodings order composite keys part by part, shorter (a prefix) first.
    #[test]
    fn composite_keys_compare_part_by_part(a in proptest::collection::vec(int_strategy(), 0..4),
                                           b in proptest::collection::vec(int_strategy(), 0..4)) {
        let key = |v: &Vec<i64>| Key::Composite(v.iter().copied().map(Key::Int).collect());
        prop_assert_eq!(enc_key(&key(&a)).cmp(&enc_key(&key(&b))), a.cmp(&b));
    }
}

#[test]
fn encoding_examples() {
    // NULL first, then by value.
    assert!(enc(&Value::Null) < enc(&Value::Int(i64::MIN)));
    assert!(enc(&Value::Int(-1)) < enc(&Value::Int(0)));
    assert!(enc(&Value::Double(-1.5)) < enc(&Value::Double(-0.0)));
    assert_eq!(enc(&Value::Double(-0.0)), enc(&Value::Double(0.0)));
    assert!(enc(&Value::Double(f64::INFINITY)) < enc(&Value::Double(f64::NAN)));
    assert_eq!(
        enc(&Value::Double(-f64::NAN)),
        enc(&Value::Double(f64::NAN))
    );
    // Text: prefixes first, embedded zero bytes in order, terminator below every byte.
    let order = [
        "", "\0", "\0\0", "\u{1}", "a", "a\0", "a\0b", "a\u{1}", "ab", "b", "\u{ff}",
    ];
    for w in order.windows(2) {
        assert!(
            enc(&text(w[0])) < enc(&text(w[1])),
            "{:?} < {:?}",
            w[0],
            w[1]
        );
        assert!(entry(&text(w[0]), &Key::Int(i64::MAX)) < entry(&text(w[1]), &Key::Int(i64::MIN)));
    }
    assert_eq!(enc(&text("a\0")), vec![0x06, b'a', 0x00, 0xff, 0x00, 0x01]);
    assert_eq!(enc(&Value::Int(0)), vec![0x03, 0x80, 0, 0, 0, 0, 0, 0, 0]);
    // Damaged bytes do not decode.
    assert_eq!(decode_key(&[0x06, b'a', 0x00, 0x02]), None);
    assert_eq!(decode_key(&[0x06, 0xff, 0x00, 0x01]), None, "invalid UTF-8");
    assert_eq!(decode_key(&[0x07, 0x03]), None);
    assert_eq!(decode_key(&[0x42]), None);
    let mut deep = vec![0x07; 100];
    deep.extend(vec![0x00; 100]);
    assert_eq!(decode_key(&deep), None, "nesting is bounded");
}

// ---------------------------------------------------------------------------------------------
// Lookups against a brute-force filter

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn lookups_match_brute_force((kind, values, bounds) in dataset()) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_new(dir.path());
        store.create("c").unwrap();
        let rows: Vec<(Value, Key)> = values.iter().enumerate().map(|(i, v)| (v.clone(), pk(i))).collect();
        // Two batches, to exercise more than one transaction.
        let half = rows.len() / 2;
        store.apply("c", &[], &rows[..half]).unwrap();
        store.apply("c", &[], &rows[half..]).unwrap();

        let mut probes: Vec<Value> = values.iter().step_by(7).cloned().collect();
        probes.extend(bounds.iter().filter_map(|(b, _)| match b {
            Bound::Included(v) | Bound::Excluded(v) => Some(v.clone()),
            Bound::Unbounded => None,
        }));
        for p in &probes {
            let got = store.lookup_eq("c", p).unwrap();
            let want = brute_range(&rows, Bound::Included(p), Bound::Included(p));
            prop_assert_eq!(key_set(&got), want, "{:?}: = {:?}", kind, p);
        }
        for (lo, hi) in &bounds {
            let got = store.lookup_range("c", as_ref(lo), as_ref(hi)).unwrap();
            prop_assert_eq!(got.len(), key_set(&got).len(), "no duplicates");
            prop_assert_eq!(key_set(&got), brute_range(&rows, as_ref(lo), as_ref(hi)), "{:?}: {:?}..{:?}", kind, lo, hi);
        }
        let all = store.lookup_range("c", Bound::Unbounded, Bound::Unbounded).unwrap();
        prop_assert_eq!(key_set(&all), brute_range(&rows, Bound::Unbounded, Bound::Unbounded));
        let nulls: Vec<Key> = rows.iter().filter(|(v, _)| v.is_null()).map(|(_, k)| k.clone()).collect();
        prop_assert_eq!(key_set(&store.lookup_null("c").unwrap()), key_set(&nulls));
        prop_assert!(store.lookup_eq("c", &Value::Null).unwrap().is_empty(), "NULL = NULL is not true");
    }
}

fn open_new(dir: &Path) -> IndexStore {
    let (store, report) = IndexStore::open(dir.join(FILE_NAME)).unwrap();
    assert!(report.rebuilt_all, "a new file is reported");
    assert_eq!(store.durable_lsn(), None);
    store
}

#[test]
fn range_results_come_in_value_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_new(dir.path());
    store.create("d").unwrap();
    let values = [
        3.5,
        -0.0,
        -7.25,
        f64::INFINITY,
        1e300,
        -1e-300,
        0.0,
        f64::NAN,
        2.0,
    ];
    let rows: Vec<(Value, Key)> = values
        .iter()
        .enumerate()
        .map(|(i, d)| (Value::Double(*d), Key::Int(i as i64)))
        .collect();
    store.apply("d", &[], &rows).unwrap();
    let keys = store
        .lookup_range("d", Bound::Unbounded, Bound::Unbounded)
        .unwrap();
    let order: Vec<i64> = keys
        .iter()
        .map(|k| {
            if let Key::Int(i) = k {
                *i
            } else {
                unreachable!()
            }
        })
        .collect();
    // -7.25, -1e-300, then -0.0 and 0.0 (equal: by key), 2, 3.5, 1e300, inf, NaN
    assert_eq!(order, vec![2, 5, 1, 6, 8, 0, 4, 3, 7]);
    // -0.0 equals 0.0, both ways.
    assert_eq!(
        key_set(&store.lookup_eq("d", &Value::Double(0.0)).unwrap()),
        key_set(&[Key::Int(1), Key::Int(6)])
    );
    assert_eq!(store.lookup_eq("d", &Value::Double(-0.0)).unwrap().len(), 2);
    // A BIGINT probe on a DOUBLE column.
    assert_eq!(
        store.lookup_eq("d", &Value::Int(2)).unwrap(),
        vec![Key::Int(8)]
    );
    let below_three = store
        .lookup_range(
            "d",
            Bound::Excluded(&Value::Int(0)),
            Bound::Excluded(&Value::Int(3)),
        )
        .unwrap();
    assert_eq!(below_three, vec![Key::Int(8)]);
}

#[test]
fn cross_numeric_probes_on_a_bigint_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_new(dir.path());
    store.create("i").unwrap();
    let ints = [
        i64::MIN,
        -3,
        -1,
        0,
        1,
        2,
        3,
        1 << 53,
        (1 << 53) + 1,
        i64::MAX,
    ];
    let rows: Vec<(Value, Key)> = ints
        .iter()
        .map(|i| (Value::Int(*i), Key::Int(*i)))
        .collect();
    store.apply("i", &[], &rows).unwrap();
    let check = |lo: Bound<&Value>, hi: Bound<&Value>| {
        let got = store.lookup_range("i", lo, hi).unwrap();
        assert_eq!(key_set(&got), brute_range(&rows, lo, hi), "{lo:?}..{hi:?}");
    };
    for d in [
        -2.5,
        -1.0,
        -0.0,
        0.5,
        2.0,
        9_007_199_254_740_992.0,
        9.3e18,
        -9.3e18,
        f64::NAN,
        f64::INFINITY,
    ] {
        let v = Value::Double(d);
        check(Bound::Included(&v), Bound::Included(&v));
        check(Bound::Excluded(&v), Bound::Unbounded);
        check(Bound::Included(&v), Bound::Unbounded);
        check(Bound::Unbounded, Bound::Excluded(&v));
        check(Bound::Unbounded, Bound::Included(&v));
    }
    // 2.0 finds 2; 2.5 finds nothing; 2^53 finds both 2^53 and 2^53 + 1 (`i as f64`, as
    // `total_cmp` compares them).
    assert_eq!(
        store.lookup_eq("i", &Value::Double(2.0)).unwrap(),
        vec![Key::Int(2)]
    );
    assert!(store
        .lookup_eq("i", &Value::Double(2.5))
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .lookup_eq("i", &Value::Double(9_007_199_254_740_992.0))
            .unwrap()
            .len(),
        2
    );
    // Other types than the column's compare by type rank.
    assert!(store.lookup_eq("i", &text("3")).unwrap().is_empty());
    assert_eq!(
        store
            .lookup_range("i", Bound::Unbounded, Bound::Excluded(&text("")))
            .unwrap()
            .len(),
        ints.len()
    );
    assert!(store
        .lookup_range("i", Bound::Included(&Value::Timestamp(0)), Bound::Unbounded)
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// Maintenance: apply with removals, rebuild, drop

/// A random table workload (inserts, updates, deletes) kept in step with a model; the index
/// must hold exactly the model's `(value, key)` pairs after each batch.
#[test]
fn apply_with_removals_tracks_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_new(dir.path());
    store.create("t").unwrap();
    let mut rng = SplitMix64(7);
    let mut model: HashMap<Key, Value> = HashMap::new();
    let pool = ["", "a", "a\0", "a\0b", "ab", "b", "\0"];
    for batch in 0..40 {
        let mut removed = Vec::new();
        let mut added = Vec::new();
        let mut touched = std::collections::HashSet::new();
        for _ in 0..rng.below(60) {
            let k = if rng.below(2) == 0 {
                Key::Int(rng.below(80) as i64)
            } else {
                key_text(&format!("p{}", rng.below(80)))
            };
            if !touched.insert(k.clone()) {
                continue; // one change per key per batch, as a statement's changes are netted
            }
            let new = match rng.below(6) {
                0 => None,
                1 => Some(Value::Null),
                _ => Some(text(pool[rng.below(pool.len() as u64) as usize])),
            };
            if let Some(old) = model.remove(&k) {
                removed.push((old, k.clone()));
            }
            if let Some(v) = new {
                model.insert(k.clone(), v.clone());
                added.push((v, k));
            }
        }
        // An unchanged row may be both removed and added.
        if let Some((k, v)) = model.iter().next() {
            removed.push((v.clone(), k.clone()));
            added.push((v.clone(), k.clone()));
        }
        store.apply("t", &removed, &added).unwrap();
        assert_eq!(
            sorted_entries(&store, "t"),
            model_entries(&model),
            "after batch {batch}"
        );
        let p = text(pool[batch % pool.len()]);
        let want: Vec<Key> = model
            .iter()
            .filter(|(_, v)| cmp_norm(v, &p).is_eq())
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(key_set(&store.lookup_eq("t", &p).unwrap()), key_set(&want));
    }
    // Removing entries that are not there is harmless.
    store
        .apply("t", &[(text("zzz"), Key::Int(12345))], &[])
        .unwrap();
    assert_eq!(sorted_entries(&store, "t"), model_entries(&model));
}

#[test]
fn rebuild_replaces_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_new(dir.path());
    store.create("r").unwrap();
    let old: Vec<(Value, Key)> = (0..500)
        .map(|i| (Value::Int(i % 17), Key::Int(i)))
        .collect();
    store.apply("r", &[], &old).unwrap();
    // The column is now TIMESTAMP (say, after DROP + CREATE of the table): nothing old survives.
    let new: Vec<(Value, Key)> = (0..300)
        .map(|i| {
            (
                if i % 10 == 0 {
                    Value::Null
                } else {
                    Value::Timestamp(1000 - i)
                },
                key_text(&format!("n{i}")),
            )
        })
        .collect();
    let with_duplicates = new.iter().cloned().chain(new.iter().take(20).cloned());
    store.rebuild("r", with_duplicates).unwrap();
    let model: HashMap<Key, Value> = new.iter().map(|(v, k)| (k.clone(), v.clone())).collect();
    assert_eq!(sorted_entries(&store, "r"), model_entries(&model));
    assert!(store.lookup_eq("r", &Value::Int(3)).unwrap().is_empty());
    assert_eq!(
        store.lookup_eq("r", &Value::Timestamp(999)).unwrap(),
        vec![key_text("n1")]
    );
    assert_eq!(store.lookup_null("r").unwrap().len(), 30);
    // Rebuilding an index that does not exist creates it; an empty rebuild empties it.
    store.rebuild("fresh", new.clone()).unwrap();
    assert!(store.exists("fresh"));
    store.rebuild("fresh", std::iter::empty()).unwrap();
    assert!(store.entries("fresh").unwrap().is_empty());
    // Through `&mut dyn Iterator`, as a trait object would pass it.
    let mut it = new.clone().into_iter();
    store
        .rebuild("fresh", &mut it as &mut dyn Iterator<Item = (Value, Key)>)
        .unwrap();
    assert_eq!(store.entries("fresh").unwrap().len(), new.len());
}

#[test]
fn create_and_drop() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<IndexStore>();
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_new(dir.path());
    assert!(!store.exists("a"));
    let err = store.lookup_eq("a", &Value::Int(1)).unwrap_err();
    assert!(err.to_string().contains("index `a`"), "{err}");
    assert!(store
        .apply("a", &[], &[(Value::Int(1), Key::Int(1))])
        .is_err());

    store.create("a").unwrap();
    store.create("b").unwrap();
    store
        .apply(
            "a",
            &[],
            &[(Value::Int(1), Key::Int(1)), (Value::Int(2), Key::Int(2))],
        )
        .unwrap();
    store
        .apply("b", &[], &[(Value::Int(1), Key::Int(10))])
        .unwrap();
    let mut names: Vec<&str> = store.names().collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);

    assert!(store.drop_index("a").unwrap());
    assert!(!store.exists("a"));
    assert!(
        !store.drop_index("a").unwrap(),
        "dropping an absent index is not an error"
    );
    match store.lookup_eq("a", &Value::Int(1)) {
        Err(PersistError::Io { cause: source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.lookup_eq("b", &Value::Int(1)).unwrap(),
        vec![Key::Int(10)],
        "other indexes untouched"
    );

    // Re-created: empty. `create` on an existing index empties it too.
    store.create("a").unwrap();
    assert!(store.entries("a").unwrap().is_empty());
    store.create("b").unwrap();
    assert!(store.entries("b").unwrap().is_empty());
    store
        .apply("b", &[], &[(Value::Int(5), Key::Int(5))])
        .unwrap();
    store.drop_index("a").unwrap();
    store.mark_durable(3).unwrap();
    drop(store);

    let store = open(dir.path());
    assert!(!store.exists("a"));
    assert_eq!(
        store.lookup_eq("b", &Value::Int(5)).unwrap(),
        vec![Key::Int(5)]
    );
}

// ---------------------------------------------------------------------------------------------
// Durability

#[test]
fn reopen_keeps_data_and_durable_lsn() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_new(dir.path());
    store.create("x").unwrap();
    let rows: Vec<(Value, Key)> = (0..1000)
        .map(|i| (Value::Double(i as f64 / 3.0 - 100.0), Key::Int(i)))
        .collect();
    store.apply("x", &[], &rows).unwrap();
    assert_eq!(store.durable_lsn(), None);
    store.mark_durable(42).unwrap();
    assert_eq!(store.durable_lsn(), Some(42));
    drop(store);

    let mut store = open(dir.path());
    assert_eq!(store.durable_lsn(), Some(42));
    let model: HashMap<Key, Value> = rows.iter().map(|(v, k)| (k.clone(), v.clone())).collect();
    assert_eq!(sorted_entries(&store, "x"), model_entries(&model));
    assert_eq!(
        store
            .lookup_range("x", Bound::Included(&Value::Int(0)), Bound::Unbounded)
            .unwrap()
            .len(),
        700
    );

    // A change after the mark: the LSN no longer describes the contents.
    store.apply("x", &[rows[0].clone()], &[]).unwrap();
    assert_eq!(store.durable_lsn(), None);
    store.close().unwrap();
    // A clean close keeps the change (redb makes it durable), so durable_lsn stays None.
    let mut store = open(dir.path());
    assert_eq!(store.durable_lsn(), None);
    assert_eq!(store.entries("x").unwrap().len(), 999);
    store.mark_durable(50).unwrap();
    drop(store);
    assert_eq!(open(dir.path()).durable_lsn(), Some(50));
}

const CRASH_DIR_ENV: &str = "STRATA_INDEX_STORE_CRASH_DIR";
const READY: &str = "index-store-crash-child-ready";

fn crash_rows(n: i64, salt: i64) -> Vec<(Value, Key)> {
    (0..n)
        .map(|i| (Value::Int((i * 7 + salt) % 101), Key::Int(i)))
        .collect()
}

/// The child of `sigkill_keeps_the_last_mark`: does nothing unless run by it.
#[test]
#[ignore]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
        return;
    };
    let mut store = open_new(Path::new(&dir));
    store.create("a").unwrap();
    store.apply("a", &[], &crash_rows(2000, 0)).unwrap();
    store.mark_durable(7).unwrap();
    // After the mark: a change, a removal, a new index, all non-durable.
    store
        .apply("a", &crash_rows(1000, 0), &crash_rows(1000, 5))
        .unwrap();
    store.create("b").unwrap();
    store.apply("b", &[], &crash_rows(500, 1)).unwrap();
    println!("\n{READY}");
    std::thread::sleep(std::time::Duration::from_secs(30));
}

/// A process killed with SIGKILL after `mark_durable(7)` and more changes: the reopened file
/// holds exactly the contents at the mark, and says so.
#[test]
fn sigkill_keeps_the_last_mark() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.any(|l| l.map(|l| l.contains(READY)).unwrap_or(false));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(ready, "the child did not get ready");

    let store = open(dir.path());
    assert_eq!(store.durable_lsn(), Some(7));
    assert!(!store.exists("b"), "created after the mark");
    let model: HashMap<Key, Value> = crash_rows(2000, 0)
        .into_iter()
        .map(|(v, k)| (k, v))
        .collect();
    assert_eq!(sorted_entries(&store, "a"), model_entries(&model));
}

// ---------------------------------------------------------------------------------------------
// Missing and damaged files

/// A file with two indexes and `mark_durable(9)`; returns its contents.
fn populated(dir: &Path) -> Vec<Vec<u8>> {
    let mut store = open_new(dir);
    store.create("p").unwrap();
    let rows: Vec<(Value, Key)> = (0..20_000)
        .map(|i| (text(&format!("v{}", i % 1000)), Key::Int(i)))
        .collect();
    store.apply("p", &[], &rows).unwrap();
    store.create("q").unwrap();
    store
        .apply("q", &[], &[(Value::Bool(true), Key::Null)])
        .unwrap();
    store.mark_durable(9).unwrap();
    let entries = sorted_entries(&store, "p");
    store.close().unwrap();
    entries
}

/// After damage: either the file was recreated (and said so), or redb restored a consistent
/// state that `durable_lsn` describes. Never a panic, never an error.
fn assert_recovered_or_rebuilt(dir: &Path, expected: &[Vec<u8>]) -> bool {
    let (mut store, report) = IndexStore::open(dir.join(FILE_NAME)).unwrap();
    if report.rebuilt_all {
        let reason = report.reason.unwrap();
        assert!(
            reason.contains(FILE_NAME) && reason.contains("rebuilt"),
            "{reason}"
        );
        assert_eq!(store.durable_lsn(), None);
        assert_eq!(store.names().count(), 0);
    } else {
        assert_eq!(store.durable_lsn(), Some(9));
        assert_eq!(sorted_entries(&store, "p"), expected);
    }
    // Usable either way.
    store.create("z").unwrap();
    store
        .apply("z", &[], &[(Value::Int(1), Key::Int(1))])
        .unwrap();
    assert_eq!(
        store.lookup_eq("z", &Value::Int(1)).unwrap(),
        vec![Key::Int(1)]
    );
    store.mark_durable(10).unwrap();
    drop(store);
    assert_eq!(open(dir).durable_lsn(), Some(10));
    report.rebuilt_all
}

#[test]
fn missing_file_is_created_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path());
    fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
    let (store, report) = IndexStore::open(dir.path().join(FILE_NAME)).unwrap();
    assert!(report.rebuilt_all);
    assert!(report.reason.unwrap().contains("missing"));
    assert_eq!(store.names().count(), 0);
    assert_eq!(store.durable_lsn(), None);
    assert!(dir.path().join(FILE_NAME).exists());
}

#[test]
fn garbage_file_is_recreated_and_reported() {
    for garbage in [b"hello, not a database".to_vec(), {
        let mut rng = SplitMix64(3);
        (0..64 * 1024)
            .map(|_| rng.next_u64() as u8)
            .collect::<Vec<u8>>()
    }] {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), &garbage).unwrap();
        let (store, report) = IndexStore::open(dir.path().join(FILE_NAME)).unwrap();
        assert!(report.rebuilt_all);
        assert!(
            report.reason.as_deref().unwrap().contains("damaged"),
            "{:?}",
            report.reason
        );
        drop(store);
        fs::write(dir.path().join(FILE_NAME), &garbage).unwrap();
        assert!(assert_recovered_or_rebuilt(dir.path(), &[]));
    }
    // An empty file (a crash while it was being created).
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(FILE_NAME), b"").unwrap();
    let (_, report) = IndexStore::open(dir.path().join(FILE_NAME)).unwrap();
    assert!(report.rebuilt_all, "{report:?}");
}

#[test]
fn truncated_file_is_recreated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let expected = populated(dir.path());
    let path = dir.path().join(FILE_NAME);
    let len = fs::metadata(&path).unwrap().len();
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    assert!(
        assert_recovered_or_rebuilt(dir.path(), &expected),
        "half a file must not pass for a whole one"
    );
    // Truncated to less than a header.
    populated_again(dir.path());
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100)
        .unwrap();
    assert!(assert_recovered_or_rebuilt(dir.path(), &expected));
}

fn populated_again(dir: &Path) {
    fs::remove_file(dir.join(FILE_NAME)).unwrap();
    populated(dir);
}

#[test]
fn flipped_bytes_never_go_unnoticed() {
    let dir = tempfile::tempdir().unwrap();
    let expected = populated(dir.path());
    let path = dir.path().join(FILE_NAME);
    let pristine = fs::read(&path).unwrap();
    let mut rebuilt = 0;
    let mut rng = SplitMix64(11);
    let offsets: Vec<usize> = (0..12)
        .map(|_| rng.below(pristine.len() as u64) as usize)
        .chain([0, 8, 100, 600])
        .collect();
    for offset in offsets {
        let mut bytes = pristine.clone();
        for b in &mut bytes[offset..(offset + 16).min(pristine.len())] {
            *b ^= 0x5a;
        }
        fs::write(&path, &bytes).unwrap();
        rebuilt += assert_recovered_or_rebuilt(dir.path(), &expected) as usize;
    }
    assert!(rebuilt > 0, "some of the damage must have been detected");
}

#[test]
fn foreign_or_newer_files_are_recreated() {
    // A valid redb file that is not an index file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<u64, u64>::new("other"))
            .unwrap()
            .insert(1, 2)
            .unwrap();
        txn.commit().unwrap();
    }
    let (_, report) = IndexStore::open(dir.path().join(FILE_NAME)).unwrap();
    assert!(report.rebuilt_all);
    assert!(report.reason.unwrap().contains("no strata index metadata"));

    // An index file of a newer format version.
    populated_again(dir.path());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, u64>::new("strata:meta"))
            .unwrap()
            .insert("format_version", 99)
            .unwrap();
        txn.commit().unwrap();
    }
    let (store, report) = IndexStore::open(dir.path().join(FILE_NAME)).unwrap();
    assert!(report.rebuilt_all);
    assert!(report.reason.unwrap().contains("version 99"));
    assert_eq!(store.names().count(), 0);
}

#[test]
fn a_file_in_use_is_refused_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let expected = populated(dir.path());
    let first = open(dir.path());
    let err = IndexStore::open(dir.path().join(FILE_NAME)).unwrap_err();
    assert!(err.to_string().contains(FILE_NAME), "{err}");
    assert_eq!(
        sorted_entries(&first, "p"),
        expected,
        "the open file is untouched"
    );
    drop(first);
    let store = open(dir.path());
    assert_eq!(store.durable_lsn(), Some(9));
}

// ---------------------------------------------------------------------------------------------
// Measurements (by hand; no timing assertions)

fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// Apply of 100k entries in batches of 10k and 10k equality lookups: `IndexStore` against a
/// `BTreeMap<Vec<u8>, ()>` with the same encoding.
#[test]
#[ignore]
fn measure_against_btreemap() {
    const N: i64 = 100_000;
    const BATCH: usize = 10_000;
    const LOOKUPS: usize = 10_000;
    let mut rng = SplitMix64(99);
    let rows: Vec<(Value, Key)> = (0..N)
        .map(|i| (Value::Int(rng.below(50_000) as i64), Key::Int(i)))
        .collect();
    let probes: Vec<Value> = (0..LOOKUPS)
        .map(|_| rows[rng.below(N as u64) as usize].0.clone())
        .collect();

    for round in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_new(dir.path());
        store.create("m").unwrap();
        let t = Instant::now();
        for chunk in rows.chunks(BATCH) {
            store.apply("m", &[], chunk).unwrap();
        }
        let apply_index = t.elapsed();
        let t = Instant::now();
        store.mark_durable(1).unwrap();
        let mark = t.elapsed();
        let t = Instant::now();
        let mut found = 0;
        for p in &probes {
            found += store.lookup_eq("m", p).unwrap().len();
        }
        let lookup_index = t.elapsed();
        // Updates: every row moves to a new value (removal + addition).
        let moved: Vec<(Value, Key)> = rows
            .iter()
            .map(|(v, k)| (Value::Int(v_int(v) + 1), k.clone()))
            .collect();
        let t = Instant::now();
        for (old, new) in rows.chunks(BATCH).zip(moved.chunks(BATCH)) {
            store.apply("m", old, new).unwrap();
        }
        let update_index = t.elapsed();
        store.close().unwrap();
        let size = fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
        let t = Instant::now();
        let store = open(dir.path());
        let reopen = t.elapsed();
        drop(store);

        let mut map: BTreeMap<Vec<u8>, ()> = BTreeMap::new();
        let t = Instant::now();
        for chunk in rows.chunks(BATCH) {
            for (v, k) in chunk {
                map.insert(entry(v, k), ());
            }
        }
        let apply_map = t.elapsed();
        let t = Instant::now();
        let mut found_map = 0;
        for p in &probes {
            let start = enc(p);
            let end = prefix_end(&start);
            let keys: Vec<Key> = map
                .range(start.clone()..end)
                .map(|(e, _)| decode_entry(e).unwrap().1)
                .collect();
            found_map += keys.len();
        }
        let lookup_map = t.elapsed();
        let t = Instant::now();
        for (old, new) in rows.chunks(BATCH).zip(moved.chunks(BATCH)) {
            for (v, k) in old {
                map.remove(&entry(v, k));
            }
            for (v, k) in new {
                map.insert(entry(v, k), ());
            }
        }
        let update_map = t.elapsed();
        assert_eq!(found, found_map);

        let per_s = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64() / 1e6;
        println!("round {round}:");
        println!(
            "  apply 100k in 10k batches: index {:>8.1?} ({:.2} M/s)  btreemap {:>8.1?} ({:.2} M/s)  ratio {:.2}",
            apply_index,
            per_s(N as usize, apply_index),
            apply_map,
            per_s(N as usize, apply_map),
            apply_map.as_secs_f64() / apply_index.as_secs_f64()
        );
        println!(
            "  update 100k (remove+add):  index {:>8.1?} ({:.2} M/s)  btreemap {:>8.1?} ({:.2} M/s)  ratio {:.2}",
            update_index,
            per_s(N as usize, update_index),
            update_map,
            per_s(N as usize, update_map),
            update_map.as_secs_f64() / update_index.as_secs_f64()
        );
        println!(
            "  10k eq lookups ({found} keys): index {:>8.1?} ({:.2} µs each)  btreemap {:>8.1?} ({:.2} µs each)  ratio {:.2}",
            lookup_index,
            lookup_index.as_secs_f64() * 1e6 / LOOKUPS as f64,
            lookup_map,
            lookup_map.as_secs_f64() * 1e6 / LOOKUPS as f64,
            lookup_map.as_secs_f64() / lookup_index.as_secs_f64()
        );
        println!(
            "  mark_durable {mark:.1?}; file {:.1} MiB; reopen (integrity check) {reopen:.1?}",
            size as f64 / 1048576.0
        );
    }

    // Rebuild and reopen at 1M entries.
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_new(dir.path());
    let t = Instant::now();
    store
        .rebuild(
            "big",
            (0..1_000_000i64).map(|i| {
                (
                    Value::Int(i.wrapping_mul(0x9E37_79B9) % 100_000),
                    Key::Int(i),
                )
            }),
        )
        .unwrap();
    store.mark_durable(1).unwrap();
    let rebuild = t.elapsed();
    store.close().unwrap();
    let size = fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
    let t = Instant::now();
    drop(open(dir.path()));
    println!(
        "1M entries: rebuild + mark_durable {rebuild:.1?}; file {:.1} MiB; reopen (integrity check) {:.1?}",
        size as f64 / 1048576.0,
        t.elapsed()
    );
}

fn v_int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        _ => unreachable!(),
    }
}
