//! One writer per object-store prefix (the durable tier): a second data directory is
//! refused while the first lives and after it is gone; an explicit takeover fences the old
//! writer, whose next checkpoint fails; a directory whose WAL belongs to another history is
//! refused before anything is replayed, without fencing the owner. Against `memory://`,
//! `file://` and the S3 test server (when `scripts/s3-test-server` runs).
#![cfg(all(feature = "object-store", not(feature = "cluster")))]

mod common;

use common::stores::{store_settings, stores};
use std::path::Path;
use strata::checkpoint::{PersistSettings, SyncMode};
use strata::{Engine, Error};

fn persist(data: &Path, url: &str, take_over: bool) -> PersistSettings {
    let mut object_store = store_settings(url);
    object_store.take_over = take_over;
    PersistSettings {
        data_dir: data.to_path_buf(),
        sync: SyncMode::Always,
        checkpoint_interval: None,
        keep: 2,
        object_store,
        ..PersistSettings::default()
    }
}

fn open(data: &Path, url: &str, take_over: bool) -> Result<Engine, Error> {
    Engine::builder()
        .persist(persist(data, url, take_over))
        .build()
}

fn count(e: &mut Engine) -> String {
    let rs = e.query("SELECT COUNT(*) FROM kv").unwrap();
    format!("{:?}", rs.rows[0][0])
}

fn insert(e: &mut Engine, from: i64, to: i64) {
    let rows: Vec<String> = (from..to).map(|k| format!("({k}, {k})")).collect();
    e.execute(&format!("INSERT INTO kv VALUES {}", rows.join(", ")))
        .unwrap();
}

#[test]
fn a_second_data_directory_is_refused_while_the_first_lives_and_after_it_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, url) in stores("second-writer", tmp.path()) {
        let (a_dir, b_dir) = (
            tmp.path().join(format!("{kind}-a")),
            tmp.path().join(format!("{kind}-b")),
        );
        let mut a = open(&a_dir, &url, false).unwrap();
        a.execute("CREATE TABLE kv (k BIGINT PRIMARY KEY, v BIGINT)")
            .unwrap();
        insert(&mut a, 0, 10);
        a.checkpoint().unwrap();
        insert(&mut a, 10, 15);

        // While A runs.
        let err = open(&b_dir, &url, false).unwrap_err().to_string();
        assert!(err.contains("is owned by data directory"), "{kind}: {err}");
        assert!(
            err.contains(&a_dir.file_name().unwrap().to_string_lossy().to_string()),
            "{kind}: {err}"
        );
        assert!(err.contains("take_over"), "{kind}: {err}");
        // A is not disturbed: it writes and checkpoints on.
        insert(&mut a, 15, 20);
        a.checkpoint().unwrap();
        drop(a);

        // After A stopped: still A's.
        let err = open(&b_dir, &url, false).unwrap_err().to_string();
        assert!(err.contains("is owned by data directory"), "{kind}: {err}");
        let mut a = open(&a_dir, &url, false).unwrap();
        assert_eq!(count(&mut a), "Int(20)", "{kind}");
    }
}

#[test]
fn a_takeover_fences_the_old_writer_and_a_foreign_wal_is_refused_before_replay() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, url) in stores("takeover", tmp.path()) {
        let (a_dir, b_dir) = (
            tmp.path().join(format!("{kind}-a")),
            tmp.path().join(format!("{kind}-b")),
        );
        let mut a = open(&a_dir, &url, false).unwrap();
        a.execute("CREATE TABLE kv (k BIGINT PRIMARY KEY, v BIGINT)")
            .unwrap();
        insert(&mut a, 0, 10);
        a.checkpoint().unwrap();
        insert(&mut a, 10, 12); // in A's WAL only

        // B takes over with A still running: it starts from A's last checkpoint.
        let mut b = open(&b_dir, &url, true).unwrap();
        assert_eq!(count(&mut b), "Int(10)", "{kind}");
        insert(&mut b, 100, 105);
        b.checkpoint().unwrap();

        // A is fenced: its next checkpoint fails, naming B.
        insert(&mut a, 12, 13);
        let err = a.checkpoint().unwrap_err().to_string();
        assert!(
            err.contains("was taken over by data directory"),
            "{kind}: {err}"
        );
        assert!(
            err.contains(&b_dir.file_name().unwrap().to_string_lossy().to_string()),
            "{kind}: {err}"
        );
        drop(a);
        drop(b);

        // A restarting is refused (B owns the prefix); taking over with its own WAL, which
        // belongs to another history than B's checkpoint, is refused before any replay.
        let err = open(&a_dir, &url, false).unwrap_err().to_string();
        assert!(err.contains("is owned by data directory"), "{kind}: {err}");
        let err = open(&a_dir, &url, true).unwrap_err().to_string();
        assert!(
            err.contains("does not belong to the newest checkpoint"),
            "{kind}: {err}"
        );

        // That refusal fenced nobody: B opens as owner, with its data.
        let mut b = open(&b_dir, &url, false).unwrap();
        assert_eq!(count(&mut b), "Int(15)", "{kind}");
        insert(&mut b, 105, 106);
        b.checkpoint().unwrap();
    }
}

#[test]
fn a_lost_disk_at_the_owners_own_path_comes_back_without_a_takeover() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, url) in stores("lost-disk", tmp.path()) {
        let dir = tmp.path().join(format!("{kind}-data"));
        let mut e = open(&dir, &url, false).unwrap();
        e.execute("CREATE TABLE kv (k BIGINT PRIMARY KEY, v BIGINT)")
            .unwrap();
        insert(&mut e, 0, 7);
        e.checkpoint().unwrap();
        drop(e);
        std::fs::remove_dir_all(&dir).unwrap();
        let mut e = open(&dir, &url, false).unwrap();
        assert_eq!(count(&mut e), "Int(7)", "{kind}");
        insert(&mut e, 7, 8);
        e.checkpoint().unwrap();
        drop(e);
        // The same path with a log of its own is not a lost disk: another directory there
        // would have to take over.
        let mut e = open(&dir, &url, false).unwrap();
        assert_eq!(count(&mut e), "Int(8)", "{kind}");
    }
}
