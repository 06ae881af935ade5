//! Fault injection for the WAL's tests: segment files whose n-th write, fsync or truncation
//! fails on command. Compiled only with the `testing` feature.

use super::segment::{FsOpener, SegmentFile, SegmentOpener};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A [`SegmentOpener`] for tests: real files whose n-th write, fsync or truncation fails on
/// command, with counters of those calls. Clones share the same state, so keep one clone
/// and pass another to [`Wal::open_with`].
///
/// ```no_run
/// # use strata::checkpoint::SyncMode;
/// # use strata::testing::wal::{Wal, FaultInjector, OnCorruption};
/// # use std::sync::Arc;
/// let faults = FaultInjector::new();
/// let opener = Arc::new(faults.clone());
/// let (mut wal, _) = Wal::open_with(
///     "wal".as_ref(), SyncMode::Always, 64 << 20, OnCorruption::Refuse, opener,
/// )?;
/// faults.fail_sync(1); // the next fsync fails
/// assert!(wal.append(b"x").is_err()); // rolled back: not in the log
/// # Ok::<(), strata::PersistError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct FaultInjector {
    state: Arc<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    writes: AtomicU64,
    syncs: AtomicU64,
    set_lens: AtomicU64,
    fail_write_in: AtomicU64,
    fail_sync_in: AtomicU64,
    fail_set_len_in: AtomicU64,
}

impl FaultInjector {
    /// An injector that fails nothing until told to.
    pub fn new() -> FaultInjector {
        FaultInjector::default()
    }
    /// Makes the `nth` write from now fail (1 = the next one), once; 0 disarms. A failing
    /// write first writes half of its bytes, like a disk that filled up in the middle.
    pub fn fail_write(&self, nth: u64) {
        self.state.fail_write_in.store(nth, Ordering::SeqCst);
    }
    /// Makes the `nth` fsync from now fail (1 = the next one), once; 0 disarms. The written
    /// bytes stay in the file, as after a real fsync error.
    pub fn fail_sync(&self, nth: u64) {
        self.state.fail_sync_in.store(nth, Ordering::SeqCst);
    }
    /// Makes the `nth` truncation (`set_len`) from now fail (1 = the next one), once;
    /// 0 disarms. Truncation is how a failed append is rolled back.
    pub fn fail_set_len(&self, nth: u64) {
        self.state.fail_set_len_in.store(nth, Ordering::SeqCst);
    }
    /// How many writes were attempted through files of this injector.
    pub fn writes(&self) -> u64 {
        self.state.writes.load(Ordering::SeqCst)
    }
    /// How many fsyncs succeeded through files of this injector.
    pub fn syncs(&self) -> u64 {
        self.state.syncs.load(Ordering::SeqCst)
    }
    /// How many truncations were attempted through files of this injector.
    pub fn set_lens(&self) -> u64 {
        self.state.set_lens.load(Ordering::SeqCst)
    }
}

/// Counts down an armed trigger; true when this call is the one that must fail.
fn fires(countdown: &AtomicU64) -> bool {
    countdown.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) == Ok(1)
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

impl SegmentOpener for FaultInjector {
    fn open(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let file = FsOpener::open_file(path)?;
        Ok(Box::new(FaultyFile {
            file,
            state: Arc::clone(&self.state),
        }))
    }
}

struct FaultyFile {
    file: File,
    state: Arc<FaultState>,
}

impl SegmentFile for FaultyFile {
    fn write_all_at_end(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.state.writes.fetch_add(1, Ordering::SeqCst);
        if fires(&self.state.fail_write_in) {
            self.file.write_all(&bytes[..bytes.len() / 2])?;
            return Err(injected("write"));
        }
        self.file.write_all(bytes)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        if fires(&self.state.fail_sync_in) {
            return Err(injected("fsync"));
        }
        self.file.sync_data()?;
        self.state.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.state.set_lens.fetch_add(1, Ordering::SeqCst);
        if fires(&self.state.fail_set_len_in) {
            return Err(injected("truncate"));
        }
        self.file.set_len(len)
    }
    fn try_clone(&self) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(FaultyFile {
            file: self.file.try_clone()?,
            state: Arc::clone(&self.state),
        }))
    }
}
