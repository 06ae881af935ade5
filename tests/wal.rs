//! The write-ahead log: round trips, recovery of torn tails and corruption, write errors,
//! sync policies. The throughput check at the end is `#[ignore]`d; run it by hand with
//! `cargo test --release --test wal -- --ignored --nocapture`.
#![cfg(feature = "persistence")]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata::checkpoint::SyncMode;
use strata::testing::wal::{
    segment_file_name, FaultInjector, OnCorruption, Recovered, Wal, FORMAT_VERSION,
    FRAME_HEADER_LEN, HEADER_LEN, MAX_RECORD_BYTES,
};
use strata::PersistError;

const BIG: u64 = 64 << 20;

/// A deterministic payload of varying length (0..=300 bytes) for `lsn`.
fn payload(lsn: u64) -> Vec<u8> {
    let len = (lsn * 37 % 301) as usize;
    (0..len)
        .map(|i| (lsn as usize * 31 + i * 7) as u8)
        .collect()
}

fn frame_len(lsn: u64) -> u64 {
    FRAME_HEADER_LEN + payload(lsn).len() as u64
}

fn open(dir: &Path, segment_bytes: u64) -> (Wal, Recovered) {
    Wal::open(dir, SyncMode::Never, segment_bytes, OnCorruption::Refuse).unwrap()
}

fn open_err(dir: &Path, repair: bool) -> PersistError {
    Wal::open(
        dir,
        SyncMode::Never,
        BIG,
        if repair {
            OnCorruption::Repair { covered_lsn: 0 }
        } else {
            OnCorruption::Refuse
        },
    )
    .unwrap_err()
}

/// Appends records `from..=to` (payload(lsn)), checking their LSNs.
fn append_range(wal: &mut Wal, from: u64, to: u64) {
    for lsn in from..=to {
        assert_eq!(wal.append(&payload(lsn)).unwrap(), lsn);
    }
}

fn collect(wal: &Wal, after: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut replay = wal.replay(after).unwrap();
    while let Some((lsn, bytes)) = replay.next_record().unwrap() {
        out.push((lsn, bytes.to_vec()));
    }
    out
}

/// Checks that the log holds exactly the records `first..=last` with their payloads.
fn assert_records(wal: &Wal, first: u64, last: u64) {
    let got = collect(wal, first - 1);
    let want: Vec<_> = (first..=last).map(|l| (l, payload(l))).collect();
    assert_eq!(got.len(), want.len(), "record count");
    assert!(got == want, "records differ");
    assert_eq!(wal.last_lsn(), last);
}

#[test]
fn wal_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<Wal>();
    send::<FaultInjector>();
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

/// Offset of the frame of `lsn` in a segment starting at `first`.
fn offset_of(first: u64, lsn: u64) -> u64 {
    HEADER_LEN + (first..lsn).map(frame_len).sum::<u64>()
}

#[test]
fn round_trip_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    {
        let (mut wal, rec) = open(&dir, 2048);
        assert_eq!(
            (rec.first_lsn, rec.last_lsn, rec.segments, rec.records()),
            (1, 0, 0, 0)
        );
        assert_eq!(wal.last_lsn(), 0);
        append_range(&mut wal, 1, 150);
        // A group commit of several records lands in one segment.
        let batch: Vec<Vec<u8>> = (151..=160).map(payload).collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        assert_eq!(wal.append_batch(&refs).unwrap(), 160);
        assert_eq!(wal.append_batch(&[]).unwrap(), 160);
        append_range(&mut wal, 161, 200);
        assert_records(&wal, 1, 200);
        wal.sync().unwrap();
    }
    let files = segments(&dir);
    assert!(
        files.len() > 5,
        "expected several segments, got {}",
        files.len()
    );
    assert_eq!(
        files[0].file_name().unwrap().to_str().unwrap(),
        "00000000000000000001.wal"
    );
    for f in &files[..files.len() - 1] {
        assert!(
            fs::metadata(f).unwrap().len() <= 2048,
            "segment over its size: {f:?}"
        );
    }
    let (wal, rec) = open(&dir, 2048);
    assert_eq!(
        (rec.first_lsn, rec.last_lsn, rec.segments),
        (1, 200, files.len())
    );
    assert_eq!(rec.truncated_tail, None);
    assert_eq!(rec.repaired, None);
    assert_eq!(
        rec.bytes,
        files
            .iter()
            .map(|f| fs::metadata(f).unwrap().len())
            .sum::<u64>()
    );
    assert_records(&wal, 1, 200);
    // Replay after an LSN skips earlier records (and whole segments).
    for after in [0, 1, 57, 150, 199, 200, 500] {
        let got = collect(&wal, after);
        let want: Vec<_> = (after + 1..=200).map(|l| (l, payload(l))).collect();
        assert!(got == want, "replay after {after}");
    }
    // A reader left midway changes nothing: the next one reads every record again.
    let mut replay = wal.replay(0).unwrap();
    for lsn in 1..=10 {
        assert_eq!(replay.next_record().unwrap().map(|(l, _)| l), Some(lsn));
    }
    drop(replay);
    assert_eq!(collect(&wal, 0).len(), 200);
}

#[test]
fn lsns_continue_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut next = 1;
    for round in 0..5 {
        let (mut wal, rec) = Wal::open(dir, SyncMode::Always, 1500, OnCorruption::Refuse).unwrap();
        assert_eq!(rec.last_lsn, next - 1, "round {round}");
        append_range(&mut wal, next, next + 19);
        next += 20;
    }
    let (wal, _) = open(dir, 1500);
    assert_records(&wal, 1, 100);
    // A log that starts later (after advance_past) continues from its first segment's name.
    let tmp2 = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(tmp2.path(), BIG);
    wal.advance_past(41).unwrap();
    assert_eq!(wal.append(b"x").unwrap(), 42);
    drop(wal);
    let (mut wal, rec) = open(tmp2.path(), BIG);
    assert_eq!((rec.first_lsn, rec.last_lsn), (42, 42));
    assert_eq!(wal.append(b"y").unwrap(), 43);
}

#[test]
fn torn_tail_at_every_offset_of_the_last_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // Two segments, so that the torn one is the last of several.
    {
        let (mut wal, _) = open(&src, 2000);
        append_range(&mut wal, 1, 30);
    }
    let files = segments(&src);
    assert!(files.len() >= 2);
    let last = files.last().unwrap();
    let first_lsn: u64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let full = fs::read(last).unwrap();
    let start = offset_of(first_lsn, 30); // the last frame
    assert_eq!(start + frame_len(30), full.len() as u64);

    for cut in start..full.len() as u64 {
        let dir = tmp.path().join(format!("cut{cut}"));
        fs::create_dir(&dir).unwrap();
        for f in &files {
            fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
        }
        let torn = dir.join(last.file_name().unwrap());
        fs::write(&torn, &full[..cut as usize]).unwrap();

        let (mut wal, rec) = open(&dir, 2000);
        if cut == start {
            assert_eq!(
                rec.truncated_tail, None,
                "cut at a frame boundary is a clean log"
            );
        } else {
            let t = rec.truncated_tail.expect("torn tail reported");
            assert_eq!(t.file, torn);
            assert_eq!(t.offset, start, "cut {cut}");
            assert_eq!(t.bytes_dropped, cut - start, "cut {cut}");
        }
        assert_eq!(rec.repaired, None);
        assert_eq!(fs::metadata(&torn).unwrap().len(), start);
        assert_records(&wal, 1, 29);
        // Later appends continue the log, and a reopen sees them.
        append_range(&mut wal, 30, 31);
        drop(wal);
        let (wal, rec) = open(&dir, 2000);
        assert_eq!(rec.truncated_tail, None);
        assert_records(&wal, 1, 31);
    }

    // A tail the file system extended with zeros (size persisted, data not) is torn too.
    let dir = tmp.path().join("zeros");
    fs::create_dir(&dir).unwrap();
    for f in &files {
        fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
    }
    let mut tail = fs::OpenOptions::new()
        .append(true)
        .open(dir.join(last.file_name().unwrap()))
        .unwrap();
    tail.write_all(&[0u8; 700]).unwrap();
    drop(tail);
    let (wal, rec) = open(&dir, 2000);
    let t = rec.truncated_tail.unwrap();
    assert_eq!((t.offset, t.bytes_dropped), (full.len() as u64, 700));
    assert_records(&wal, 1, 30);
}

#[test]
fn partial_segment_header_in_last_segment_is_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (mut wal, _) = open(dir, BIG);
        append_range(&mut wal, 1, 5);
    }
    // As if a crash interrupted the creation of segment 6 after its rename.
    let next = dir.join(segment_file_name(6));
    fs::write(&next, b"STRATA").unwrap();
    // And a leftover temporary file of another creation.
    fs::write(dir.join(format!("{}.tmp", segment_file_name(7))), b"junk").unwrap();
    fs::write(dir.join("README.txt"), b"not a segment").unwrap();
    let (mut wal, rec) = open(dir, BIG);
    let t = rec.truncated_tail.unwrap();
    assert_eq!((t.file, t.offset, t.bytes_dropped), (next.clone(), 0, 6));
    assert!(!next.exists());
    assert!(!dir.join(format!("{}.tmp", segment_file_name(7))).exists());
    assert!(
        dir.join("README.txt").exists(),
        "unrelated files are left alone"
    );
    assert_records(&wal, 1, 5);
    append_range(&mut wal, 6, 6);
}

#[test]
fn flipped_byte_in_a_middle_record_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    {
        let (mut wal, _) = open(&src, BIG);
        append_range(&mut wal, 1, 20);
    }
    let seg = segments(&src)[0].clone();
    let seg_len = fs::metadata(&seg).unwrap().len();
    // Damage record 8: in its payload, its CRC, its LSN, and its length field (which makes
    // it look like it runs to the end of the file: the valid records after it tell).
    let at = offset_of(1, 8);
    for (what, byte) in [
        ("payload", at + FRAME_HEADER_LEN + 3),
        ("crc", at + 5),
        ("lsn", at + 9),
        ("length", at + 2),
    ] {
        let dir = tmp.path().join(what);
        fs::create_dir(&dir).unwrap();
        let file = dir.join(seg.file_name().unwrap());
        fs::copy(&seg, &file).unwrap();
        flip_byte(&file, byte);

        match open_err(&dir, false) {
            PersistError::CorruptWal {
                file: f,
                offset,
                reason,
            } => {
                assert_eq!(f, file.display().to_string(), "{what}");
                assert_eq!(offset, at, "{what}: {reason}");
            }
            e => panic!("{what}: expected CorruptWal, got {e}"),
        }
        // Nothing was changed by the failed open.
        assert_eq!(fs::metadata(&file).unwrap().len(), seg_len);

        let (mut wal, rec) = Wal::open(
            &dir,
            SyncMode::Always,
            BIG,
            OnCorruption::Repair { covered_lsn: 0 },
        )
        .unwrap();
        let r = rec.repaired.expect("repair reported");
        assert_eq!(
            (r.file.clone(), r.offset, r.bytes_dropped),
            (file.clone(), at, seg_len - at)
        );
        assert_eq!(rec.truncated_tail, None);
        assert_records(&wal, 1, 7);
        append_range(&mut wal, 8, 12);
        drop(wal);
        let (wal, rec) = open(&dir, BIG);
        assert_eq!((rec.truncated_tail, rec.repaired), (None, None));
        assert_records(&wal, 1, 12);
    }
}

#[test]
fn corruption_in_an_earlier_segment_drops_later_segments_on_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (mut wal, _) = open(dir, 1500);
        append_range(&mut wal, 1, 60);
    }
    let files = segments(dir);
    assert!(files.len() >= 4);
    // The last record of the second segment: a bad frame with nothing valid after it in
    // its file, but later segments follow, so it is corruption, not a torn tail.
    let second_first: u64 = files[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let third_first: u64 = files[2]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let victim = third_first - 1;
    let at = offset_of(second_first, victim);
    flip_byte(&files[1], at + FRAME_HEADER_LEN);
    match open_err(dir, false) {
        PersistError::CorruptWal { file, offset, .. } => {
            assert_eq!((file, offset), (files[1].display().to_string(), at));
        }
        e => panic!("expected CorruptWal, got {e}"),
    }
    let later: u64 = files[2..]
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .sum();
    let len1 = fs::metadata(&files[1]).unwrap().len();
    let (mut wal, rec) = Wal::open(
        dir,
        SyncMode::Never,
        1500,
        OnCorruption::Repair { covered_lsn: 0 },
    )
    .unwrap();
    let r = rec.repaired.unwrap();
    assert_eq!((r.offset, r.bytes_dropped), (at, len1 - at + later));
    assert_eq!(segments(dir), files[..2].to_vec());
    assert_records(&wal, 1, victim - 1);
    append_range(&mut wal, victim, victim + 3);
    drop(wal);
    let (wal, _) = open(dir, 1500);
    assert_records(&wal, 1, victim + 3);
}

#[test]
fn missing_middle_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (mut wal, _) = open(dir, 1500);
        append_range(&mut wal, 1, 60);
    }
    let files = segments(dir);
    fs::remove_file(&files[1]).unwrap();
    match open_err(dir, false) {
        PersistError::CorruptWal {
            file,
            offset,
            reason,
        } => {
            assert_eq!((file, offset), (files[2].display().to_string(), 0));
            assert!(reason.contains("missing or out of order"), "{reason}");
        }
        e => panic!("expected CorruptWal, got {e}"),
    }
    let (mut wal, rec) = Wal::open(
        dir,
        SyncMode::Never,
        1500,
        OnCorruption::Repair { covered_lsn: 0 },
    )
    .unwrap();
    assert_eq!(rec.repaired.unwrap().offset, 0);
    assert_eq!(segments(dir), files[..1].to_vec());
    let first_of_missing: u64 = files[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_records(&wal, 1, first_of_missing - 1);
    append_range(&mut wal, first_of_missing, first_of_missing);
}

#[test]
fn flipped_byte_in_the_last_record_is_a_torn_tail() {
    // The last record cannot be told apart from an append whose data blocks did not all
    // reach the disk before a crash (its fsync had not returned, so it was not
    // acknowledged): it is dropped with a warning rather than stopping startup.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (mut wal, _) = open(dir, BIG);
        append_range(&mut wal, 1, 10);
    }
    let seg = segments(dir)[0].clone();
    let len = fs::metadata(&seg).unwrap().len();
    let at = offset_of(1, 10);
    flip_byte(&seg, at + FRAME_HEADER_LEN + 1);
    let (wal, rec) = open(dir, BIG);
    let t = rec.truncated_tail.unwrap();
    assert_eq!((t.offset, t.bytes_dropped), (at, len - at));
    assert!(t.reason.contains("checksum"), "{}", t.reason);
    assert_eq!(rec.repaired, None);
    assert_records(&wal, 1, 9);
}

#[test]
fn newer_format_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (mut wal, _) = open(dir, BIG);
        append_range(&mut wal, 1, 3);
    }
    let seg = segments(dir)[0].clone();
    let mut bytes = fs::read(&seg).unwrap();
    bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    fs::write(&seg, &bytes).unwrap();
    for repair in [false, true] {
        match open_err(dir, repair) {
            PersistError::UnsupportedVersion {
                file,
                found,
                supported,
            } => {
                assert_eq!(file, seg.display().to_string());
                assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
            }
            e => panic!("expected UnsupportedVersion, got {e}"),
        }
    }
    assert_eq!(
        fs::read(&seg).unwrap(),
        bytes,
        "refused files are not touched"
    );
}

#[test]
fn bad_magic_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (mut wal, _) = open(dir, BIG);
        append_range(&mut wal, 1, 3);
    }
    let seg = segments(dir)[0].clone();
    flip_byte(&seg, 2);
    for repair in [false, true] {
        match open_err(dir, repair) {
            PersistError::BadMagic { file, kind } => {
                assert_eq!(file, seg.display().to_string());
                assert_eq!(kind, "WAL segment");
            }
            e => panic!("expected BadMagic, got {e}"),
        }
    }
    // A damaged header checksum is corruption (repairable), not a foreign file.
    flip_byte(&seg, 2);
    flip_byte(&seg, 21);
    match open_err(dir, false) {
        PersistError::CorruptWal {
            offset: 0, reason, ..
        } => assert!(reason.contains("header")),
        e => panic!("expected CorruptWal, got {e}"),
    }
}

fn open_faulty(dir: &Path, policy: SyncMode, segment_bytes: u64) -> (Wal, FaultInjector) {
    let faults = FaultInjector::new();
    let (wal, _) = Wal::open_with(
        dir,
        policy,
        segment_bytes,
        OnCorruption::Refuse,
        Arc::new(faults.clone()),
    )
    .unwrap();
    (wal, faults)
}

/// Appends a record whose write or fsync fails, checks the error and the rollback, then
/// checks that the log goes on and that a reopen does not see the failed record.
fn check_failed_append(arm: impl Fn(&FaultInjector), op: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, faults) = open_faulty(dir, SyncMode::Always, BIG);
    append_range(&mut wal, 1, 5);
    let seg = segments(dir)[0].clone();
    let len = fs::metadata(&seg).unwrap().len();
    arm(&faults);
    match wal.append(b"this record must never be seen") {
        Err(PersistError::Io {
            op: o,
            path,
            cause: source,
        }) => {
            assert_eq!(o, op);
            assert_eq!(path, seg.display().to_string());
            assert!(source.to_string().contains("injected"), "{source}");
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
    assert_eq!(fs::metadata(&seg).unwrap().len(), len, "rolled back");
    assert_eq!(wal.last_lsn(), 5);
    append_range(&mut wal, 6, 8);
    drop(wal);
    let (wal, rec) = open(dir, BIG);
    assert_eq!((rec.truncated_tail, rec.repaired), (None, None));
    assert_records(&wal, 1, 8);
}

#[test]
fn failed_write_is_rolled_back() {
    check_failed_append(|f| f.fail_write(1), "write");
}

#[test]
fn failed_fsync_is_rolled_back() {
    check_failed_append(|f| f.fail_sync(1), "fsync");
}

#[test]
fn failed_rollback_poisons() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, faults) = open_faulty(dir, SyncMode::Always, BIG);
    append_range(&mut wal, 1, 5);
    faults.fail_write(1);
    faults.fail_set_len(1);
    let err = wal.append(&payload(6)).unwrap_err();
    match &err {
        PersistError::Poisoned(m) => {
            assert!(m.contains("write") && m.contains("truncating"), "{m}");
        }
        e => panic!("expected Poisoned, got {e}"),
    }
    assert!(err.to_string().contains("restart strata"));
    assert!(matches!(
        wal.append(b"later"),
        Err(PersistError::Poisoned(_))
    ));
    assert!(matches!(wal.sync(), Err(PersistError::Poisoned(_))));
    assert!(matches!(
        wal.remove_segments_before(100),
        Err(PersistError::Poisoned(_))
    ));
    assert!(matches!(collect_err(&wal), PersistError::Poisoned(_)));
    drop(wal);
    // The restart: the half-written frame is a torn tail; the failed record is not there.
    let (mut wal, rec) = open(dir, BIG);
    let t = rec
        .truncated_tail
        .expect("the half-written record is a torn tail");
    assert_eq!(t.offset, offset_of(1, 6));
    assert_records(&wal, 1, 5);
    append_range(&mut wal, 6, 7);
}

fn collect_err(wal: &Wal) -> PersistError {
    let mut replay = match wal.replay(0) {
        Ok(replay) => replay,
        Err(e) => return e,
    };
    loop {
        match replay.next_record() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the whole log was read without an error"),
            Err(e) => return e,
        }
    }
}

#[test]
fn failed_write_on_a_fresh_segment_is_rolled_back() {
    // The record that starts a new segment fails: the segment stays (header only) and
    // the next record goes there with the same LSN.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, faults) = open_faulty(dir, SyncMode::Always, 600);
    append_range(&mut wal, 1, 3);
    let mut lsn = 4;
    loop {
        let before = segments(dir).len();
        faults.fail_write(1);
        assert!(wal.append(&payload(lsn)).is_err());
        if segments(dir).len() > before {
            break; // the failed record was the first of a new segment
        }
        faults.fail_write(0);
        assert_eq!(wal.append(&payload(lsn)).unwrap(), lsn);
        lsn += 1;
        assert!(lsn < 100);
    }
    let fresh = segments(dir).last().unwrap().clone();
    assert_eq!(
        fresh.file_name().unwrap().to_str().unwrap(),
        segment_file_name(lsn)
    );
    assert_eq!(fs::metadata(&fresh).unwrap().len(), HEADER_LEN);
    faults.fail_write(0);
    assert_eq!(wal.last_lsn(), lsn - 1);
    append_range(&mut wal, lsn, lsn + 2);
    drop(wal);
    let (wal, _) = open(dir, 600);
    assert_records(&wal, 1, lsn + 2);
}

#[test]
fn remove_segments_before_keeps_what_replay_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = open(dir, 1500);
    append_range(&mut wal, 1, 80);
    let files = segments(dir);
    let firsts: Vec<u64> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect();
    assert!(files.len() >= 4);
    // A snapshot covers records up to firsts[2]: the segments before the one holding
    // firsts[2] + 1 go.
    let snap = firsts[2];
    assert_eq!(wal.remove_segments_before(snap + 1).unwrap(), 2);
    assert_eq!(segments(dir), files[2..].to_vec());
    assert_eq!(wal.first_lsn(), firsts[2]);
    let got = collect(&wal, snap);
    assert_eq!(got.first().unwrap().0, snap + 1);
    assert_eq!(got.last().unwrap().0, 80);
    // Records that were removed cannot be replayed.
    assert!(matches!(collect_err(&wal), PersistError::CorruptWal { .. }));
    assert_eq!(wal.remove_segments_before(snap + 1).unwrap(), 0);
    // The current segment is never removed.
    wal.remove_segments_before(u64::MAX).unwrap();
    assert_eq!(segments(dir), vec![files.last().unwrap().clone()]);
    append_range(&mut wal, 81, 82);
    drop(wal);
    let (wal, rec) = open(dir, 1500);
    assert_eq!(rec.first_lsn, *firsts.last().unwrap());
    assert_eq!(collect(&wal, rec.first_lsn - 1).last().unwrap().0, 82);
}

#[test]
fn advance_past_a_newer_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = open(dir, 1500);
    append_range(&mut wal, 1, 40);
    wal.advance_past(30).unwrap(); // not behind: nothing happens
    assert_eq!(wal.last_lsn(), 40);
    wal.advance_past(100).unwrap();
    assert!(segments(dir).is_empty());
    assert_eq!(wal.append(b"after").unwrap(), 101);
    drop(wal);
    let (wal, rec) = open(dir, 1500);
    assert_eq!((rec.first_lsn, rec.last_lsn), (101, 101));
    assert_eq!(collect(&wal, 100), vec![(101, b"after".to_vec())]);
}

#[test]
fn always_syncs_every_append_and_once_per_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, faults) = open_faulty(tmp.path(), SyncMode::Always, BIG);
    append_range(&mut wal, 1, 3);
    assert_eq!((faults.writes(), faults.syncs()), (3, 3));
    let batch: Vec<Vec<u8>> = (4..=13).map(payload).collect();
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    assert_eq!(wal.append_batch(&refs).unwrap(), 13);
    assert_eq!((faults.writes(), faults.syncs()), (4, 4));
}

#[test]
fn never_does_not_sync_appends() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, faults) = open_faulty(tmp.path(), SyncMode::Never, BIG);
    append_range(&mut wal, 1, 20);
    assert_eq!(faults.syncs(), 0);
    wal.sync().unwrap();
    assert_eq!(faults.syncs(), 1);
    drop(wal);
    assert_eq!(faults.syncs(), 1);
}

#[test]
fn interval_policy_syncs_in_the_background() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, faults) = open_faulty(tmp.path(), SyncMode::Interval { ms: 20 }, BIG);
    append_range(&mut wal, 1, 5);
    assert_eq!(faults.syncs(), 0, "append does not wait for the fsync");
    let deadline = Instant::now() + Duration::from_secs(5);
    while faults.syncs() == 0 {
        assert!(
            Instant::now() < deadline,
            "the interval thread never synced"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Nothing written since: no more fsyncs.
    std::thread::sleep(Duration::from_millis(60));
    let synced = faults.syncs();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(faults.syncs(), synced);
    // Across a new segment too.
    drop(wal);
    let (mut wal, faults) = open_faulty(tmp.path(), SyncMode::Interval { ms: 20 }, 600);
    append_range(&mut wal, 6, 40);
    let synced = faults.syncs();
    let deadline = Instant::now() + Duration::from_secs(5);
    while faults.syncs() == synced {
        assert!(
            Instant::now() < deadline,
            "the interval thread never synced the new segment"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(wal);
}

#[test]
fn interval_policy_syncs_on_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, faults) = open_faulty(tmp.path(), SyncMode::Interval { ms: 600_000 }, BIG);
    append_range(&mut wal, 1, 5);
    assert_eq!(faults.syncs(), 0);
    let start = Instant::now();
    drop(wal);
    assert_eq!(faults.syncs(), 1);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "drop waited for the interval"
    );
}

#[test]
fn interval_fsync_failure_poisons() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, faults) = open_faulty(tmp.path(), SyncMode::Interval { ms: 10 }, BIG);
    faults.fail_sync(1);
    append_range(&mut wal, 1, 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match wal.append(b"more") {
            Err(PersistError::Poisoned(m)) => {
                assert!(m.contains("fsync") && m.contains("injected"), "{m}");
                break;
            }
            Err(e) => panic!("expected Poisoned, got {e}"),
            Ok(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "the fsync failure was not reported"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(matches!(wal.sync(), Err(PersistError::Poisoned(_))));
}

#[test]
fn oversized_record_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, faults) = open_faulty(tmp.path(), SyncMode::Always, BIG);
    append_range(&mut wal, 1, 1);
    // Zeroed allocation: the pages are never touched, the size check comes first.
    let huge = vec![0u8; MAX_RECORD_BYTES + 1];
    let err = wal.append(&huge).unwrap_err();
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    assert_eq!(faults.writes(), 1);
    assert_eq!(wal.append(b"ok").unwrap(), 2);
}

/// Throughput of `Always` appends of ~200 KB payloads (10k rows of ~20 bytes) against raw
/// `write_all` + `sync_data` of the same bytes on a plain file, in the same run; prints the
/// ratio. Also the same without fsync (`Never` vs raw `write_all`), which isolates the
/// WAL's CPU cost (framing copy + CRC32C).
#[test]
#[ignore = "timing; run by hand with --release -- --ignored --nocapture"]
fn throughput_always_vs_raw_append_fsync() {
    const N: usize = 500;
    const SIZE: usize = 200_000;
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let payload: Vec<u8> = (0..SIZE).map(|i| (i * 131 % 251) as u8).collect();

    let raw = |n: usize, sync: bool, round: usize| {
        let path = tmp.path().join(format!("raw{round}{sync}.bin"));
        let mut f = fs::File::create(&path).unwrap();
        let start = Instant::now();
        for _ in 0..n {
            f.write_all(&payload).unwrap();
            if sync {
                f.sync_data().unwrap();
            }
        }
        let t = start.elapsed();
        fs::remove_file(path).unwrap();
        t
    };
    let wal = |n: usize, policy: SyncMode, round: usize| {
        let dir = tmp.path().join(format!("wal{round}{policy:?}"));
        let (mut wal, _) = Wal::open(&dir, policy, 1 << 30, OnCorruption::Refuse).unwrap();
        let start = Instant::now();
        for _ in 0..n {
            wal.append(&payload).unwrap();
        }
        let t = start.elapsed();
        drop(wal);
        fs::remove_dir_all(dir).unwrap();
        t
    };
    raw(50, true, 99);
    wal(50, SyncMode::Always, 99);
    let mb = (N * SIZE) as f64 / 1e6;
    let mut ratios = Vec::new();
    let mut cpu_ratios = Vec::new();
    for round in 0..5 {
        let (r, w) = if round % 2 == 0 {
            (raw(N, true, round), wal(N, SyncMode::Always, round))
        } else {
            let w = wal(N, SyncMode::Always, round);
            (raw(N, true, round), w)
        };
        let rn = raw(N, false, round);
        let wn = wal(N, SyncMode::Never, round);
        println!(
            "round {round}: fsync each: raw {:.0} MB/s ({:.0} us/append), wal {:.0} MB/s ({:.0} \
             us/append), ratio {:.3} | no fsync: raw {:.0} us, wal {:.0} us, ratio {:.3}",
            mb / r.as_secs_f64(),
            r.as_secs_f64() * 1e6 / N as f64,
            mb / w.as_secs_f64(),
            w.as_secs_f64() * 1e6 / N as f64,
            r.as_secs_f64() / w.as_secs_f64(),
            rn.as_secs_f64() * 1e6 / N as f64,
            wn.as_secs_f64() * 1e6 / N as f64,
            rn.as_secs_f64() / wn.as_secs_f64(),
        );
        ratios.push(r.as_secs_f64() / w.as_secs_f64());
        cpu_ratios.push(rn.as_secs_f64() / wn.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    cpu_ratios.sort_by(f64::total_cmp);
    println!(
        "median throughput ratio wal/raw: {:.3} with fsync (Always), {:.3} without (Never)",
        ratios[2], cpu_ratios[2]
    );
}

/// Repairs `dir`, whose records up to `covered_lsn` a snapshot holds, and returns the WAL.
fn repair_covered(dir: &Path, segment_bytes: u64, covered_lsn: u64) -> (Wal, Recovered) {
    Wal::open(
        dir,
        SyncMode::Never,
        segment_bytes,
        OnCorruption::Repair { covered_lsn },
    )
    .unwrap()
}

#[test]
fn repair_keeps_records_after_covered_damage_in_the_same_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (mut wal, _) = open(dir, BIG);
        append_range(&mut wal, 1, 40);
    }
    let seg = segments(dir)[0].clone();
    flip_byte(&seg, offset_of(1, 10) + FRAME_HEADER_LEN);
    assert!(matches!(
        open_err(dir, false),
        PersistError::CorruptWal { .. }
    ));
    let (mut wal, rec) = repair_covered(dir, BIG, 25);
    let r = rec.repaired.expect("the repair is reported");
    assert_eq!(r.offset, offset_of(1, 10));
    assert_eq!(r.bytes_dropped, offset_of(1, 26) - HEADER_LEN);
    assert!(r.reason.contains("LSN 25"), "{}", r.reason);
    assert_eq!(rec.first_lsn, 26, "the log now starts after the snapshot");
    assert_records(&wal, 26, 40);
    append_range(&mut wal, 41, 45);
    drop(wal);
    let (wal, rec) = open(dir, BIG);
    assert!(rec.repaired.is_none() && rec.truncated_tail.is_none());
    assert_records(&wal, 26, 45);
}

#[test]
fn repair_drops_whole_segments_before_the_one_holding_the_first_uncovered_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (mut wal, _) = open(dir, 1500);
        append_range(&mut wal, 1, 60);
    }
    let files = segments(dir);
    assert!(files.len() >= 4);
    let first_of = |i: usize| -> u64 {
        files[i]
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    // Damage in the first segment; the snapshot covers into the third.
    flip_byte(&files[0], offset_of(1, 2) + FRAME_HEADER_LEN);
    let covered = first_of(2) + 1;
    let (wal, rec) = repair_covered(dir, 1500, covered);
    assert!(rec.repaired.is_some());
    assert_eq!(segments(dir), files[2..].to_vec());
    assert_eq!(rec.first_lsn, first_of(2));
    assert_records(&wal, first_of(2), 60);
}

#[test]
fn repair_cuts_at_the_damage_when_it_hits_an_uncovered_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let (mut wal, _) = open(dir, BIG);
        append_range(&mut wal, 1, 40);
    }
    let seg = segments(dir)[0].clone();
    // Records 20 (covered) and 21 (the first uncovered one) are both damaged: 21 is lost,
    // so nothing after it can be kept without a hole.
    flip_byte(&seg, offset_of(1, 20) + FRAME_HEADER_LEN);
    flip_byte(&seg, offset_of(1, 21) + FRAME_HEADER_LEN);
    let (wal, rec) = repair_covered(dir, BIG, 20);
    assert_eq!(rec.repaired.unwrap().offset, offset_of(1, 20));
    assert_records(&wal, 1, 19);
}
