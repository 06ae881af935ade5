//! Building an engine: checking the profile and the capacity, opening the tier's storage and
//! applying what it holds.

use super::kernel::Kernel;
use super::Engine;
use crate::checkpoint::{Checkpointer, PersistSettings};
use crate::error::{ConfigError, Error, PersistError, Result};
use crate::index::IndexBackend;
use crate::network::{ClusterSettings, Network};
use crate::profile::{ActiveProfile, IndexSupport, PhysicalProfile, ProfileKind};

/// Settings an engine is built with; `strata` fills them from the config file.
#[derive(Clone, Debug, Default)]
pub struct EngineBuilder<P: PhysicalProfile = ActiveProfile> {
    profile: Option<String>,
    capacity: Option<usize>,
    persist: Option<PersistSettings>,
    cluster: ClusterSettings,
    ephemeral: bool,
    _profile: std::marker::PhantomData<P>,
}

impl<P: PhysicalProfile> EngineBuilder<P> {
    /// Names the profile the caller expects; building fails with `FeatureNotCompiled` if
    /// it is not the compiled one, or `InvalidProfileName` if there is no such profile.
    pub fn profile(mut self, name: impl Into<String>) -> Self {
        self.profile = Some(name.into());
        self
    }

    /// Keys per table or view. Fixed-capacity tiers allocate this much for each table and
    /// view when it is created and never grow it; growing tiers take it as a hint.
    pub fn capacity(mut self, keys: usize) -> Self {
        self.capacity = Some(keys);
        self
    }

    /// Where and how persistent tiers keep data (ignored by tiers that keep nothing).
    pub fn persist(mut self, settings: PersistSettings) -> Self {
        self.persist = Some(settings);
        self
    }

    /// How a node of a multi-node tier joins its cluster (ignored by single-node tiers).
    pub fn cluster(mut self, settings: ClusterSettings) -> Self {
        self.cluster = settings;
        self
    }

    /// The data directory of persistent tiers, with default settings otherwise.
    pub fn data_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.persist
            .get_or_insert_with(PersistSettings::default)
            .data_dir = dir.into();
        self
    }

    /// A throwaway engine that keeps nothing, in any tier (like SQLite's `:memory:`).
    /// Persistent tiers otherwise need [`data_dir`](Self::data_dir) or [`persist`](Self::persist).
    pub fn ephemeral(mut self) -> Self {
        self.ephemeral = true;
        self
    }

    /// Builds the engine. Persistent tiers open the data directory here and recover the
    /// last acknowledged state from it; multi-node tiers join their cluster.
    pub fn build(self) -> Result<Engine<P>> {
        let mut engine = self.empty()?;
        if P::PERSISTENT && !self.ephemeral {
            let Some(settings) = &self.persist else {
                return Err(ConfigError::ProfileRequirementError {
                    profile: P::KIND,
                    requirement:
                        "this tier keeps its data in a directory: set one with .data_dir(path), \
                         or build a throwaway engine with .ephemeral()"
                            .into(),
                }
                .into());
            };
            if P::MULTI_NODE {
                // The node keeps the state, in its partitions and the shared log.
                engine.network = P::Network::open(settings, &self.cluster, engine.capacity())
                    .map_err(own_storage::<P>)?;
                return Ok(engine);
            }
            let checkpointer = engine
                .recover::<P::Checkpointer>(settings)
                .map_err(own_storage::<P>)?;
            engine.checkpointer = Some(checkpointer);
        }
        Ok(engine)
    }

    /// Builds an engine holding what another checkpointer's storage holds (e.g. an embedded
    /// data directory read by a durable build, to migrate it), and returns that
    /// checkpointer beside it. The engine records nothing: it has no checkpointer of its own.
    /// (What `strata::store::migrate` reads an embedded directory with.)
    #[cfg(feature = "object-store")]
    pub(crate) fn recover_with<C: Checkpointer>(
        self,
        settings: &PersistSettings,
    ) -> Result<(Engine<P>, C)> {
        let mut engine = self.ephemeral().empty()?;
        let checkpointer = engine.recover::<C>(settings)?;
        Ok((engine, checkpointer))
    }

    /// An engine with nothing in it, after the profile and capacity checks.
    fn empty(&self) -> Result<Engine<P>> {
        if let Some(name) = &self.profile {
            check_profile_name::<P>(name)?;
        }
        let capacity = self.capacity.unwrap_or(P::DEFAULT_CAPACITY);
        if capacity > P::MAX_KEYS {
            return Err(ConfigError::ProfileRequirementError {
                profile: P::KIND,
                requirement: format!(
                    "[state] capacity is {capacity} keys but this tier holds at most {} per table or view",
                    P::MAX_KEYS
                ),
            }
            .into());
        }
        Ok(Engine {
            kernel: Kernel::new(capacity),
            checkpointer: None,
            network: P::Network::default(),
            rows_ingested: 0,
        })
    }
}

/// Storage that cannot be used as configured (a data directory that cannot be created,
/// written or locked; an object store that does not work) is a requirement of the engine's
/// own tier unmet: it becomes that tier's `ProfileRequirementError` (exit code 2 in
/// `strata`). Other storage errors stay what they are.
fn own_storage<P: PhysicalProfile>(error: Error) -> Error {
    match error {
        Error::Persist(PersistError::Unusable { requirement }) => {
            ConfigError::ProfileRequirementError {
                profile: P::KIND,
                requirement,
            }
            .into()
        }
        other => other,
    }
}

impl<P: PhysicalProfile> Engine<P> {
    /// Opens `C` on `settings` and applies what its storage holds to this (empty) engine.
    /// The index storage is opened once the checkpointer holds the data directory's lock.
    fn recover<C: Checkpointer>(&mut self, settings: &PersistSettings) -> Result<C> {
        let (checkpointer, recovery) = C::open(settings)?;
        // `settings.indexes` only matters where indexes are optional.
        let indexes_on = match P::INDEXES {
            IndexSupport::None => false,
            IndexSupport::Optional => settings.indexes,
            IndexSupport::Always => true,
        };
        let mut rebuild_reason = None;
        if indexes_on {
            let (backend, reason) = P::Indexes::open(settings)?;
            self.kernel.index_backend = Some(backend);
            rebuild_reason = reason;
        } else if P::INDEXES == IndexSupport::Optional && P::Indexes::discard(settings)? {
            crate::notice!(
                "index storage is off ([indexes] enabled = false): removed the index file, \
                 whose indexes would go out of date; they are rebuilt from their tables when \
                 it is on again"
            );
        }
        self.kernel.recover(recovery, rebuild_reason)?;
        Ok(checkpointer)
    }
}

/// Checks a profile name from config or the builder against the compiled profile.
pub fn check_profile_name<P: PhysicalProfile>(name: &str) -> Result<(), ConfigError> {
    match ProfileKind::from_name(name) {
        None => Err(ConfigError::InvalidProfileName {
            name: name.to_string(),
        }),
        Some(kind) if kind != P::KIND => Err(ConfigError::FeatureNotCompiled {
            requested: kind,
            compiled: P::KIND,
            command: kind.build_command(),
        }),
        Some(_) => Ok(()),
    }
}
