#![cfg(feature = "persistence")]
//! The SQL consistency suite's restart variant: every `tests/sql/NAME.sql` script, split at
//! statement boundaries, run by engines that are closed and reopened on the same data
//! directory between the pieces, must print exactly what one engine prints — and what
//! `NAME.expected` says (the output format of `tests/sql_consistency.rs`: CSV result sets,
//! `error: <message>` lines for failing statements, blocks separated by an empty line).
//!
//! - `restart_in_the_middle`: half the script, close, the rest in a new engine;
//! - `restart_in_the_middle_after_a_checkpoint`: the same with a snapshot written before
//!   closing, so the second engine starts from a snapshot instead of the WAL;
//! - `restart_every_few_statements`: a new engine every third statement, a checkpoint before
//!   every other restart, compared with a single run (so it isolates restart problems from
//!   stale expected files);
//! - `restart_in_the_middle_through_the_cli`: the same split with `strata --data DIR sql
//!   --format csv` processes (a failing statement ends a `strata sql` run, so each one runs
//!   alone and its stderr line is spliced in).

mod common;

use common::cli;
use common::sql_suite::{run_into, scripts, Script};
use std::path::Path;
use std::sync::Mutex;

use strata::Engine;

/// The tests of this file run one at a time. Once, reopening a directory right after
/// closing it failed with "in use by another strata process (pid <this process>)" while
/// another test of this file was spawning `strata` processes: a child holds a copy of the
/// LOCK file's descriptor (and so its flock) from fork until exec. Not reproduced since, but
/// the tests must not depend on that timing.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Scripts whose expected output is that of the consistency suite's *ephemeral* engine and
/// legitimately differs on an engine with a data directory (`CHECKPOINT`, `CREATE INDEX`
/// succeed there). Their restarted output is compared with an uninterrupted run on a data
/// directory instead of the expected file.
const PERSISTENCE_DEPENDENT: &[&str] = &["tier"];

/// The statements of a script, each padded with the blank space before it so that error
/// positions are those of the script file (the SQL suite's expected files pin them).
fn split_statements(script: &str) -> Vec<String> {
    strata::sql::pieces(script)
        .filter(|p| p.parse().is_some())
        .map(|p| {
            format!(
                "{}{}{}",
                "\n".repeat(p.line - 1),
                " ".repeat(p.column - 1),
                p.text
            )
        })
        .collect()
}

/// An engine on `dir`, with the object store the `strata` processes of these tests use
/// on it in the durable tier.
fn open(dir: &Path) -> Engine {
    cli::builder(dir)
        .build()
        .unwrap_or_else(|e| panic!("reopening {}: {e}", dir.display()))
}

/// Runs `pieces` on `engine` the way the consistency harness does, appending the output
/// blocks (one per result set or error).
fn run_pieces(engine: &mut Engine, pieces: &[String], blocks: &mut Vec<String>) {
    for piece in pieces {
        run_into(engine, piece, blocks);
    }
}

/// Runs the script's pieces in groups, each group on a freshly opened engine on the same
/// directory; `checkpoint(i)` says whether to checkpoint before closing after group `i`.
fn run_in_groups(pieces: &[String], cuts: &[usize], checkpoint: impl Fn(usize) -> bool) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut blocks = Vec::new();
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().copied().filter(|&c| c > 0 && c < pieces.len()));
    bounds.push(pieces.len());
    for (i, w) in bounds.windows(2).enumerate() {
        let mut engine = open(&dir);
        run_pieces(&mut engine, &pieces[w[0]..w[1]], &mut blocks);
        if checkpoint(i) {
            engine
                .checkpoint()
                .unwrap_or_else(|e| panic!("checkpoint: {e}"));
        }
        drop(engine);
    }
    blocks.join("\n")
}

/// The first differing line, for failure messages.
fn first_difference(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let at = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    format!(
        "first difference at line {}:\n  expected: {:?}\n  actual:   {:?}",
        at + 1,
        e.get(at).unwrap_or(&"<end>"),
        a.get(at).unwrap_or(&"<end>")
    )
}

/// Compares every script's restarted output with its expected file. A script whose single,
/// uninterrupted run already differs from the expected file is reported as such: that is
/// the consistency suite's failure, not a restart problem.
fn check_against_expected(variant: &str, run: impl Fn(&[String]) -> String) {
    let _serial = serial();
    let mut failures = Vec::new();
    for Script {
        name,
        text: script,
        expected: expected_file,
    } in scripts()
    {
        let pieces = split_statements(&script);
        let actual = run(&pieces);
        let expected = if PERSISTENCE_DEPENDENT.contains(&name.as_str()) {
            run_in_groups(&pieces, &[], |_| false)
        } else {
            std::fs::read_to_string(&expected_file).unwrap_or_default()
        };
        if actual == expected {
            continue;
        }
        let single = run_in_groups(&pieces, &[], |_| false);
        let cause = if single == actual {
            "the same without a restart (a consistency-suite failure, not a restart problem)"
        } else {
            "RESTART CHANGES THE OUTPUT"
        };
        failures.push(format!(
            "{name} ({variant}): differs from {}: {cause}\n{}",
            expected_file.display(),
            first_difference(&expected, &actual)
        ));
    }
    assert!(
        failures.is_empty(),
        "{} script(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn restart_in_the_middle() {
    check_against_expected("restart in the middle", |pieces| {
        run_in_groups(pieces, &[pieces.len() / 2], |_| false)
    });
}

#[test]
fn restart_in_the_middle_after_a_checkpoint() {
    check_against_expected("checkpoint, restart in the middle", |pieces| {
        run_in_groups(pieces, &[pieces.len() / 2], |i| i == 0)
    });
}

/// Restarts every third statement (each script at another phase, so that over the suite
/// every kind of statement is last before a restart), with a checkpoint before every other
/// restart. Every third, not every one: an open costs a few fsyncs, and the suite has ~700
/// statements.
#[test]
fn restart_every_few_statements() {
    let _serial = serial();
    let mut failures = Vec::new();
    for (
        n,
        Script {
            name, text: script, ..
        },
    ) in scripts().into_iter().enumerate()
    {
        let pieces = split_statements(&script);
        let single = run_in_groups(&pieces, &[], |_| false);
        let cuts: Vec<usize> = (1..pieces.len()).filter(|i| i % 3 == n % 3).collect();
        let restarted = run_in_groups(&pieces, &cuts, |i| i % 2 == 1);
        if restarted != single {
            failures.push(format!("{name}: {}", first_difference(&single, &restarted)));
        }
    }
    assert!(
        failures.is_empty(),
        "restarting every few statements changes the output of {} script(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// `strata --data DIR sql -f FILE --format csv`, returning (exit code, stdout, stderr).
fn cli(dir: &Path, file: &Path) -> (Option<i32>, String, String) {
    let out = cli::strata(Some(dir))
        .args(["sql", "-f"])
        .arg(file)
        .args(["--format", "csv"])
        .output()
        .expect("run strata");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    )
}

/// Which pieces fail (an engine run tells): they must run in a process of their own,
/// because `strata sql` stops at the first failing statement.
fn failing_pieces(pieces: &[String]) -> Vec<bool> {
    let tmp = tempfile::tempdir().unwrap();
    let mut engine = open(&tmp.path().join("data"));
    pieces
        .iter()
        .map(|p| {
            let mut blocks = Vec::new();
            run_pieces(&mut engine, std::slice::from_ref(p), &mut blocks);
            blocks.iter().any(|b| b.starts_with("error: "))
        })
        .collect()
}

#[test]
fn restart_in_the_middle_through_the_cli() {
    let _serial = serial();
    let mut failures = Vec::new();
    for Script {
        name,
        text: script,
        expected: expected_file,
    } in scripts()
    {
        let pieces = split_statements(&script);
        let failing = failing_pieces(&pieces);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let file = tmp.path().join("part.sql");
        // Runs of passing statements, each failing statement alone, and a cut in the middle.
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut start = 0;
        for (i, &fails) in failing.iter().enumerate() {
            if fails || i == pieces.len() / 2 {
                if start < i {
                    groups.push((start, i));
                }
                start = i;
                if fails {
                    groups.push((i, i + 1));
                    start = i + 1;
                }
            }
        }
        if start < pieces.len() {
            groups.push((start, pieces.len()));
        }
        let mut output = String::new();
        for (from, to) in groups {
            std::fs::write(&file, pieces[from..to].concat()).unwrap();
            let (code, stdout, stderr) = cli(&dir, &file);
            let alone_and_failing = to == from + 1 && failing[from];
            if !stdout.is_empty() {
                if !output.is_empty() {
                    output.push('\n');
                }
                output.push_str(&stdout);
            }
            if alone_and_failing {
                assert_eq!(
                    code,
                    Some(1),
                    "{name}: piece {from} should fail:\n{}\n{stderr}",
                    pieces[from].trim()
                );
                if !output.is_empty() {
                    output.push('\n');
                }
                for line in problems(&stderr) {
                    output.push_str(line);
                    output.push('\n');
                }
            } else {
                assert_eq!(
                    code,
                    Some(0),
                    "{name}: pieces {from}..{to} should pass:\n{stderr}"
                );
            }
        }
        let expected = if PERSISTENCE_DEPENDENT.contains(&name.as_str()) {
            run_in_groups(&pieces, &[], |_| false)
        } else {
            std::fs::read_to_string(&expected_file).unwrap_or_default()
        };
        if output != expected {
            failures.push(format!(
                "{name}: differs from {}\n{}",
                expected_file.display(),
                first_difference(&expected, &output)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} script(s) differ through the CLI:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// stderr lines but informational `notice:` ones (e.g. about index files).
fn problems(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| !l.starts_with("notice: "))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Format fixtures: files written by an earlier build (tests/fixtures/embedded-v1/README.md)
// ---------------------------------------------------------------------------------------

/// The fixtures are single-node data directories (a WAL and snapshots); a cluster node keeps
/// its data in the cluster's store and refuses such a directory (tests/cluster.rs).
#[cfg(not(feature = "cluster"))]
mod fixtures {
    use super::*;
    use std::path::PathBuf;
    use strata::testing::crc32c;

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("fixtures")
            .join("embedded-v1")
    }

    /// A copy of the fixture's data directory, and the paths of its snapshot and WAL segment.
    fn fixture_copy(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let data = root.join("data");
        cli::copy_dir(&fixture_dir().join("data"), &data);
        let only = |sub: &str| {
            let files: Vec<PathBuf> = std::fs::read_dir(data.join(sub))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert_eq!(files.len(), 1, "{files:?}");
            files[0].clone()
        };
        let (snap, wal) = (only("snapshots"), only("wal"));
        if cli::DURABLE {
            // The durable tier refuses a directory with embedded-tier snapshots (they belong in
            // its object store: `strata migrate`, tested in tests/durable.rs). The fixture's WAL
            // holds the whole log, so without the snapshot it still reads the same.
            std::fs::remove_dir_all(data.join("snapshots")).unwrap();
        }
        (data, snap, wal)
    }

    fn run_cli(data: &Path, args: &[&str]) -> (Option<i32>, String, String) {
        let out = cli::strata(Some(data))
            .args(args)
            .output()
            .expect("run strata");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!stderr.contains("panicked"), "{stderr}");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            stderr,
        )
    }

    fn fixture_queries() -> String {
        fixture_dir()
            .join("make")
            .join("queries.sql")
            .display()
            .to_string()
    }

    #[test]
    fn reads_the_embedded_v1_fixture() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, snap, wal) = fixture_copy(tmp.path());
        // The fixture really is version 1 (whatever this build writes now).
        let original_snap = fixture_dir()
            .join("data/snapshots")
            .join(snap.file_name().unwrap());
        assert_eq!(
            std::fs::read(original_snap).unwrap()[8..12],
            1u32.to_le_bytes()
        );
        assert_eq!(std::fs::read(&wal).unwrap()[8..12], 1u32.to_le_bytes());
        let expected = std::fs::read_to_string(fixture_dir().join("expected.csv")).unwrap();
        // The durable tier does not read `snapshots/` (its snapshots are in the object store):
        // there the fixture opens from its WAL, which holds the whole log.

        let (code, stdout, stderr) =
            run_cli(&data, &["sql", "-f", &fixture_queries(), "--format", "csv"]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            problems(&stderr).is_empty(),
            "a clean fixture opens without warnings: {stderr}"
        );
        assert_eq!(
            stdout, expected,
            "the embedded-v1 fixture reads differently"
        );

        // It keeps working as a live store: a write, a checkpoint in this build's format, reopen.
        let _serial = serial();
        let mut engine = open(&data);
        engine
            .execute("INSERT INTO later VALUES (3, 'three')")
            .unwrap();
        engine.checkpoint().unwrap();
        drop(engine);
        let mut engine = open(&data);
        let rs = engine.query("SELECT k, v FROM later ORDER BY k").unwrap();
        assert_eq!(rs.rows.len(), 3);
        assert_eq!(rs.rows[2][1].to_string(), "three");
        drop(engine);
        if !cli::DURABLE {
            std::fs::remove_file(snap).unwrap(); // the v1 snapshot, now older than the new one
        }
        let (code, stdout, stderr) =
            run_cli(&data, &["sql", "-f", &fixture_queries(), "--format", "csv"]);
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(
            stdout,
            expected.replace("k,v\n1,one\n2,\n", "k,v\n1,one\n2,\n3,three\n")
        );
    }

    /// Opens a copy of a fixture written with snapshot format 2 and checks that `queries`
    /// print its `expected.csv`; returns the copy, for more statements.
    fn reads_a_v2_fixture(fixture: &Path, queries: &Path) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        cli::copy_dir(&fixture.join("data"), &data);
        let snapshots = data.join("snapshots");
        let snap = std::fs::read_dir(&snapshots)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert_eq!(std::fs::read(&snap).unwrap()[8..12], 2u32.to_le_bytes());
        if cli::DURABLE {
            // As with v1: the durable tier reads the fixture from its WAL alone.
            std::fs::remove_dir_all(&snapshots).unwrap();
        }
        let (code, stdout, stderr) = run_cli(
            &data,
            &["sql", "-f", queries.to_str().unwrap(), "--format", "csv"],
        );
        assert_eq!(code, Some(0), "{stderr}");
        assert!(problems(&stderr).is_empty(), "{stderr}");
        let expected = std::fs::read_to_string(fixture.join("expected.csv")).unwrap();
        assert_eq!(stdout, expected, "{} reads differently", fixture.display());
        (tmp, data)
    }

    #[test]
    fn reads_the_embedded_v2_fixture() {
        // Made from the same scripts as embedded-v1 (its README).
        let fixture = fixture_dir().with_file_name("embedded-v2");
        reads_a_v2_fixture(&fixture, &fixture_dir().join("make/queries.sql"));
    }

    #[test]
    fn reads_the_embedded_v2_avg_fixture() {
        let fixture = fixture_dir().with_file_name("embedded-v2-avg");
        let (_tmp, data) = reads_a_v2_fixture(&fixture, &fixture.join("make/queries.sql"));
        // The converted groups go on exactly: 2^53 + 1 and -2^53 cancel to 1 in an f64 sum
        // only by luck; here they must.
        let (code, stdout, stderr) = run_cli(
            &data,
            &[
                "sql",
                "--format",
                "csv",
                "INSERT INTO s VALUES (1, 9007199254740993, NULL), (1, -9007199254740992, NULL)",
                "SELECT mean, n, total FROM per_g WHERE g = 1",
            ],
        );
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(stdout, "mean,n,total\n6.8,5,34\n");
    }

    /// Sets the format version of a snapshot (bytes 8..12) and recomputes the prefix CRC
    /// (bytes 12..16), as a newer strata would write it.
    fn bump_snapshot_version(path: &Path, version: u32) {
        let mut b = std::fs::read(path).unwrap();
        b[8..12].copy_from_slice(&version.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..12]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(path, b).unwrap();
    }

    /// Sets the format version of a WAL segment (bytes 8..12) and recomputes the header CRC
    /// (bytes 20..24).
    fn bump_wal_version(path: &Path, version: u32) {
        let mut b = std::fs::read(path).unwrap();
        b[8..12].copy_from_slice(&version.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..20]);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(path, b).unwrap();
    }

    /// The snapshot that opening `data` reads: the local one of the fixture, or in the durable
    /// tier (whose snapshots are in the object store; `snapshots/` is not read) a checkpoint
    /// taken into the store now (the state object in it), with the name that errors give it.
    fn snapshot_read_on_open(data: &Path, local: PathBuf) -> (PathBuf, String) {
        if !cli::DURABLE {
            let name = local.display().to_string();
            return (local, name);
        }
        let (code, _, stderr) = run_cli(data, &["checkpoint"]);
        assert_eq!(code, Some(0), "{stderr}");
        let checkpoints = cli::store_dir(data).join("checkpoints");
        let epochs: Vec<PathBuf> = std::fs::read_dir(&checkpoints)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(epochs.len(), 1, "{epochs:?}");
        let object = epochs[0].join("state.snap");
        let name = format!("file://{}", object.display());
        (object, name)
    }

    /// After a change to a checkpoint's state object in the durable tier's store, updates the
    /// CRC32C of the whole object in its manifest, so that only the change itself is seen.
    fn update_manifest_crc(object: &Path) {
        let manifest = object.with_file_name("MANIFEST.json");
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        m["crc32c"] = crc32c::crc32c(&std::fs::read(object).unwrap()).into();
        std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    }

    #[test]
    fn newer_format_versions_are_refused() {
        for which in ["snapshot", "wal"] {
            let tmp = tempfile::tempdir().unwrap();
            let (data, snap, wal) = fixture_copy(tmp.path());
            let (target, name) = if which == "snapshot" {
                snapshot_read_on_open(&data, snap)
            } else {
                let name = wal.display().to_string();
                (wal, name)
            };
            match which {
                "snapshot" => {
                    bump_snapshot_version(&target, 99);
                    if cli::DURABLE {
                        update_manifest_crc(&target);
                    }
                }
                _ => bump_wal_version(&target, 99),
            }
            let before = std::fs::read(&target).unwrap();
            for args in [
                &["sql", "SHOW TABLES"][..],
                &["checkpoint"],
                &["repair", "--truncate-at-corruption"],
            ] {
                let (code, stdout, stderr) = run_cli(&data, args);
                assert_eq!(
                    code,
                    Some(1),
                    "{which} {args:?}: a newer version must be refused:\n{stderr}"
                );
                assert!(stdout.is_empty(), "{stdout}");
                let lines = problems(&stderr);
                assert_eq!(
                    lines.len(),
                    1,
                    "{which} {args:?}: one error line, no fallback:\n{stderr}"
                );
                let head = format!(
                    "error: {name} has format version 99, but this strata reads versions up to "
                );
                assert!(
                    lines[0].starts_with(&head),
                    "{which} {args:?}: expected `{head}…`, got:\n{stderr}"
                );
                assert!(lines[0].ends_with("; use a newer strata"), "{stderr}");
                assert_eq!(
                    std::fs::read(&target).unwrap(),
                    before,
                    "{which} {args:?}: the newer file was changed"
                );
            }
        }
    }
}
