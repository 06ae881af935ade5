#![cfg(all(feature = "persistence", not(feature = "cluster")))]
//! Disk errors, with the `strata` binary:
//!
//! - a data directory that cannot be created (its parent is a regular file — permissions
//!   would not do: tests often run as root) → exit 2 with one clear line, and the same
//!   `ProfileRequirementError` from the Rust API;
//! - a write error in the middle of a run: the process runs under `ulimit -f` (RLIMIT_FSIZE,
//!   SIGXFSZ ignored), so the WAL append that would grow the segment past the limit fails
//!   with EFBIG. The statement (or batch) that hit it fails with an error naming the WAL
//!   file; the ones before it were acknowledged. Restarted without the limit, the store holds
//!   exactly the acknowledged writes (the failed one is absent, no torn tail is left behind),
//!   and takes new writes.
//!
//! Injected fsync/write failures at the WAL level (`FaultInjector`) are tested in
//! `tests/wal.rs`; the engine has no hook to inject them through `Engine`.

mod common;

use common::cli;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use strata::{ActiveProfile, ConfigError, Engine, Error, PhysicalProfile};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_strata")
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn finish(out: Output) -> Run {
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    };
    assert!(!run.stderr.contains("panicked"), "panic:\n{}", run.stderr);
    assert_ne!(run.code, Some(101), "{}", run.stderr);
    run
}

/// `strata --data DATA ARGS…` (see [`cli::strata`]), with no periodic checkpoints.
fn strata(data: &Path, args: &[&str]) -> Run {
    finish(
        cli::strata(Some(data))
            .env("STRATA_CHECKPOINT_INTERVAL", "0")
            .args(args)
            .output()
            .unwrap(),
    )
}

/// Runs strata with its file-size limit at `kib` KiB and SIGXFSZ ignored, so that writes
/// past the limit fail with EFBIG instead of killing the process.
fn strata_limited(kib: u64, data: &Path, args: &[&str]) -> Run {
    // The environment and arguments of `strata --data DATA`, through bash.
    let strata = cli::strata(Some(data));
    let mut cmd = Command::new("bash");
    for (key, value) in strata.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.env("STRATA_CHECKPOINT_INTERVAL", "0")
        .stdin(Stdio::null())
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f "$0" || exit 99; exec "$@""#)
        .arg(kib.to_string())
        .arg(bin())
        .args(strata.get_args())
        .args(args);
    let run = finish(cmd.output().unwrap());
    assert_ne!(
        run.code,
        Some(99),
        "cannot set the file size limit: {}",
        run.stderr
    );
    run
}

/// stderr without informational `notice:` lines.
fn problems(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| !l.starts_with("notice: "))
        .collect()
}

fn wal_segments(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

fn wal_bytes(data: &Path) -> u64 {
    wal_segments(data)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn data_dir_that_cannot_be_created_is_a_clear_startup_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, "a regular file").unwrap();
    for data in [file.join("data"), file.join("a").join("b"), file.clone()] {
        let r = strata(&data, &["sql", "SHOW TABLES"]);
        assert_eq!(
            r.code,
            Some(2),
            "{}: a requirement of the profile is unmet (exit 2):\n{}",
            data.display(),
            r.stderr
        );
        let lines = problems(&r.stderr);
        assert_eq!(lines.len(), 1, "{}", r.stderr);
        let head = format!(
            "error: profile `{}` requirement not met: the data directory {} must exist or be creatable: ",
            ActiveProfile::NAME,
            data.display()
        );
        assert!(
            lines[0].starts_with(&head),
            "expected `{head}…`, got:\n{}",
            r.stderr
        );
        assert!(r.stdout.is_empty());

        let Err(err) = Engine::builder()
            .persist(cli::persist_settings(&data))
            .build()
        else {
            panic!("building an engine on {} must fail", data.display());
        };
        assert!(
            matches!(
                err,
                Error::Config(ConfigError::ProfileRequirementError { .. })
            ),
            "expected ProfileRequirementError, got {err:?}"
        );
        assert!(
            err.to_string().contains("must exist or be creatable"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "a regular file",
        "the file is left alone"
    );

    // The same for `strata ingest` and `strata checkpoint`.
    for args in [&["checkpoint"][..], &["ingest", "t", "/dev/null"]] {
        let r = strata(&file.join("data"), args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("must exist or be creatable"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

const SCHEMA: &str = "CREATE SOURCE events (seq BIGINT NOT NULL, pad VARCHAR); \
                      CREATE MATERIALIZED VIEW totals AS SELECT COUNT(*) AS n, SUM(seq) AS s, MAX(seq) AS hi FROM events; \
                      CREATE TABLE kv (k BIGINT PRIMARY KEY, v VARCHAR)";

/// `(n, s, hi)` of the totals view and the number of rows of `kv`, from a restart without
/// a limit; also checks that the restart reports no torn tail or damage.
fn state(data: &Path) -> (String, usize) {
    let r = strata(
        data,
        &[
            "sql",
            "SELECT n, s, hi FROM totals",
            "SELECT k FROM kv",
            "--format",
            "csv",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        problems(&r.stderr).is_empty(),
        "the failed write left something behind:\n{}",
        r.stderr
    );
    let blocks: Vec<&str> = r.stdout.split("\n\n").collect();
    let totals = blocks[0].lines().nth(1).unwrap().to_string();
    (totals, blocks[1].lines().count() - 1)
}

fn totals(n: u64) -> String {
    if n == 0 {
        "0,,".into()
    } else {
        format!("{n},{},{n}", n * (n + 1) / 2)
    }
}

#[test]
fn wal_write_error_fails_the_statement_and_keeps_the_acknowledged_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let r = strata(&data, &["sql", SCHEMA]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // Room for ~12 KiB more WAL: some statements pass, then one fails.
    let limit_kib = (wal_bytes(&data) + 12 * 1024) / 1024 + 1;

    // Statement i inserts seq = i (with ~100 bytes of padding) and then prints the count:
    // the last count printed is what was acknowledged (stdout is flushed on error).
    let pad = "p".repeat(100);
    let mut script = String::new();
    for i in 1..=1000 {
        let _ = writeln!(
            script,
            "INSERT INTO events VALUES ({i}, '{pad}');\nSELECT n FROM totals;"
        );
    }
    let file = tmp.path().join("inserts.sql");
    std::fs::write(&file, script).unwrap();
    let r = strata_limited(
        limit_kib,
        &data,
        &["sql", "-f", file.to_str().unwrap(), "--format", "csv"],
    );
    assert_eq!(
        r.code,
        Some(1),
        "the statement past the limit must fail:\n{}",
        r.stderr
    );
    let acked: u64 = r
        .stdout
        .lines()
        .filter_map(|l| l.parse().ok())
        .max()
        .unwrap_or(0);
    assert!(acked > 10 && acked < 1000, "acknowledged {acked}");
    let lines = problems(&r.stderr);
    assert_eq!(lines.len(), 1, "one error line:\n{}", r.stderr);
    let segment = wal_segments(&data).pop().unwrap();
    let head = format!("error: write {}: ", segment.display());
    assert!(
        lines[0].starts_with(&head) && lines[0].contains("File too large"),
        "expected `{head}… File too large …`, got:\n{}",
        r.stderr
    );

    // Without the limit: exactly the acknowledged statements, and new writes work.
    assert_eq!(state(&data), (totals(acked), 0));
    let next = acked + 1;
    let r = strata(
        &data,
        &[
            "sql",
            &format!("INSERT INTO events VALUES ({next}, 'x')"),
            "INSERT INTO kv VALUES (1, 'one')",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(state(&data), (totals(next), 1));
}

#[test]
fn wal_write_error_fails_the_batch_and_keeps_the_acknowledged_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let r = strata(&data, &["sql", SCHEMA]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let limit_kib = (wal_bytes(&data) + 40 * 1024) / 1024 + 1;
    let batch = 50;
    let mut csv = String::from("seq,pad\n");
    for i in 1..=5000 {
        let _ = writeln!(csv, "{i},{}", "q".repeat(20));
    }
    let input = tmp.path().join("events.csv");
    std::fs::write(&input, csv).unwrap();
    let r = strata_limited(
        limit_kib,
        &data,
        &[
            "ingest",
            "events",
            input.to_str().unwrap(),
            "--batch-size",
            &batch.to_string(),
        ],
    );
    assert_eq!(
        r.code,
        Some(1),
        "the batch past the limit must fail:\n{}",
        r.stderr
    );
    // "error: stopped after N rows were acknowledged: write <segment>: File too large …"
    let err = problems(&r.stderr)
        .into_iter()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default()
        .to_string();
    let acked: u64 = err
        .split("stopped after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "the error must say how many rows were acknowledged:\n{}",
                r.stderr
            )
        });
    assert!(
        acked > 0 && acked < 5000 && acked.is_multiple_of(batch),
        "acknowledged {acked}"
    );
    let segment = wal_segments(&data).pop().unwrap();
    assert!(
        err.contains(&format!("write {}: ", segment.display())) && err.contains("File too large"),
        "the error names the WAL file:\n{}",
        r.stderr
    );
    assert_eq!(state(&data), (totals(acked), 0));
    let r = strata(
        &data,
        &[
            "sql",
            &format!("INSERT INTO events VALUES ({}, 'x')", acked + 1),
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(state(&data), (totals(acked + 1), 0));
}
