//! The TOML configuration: `profiles/<name>.toml` are the reference files. Every key can be
//! overridden by an environment variable `STRATA_<SECTION>_<KEY>` (e.g. `STRATA_STATE_CAPACITY`).
//! Unknown keys are errors, and so are keys for capabilities the compiled tier lacks.

use crate::checkpoint::{PersistSettings, SyncMode};
use crate::engine::{check_profile_name, EngineBuilder};
use crate::error::ConfigError;
use crate::network::ClusterSettings;
use crate::profile::{IndexSupport, PhysicalProfile};
use serde::Deserialize;
use std::path::Path;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub state: StateSection,
    #[serde(default)]
    pub checkpoint: CheckpointSection,
    #[serde(default)]
    pub object_store: ObjectStoreSection,
    #[serde(default)]
    pub indexes: IndexesSection,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub cluster: ClusterSection,
    #[serde(default)]
    pub advise: AdviseSection,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// The profile the file is written for; must be the compiled one.
    pub profile: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    pub data_dir: Option<String>,
    /// `always`, `interval` or `never`.
    pub sync: Option<String>,
    /// With `sync = "interval"`: the longest time between fsyncs, e.g. `"100ms"`.
    pub sync_interval: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// Keys per table or view (fixed-capacity tiers: a hard limit allocated up front).
    pub capacity: Option<usize>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSection {
    pub interval: Option<String>,
    pub keep: Option<u32>,
    /// The spec's name of `[object_store] url`; [`Config::load`] moves it there.
    pub object_store_url: Option<String>,
}

/// Where the durable tier keeps its checkpoints.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreSection {
    /// `file:///path`, `memory://NAME` or `s3://BUCKET/PREFIX`.
    pub url: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: Option<bool>,
    /// The longest one request may take, e.g. `"30s"`.
    pub timeout: Option<String>,
    /// Take the prefix over from the data directory that owns it (durable).
    pub take_over: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IndexesSection {
    pub enabled: Option<bool>,
    /// The index file: relative to the data directory (default `indexes.redb`), or absolute.
    pub db_path: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// `HOST:PORT`, default `127.0.0.1:7878`.
    pub listen: Option<String>,
    /// `HOST:PORT` for PostgreSQL's wire protocol; unset: not served.
    pub pg_listen: Option<String>,
    /// Bearer token every request must present; required to listen beyond loopback.
    pub token: Option<String>,
    /// The largest request body (and so SQL text) accepted, in bytes (default 16 MiB).
    pub max_body_bytes: Option<usize>,
    /// How long the object store may be unreachable before `/health` answers 503, e.g. `"1m"`.
    pub unhealthy_after: Option<String>,
    /// How long a shutdown waits for open requests and connections, e.g. `"30s"`.
    pub shutdown_timeout: Option<String>,
    /// How long a client may take to send a request's header, e.g. `"10s"`.
    pub header_read_timeout: Option<String>,
    /// How long a request's body may take to arrive, e.g. `"30s"`.
    pub body_read_timeout: Option<String>,
    /// Open connections at most, in all and from one client address.
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
}

/// How a node of the constellation tier joins its cluster.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// Unique in the cluster, stable across restarts.
    pub node_id: Option<String>,
    /// `HOST:PORT` for gossip (UDP) and requests between nodes (TCP).
    pub listen: Option<String>,
    /// `HOST:PORT` of nodes to join through; only this node's own address (or none)
    /// starts a new cluster. In the environment: comma-separated.
    pub seeds: Option<Vec<String>>,
    /// Shards of a new cluster (default 16); fixed once the cluster exists.
    pub shards: Option<u32>,
}

/// The thresholds of `strata advise`'s triggers (see [`crate::advise`]); unset keys keep
/// the documented defaults.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdviseSection {
    pub must_survive_restart: Option<bool>,
    pub capacity_percent: Option<u32>,
    /// The longest acceptable recovery, e.g. `"60s"`.
    pub recovery_objective: Option<String>,
    pub restore_mb_per_s: Option<u64>,
    pub replay_mb_per_s: Option<u64>,
    pub must_survive_disk_loss: Option<bool>,
    pub disk_percent: Option<u32>,
    pub memory_percent: Option<u32>,
    pub ingest_ceiling_rows_per_s: Option<u64>,
    pub ingest_percent: Option<u32>,
    pub write_p95_ms: Option<u64>,
    pub must_stay_available_during_maintenance: Option<bool>,
}

/// Keys that environment variables may set, with whether the value is a number or bool.
const KEYS: &[(&str, &str, ValueKind)] = &[
    ("engine", "profile", ValueKind::Text),
    ("storage", "data_dir", ValueKind::Text),
    ("storage", "sync", ValueKind::Text),
    ("storage", "sync_interval", ValueKind::Text),
    ("state", "capacity", ValueKind::Integer),
    ("checkpoint", "interval", ValueKind::Text),
    ("checkpoint", "keep", ValueKind::Integer),
    ("checkpoint", "object_store_url", ValueKind::Text),
    ("object_store", "url", ValueKind::Text),
    ("object_store", "endpoint", ValueKind::Text),
    ("object_store", "region", ValueKind::Text),
    ("object_store", "access_key_id", ValueKind::Text),
    ("object_store", "secret_access_key", ValueKind::Text),
    ("object_store", "allow_http", ValueKind::Bool),
    ("object_store", "timeout", ValueKind::Text),
    ("object_store", "take_over", ValueKind::Bool),
    ("indexes", "enabled", ValueKind::Bool),
    ("indexes", "db_path", ValueKind::Text),
    ("server", "listen", ValueKind::Text),
    ("server", "pg_listen", ValueKind::Text),
    ("server", "token", ValueKind::Text),
    ("server", "max_body_bytes", ValueKind::Integer),
    ("server", "unhealthy_after", ValueKind::Text),
    ("server", "shutdown_timeout", ValueKind::Text),
    ("server", "header_read_timeout", ValueKind::Text),
    ("server", "body_read_timeout", ValueKind::Text),
    ("server", "max_connections", ValueKind::Integer),
    ("server", "max_connections_per_client", ValueKind::Integer),
    ("cluster", "node_id", ValueKind::Text),
    ("cluster", "listen", ValueKind::Text),
    ("cluster", "seeds", ValueKind::List),
    ("cluster", "shards", ValueKind::Integer),
    ("advise", "must_survive_restart", ValueKind::Bool),
    ("advise", "capacity_percent", ValueKind::Integer),
    ("advise", "recovery_objective", ValueKind::Text),
    ("advise", "restore_mb_per_s", ValueKind::Integer),
    ("advise", "replay_mb_per_s", ValueKind::Integer),
    ("advise", "must_survive_disk_loss", ValueKind::Bool),
    ("advise", "disk_percent", ValueKind::Integer),
    ("advise", "memory_percent", ValueKind::Integer),
    ("advise", "ingest_ceiling_rows_per_s", ValueKind::Integer),
    ("advise", "ingest_percent", ValueKind::Integer),
    ("advise", "write_p95_ms", ValueKind::Integer),
    (
        "advise",
        "must_stay_available_during_maintenance",
        ValueKind::Bool,
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ValueKind {
    Text,
    Integer,
    Bool,
    /// Comma-separated.
    List,
}

impl Config {
    /// Reads `path` (if any), then applies `STRATA_<SECTION>_<KEY>` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (mut table, origin) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|cause| ConfigError::Read {
                    path: p.display().to_string(),
                    cause,
                })?;
                let table: toml::Table =
                    toml::from_str(&text).map_err(|e| ConfigError::Invalid {
                        origin: format!("in {}", p.display()),
                        message: e.message().to_string(),
                    })?;
                (table, format!("in {}", p.display()))
            }
            None => (toml::Table::new(), "from the environment".to_string()),
        };
        let mut from_env = false;
        for (var, value) in env {
            let Some(rest) = var.strip_prefix("STRATA_") else {
                continue;
            };
            let rest = rest.to_lowercase();
            let Some(&(section, key, kind)) =
                KEYS.iter().find(|(s, k, _)| rest == format!("{s}_{k}"))
            else {
                if KEYS
                    .iter()
                    .any(|(s, _, _)| rest.starts_with(&format!("{s}_")))
                {
                    return Err(ConfigError::Invalid {
                        origin: format!("environment variable {var}"),
                        message: format!("unknown key; known: {}", env_names().join(", ")),
                    });
                }
                continue;
            };
            let parsed = match kind {
                ValueKind::Text => Some(toml::Value::String(value.clone())),
                ValueKind::Integer => value.trim().parse::<i64>().ok().map(toml::Value::Integer),
                ValueKind::Bool => value.trim().parse::<bool>().ok().map(toml::Value::Boolean),
                ValueKind::List => Some(toml::Value::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(|v| toml::Value::String(v.to_string()))
                        .collect(),
                )),
            };
            let parsed = parsed.ok_or_else(|| ConfigError::Invalid {
                origin: format!("environment variable {var}"),
                message: format!("`{value}` is not a valid {kind:?}").to_lowercase(),
            })?;
            let section_table = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = section_table {
                t.insert(key.to_string(), parsed);
            }
            from_env = true;
        }
        let origin = if from_env {
            format!("{origin} (with STRATA_* overrides)")
        } else {
            origin
        };
        let mut config = toml::Value::Table(table)
            .try_into::<Config>()
            .map_err(|e| ConfigError::Invalid {
                origin: origin.clone(),
                message: e.message().to_string(),
            })?;
        config.fold_aliases(&origin)?;
        Ok(config)
    }

    /// Moves the spec's names of keys (`[checkpoint] object_store_url`) to Strata's
    /// (`[object_store] url`), so that the spec's example configuration loads as written.
    fn fold_aliases(&mut self, origin: &str) -> Result<(), ConfigError> {
        if let Some(url) = self.checkpoint.object_store_url.take() {
            if self.object_store.url.is_some() {
                return Err(ConfigError::Invalid {
                    origin: origin.to_string(),
                    message: "both [checkpoint] object_store_url and [object_store] url are set; \
                              they name the same setting: keep one"
                        .into(),
                });
            }
            self.object_store.url = Some(url);
        }
        Ok(())
    }

    /// Checks the config against the compiled profile `P`.
    pub fn validate<P: PhysicalProfile>(&self) -> Result<(), ConfigError> {
        if let Some(name) = &self.engine.profile {
            check_profile_name::<P>(name)?;
        }
        let unmet = |requirement: String| ConfigError::ProfileRequirementError {
            profile: P::KIND,
            requirement,
        };
        if let Some(capacity) = self.state.capacity {
            if capacity == 0 || capacity > P::MAX_KEYS {
                return Err(unmet(format!(
                    "[state] capacity must be between 1 and {} keys, got {capacity}",
                    P::MAX_KEYS
                )));
            }
        }
        let absent = |what: &str, set: bool| -> Result<(), ConfigError> {
            if set {
                Err(unmet(format!(
                    "{what} is set, but this tier does not have it; remove the key"
                )))
            } else {
                Ok(())
            }
        };
        if !P::PERSISTENT {
            absent("[storage] data_dir", self.storage.data_dir.is_some())?;
            absent("[storage] sync", self.storage.sync.is_some())?;
            absent(
                "[storage] sync_interval",
                self.storage.sync_interval.is_some(),
            )?;
            absent("[checkpoint] interval", self.checkpoint.interval.is_some())?;
            absent("[checkpoint] keep", self.checkpoint.keep.is_some())?;
        }
        if P::RECOVERY == crate::profile::Recovery::Full {
            if self.object_store.url.is_none() {
                return Err(unmet(
                    "an object store URL for checkpoints: set [object_store] url (or \
                     STRATA_OBJECT_STORE_URL), e.g. file:///var/lib/strata-checkpoints or \
                     s3://bucket/prefix"
                        .into(),
                ));
            }
        } else {
            absent(
                "[object_store]",
                self.object_store != ObjectStoreSection::default(),
            )?;
        }
        if P::MULTI_NODE && self.object_store.take_over.is_some() {
            return Err(unmet(
                "[object_store] take_over is set, but a cluster moves shards between its nodes \
                 by itself (each shard's log is fenced); remove the key"
                    .into(),
            ));
        }
        if P::INDEXES == IndexSupport::None {
            absent(
                "[indexes] enabled = true",
                self.indexes.enabled == Some(true),
            )?;
            absent("[indexes] db_path", self.indexes.db_path.is_some())?;
        }
        if let Some(path) = &self.indexes.db_path {
            let path = Path::new(path);
            if path.as_os_str().is_empty() || path.file_name().is_none() {
                return Err(ConfigError::Invalid {
                    origin: "key [indexes] db_path".into(),
                    message: format!("`{}` does not name a file", path.display()),
                });
            }
            if P::MULTI_NODE && (path.is_absolute() || path.components().count() > 1) {
                return Err(unmet(format!(
                    "[indexes] db_path = `{}`: each shard keeps its own index file in its \
                     directory, so only a file name is accepted here",
                    path.display()
                )));
            }
        }
        if P::INDEXES == IndexSupport::Always && self.indexes.enabled == Some(false) {
            return Err(unmet(
                "[indexes] enabled = false: secondary indexes are always on in this tier; \
                 remove the key"
                    .into(),
            ));
        }
        if !P::NETWORKED {
            absent("[server] listen", self.server.listen.is_some())?;
            absent("[server] pg_listen", self.server.pg_listen.is_some())?;
            absent("[server] token", self.server.token.is_some())?;
            absent(
                "[server] max_body_bytes",
                self.server.max_body_bytes.is_some(),
            )?;
            absent(
                "[server] unhealthy_after",
                self.server.unhealthy_after.is_some(),
            )?;
            absent(
                "[server] shutdown_timeout",
                self.server.shutdown_timeout.is_some(),
            )?;
            absent(
                "[server] header_read_timeout",
                self.server.header_read_timeout.is_some(),
            )?;
            absent(
                "[server] body_read_timeout",
                self.server.body_read_timeout.is_some(),
            )?;
            absent(
                "[server] max_connections",
                self.server.max_connections.is_some(),
            )?;
            absent(
                "[server] max_connections_per_client",
                self.server.max_connections_per_client.is_some(),
            )?;
        }
        if self.server.max_connections == Some(0)
            || self.server.max_connections_per_client == Some(0)
        {
            return Err(ConfigError::Invalid {
                origin: "[server] max_connections / max_connections_per_client".into(),
                message: "must be at least 1".into(),
            });
        }
        self.advise_thresholds()?;
        if P::MULTI_NODE {
            // No local log: every change goes to the cluster's log in the object store.
            absent("[storage] sync", self.storage.sync.is_some())?;
            absent(
                "[storage] sync_interval",
                self.storage.sync_interval.is_some(),
            )?;
            self.cluster_settings()?;
        } else {
            absent("[cluster]", self.cluster != ClusterSection::default())?;
        }
        Ok(())
    }

    /// The thresholds of `strata advise`: `[advise]` checked, over the defaults.
    pub fn advise_thresholds(&self) -> Result<crate::advise::Thresholds, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: format!("key [advise] {key}"),
            message,
        };
        let a = &self.advise;
        let mut t = crate::advise::Thresholds::default();
        let percent = |key: &str, value: Option<u32>, default: u32| match value {
            Some(p) if !(1..=100).contains(&p) => {
                Err(invalid(key, format!("{p}: use a percentage from 1 to 100")))
            }
            Some(p) => Ok(p),
            None => Ok(default),
        };
        let positive = |key: &str, value: Option<u64>, default: u64| match value {
            Some(0) => Err(invalid(key, "must be at least 1".into())),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        t.capacity_percent = percent("capacity_percent", a.capacity_percent, t.capacity_percent)?;
        t.disk_percent = percent("disk_percent", a.disk_percent, t.disk_percent)?;
        t.memory_percent = percent("memory_percent", a.memory_percent, t.memory_percent)?;
        t.ingest_percent = percent("ingest_percent", a.ingest_percent, t.ingest_percent)?;
        if let Some(text) = &a.recovery_objective {
            t.recovery_objective =
                parse_duration(text).map_err(|m| invalid("recovery_objective", m))?;
        }
        let mb = |key: &str, value: Option<u64>, default: u64| {
            positive(key, value, default >> 20).map(|v| v.saturating_mul(1 << 20))
        };
        t.restore_bytes_per_s = mb(
            "restore_mb_per_s",
            a.restore_mb_per_s,
            t.restore_bytes_per_s,
        )?;
        t.replay_bytes_per_s = mb("replay_mb_per_s", a.replay_mb_per_s, t.replay_bytes_per_s)?;
        t.ingest_ceiling_rows_per_s = positive(
            "ingest_ceiling_rows_per_s",
            a.ingest_ceiling_rows_per_s,
            t.ingest_ceiling_rows_per_s,
        )?;
        if let Some(ms) = a.write_p95_ms {
            t.write_p95 = std::time::Duration::from_millis(positive("write_p95_ms", Some(ms), 1)?);
        }
        t.must_survive_restart = a.must_survive_restart.unwrap_or(false);
        t.must_survive_disk_loss = a.must_survive_disk_loss.unwrap_or(false);
        t.must_stay_available_during_maintenance =
            a.must_stay_available_during_maintenance.unwrap_or(false);
        Ok(t)
    }

    /// How this node joins its cluster (multi-node tiers): `[cluster]` checked.
    pub fn cluster_settings(&self) -> Result<ClusterSettings, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: format!("key {key}"),
            message,
        };
        let mut settings = ClusterSettings::default();
        let section = &self.cluster;
        settings.node_id = section.node_id.clone().unwrap_or_default();
        if settings.node_id.trim().is_empty() || settings.node_id.len() > 128 {
            return Err(invalid(
                "[cluster] node_id",
                "set a node id (STRATA_CLUSTER_NODE_ID) of 1 to 128 characters, unique in the \
                 cluster and stable across restarts"
                    .into(),
            ));
        }
        if let Some(listen) = &section.listen {
            settings.listen = listen.parse().map_err(|_| {
                invalid(
                    "[cluster] listen",
                    format!("`{listen}` is not an address like 127.0.0.1:7946"),
                )
            })?;
        }
        settings.seeds = section.seeds.clone().unwrap_or_default();
        if let Some(seed) = settings
            .seeds
            .iter()
            .find(|s| std::net::ToSocketAddrs::to_socket_addrs(s.as_str()).is_err())
        {
            return Err(invalid(
                "[cluster] seeds",
                format!("`{seed}` is not an address like 10.0.0.2:7946"),
            ));
        }
        if let Some(shards) = section.shards {
            if !(1..=4096).contains(&shards) {
                return Err(invalid(
                    "[cluster] shards",
                    format!("{shards}: use between 1 and 4096"),
                ));
            }
            settings.shards = Some(shards);
        }
        Ok(settings)
    }

    /// Where and how a persistent tier keeps data; `data_dir` (from `--data`) overrides the file.
    pub fn persist_settings(
        &self,
        data_dir: Option<&Path>,
    ) -> Result<PersistSettings, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: format!("key {key}"),
            message,
        };
        let mut settings = PersistSettings::default();
        if let Some(dir) = data_dir
            .map(Path::to_path_buf)
            .or_else(|| self.storage.data_dir.as_ref().map(Into::into))
        {
            settings.data_dir = dir;
        }
        let interval_ms = match &self.storage.sync_interval {
            Some(text) => parse_duration(text)
                .map_err(|m| invalid("[storage] sync_interval", m))?
                .as_millis() as u64,
            None => 100,
        };
        settings.sync = match self.storage.sync.as_deref() {
            None | Some("always") => SyncMode::Always,
            Some("interval") => SyncMode::Interval {
                ms: interval_ms.max(1),
            },
            Some("never") => SyncMode::Never,
            Some(other) => {
                return Err(invalid(
                    "[storage] sync",
                    format!("`{other}`: use \"always\", \"interval\" or \"never\""),
                ))
            }
        };
        if let Some(text) = &self.checkpoint.interval {
            let d = parse_duration(text).map_err(|m| invalid("[checkpoint] interval", m))?;
            settings.checkpoint_interval = (!d.is_zero()).then_some(d);
        }
        settings.indexes = self.indexes.enabled.unwrap_or(true);
        if let Some(path) = &self.indexes.db_path {
            settings.index_file = path.into();
        }
        if let Some(keep) = self.checkpoint.keep {
            if keep == 0 {
                return Err(invalid("[checkpoint] keep", "must be at least 1".into()));
            }
            settings.keep = keep as usize;
        }
        let store = &self.object_store;
        let target = &mut settings.object_store;
        target.url = store.url.clone();
        target.endpoint = store.endpoint.clone();
        target.region = store.region.clone();
        target.access_key_id = store.access_key_id.clone();
        target.secret_access_key = store.secret_access_key.clone();
        target.allow_http = store.allow_http.unwrap_or(false);
        target.take_over = store.take_over.unwrap_or(false);
        if let Some(text) = &store.timeout {
            let d = parse_duration(text).map_err(|m| invalid("[object_store] timeout", m))?;
            if d.is_zero() {
                return Err(invalid(
                    "[object_store] timeout",
                    "must be more than 0".into(),
                ));
            }
            target.timeout = d;
        }
        Ok(settings)
    }

    /// An engine builder with this config's settings (call [`Config::validate`] first);
    /// `data_dir` (from `--data`) overrides `[storage] data_dir` in tiers that persist.
    pub fn engine_builder<P: PhysicalProfile>(
        &self,
        data_dir: Option<&Path>,
    ) -> Result<EngineBuilder<P>, ConfigError> {
        let mut builder = EngineBuilder::<P>::default();
        if let Some(name) = &self.engine.profile {
            builder = builder.profile(name.clone());
        }
        if let Some(capacity) = self.state.capacity {
            builder = builder.capacity(capacity);
        }
        if P::PERSISTENT {
            builder = builder.persist(self.persist_settings(data_dir)?);
        }
        if P::MULTI_NODE {
            builder = builder.cluster(self.cluster_settings()?);
        }
        Ok(builder)
    }
}

/// The environment variable names that override config keys.
pub fn env_names() -> Vec<String> {
    KEYS.iter()
        .map(|(s, k, _)| format!("STRATA_{}_{}", s.to_uppercase(), k.to_uppercase()))
        .collect()
}

/// Parses a duration such as `250ms`, `30s`, `5m`, `1h` or `0`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 250ms, 30s, 5m or 1h"))?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "s" | "" if n == 0 || unit.trim() == "s" => n.checked_mul(1000),
        "m" | "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    ms.map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is not a duration like 250ms, 30s, 5m or 1h"))
}
