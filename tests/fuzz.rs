//! Fuzz targets, driven by proptest on the stable toolchain (cargo-fuzz needs nightly).
//! Each target mutates real inputs — bit flips, interesting bytes, inserted, deleted and
//! repeated ranges — and feeds them to one decoder:
//!
//! - `sql_front_end`: statements of the `tests/sql` scripts, mutated, through
//!   `Engine::execute` (splitter, parser, planner, binder, evaluation) on an engine holding
//!   the scripts' objects;
//! - `wal_records` (persistent tiers): a data directory's WAL with one record's payload
//!   mutated and its checksum recomputed, so decoding goes past the checksum into the change
//!   image, opened by an engine;
//! - `snapshot_images` (persistent tiers): a snapshot whose body is mutated under a valid
//!   header and checksum, opened by an engine;
//! - `http_requests` (tiers with the server): `POST /sql` requests of a running `strata
//!   serve` — mutated statements as the body, raw or wrapped in JSON, under assorted content
//!   types, and mutated request heads — each answered with a well-formed status that is not
//!   a server fault, the server alive throughout and its peak RSS bounded.
//!
//! Every input must give `Ok` or an error — no panic — and allocate at most
//! [`ALLOCATION_BOUND`] beyond what was live before it (a counting global allocator checks
//! this: a length field claiming gigabytes must not be believed). `STRATA_FUZZ_INPUTS`
//! inputs per target (default 300: a few seconds each, as CI runs them); `scripts/fuzz TIER`
//! runs the long version (a million inputs per target, release build with overflow checks
//! and debug assertions) and prints each target's count and time.

mod common;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use strata::Engine;

/// The most one input may allocate beyond what was live before it.
const ALLOCATION_BOUND: usize = 256 << 20;

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size > layout.size() {
                let grown = new_size - layout.size();
                let live = LIVE.fetch_add(grown, Ordering::Relaxed) + grown;
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`, failing when it allocated more than [`ALLOCATION_BOUND`] beyond what was live.
/// (Tests of this file run one at a time, so other threads add little.)
fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    if grew > ALLOCATION_BOUND {
        return Err(TestCaseError::fail(format!(
            "{what} allocated {grew} bytes (bound {ALLOCATION_BOUND})"
        )));
    }
    Ok(out)
}

fn inputs() -> u32 {
    std::env::var("STRATA_FUZZ_INPUTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

/// Runs `target` on `inputs()` values of `strategy`, and prints the count and time.
fn fuzz<S: Strategy>(
    name: &str,
    strategy: S,
    mut target: impl FnMut(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    // One target at a time: the allocation counts are the process's.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let n = inputs();
    let mut runner = TestRunner::new(Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    });
    let target = std::cell::RefCell::new(&mut target);
    let ran = std::cell::Cell::new(0u64);
    let result = runner.run(&strategy, |input| {
        ran.set(ran.get() + 1);
        (target.borrow_mut())(input)
    });
    let (ran, seconds) = (ran.get(), started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() {
        "no failure"
    } else {
        "FAILED"
    };
    // `ran` counts shrinking steps after a failure too.
    eprintln!(
        "fuzz {name}: {ran} inputs in {seconds:.1}s ({:.0}/s), {outcome}",
        ran as f64 / seconds
    );
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}

/// One change to a byte string.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Repeat { at: usize, len: usize, times: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![
        0u8, 0xff, 0x7f, 0x80, b'\'', b'"', b';', b'(', b')', b'-', b'\\', b' ', b'\n', b'0', b'9',
    ]);
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (any::<usize>(), prop_oneof![interesting, any::<u8>()])
            .prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), 1usize..12, 2usize..64).prop_map(|(at, len, times)| Mutation::Repeat {
            at,
            len,
            times
        }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    for m in mutations {
        let n = bytes.len();
        let pos = |at: usize| if n == 0 { 0 } else { at % n };
        match m {
            Mutation::FlipBit { at, bit } if n > 0 => bytes[pos(*at)] ^= 1 << bit,
            Mutation::Set { at, byte } if n > 0 => bytes[pos(*at)] = *byte,
            Mutation::Insert { at, bytes: new } => {
                let at = if n == 0 { 0 } else { at % (n + 1) };
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Delete { at, len } if n > 0 => {
                let at = pos(*at);
                bytes.drain(at..(at + len).min(n));
            }
            Mutation::Repeat { at, len, times } if n > 0 => {
                let at = pos(*at);
                let piece = bytes[at..(at + len).min(n)].to_vec();
                let copies: Vec<u8> = piece
                    .iter()
                    .copied()
                    .cycle()
                    .take(piece.len() * times)
                    .collect();
                bytes.splice(at..at, copies);
            }
            _ => {}
        }
    }
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..6)
}

// ---------------------------------------------------------------------------------------
// SQL front end

/// Every statement of the `tests/sql` scripts (split at `;` line ends).
fn sql_corpus() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    names.sort();
    let mut statements = Vec::new();
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut current = String::new();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("--")) {
            current.push_str(line);
            current.push('\n');
            if line.trim_end().ends_with(';') {
                statements.push(std::mem::take(&mut current));
            }
        }
    }
    statements
}

/// An engine holding the objects the corpus's statements name.
fn corpus_engine(corpus: &[String]) -> Engine {
    let mut e = Engine::builder().ephemeral().build().unwrap();
    for s in corpus
        .iter()
        .filter(|s| s.trim_start().to_uppercase().starts_with("CREATE"))
    {
        let _ = e.execute(s);
    }
    e
}

#[test]
fn sql_front_end() {
    let corpus = sql_corpus();
    assert!(corpus.len() > 100, "{} statements", corpus.len());
    let mut engine = corpus_engine(&corpus);
    let mut runs = 0u32;
    fuzz(
        "sql_front_end",
        (0..corpus.len(), mutations()),
        |(i, muts)| {
            let mut bytes = corpus[i].clone().into_bytes();
            mutate(&mut bytes, &muts);
            let text = String::from_utf8_lossy(&bytes).to_string();
            // A fresh engine now and then: rows accumulate (and fill fixed capacities).
            runs += 1;
            if runs.is_multiple_of(500) {
                engine = corpus_engine(&corpus);
            }
            let result = bounded("statement", || engine.execute(&text))?;
            if let Err(e) = result {
                let message = e.to_string();
                prop_assert!(
                    !message.contains('\n'),
                    "a multi-line error for {text:?}: {message}"
                );
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------
// WAL records and snapshot images (persistent tiers)

#[cfg(all(feature = "persistence", not(feature = "cluster")))]
mod files {
    use super::*;
    use crate::common::cli::copy_dir;
    use std::path::{Path, PathBuf};
    use strata::checkpoint::{PersistSettings, SyncMode};
    use strata::testing::crc32c;
    use strata::testing::snapshot::SnapshotHeader;
    use strata::testing::wal::{FRAME_HEADER_LEN, HEADER_LEN};

    const SEED_SQL: &str = "
        CREATE SOURCE ev (k BIGINT NOT NULL, name VARCHAR, v DOUBLE, ts TIMESTAMP, ok BOOLEAN);
        CREATE MATERIALIZED VIEW by_k AS SELECT k, COUNT(*) AS n, SUM(v) AS total, MAX(name) AS top,
            COUNT(DISTINCT name) AS names FROM ev GROUP BY k;
        CREATE MATERIALIZED VIEW sessions AS SELECT k, window_start, COUNT(*) AS n
            FROM SESSION(ev, ts, INTERVAL '10' SECOND) GROUP BY k, window_start;
        CREATE TABLE kv (id BIGINT PRIMARY KEY, label VARCHAR, price DOUBLE);
        INSERT INTO ev VALUES (1, 'a', 1.5, '2026-01-01 00:00:10', true), (2, NULL, NULL, NULL, NULL),
            (1, 'b', 2.5, '2026-01-01 00:00:15', false);
        INSERT INTO kv VALUES (1, 'one', 1.0), (2, 'two', NULL);
        UPDATE kv SET price = 3.0 WHERE id = 2;
        DELETE FROM kv WHERE id = 1;
        INSERT INTO ev VALUES (3, 'c', -1.0, '2026-01-01 00:01:00', true);";

    fn settings(data: &Path) -> PersistSettings {
        PersistSettings {
            data_dir: data.to_path_buf(),
            sync: SyncMode::Never,
            checkpoint_interval: None,
            indexes: false,
            object_store: crate::common_store(data),
            ..PersistSettings::default()
        }
    }

    /// A data directory made by the seed statements: `checkpoint` snapshots it first (then
    /// its state is in a snapshot), else everything is in the WAL.
    fn seed(dir: &Path, checkpoint: bool) {
        let mut e = Engine::builder().persist(settings(dir)).build().unwrap();
        e.execute(SEED_SQL).unwrap();
        if checkpoint {
            e.checkpoint().unwrap();
        }
        // Dropped without closing: a clean close would checkpoint (and empty the WAL).
        drop(e);
    }

    fn files_under(dir: &Path, sub: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Opens the data directory: any outcome but a panic or an unbounded allocation.
    fn open(data: &Path) -> Result<(), TestCaseError> {
        let opened = bounded("open", || Engine::builder().persist(settings(data)).build())?;
        if let Ok(mut e) = opened {
            let _ = e.query("SELECT * FROM by_k");
        }
        Ok(())
    }

    /// The frames of a WAL segment: (offset of the frame, payload length).
    fn frames(segment: &[u8]) -> Vec<(usize, usize)> {
        let mut at = HEADER_LEN as usize;
        let mut out = Vec::new();
        while at + FRAME_HEADER_LEN as usize <= segment.len() {
            let len = u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
            out.push((at, len));
            at += FRAME_HEADER_LEN as usize + len;
        }
        out
    }

    #[test]
    fn wal_records() {
        let seeds = tempfile::tempdir().unwrap();
        let seed_dir = seeds.path().join("data");
        seed(&seed_dir, false);
        let segment_path = files_under(&seed_dir, "wal").pop().unwrap();
        let segment = std::fs::read(&segment_path).unwrap();
        let records = frames(&segment);
        assert!(records.len() >= 8, "{} records", records.len());
        let work = tempfile::tempdir().unwrap();
        let mut case = 0u64;
        fuzz(
            "wal_records",
            (0..records.len(), mutations(), any::<bool>(), any::<bool>()),
            |(record, muts, fix_checksum, lie_about_length)| {
                let (at, len) = records[record];
                let start = at + FRAME_HEADER_LEN as usize;
                let mut payload = segment[start..start + len].to_vec();
                mutate(&mut payload, &muts);
                let lsn = u64::from_le_bytes(segment[at + 8..at + 16].try_into().unwrap());
                let mut frame = Vec::new();
                let claimed = if lie_about_length {
                    u32::MAX - 7
                } else {
                    payload.len() as u32
                };
                frame.extend_from_slice(&claimed.to_le_bytes());
                let crc = crc32c::crc32c_append(crc32c::crc32c(&lsn.to_le_bytes()), &payload);
                let crc = if fix_checksum { crc } else { crc ^ 1 };
                frame.extend_from_slice(&crc.to_le_bytes());
                frame.extend_from_slice(&lsn.to_le_bytes());
                frame.extend_from_slice(&payload);
                let mut bytes = segment[..at].to_vec();
                bytes.extend_from_slice(&frame);
                bytes.extend_from_slice(&segment[start + len..]);
                case += 1;
                let data = work.path().join(format!("case-{case}"));
                copy_dir(&seed_dir, &data);
                std::fs::write(
                    data.join("wal").join(segment_path.file_name().unwrap()),
                    &bytes,
                )
                .unwrap();
                let outcome = open(&data);
                let _ = std::fs::remove_dir_all(&data);
                outcome
            },
        );
    }

    #[test]
    fn snapshot_images() {
        let seeds = tempfile::tempdir().unwrap();
        let seed_dir = seeds.path().join("data");
        seed(&seed_dir, true);
        let Some(snapshot_path) = files_under(&seed_dir, "snapshots").pop() else {
            // The durable tier keeps its snapshots in the object store: nothing local.
            eprintln!("fuzz snapshot_images: no local snapshot in this tier");
            return;
        };
        let file = std::fs::read(&snapshot_path).unwrap();
        let header_len = strata::testing::snapshot::HEADER_LEN;
        let name = snapshot_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let lsn: u64 = name.split('.').next().unwrap().parse().unwrap();
        let body = file[header_len..].to_vec();
        let work = tempfile::tempdir().unwrap();
        let mut case = 0u64;
        fuzz("snapshot_images", mutations(), |muts| {
            let mut mutated = body.clone();
            mutate(&mut mutated, &muts);
            let mut bytes = SnapshotHeader::new(lsn, &mutated).encode().to_vec();
            bytes.extend_from_slice(&mutated);
            case += 1;
            let data = work.path().join(format!("case-{case}"));
            copy_dir(&seed_dir, &data);
            std::fs::write(data.join("snapshots").join(&name), &bytes).unwrap();
            let outcome = open(&data);
            let _ = std::fs::remove_dir_all(&data);
            outcome
        });
    }
}

/// The object store of the tier that needs one (durable): `file://` beside the data.
#[cfg(all(feature = "persistence", not(feature = "cluster")))]
fn common_store(data: &std::path::Path) -> strata::checkpoint::ObjectStoreSettings {
    strata::checkpoint::ObjectStoreSettings {
        url: Some(format!(
            "file://{}",
            data.parent()
                .unwrap()
                .join(format!(
                    "{}-store",
                    data.file_name().unwrap().to_string_lossy()
                ))
                .display()
        )),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------
// HTTP requests (tiers with the server)

#[cfg(feature = "server")]
#[test]
fn http_requests() {
    use std::io::{Read, Write};
    let corpus = sql_corpus();
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = common::cli::strata(Some(&tmp.path().join("data")));
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    let server = common::http::serve(cmd);
    let port = server.port;
    for s in corpus
        .iter()
        .filter(|s| s.trim_start().to_uppercase().starts_with("CREATE"))
    {
        common::http::sql(port, s);
    }
    let content_types = prop::sample::select(vec![
        "",
        "application/json",
        "text/plain",
        "application/json; charset=utf-8",
        "application/x-www-form-urlencoded",
        "application/jsonx",
    ]);
    fuzz(
        "http_requests",
        (
            0..corpus.len(),
            mutations(),
            any::<bool>(),
            content_types,
            any::<bool>(),
            mutations(),
        ),
        |(i, muts, as_json, content_type, mutate_head, head_muts)| {
            let mut body = corpus[i].clone().into_bytes();
            mutate(&mut body, &muts);
            if as_json {
                let text = String::from_utf8_lossy(&body).to_string();
                body = serde_json::json!({ "sql": text }).to_string().into_bytes();
                mutate(&mut body, &muts[..1]);
            }
            let mut head = format!(
                "POST /sql HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
                body.len()
            )
            .into_bytes();
            if !content_type.is_empty() {
                head.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
            }
            if mutate_head {
                mutate(&mut head, &head_muts);
            }
            head.extend_from_slice(b"\r\n");
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
                .map_err(|e| TestCaseError::fail(format!("the server stopped answering: {e}")))?;
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
            let _ = stream.write_all(&head);
            let _ = stream.write_all(&body);
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            let answer = String::from_utf8_lossy(&answer);
            // A request hyper cannot parse may be closed without an answer; otherwise a
            // status line, and never a server fault.
            if !answer.is_empty() {
                // (A mutated request line may ask for HTTP/1.0.)
                prop_assert!(answer.starts_with("HTTP/1."), "{answer}");
                let status: u16 = answer[9..12].parse().unwrap_or(0);
                prop_assert!(
                    (200..500).contains(&status),
                    "status {status} for {:?}: {answer}",
                    String::from_utf8_lossy(&body)
                );
            }
            Ok(())
        },
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    eprintln!(
        "fuzz http_requests: the server's peak RSS was {} MiB",
        peak_kb / 1024
    );
    assert!(peak_kb < 512 * 1024, "peak RSS {peak_kb} kB");
    let health = common::http::request(port, "GET", "/health", &[], b"");
    assert_eq!(health.status, 200, "{}", health.body);
}
