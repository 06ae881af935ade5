//! The background thread of the interval sync policy: it fsyncs the current segment at
//! most every interval, when something was written since its last fsync.

use super::segment::SegmentFile;
use crate::error::PersistError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// The interval sync thread
// ---------------------------------------------------------------------------------------

pub(super) struct Syncer {
    shared: Arc<SyncShared>,
    thread: Option<JoinHandle<()>>,
}

struct SyncShared {
    ctl: Mutex<SyncCtl>,
    wake: Condvar,
}

#[derive(Default)]
pub(super) struct SyncCtl {
    pub stop: bool,
    /// Written since the thread's last fsync.
    pub dirty: bool,
    /// A handle to a new current segment, for the thread to adopt.
    pub new_file: Option<(PathBuf, Box<dyn SegmentFile>)>,
    /// The thread's fsync failed; the WAL is poisoned.
    pub error: Option<String>,
}

impl Syncer {
    pub(super) fn start(
        ms: u64,
        file: Option<(PathBuf, Box<dyn SegmentFile>)>,
        dir: &Path,
    ) -> Result<Syncer, PersistError> {
        let shared = Arc::new(SyncShared {
            ctl: Mutex::new(SyncCtl {
                new_file: file,
                ..SyncCtl::default()
            }),
            wake: Condvar::new(),
        });
        let interval = Duration::from_millis(ms.max(1));
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("strata-wal-sync".into())
            .spawn(move || sync_loop(&thread_shared, interval))
            .map_err(|e| PersistError::io("start the sync thread for", dir, e))?;
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, SyncCtl> {
        lock(&self.shared.ctl)
    }

    pub(super) fn stop(mut self) {
        self.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(m: &Mutex<SyncCtl>) -> MutexGuard<'_, SyncCtl> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn sync_loop(shared: &SyncShared, interval: Duration) {
    let mut file: Option<(PathBuf, Box<dyn SegmentFile>)> = None;
    let mut ctl = lock(&shared.ctl);
    loop {
        if !ctl.stop {
            ctl = shared
                .wake
                .wait_timeout(ctl, interval)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if let Some(new) = ctl.new_file.take() {
            file = Some(new);
        }
        let dirty = std::mem::take(&mut ctl.dirty) && ctl.error.is_none();
        let stop = ctl.stop;
        drop(ctl);
        if dirty {
            if let Some((path, f)) = file.as_mut() {
                if let Err(e) = f.sync_data() {
                    let msg = PersistError::io("fsync", path, e).to_string();
                    tracing::error!("WAL background {msg}");
                    lock(&shared.ctl).error = Some(msg);
                }
            }
        }
        if stop {
            return;
        }
        ctl = lock(&shared.ctl);
    }
}
