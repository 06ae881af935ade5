#![cfg(feature = "persistence")]
//! Crash tests with a real process: `strata` ingests (batch path: `strata ingest`; SQL path:
//! `strata sql -f` with many small INSERTs), the test SIGKILLs it at a random moment, restarts
//! on the same data directory and checks:
//!
//! - the directory opens (a killed process leaves no lock behind: flock dies with it), with no
//!   damaged snapshot and no corrupt WAL (a kill only ever leaves a torn tail);
//! - the catalog is a prefix of the DDL that was sent (kills also land in `--init`);
//! - the surviving input is a prefix `seq 1..=m` of what was sent, cut at a batch or statement
//!   boundary (each is all-or-nothing), containing every acknowledged row;
//! - every view on the source (a grouped view, a global one, a filtered one) agrees exactly
//!   with a recomputation from that prefix — and therefore with each other.
//!
//! Acknowledgements: `strata ingest` logs `acknowledged N rows` per batch at debug level
//! (`STRATA_LOG=strata=debug`, unbuffered stderr). `strata sql` has no per-statement output,
//! so the script interleaves marker queries `SELECT <seq> AS ack, p FROM pad` whose result is
//! larger than stdout's 8 KiB buffer: writing one pushes the previous one out, so a marker
//! seen on stdout proves every INSERT before it returned (the CLI runs statements in order).
//!
//! A data directory is reused for a chain of trials (recovery of an already recovered
//! directory, snapshots and WAL from several runs), with random sync policies, checkpoint
//! intervals down to 5 ms (so kills land in snapshot writes), `keep` 1..=3, occasional
//! `strata checkpoint` runs (some of them killed too), and occasional kills of the
//! recovering process itself.
//!
//! `STRATA_CRASH_TRIALS` (default 20 per path) sets the number of trials, `STRATA_CRASH_SEED`
//! the seed (printed on failure).

mod common;

use common::cli;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use strata::testing::SplitMix64;

/// Distinct keys of the grouped views.
const KEYS: u64 = 997;
/// Trials in CI.
const DEFAULT_TRIALS: usize = 20;
/// Trials per data directory.
const CHAIN: usize = 5;
/// Trials beyond the default stop once this much time has passed.
const EXTRA_BUDGET: Duration = Duration::from_secs(90);
/// No single process may run longer than this.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);
/// Width of the marker pad: more than the CLI's 8 KiB stdout buffer.
const PAD: usize = 9000;

const DDL: [(&str, &str); 4] = [
    (
        "events",
        "CREATE SOURCE events (k BIGINT NOT NULL, v BIGINT NOT NULL, seq BIGINT NOT NULL)",
    ),
    (
        "by_k",
        "CREATE MATERIALIZED VIEW by_k AS SELECT k, COUNT(*) AS n, SUM(v) AS s, MAX(seq) AS mx \
         FROM events GROUP BY k",
    ),
    (
        "totals",
        "CREATE MATERIALIZED VIEW totals AS SELECT COUNT(*) AS n, SUM(v) AS s, SUM(seq) AS ss, \
         MIN(seq) AS lo, MAX(seq) AS hi FROM events",
    ),
    (
        "odd",
        "CREATE MATERIALIZED VIEW odd AS SELECT k, COUNT(*) AS n, SUM(v) AS s FROM events \
         WHERE seq % 2 = 1 GROUP BY k",
    ),
];

const QUERIES: [&str; 5] = [
    "SHOW SOURCES",
    "SHOW VIEWS",
    "SELECT n, s, ss, lo, hi FROM totals",
    "SELECT k, n, s, mx FROM by_k ORDER BY k",
    "SELECT k, n, s FROM odd ORDER BY k",
];

fn key(seq: u64) -> i64 {
    ((seq * 7919) % KEYS) as i64
}

fn val(seq: u64) -> i64 {
    ((seq * 31 + 7) % 1000) as i64 - 300
}

/// The shared generator, with the picks these tests make.
struct Rng(SplitMix64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// `strata --data DATA` (see [`cli::strata`]).
fn strata(data: &Path) -> Command {
    cli::strata(Some(data))
}

fn assert_no_panic(what: &str, stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
        "{what}: stderr shows a panic:\n{stderr}"
    );
}

/// Waits for `child` at most `timeout`; kills it (SIGKILL) if it is still running then.
fn wait_or_kill(child: &mut std::process::Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            // `Child::kill` sends SIGKILL on Unix; a child that just exited is reaped below.
            let _ = child.kill();
            return child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sync policy, checkpointing and retention of one run.
#[derive(Debug, Clone)]
struct Settings {
    sync: &'static str,
    sync_interval: String,
    checkpoint_interval: &'static str,
    keep: u64,
}

impl Settings {
    fn random(rng: &mut Rng) -> Settings {
        let sync = match rng.below(10) {
            0..=5 => "always",
            6 | 7 => "interval",
            _ => "never",
        };
        let checkpoint_interval = match rng.below(4) {
            0 => "0",
            1 => "5ms",
            2 => "20ms",
            _ => "100ms",
        };
        Settings {
            sync,
            sync_interval: format!("{}ms", rng.range(1, 50)),
            checkpoint_interval,
            keep: rng.range(1, 3),
        }
    }

    fn apply(&self, cmd: &mut Command) {
        // A cluster node has no local log to sync: a write is acknowledged once it is in
        // the object store.
        if !<strata::ActiveProfile as strata::PhysicalProfile>::MULTI_NODE {
            cmd.env("STRATA_STORAGE_SYNC", self.sync)
                .env("STRATA_STORAGE_SYNC_INTERVAL", &self.sync_interval);
        }
        cmd.env("STRATA_CHECKPOINT_INTERVAL", self.checkpoint_interval)
            .env("STRATA_CHECKPOINT_KEEP", self.keep.to_string());
    }
}

/// The views' contents recomputed from the prefix `seq 1..=m`, advanced incrementally.
struct Model {
    m: u64,
    sum_v: i64,
    sum_seq: u64,
    by_k: Vec<(u64, i64, u64)>,
    odd: Vec<(u64, i64)>,
}

impl Model {
    fn new() -> Model {
        Model {
            m: 0,
            sum_v: 0,
            sum_seq: 0,
            by_k: vec![(0, 0, 0); KEYS as usize],
            odd: vec![(0, 0); KEYS as usize],
        }
    }

    fn advance_to(&mut self, m: u64) {
        assert!(m >= self.m, "the model only moves forward");
        for seq in self.m + 1..=m {
            let (k, v) = (key(seq) as usize, val(seq));
            self.sum_v += v;
            self.sum_seq += seq;
            let g = &mut self.by_k[k];
            g.0 += 1;
            g.1 += v;
            g.2 = g.2.max(seq);
            if seq % 2 == 1 {
                self.odd[k].0 += 1;
                self.odd[k].1 += v;
            }
        }
        self.m = m;
    }

    /// The expected CSV blocks of `QUERIES[2..]`.
    fn expected(&self) -> [String; 3] {
        let totals = if self.m == 0 {
            "n,s,ss,lo,hi\n0,,,,\n".to_string()
        } else {
            format!(
                "n,s,ss,lo,hi\n{},{},{},1,{}\n",
                self.m, self.sum_v, self.sum_seq, self.m
            )
        };
        let mut by_k = "k,n,s,mx\n".to_string();
        for (k, g) in self.by_k.iter().enumerate().filter(|(_, g)| g.0 > 0) {
            let _ = writeln!(by_k, "{k},{},{},{}", g.0, g.1, g.2);
        }
        let mut odd = "k,n,s\n".to_string();
        for (k, g) in self.odd.iter().enumerate().filter(|(_, g)| g.0 > 0) {
            let _ = writeln!(odd, "{k},{},{}", g.0, g.1);
        }
        [totals, by_k, odd]
    }
}

/// What a restart on the data directory shows.
struct Observed {
    /// How many of `DDL` exist (they must be a prefix).
    ddl: usize,
    /// Rows present (`totals.n`), when the catalog is complete.
    m: u64,
    /// The CSV blocks of `QUERIES[2..]`, when the catalog is complete.
    blocks: Vec<String>,
    stderr: String,
}

/// Opens the data directory in a new process and reads the catalog and the views.
fn observe(data: &Path, context: &str) -> Observed {
    let out = strata(data)
        .env("STRATA_LOG", "strata=info")
        .arg("sql")
        .args(QUERIES)
        .args(["--format", "csv"])
        .output()
        .expect("run strata");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_no_panic(context, &stderr);
    for bad in [
        "is damaged",
        "corrupt",
        "cannot be replayed",
        "in use by another",
    ] {
        assert!(
            !stderr.contains(bad),
            "{context}: a kill must leave a directory that opens cleanly (found `{bad}`):\n{stderr}"
        );
    }
    let blocks: Vec<String> = stdout
        .split("\n\n")
        .map(|b| format!("{}\n", b.trim_end_matches('\n')))
        .collect();
    let names = |i: usize| -> Vec<String> {
        blocks.get(i).map_or_else(Vec::new, |b| {
            b.lines().skip(1).map(str::to_string).collect()
        })
    };
    let mut present: Vec<String> = names(0);
    present.extend(names(1));
    let ddl = DDL
        .iter()
        .take_while(|(name, _)| present.iter().any(|p| p == name))
        .count();
    for (name, _) in &DDL[ddl..] {
        assert!(
            !present.iter().any(|p| p == name),
            "{context}: the catalog is not a prefix of the DDL sent: `{name}` exists but an earlier \
             object does not ({present:?})"
        );
    }
    if ddl < DDL.len() {
        assert_eq!(
            out.status.code(),
            Some(1),
            "{context}: with an incomplete catalog the view queries fail:\n{stderr}"
        );
        assert!(stderr.contains("unknown"), "{context}: {stderr}");
        return Observed {
            ddl,
            m: 0,
            blocks: Vec::new(),
            stderr,
        };
    }
    assert!(
        out.status.success(),
        "{context}: restart failed ({}):\n{stderr}",
        out.status
    );
    assert_eq!(
        blocks.len(),
        QUERIES.len(),
        "{context}: unexpected output:\n{stdout}"
    );
    let totals = blocks[2].lines().nth(1).unwrap_or_default();
    let m = totals
        .split(',')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{context}: cannot read totals: {totals:?}"));
    Observed {
        ddl,
        m,
        blocks: blocks[2..].to_vec(),
        stderr,
    }
}

/// Starts a process that opens the data directory, and kills it after `delay` (recovery
/// itself must be safe to interrupt).
fn kill_during_recovery(data: &Path, settings: &Settings, delay: Duration) {
    let mut cmd = strata(data);
    settings.apply(&mut cmd);
    let mut child = cmd
        .args(["sql", "SHOW SOURCES"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn strata");
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = wait_or_kill(&mut child, PROCESS_TIMEOUT);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Route {
    Ingest,
    Sql,
}

#[derive(Default, Debug)]
struct Stats {
    trials: usize,
    killed: usize,
    finished: usize,
    with_acks: usize,
    acked_rows: u64,
    lost_unacked_rows: u64,
    torn_tails: usize,
    interrupted_checkpoints: usize,
    killed_in_ddl: usize,
    recovery_kills: usize,
    checkpoint_runs: usize,
    checkpoint_kills: usize,
    max_rows: u64,
}

/// The input of one trial: DDL still missing, then rows `first..first + rows`.
struct Trial {
    args: Vec<String>,
    /// Row counts at which the run may have stopped (batch or statement boundaries),
    /// relative to `first - 1`.
    boundaries: Vec<u64>,
    sent: u64,
}

fn ingest_trial(work: &Path, rng: &mut Rng, ddl: usize, first: u64) -> Trial {
    let rows = rng.range(10_000, 40_000);
    let batch = rng.range(20, 300);
    let mut csv = String::with_capacity(rows as usize * 20);
    csv.push_str("k,v,seq\n");
    for seq in first..first + rows {
        let _ = writeln!(csv, "{},{},{seq}", key(seq), val(seq));
    }
    let input = work.join("input.csv");
    fs::write(&input, csv).unwrap();
    let mut args = vec![
        "ingest".to_string(),
        "events".to_string(),
        input.display().to_string(),
        "--batch-size".to_string(),
        batch.to_string(),
    ];
    if ddl < DDL.len() {
        let init = work.join("init.sql");
        let text: Vec<&str> = DDL[ddl..].iter().map(|(_, sql)| *sql).collect();
        fs::write(&init, text.join(";\n") + ";\n").unwrap();
        args.extend(["--init".to_string(), init.display().to_string()]);
    }
    let mut boundaries: Vec<u64> = (0..=rows / batch).map(|b| b * batch).collect();
    boundaries.push(rows);
    Trial {
        args,
        boundaries,
        sent: rows,
    }
}

fn sql_trial(work: &Path, rng: &mut Rng, ddl: usize, first: u64) -> Trial {
    let statements = rng.range(200, 1500);
    let marker_every = rng.range(1, 10);
    let mut script = String::new();
    for (_, sql) in &DDL[ddl..] {
        let _ = writeln!(script, "{sql};");
    }
    let mut seq = first;
    let mut boundaries = vec![0];
    for i in 0..statements {
        let n = rng.range(1, 8);
        script.push_str("INSERT INTO events VALUES ");
        for j in 0..n {
            let s = seq + j;
            let sep = if j + 1 == n { ";\n" } else { ", " };
            let _ = write!(script, "({}, {}, {s}){sep}", key(s), val(s));
        }
        seq += n;
        boundaries.push(seq - first);
        if (i + 1) % marker_every == 0 {
            let _ = writeln!(script, "SELECT {} AS ack, p FROM pad;", seq - 1);
        }
    }
    let file = work.join("big.sql");
    fs::write(&file, script).unwrap();
    Trial {
        args: vec![
            "sql".into(),
            "-f".into(),
            file.display().to_string(),
            "--format".into(),
            "csv".into(),
        ],
        boundaries,
        sent: seq - first,
    }
}

/// The highest acknowledged `seq` a run's output proves (0 if none).
fn acknowledged(path: Route, first: u64, stdout: &str, stderr: &str) -> u64 {
    match path {
        // "... DEBUG strata: acknowledged 1200 rows of events"
        Route::Ingest => stderr
            .lines()
            .filter_map(|l| l.split("acknowledged ").nth(1))
            .filter_map(|rest| rest.split(' ').next()?.parse::<u64>().ok())
            .max()
            .map_or(0, |rows| first - 1 + rows),
        // "<seq>,xxxx…" (possibly cut short by the kill)
        Route::Sql => stdout
            .lines()
            .filter_map(|l| l.split_once(','))
            .filter(|(_, pad)| pad.starts_with('x'))
            .filter_map(|(n, _)| n.parse::<u64>().ok())
            .max()
            .unwrap_or(0),
    }
}

/// How long a `strata` process takes to open a fresh data directory, answer and exit
/// (the best of three, in ms): the part of a run before its first statement.
fn startup_ms() -> u64 {
    let tmp = tempfile::tempdir().unwrap();
    (0..3)
        .map(|_| {
            let began = Instant::now();
            let out = strata(&tmp.path().join("data"))
                .args(["sql", "SHOW TABLES"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            began.elapsed().as_millis() as u64
        })
        .min()
        .unwrap()
}

fn crash_trials(path: Route, default_seed: u64) {
    let seed = env_number("STRATA_CRASH_SEED").unwrap_or(default_seed);
    let trials = env_number("STRATA_CRASH_TRIALS").map_or(DEFAULT_TRIALS, |n| n.max(1) as usize);
    let mut rng = Rng(SplitMix64(seed));
    let mut stats = Stats::default();
    let startup = startup_ms();
    let start = Instant::now();
    let mut trial = 0;
    while trial < trials {
        if trial >= DEFAULT_TRIALS && start.elapsed() > EXTRA_BUDGET {
            eprintln!("{path:?}: stopping after {trial} trials (time budget)");
            break;
        }
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut model = Model::new();
        let mut ddl = 0;
        if path == Route::Sql {
            let pad = "x".repeat(PAD);
            let out = strata(&data)
                .args(["sql", "CREATE TABLE pad (k BIGINT PRIMARY KEY, p VARCHAR)"])
                .arg(format!("INSERT INTO pad VALUES (1, '{pad}')"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for _ in 0..CHAIN {
            if trial >= trials {
                break;
            }
            let context =
                format!("{path:?} trial {trial} (seed {seed}, STRATA_CRASH_SEED to repeat)");
            let settings = Settings::random(&mut rng);
            if ddl == DDL.len() && rng.chance(20) {
                if rng.chance(50) {
                    // Killed somewhere in its open, snapshot write or WAL cleanup.
                    let mut cmd = strata(&data);
                    settings.apply(&mut cmd);
                    let mut child = cmd
                        .arg("checkpoint")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap();
                    std::thread::sleep(Duration::from_millis(rng.below(40)));
                    let _ = child.kill();
                    let _ = wait_or_kill(&mut child, PROCESS_TIMEOUT);
                    stats.checkpoint_kills += 1;
                } else {
                    let mut cmd = strata(&data);
                    settings.apply(&mut cmd);
                    let out = cmd.arg("checkpoint").output().unwrap();
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert!(out.status.success(), "{context}: strata checkpoint: {err}");
                    stats.checkpoint_runs += 1;
                }
            }
            let first = model.m + 1;
            let t = match path {
                Route::Ingest => ingest_trial(tmp.path(), &mut rng, ddl, first),
                Route::Sql => sql_trial(tmp.path(), &mut rng, ddl, first),
            };
            // Mostly somewhere in the run, after the process has started (on a loaded machine
            // or in a slower tier that takes longer); sometimes within its first milliseconds
            // (DDL). Fsyncs make `always` slow; the other policies finish a run in tens of ms.
            let window = if settings.sync == "always" { 300 } else { 150 };
            let delay = if rng.chance(20) {
                rng.below(20)
            } else {
                startup + rng.range(5, window)
            };
            let mut cmd = strata(&data);
            settings.apply(&mut cmd);
            let (out_path, err_path) = (tmp.path().join("stdout"), tmp.path().join("stderr"));
            let mut child = cmd
                .env("STRATA_LOG", "strata=debug")
                .args(&t.args)
                .stdout(fs::File::create(&out_path).unwrap())
                .stderr(fs::File::create(&err_path).unwrap())
                .spawn()
                .expect("spawn strata");
            std::thread::sleep(Duration::from_millis(delay));
            let _ = child.kill();
            let status = wait_or_kill(&mut child, PROCESS_TIMEOUT);
            let stdout = String::from_utf8_lossy(&fs::read(&out_path).unwrap()).to_string();
            let stderr = String::from_utf8_lossy(&fs::read(&err_path).unwrap()).to_string();
            let context = format!("{context}, {settings:?}, killed after {delay} ms");
            assert_no_panic(&context, &stderr);
            let killed = status.code().is_none();
            if !killed {
                assert!(
                    status.success(),
                    "{context}: the run failed on its own ({status}):\n{stderr}"
                );
            }
            let acked = if killed {
                acknowledged(path, first, &stdout, &stderr)
            } else {
                first - 1 + t.sent
            };

            if rng.chance(20) {
                kill_during_recovery(&data, &settings, Duration::from_millis(rng.below(15)));
                stats.recovery_kills += 1;
            }
            let seen = observe(&data, &context);
            assert!(
                seen.ddl >= ddl,
                "{context}: DDL from an earlier run was lost"
            );
            if acked > 0 || !killed {
                assert_eq!(
                    seen.ddl,
                    DDL.len(),
                    "{context}: acknowledged DDL is missing"
                );
            }
            if seen.ddl < DDL.len() {
                stats.killed_in_ddl += 1;
            } else {
                let m = seen.m;
                assert!(
                    m >= model.m,
                    "{context}: rows acknowledged by an earlier run were lost: {} before, {m} now",
                    model.m
                );
                assert!(
                    m <= first - 1 + t.sent,
                    "{context}: {m} rows present but only {} were sent",
                    first - 1 + t.sent
                );
                assert!(
                    m >= acked,
                    "{context}: acknowledged rows are missing: acknowledged up to seq {acked}, present {m}"
                );
                assert!(
                    t.boundaries.contains(&(m - (first - 1))),
                    "{context}: {} rows of this run survived, which is not a batch/statement boundary \
                     (a batch or statement was applied in part)",
                    m - (first - 1)
                );
                model.advance_to(m);
                let expected = model.expected();
                for (i, (got, want)) in seen.blocks.iter().zip(&expected).enumerate() {
                    assert_eq!(
                        got,
                        want,
                        "{context}: `{}` does not match the recomputation from seq 1..={m}",
                        QUERIES[i + 2]
                    );
                }
                stats.lost_unacked_rows += m.saturating_sub(acked.max(first - 1));
                stats.max_rows = stats.max_rows.max(m);
            }
            ddl = seen.ddl;
            stats.trials += 1;
            stats.killed += killed as usize;
            stats.finished += !killed as usize;
            stats.with_acks += (killed && acked >= first) as usize;
            stats.acked_rows += acked.saturating_sub(first - 1);
            stats.torn_tails += seen.stderr.contains("torn WAL tail") as usize;
            stats.interrupted_checkpoints +=
                seen.stderr.contains("interrupted checkpoint") as usize;
            trial += 1;
        }
    }
    eprintln!(
        "{path:?}: seed {seed}, {:.1} s, {stats:#?}",
        start.elapsed().as_secs_f64()
    );
    assert!(
        stats.with_acks > 0,
        "no killed run showed an acknowledgement: the trials only prove prefixes, not durability"
    );
    assert!(
        stats.killed > 0,
        "no trial was killed mid-run; the kill window is off"
    );
}

#[test]
fn batch_ingest_survives_sigkill() {
    crash_trials(Route::Ingest, 0x5EED_0001);
}

#[test]
fn sql_inserts_survive_sigkill() {
    crash_trials(Route::Sql, 0x5EED_0002);
}

/// The pieces the trials rely on: the recomputation matches a clean run, and the
/// acknowledgement parsers read what the CLI prints.
#[test]
fn clean_run_matches_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut rng = Rng(SplitMix64(7));
    let t = ingest_trial(tmp.path(), &mut rng, 0, 1);
    let out = strata(&data)
        .env("STRATA_LOG", "strata=debug")
        .args(&t.args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let acked = acknowledged(Route::Ingest, 1, "", &stderr);
    assert_eq!(
        acked, t.sent,
        "`strata ingest` at STRATA_LOG=strata=debug logs `acknowledged N rows` per batch:\n{stderr}"
    );
    let seen = observe(&data, "clean run");
    let mut model = Model::new();
    model.advance_to(t.sent);
    assert_eq!(seen.m, t.sent);
    assert_eq!(seen.blocks, model.expected());
    assert_eq!(
        acknowledged(
            Route::Sql,
            0,
            &format!("ack,p\n12,{}\n\nack,p\n15,xx", "x".repeat(20)),
            ""
        ),
        15
    );
}

/// A second process on a directory in use fails at once, naming the holder; the killed
/// holder's lock is gone with it.
#[test]
fn lock_names_the_holder_and_dies_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let script = tmp.path().join("slow.sql");
    let out = strata(&data)
        .args(["sql", "CREATE TABLE t (k BIGINT PRIMARY KEY)"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut text = String::new();
    for i in 0..200_000 {
        let _ = writeln!(text, "INSERT INTO t VALUES ({i});");
    }
    fs::write(&script, text).unwrap();
    let mut holder = strata(&data)
        .args(["sql", "-f"])
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until the holder has written its pid into LOCK.
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = holder.id().to_string();
    while fs::read_to_string(data.join("LOCK"))
        .unwrap_or_default()
        .trim()
        != pid
    {
        assert!(Instant::now() < deadline, "the holder never took the lock");
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = strata(&data).args(["sql", "SHOW TABLES"]).output().unwrap();
    let still_running = holder.try_wait().unwrap().is_none();
    let _ = holder.kill();
    let _ = wait_or_kill(&mut holder, PROCESS_TIMEOUT);
    let err = String::from_utf8_lossy(&out.stderr);
    if still_running {
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("in use by another strata process"), "{err}");
        assert!(err.contains(&format!("(pid {pid})")), "{err}");
    }
    let out = strata(&data)
        .args(["sql", "SHOW TABLES", "--format", "csv"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the killed holder's lock must be gone: {err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "name\nt\n");
}

/// Ctrl-C (SIGINT) during `strata ingest`: it stops after the batch in flight and says how
/// many rows were acknowledged — exactly the rows a restart finds.
#[test]
fn interrupted_ingest_reports_exactly_what_was_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut rng = Rng(SplitMix64(11));
    let mut t = ingest_trial(tmp.path(), &mut rng, 0, 1);
    // Small batches, so that the run lasts well beyond the first acknowledgement.
    let at = t.args.iter().position(|a| a == "--batch-size").unwrap();
    t.args[at + 1] = "25".into();
    let err_path = tmp.path().join("stderr");
    let mut child = strata(&data)
        .env("STRATA_LOG", "strata=debug")
        .args(&t.args)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    // Interrupt once the first batch is acknowledged (the handler is installed by then).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fs::read_to_string(&err_path)
        .unwrap_or_default()
        .contains("acknowledged")
    {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(30));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = wait_or_kill(&mut child, PROCESS_TIMEOUT);
    let stderr = fs::read_to_string(&err_path).unwrap();
    assert_no_panic("interrupted ingest", &stderr);
    assert!(
        status.code().is_some(),
        "SIGINT must be handled, not kill the process ({status}):\n{stderr}"
    );
    let seen = observe(&data, "after SIGINT");
    if status.success() {
        eprintln!("note: the ingest finished before the interrupt");
        assert_eq!(seen.m, t.sent);
        return;
    }
    // "error: stopped after N rows were acknowledged: interrupted"
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    let reported: u64 = line
        .split("stopped after ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!("the interrupted ingest must report the acknowledged rows:\n{stderr}")
        });
    assert!(
        line.contains("acknowledged") && line.contains("interrupted"),
        "{line}"
    );
    assert_eq!(
        seen.m, reported,
        "a restart finds exactly the rows reported as acknowledged"
    );
    assert!(reported < t.sent, "{line}");
}

/// Durable: the process is SIGKILLed mid-ingest (checkpointing every few milliseconds) and
/// then the local data directory is lost too. The state comes back from the object store
/// alone, as of its last complete checkpoint: a prefix of the input cut at a batch boundary,
/// with every view agreeing with a recomputation from it.
#[cfg(feature = "object-store")]
#[test]
fn losing_the_local_disk_after_sigkill_recovers_the_last_checkpoint() {
    let seed = env_number("STRATA_CRASH_SEED").unwrap_or(0x5EED_0003);
    let trials =
        env_number("STRATA_CRASH_TRIALS").map_or(DEFAULT_TRIALS / 2, |n| n.max(1) as usize);
    let mut rng = Rng(SplitMix64(seed));
    let mut trials_with_rows = 0;
    for trial in 0..trials {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let t = ingest_trial(tmp.path(), &mut rng, 0, 1);
        let mut settings = Settings::random(&mut rng);
        settings.checkpoint_interval = if rng.chance(50) { "5ms" } else { "20ms" };
        let delay = rng.range(20, 300);
        let context = format!(
            "trial {trial} (seed {seed}, STRATA_CRASH_SEED to repeat), {settings:?}, killed after \
             {delay} ms"
        );
        let mut cmd = strata(&data);
        settings.apply(&mut cmd);
        let mut child = cmd
            .args(&t.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn strata");
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = wait_or_kill(&mut child, PROCESS_TIMEOUT);
        // (A cluster node killed before it started has no directory yet.)
        if data.exists() {
            fs::remove_dir_all(&data).unwrap();
        }

        let seen = observe(&data, &context);
        if seen.ddl < DDL.len() {
            continue; // killed before a checkpoint held the whole catalog
        }
        let m = seen.m;
        assert!(m <= t.sent, "{context}: {m} rows present, {} sent", t.sent);
        assert!(
            t.boundaries.contains(&m),
            "{context}: {m} rows is not a batch boundary (a batch was checkpointed in part)"
        );
        let mut model = Model::new();
        model.advance_to(m);
        for (i, (got, want)) in seen.blocks.iter().zip(&model.expected()).enumerate() {
            assert_eq!(
                got,
                want,
                "{context}: `{}` does not match the recomputation from seq 1..={m}",
                QUERIES[i + 2]
            );
        }
        trials_with_rows += (m > 0) as usize;
    }
    assert!(
        trials_with_rows > 0,
        "no trial checkpointed any row before the kill: the kill window is off"
    );
}
