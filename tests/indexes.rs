//! Secondary indexes (embedded and durable): a query that an index narrows gives the same rows
//! as the same query over a table without the index, through writes, restarts and a lost
//! index file.
#![cfg(feature = "persistence")]

mod common;

use common::cli;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use strata::checkpoint::{PersistSettings, SyncMode};
use strata::Engine;

/// The data directory in the temporary directory `tmp` (its object store in the durable
/// tier goes beside it, also in `tmp`).
fn data(tmp: &Path) -> PathBuf {
    tmp.join("data")
}

fn settings(tmp: &Path) -> PersistSettings {
    PersistSettings {
        sync: SyncMode::Never,
        checkpoint_interval: None,
        ..cli::persist_settings(&data(tmp))
    }
}

const SCHEMA: &str =
    "CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR, score DOUBLE, at TIMESTAMP)";

/// Queries over the indexed columns, each with ORDER BY so that answers compare exactly.
fn queries(n: i64, s: f64) -> Vec<String> {
    vec![
        format!("SELECT id, name FROM t WHERE name = 'n{n}' ORDER BY id"),
        format!(
            "SELECT id FROM t WHERE name >= 'n{n}' AND name < 'n{}' ORDER BY id",
            n + 3
        ),
        format!("SELECT id, score FROM t WHERE score > {s:?} ORDER BY id"),
        format!("SELECT id FROM t WHERE score <= {s:?} AND id > {n} ORDER BY id"),
        format!("SELECT COUNT(*), SUM(id) FROM t WHERE {s:?} > score"),
        format!(
            "SELECT id FROM t WHERE at >= '2026-01-01 00:00:0{}' ORDER BY id",
            n.rem_euclid(10)
        ),
        "SELECT id FROM t WHERE name IS NULL ORDER BY id".to_string(),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Insert(i64, Option<i64>, f64, i64),
    Delete(i64),
    /// Every row with `score` below the bound gets the name and its score shifted.
    Update(f64, Option<i64>),
    /// An insert whose existing key keeps its row but takes the new score.
    Upsert(i64, f64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i64..40, proptest::option::of(0i64..8), -5.0f64..5.0, 0i64..10)
            .prop_map(|(id, n, s, t)| Op::Insert(id, n, (s * 4.0).round() / 4.0, t)),
        1 => (0i64..40).prop_map(Op::Delete),
        1 => (-5.0f64..5.0, proptest::option::of(0i64..8))
            .prop_map(|(s, n)| Op::Update((s * 4.0).round() / 4.0, n)),
        1 => (0i64..40, -5.0f64..5.0).prop_map(|(id, s)| Op::Upsert(id, (s * 4.0).round() / 4.0)),
    ]
}

fn statement(op: &Op) -> String {
    match op {
        Op::Insert(id, name, score, t) => {
            let name = name.map_or("NULL".to_string(), |n| format!("'n{n}'"));
            format!("INSERT OR REPLACE INTO t VALUES ({id}, {name}, {score:?}, '2026-01-01 00:00:0{t}')")
        }
        Op::Delete(id) => format!("DELETE FROM t WHERE id = {id}"),
        Op::Update(bound, name) => {
            let name = name.map_or("NULL".to_string(), |n| format!("'n{n}'"));
            format!("UPDATE t SET name = {name}, score = score + 0.25 WHERE score < {bound:?}")
        }
        Op::Upsert(id, score) => format!(
            "INSERT INTO t VALUES ({id}, 'new', {score:?}, '2026-01-01 00:00:09') \
             ON CONFLICT (id) DO UPDATE SET score = excluded.score"
        ),
    }
}

fn answers(e: &mut Engine, n: i64, s: f64) -> Vec<strata::ResultSet> {
    queries(n, s)
        .iter()
        .map(|q| e.query(q).unwrap_or_else(|err| panic!("{q}: {err}")))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn indexed_queries_match_a_scan(ops in proptest::collection::vec(op(), 1..60), n in 0i64..8, s in -5.0f64..5.0) {
        let dir = tempfile::tempdir().unwrap();
        let mut plain = Engine::builder().ephemeral().build().unwrap();
        plain.execute(SCHEMA).unwrap();
        let mut indexed = Engine::builder().cluster(cli::one_node_cluster()).persist(settings(dir.path())).build().unwrap();
        indexed.execute(SCHEMA).unwrap();
        indexed.execute("CREATE INDEX t_name ON t (name); CREATE INDEX t_score ON t (score)").unwrap();
        let (first, second) = ops.split_at(ops.len() / 2);
        for op in first {
            plain.execute(&statement(op)).unwrap();
            indexed.execute(&statement(op)).unwrap();
        }
        // An index created over existing rows, then a checkpoint (indexes made durable).
        indexed.execute("CREATE INDEX t_at ON t (at); CHECKPOINT").unwrap();
        for op in second {
            plain.execute(&statement(op)).unwrap();
            indexed.execute(&statement(op)).unwrap();
        }
        prop_assert_eq!(answers(&mut indexed, n, s), answers(&mut plain, n, s));
        // Restart: snapshot + log replay keep the indexes current.
        drop(indexed);
        let mut reopened = Engine::builder().cluster(cli::one_node_cluster()).persist(settings(dir.path())).build().unwrap();
        prop_assert_eq!(answers(&mut reopened, n, s), answers(&mut plain, n, s));
        // A lost index file is rebuilt from the tables.
        drop(reopened);
        remove_index_files(&data(dir.path()));
        let mut rebuilt = Engine::builder().cluster(cli::one_node_cluster()).persist(settings(dir.path())).build().unwrap();
        prop_assert_eq!(answers(&mut rebuilt, n, s), answers(&mut plain, n, s));
        let shown = rebuilt.query("SHOW INDEXES").unwrap();
        prop_assert_eq!(shown.rows.len(), 3);
    }
}

#[test]
fn index_ddl_errors_are_clear_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::builder()
        .cluster(cli::one_node_cluster())
        .persist(settings(dir.path()))
        .build()
        .unwrap();
    e.execute(SCHEMA).unwrap();
    e.execute("CREATE SOURCE s (k BIGINT)").unwrap();
    for (sql, needle) in [
        ("CREATE INDEX i ON nope (name)", "unknown table `nope`"),
        ("CREATE INDEX i ON t (nope)", "unknown column `nope`"),
        ("CREATE INDEX i ON s (k)", "`s` is a source, not a table"),
        ("CREATE INDEX t ON t (name)", "already exists"),
        ("DROP INDEX nope", "unknown index `nope`"),
    ] {
        let err = e.execute(sql).unwrap_err().to_string();
        assert!(err.contains(needle), "{sql}: {err}");
    }
    assert!(e.query("SHOW INDEXES").unwrap().rows.is_empty());
    e.execute("CREATE INDEX i ON t (name); DROP TABLE t")
        .unwrap();
    assert!(
        e.query("SHOW INDEXES").unwrap().rows.is_empty(),
        "a table's indexes go with it"
    );
}

/// The index files of a data directory: one, or in the constellation tier one per shard
/// this node holds (`shards/<shard>/indexes.redb`).
fn index_files(data: &Path) -> Vec<PathBuf> {
    let single = data.join("indexes.redb");
    if single.exists() {
        return vec![single];
    }
    std::fs::read_dir(data.join("shards"))
        .map(|dirs| {
            dirs.map(|d| d.unwrap().path().join("indexes.redb"))
                .filter(|f| f.exists())
                .collect()
        })
        .unwrap_or_default()
}

fn remove_index_files(data: &Path) {
    let files = index_files(data);
    assert!(!files.is_empty(), "no index file in {}", data.display());
    for f in files {
        std::fs::remove_file(f).unwrap();
    }
}

/// Whether this tier lets indexes be turned off (`embedded`; `durable` always has them).
fn optional() -> bool {
    <strata::ActiveProfile as strata::PhysicalProfile>::INDEXES
        == strata::profile::IndexSupport::Optional
}

#[test]
fn indexes_can_be_turned_off_where_they_are_optional() {
    let dir = tempfile::tempdir().unwrap();
    let off = PersistSettings {
        indexes: false,
        ..settings(dir.path())
    };
    let mut e = Engine::builder()
        .cluster(cli::one_node_cluster())
        .persist(off)
        .build()
        .unwrap();
    e.execute(SCHEMA).unwrap();
    if !optional() {
        // Always on in this tier: the setting is ignored.
        e.execute("CREATE INDEX i ON t (name)").unwrap();
        assert!(!index_files(&data(dir.path())).is_empty());
        return;
    }
    let err = e
        .execute("CREATE INDEX i ON t (name)")
        .unwrap_err()
        .to_string();
    assert!(err.contains("[indexes] enabled = true"), "{err}");
    assert!(!data(dir.path()).join("indexes.redb").exists());
}

/// A directory whose log holds an index opens with index storage off (the index is kept but
/// not maintained, queries scan) and, with it on again, answers from the index like a scan.
#[cfg(feature = "embedded")] // the only tier where indexes can be off
#[test]
fn a_directory_with_indexes_opens_with_indexes_turned_off_and_back_on() {
    let dir = tempfile::tempdir().unwrap();
    let on = settings(dir.path());
    let off = PersistSettings {
        indexes: false,
        ..on.clone()
    };
    let lookup = "SELECT COUNT(*) FROM t WHERE name = 'n3'";
    let count = |e: &mut Engine| e.query(lookup).unwrap().rows[0][0].to_string();
    {
        let mut e = Engine::builder()
            .cluster(cli::one_node_cluster())
            .persist(on.clone())
            .build()
            .unwrap();
        e.execute(SCHEMA).unwrap();
        e.execute("CREATE INDEX i ON t (name)").unwrap();
        e.execute("INSERT INTO t VALUES (1, 'n3', 1.0, NULL), (2, 'n4', 2.0, NULL)")
            .unwrap();
        assert_eq!(count(&mut e), "1");
    }
    {
        let mut e = Engine::builder()
            .cluster(cli::one_node_cluster())
            .persist(off)
            .build()
            .unwrap();
        assert_eq!(count(&mut e), "1");
        let shown = e.query("SHOW INDEXES").unwrap();
        assert_eq!(shown.rows.len(), 1, "the index stays in the catalog");
        e.execute("INSERT INTO t VALUES (3, 'n3', 3.0, NULL)")
            .unwrap();
        e.execute("DELETE FROM t WHERE id = 1").unwrap();
        assert_eq!(count(&mut e), "1");
        e.checkpoint().unwrap();
        e.execute("INSERT INTO t VALUES (4, 'n3', 4.0, NULL)")
            .unwrap();
    }
    let mut e = Engine::builder()
        .cluster(cli::one_node_cluster())
        .persist(on)
        .build()
        .unwrap();
    assert_eq!(
        count(&mut e),
        "2",
        "writes made while the index was off are in it"
    );
    let scan = e
        .query("SELECT id FROM t WHERE name || '' = 'n3' ORDER BY id")
        .unwrap();
    let indexed = e
        .query("SELECT id FROM t WHERE name = 'n3' ORDER BY id")
        .unwrap();
    assert_eq!(format!("{:?}", indexed.rows), format!("{:?}", scan.rows));
}
