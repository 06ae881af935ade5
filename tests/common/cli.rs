//! What the tests that run the `strata` binary share: a `Command` with a clean environment,
//! and where the tiers with an object store keep the checkpoints of a test's data directory
//! (so that processes and in-process engines on the same directory also share its object
//! store). In the constellation tier every engine or process is a one-node cluster of its
//! own (node id `node1`, a free port on 127.0.0.1).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use strata::checkpoint::{ObjectStoreSettings, PersistSettings};
use strata::network::ClusterSettings;
use strata::{ActiveProfile, Engine, EngineBuilder, PhysicalProfile, ProfileKind};

/// Whether this build is the durable tier (a local WAL, checkpoints in an object store, not
/// in `DATA/snapshots/`).
pub const DURABLE: bool = matches!(ActiveProfile::KIND, ProfileKind::Durable);

/// Whether this build keeps its checkpoints in an object store (durable, constellation).
pub const OBJECT_STORE: bool = matches!(ActiveProfile::RECOVERY, strata::profile::Recovery::Full);

/// The object store of data directory `data`: the directory `DATA.store` beside it (absolute),
/// so that a test that wipes or replaces `data` keeps the checkpoints.
pub fn store_dir(data: &Path) -> PathBuf {
    let mut dir: OsString = std::path::absolute(data)
        .expect("an absolute path for the data directory")
        .into_os_string();
    dir.push(".store");
    PathBuf::from(dir)
}

/// `file://` URL of [`store_dir`]`(data)`.
pub fn store_url(data: &Path) -> String {
    format!("file://{}", store_dir(data).display())
}

/// Sets `STRATA_OBJECT_STORE_URL` to the store of `data` in the tiers with an object store
/// (for commands that name the data directory otherwise than with `--data`), and in the
/// constellation tier the `[cluster]` of a one-node cluster; a no-op in other tiers.
pub fn with_store<'a>(cmd: &'a mut Command, data: &Path) -> &'a mut Command {
    if OBJECT_STORE {
        cmd.env("STRATA_OBJECT_STORE_URL", store_url(data));
    }
    if ActiveProfile::MULTI_NODE {
        let node = one_node_cluster();
        cmd.env("STRATA_CLUSTER_NODE_ID", &node.node_id)
            .env("STRATA_CLUSTER_LISTEN", node.listen.to_string())
            .env("STRATA_CLUSTER_SEEDS", node.listen.to_string());
    }
    cmd
}

/// A port free for TCP and UDP on 127.0.0.1 up to 127.0.0.`hosts` (nodes of a test cluster
/// listen on one address each, all on this port).
pub fn free_port(hosts: u8) -> u16 {
    for _ in 0..100 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let free = (1..=hosts).all(|host| {
            let addr = std::net::SocketAddr::from(([127, 0, 0, host], port));
            std::net::TcpListener::bind(addr).is_ok() && std::net::UdpSocket::bind(addr).is_ok()
        });
        if free {
            return port;
        }
    }
    panic!("no port free on 127.0.0.1-{hosts}");
}

/// A one-node cluster: node `node1` on a free port of 127.0.0.1 (its own seed, so it
/// starts a cluster of its own or restarts the one in its store).
pub fn one_node_cluster() -> ClusterSettings {
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], free_port(1)));
    ClusterSettings {
        node_id: "node1".into(),
        listen,
        seeds: vec![listen.to_string()],
        shards: None,
    }
}

/// An engine builder on `data` with [`persist_settings`] (and, in the constellation tier,
/// [`one_node_cluster`]).
pub fn builder(data: &Path) -> EngineBuilder {
    Engine::builder()
        .persist(persist_settings(data))
        .cluster(one_node_cluster())
}

/// `strata` with no `STRATA_*` variables from the caller, `RUST_BACKTRACE=1` (so that a
/// panic would show one) and stdin null; with `data`, also `--data DATA` and, in the
/// durable tier, `STRATA_OBJECT_STORE_URL` naming [`store_dir`]`(DATA)`.
pub fn strata(data: Option<&Path>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STRATA_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("RUST_BACKTRACE", "1").stdin(Stdio::null());
    if let Some(data) = data {
        cmd.arg("--data").arg(data);
        with_store(&mut cmd, data);
    }
    cmd
}

/// Default persistence settings on `data` for an in-process engine, with the same object
/// store as [`strata`]`(Some(data))` uses in the tiers with one.
pub fn persist_settings(data: &Path) -> PersistSettings {
    PersistSettings {
        data_dir: data.to_path_buf(),
        object_store: ObjectStoreSettings {
            url: OBJECT_STORE.then(|| store_url(data)),
            ..ObjectStoreSettings::default()
        },
        ..PersistSettings::default()
    }
}

/// Copies the directory tree `from` to `to` (e.g. a fixture, which is never opened in place).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
