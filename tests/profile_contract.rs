//! The profile contract: the compiled profile's consts are its row of the capability matrix,
//! the matrix is a superset chain, the README shows the same matrix, and the reference
//! configs in `profiles/` load under their own build and fail clearly under another.

use std::path::{Path, PathBuf};
use strata::config::Config;
use strata::profile::{self, IndexSupport, ProfileKind, Recovery, TIERS};
use strata::{ActiveProfile, ConfigError, Engine, Error, PhysicalProfile};

type P = ActiveProfile;

fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// No `STRATA_*` variables: tests never read or change the process environment.
fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The buildable profile that is not compiled into this build.
fn other_buildable() -> ProfileKind {
    match P::KIND {
        ProfileKind::BareMetal => ProfileKind::Embedded,
        _ => ProfileKind::BareMetal,
    }
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("strata.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn active_profile_consts_are_its_row_of_the_matrix() {
    let row = &TIERS[P::KIND as usize];
    assert_eq!(row.kind, P::KIND);
    assert_eq!(P::NAME, row.name);
    // build.rs names the profile it selected in the version string.
    assert!(strata::VERSION.ends_with(&format!("(profile {})", P::NAME)));
    assert_eq!(P::KIND.name(), P::NAME);
    assert_eq!(P::PERSISTENT, row.persistent);
    assert_eq!(P::RECOVERY, row.recovery);
    assert_eq!(P::MULTI_NODE, row.multi_node);
    assert_eq!(P::STATE_CAN_GROW, row.state_can_grow);
    assert_eq!(P::MAX_KEYS, row.max_keys);
    assert_eq!(P::DEFAULT_CAPACITY, row.default_capacity);
    assert_eq!(P::INDEXES, row.indexes);
    assert_eq!(P::NETWORKED, row.networked);
    assert_eq!(profile::active(), row);
}

#[test]
fn profile_types_are_zero_sized() {
    assert_eq!(std::mem::size_of::<ActiveProfile>(), 0);
    if !P::PERSISTENT {
        assert_eq!(
            std::mem::size_of::<<P as PhysicalProfile>::Checkpointer>(),
            0
        );
    }
    // A single node's network is nothing; a cluster node's is a handle on the node.
    let network = std::mem::size_of::<<P as PhysicalProfile>::Network>();
    if P::MULTI_NODE {
        assert_eq!(network, std::mem::size_of::<usize>());
    } else {
        assert_eq!(network, 0);
    }
}

#[test]
fn tiers_form_a_superset_chain() {
    let kinds: Vec<ProfileKind> = TIERS.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, ProfileKind::ALL);
    for pair in TIERS.windows(2) {
        let (lower, upper) = (&pair[0], &pair[1]);
        let ctx = format!("{} -> {}", lower.name, upper.name);
        assert!(upper.max_keys >= lower.max_keys, "{ctx}: capacity");
        assert!(
            upper.state_can_grow >= lower.state_can_grow,
            "{ctx}: growth"
        );
        assert!(upper.persistent >= lower.persistent, "{ctx}: persistence");
        assert!(upper.recovery >= lower.recovery, "{ctx}: recovery");
        assert!(upper.indexes >= lower.indexes, "{ctx}: indexes");
        assert!(upper.networked >= lower.networked, "{ctx}: networking");
        assert!(upper.multi_node >= lower.multi_node, "{ctx}: membership");
        assert!(upper.async_runtime >= lower.async_runtime, "{ctx}: runtime");
    }
    for t in &TIERS {
        assert!(t.default_capacity.is_power_of_two(), "{}", t.name);
        assert!(t.default_capacity <= t.max_keys, "{}", t.name);
        assert_eq!(t.state_can_grow, t.max_keys == usize::MAX, "{}", t.name);
        assert_eq!(t.persistent, t.recovery != Recovery::None, "{}", t.name);
        assert!(
            !t.networked || t.async_runtime,
            "{}: the server runs on it",
            t.name
        );
    }
    let bare = &TIERS[ProfileKind::BareMetal as usize];
    assert!(!bare.state_can_grow && !bare.persistent && !bare.networked);
    assert_eq!(bare.indexes, IndexSupport::None);
    assert!(bare.max_keys.is_power_of_two());
}

#[test]
fn profile_names_round_trip() {
    for kind in ProfileKind::ALL {
        assert_eq!(ProfileKind::from_name(kind.name()), Some(kind));
        assert_eq!(
            kind.build_command(),
            format!(
                "cargo build --release --no-default-features --features {}",
                kind.name()
            )
        );
    }
    assert_eq!(ProfileKind::from_name("Embedded"), None);
    assert_eq!(ProfileKind::from_name("bare_metal"), None);
}

/// The text between `<!-- capability-matrix:start -->` and `<!-- capability-matrix:end -->`.
fn readme_matrix(readme: &str) -> &str {
    const START: &str = "<!-- capability-matrix:start -->";
    const END: &str = "<!-- capability-matrix:end -->";
    let start = readme
        .find(START)
        .expect("README.md has the capability-matrix start marker");
    let rest = &readme[start + START.len()..];
    let end = rest
        .find(END)
        .expect("README.md has the capability-matrix end marker");
    &rest[..end]
}

#[test]
fn readme_capability_matrix_is_the_generated_one() {
    let readme = std::fs::read_to_string(manifest_path("README.md")).unwrap();
    let generated = profile::capability_matrix_markdown();
    assert_eq!(
        readme_matrix(&readme).trim(),
        generated.trim(),
        "README.md's capability matrix is out of date; paste the output of `strata profile` \
         (the table) between the capability-matrix markers"
    );
}

#[test]
fn capability_matrix_has_a_column_per_tier_and_a_row_per_capability() {
    let matrix = profile::capability_matrix_markdown();
    let lines: Vec<&str> = matrix.lines().collect();
    assert_eq!(
        lines[0],
        "| capability | `bare-metal` | `embedded` | `durable` | `constellation` |"
    );
    assert_eq!(lines[1], "|---|---|---|---|---|");
    for line in &lines {
        assert_eq!(line.matches('|').count(), 6, "{line}");
    }
    assert!(
        lines.contains(&"| multi-node | no | no | no | yes |"),
        "{matrix}"
    );
}

#[test]
fn the_active_reference_config_loads_and_validates() {
    let path = manifest_path(&format!("profiles/{}.toml", P::NAME));
    let config = Config::load(Some(&path), no_env()).unwrap();
    assert_eq!(config.engine.profile.as_deref(), Some(P::NAME));
    config.validate::<P>().unwrap();
    let engine = config
        .engine_builder::<P>(None)
        .unwrap()
        .ephemeral()
        .build()
        .unwrap();
    if let Some(capacity) = config.state.capacity {
        assert_eq!(engine.capacity(), capacity);
    }
}

#[test]
fn the_other_buildable_reference_config_names_the_rebuild_command() {
    let other = other_buildable();
    let path = manifest_path(&format!("profiles/{}.toml", other.name()));
    let config = Config::load(Some(&path), no_env()).unwrap();
    match config.validate::<P>() {
        Err(ConfigError::FeatureNotCompiled {
            requested,
            compiled,
            command,
        }) => {
            assert_eq!(requested, other);
            assert_eq!(compiled, P::KIND);
            assert_eq!(
                command,
                format!("cargo build --release --no-default-features --features {other}")
            );
        }
        other => panic!("expected FeatureNotCompiled, got {other:?}"),
    }
    let message = config.validate::<P>().unwrap_err().to_string();
    assert!(
        message.contains(&format!("--no-default-features --features {other}")),
        "{message}"
    );
}

#[test]
fn a_config_of_the_top_tier_names_its_rebuild_command_in_the_others() {
    if P::KIND == ProfileKind::Constellation {
        return; // the reference config of this build: validated above
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "[engine]\nprofile = \"constellation\"\n");
    let err = Config::load(Some(&path), no_env())
        .unwrap()
        .validate::<P>()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::FeatureNotCompiled {
                requested: ProfileKind::Constellation,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .contains("cargo build --release --no-default-features --features constellation"));
}

#[test]
fn an_unknown_profile_name_lists_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "[engine]\nprofile = \"turbo\"\n");
    let err = Config::load(Some(&path), no_env())
        .unwrap()
        .validate::<P>()
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::InvalidProfileName { name } if name == "turbo"),
        "{err:?}"
    );
    let message = err.to_string();
    for name in [
        "bare-metal",
        "embedded",
        "durable",
        "constellation",
        "turbo",
    ] {
        assert!(message.contains(name), "{message}");
    }
}

#[test]
fn the_builder_checks_profile_names_too() {
    let err = Engine::builder().profile("turbo").build().unwrap_err();
    assert!(
        matches!(err, Error::Config(ConfigError::InvalidProfileName { .. })),
        "{err:?}"
    );
    let other = other_buildable();
    let err = Engine::builder().profile(other.name()).build().unwrap_err();
    assert!(
        matches!(err, Error::Config(ConfigError::FeatureNotCompiled { requested, .. }) if requested == other),
        "{err:?}"
    );
    Engine::builder()
        .ephemeral()
        .profile(P::NAME)
        .build()
        .unwrap();
}

#[test]
fn unknown_keys_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for text in [
        "[engine]\nprofil = \"embedded\"\n",
        "[state]\ncapacity = 8\nspeed = 3\n",
        "[turbo]\nenabled = true\n",
    ] {
        let path = write_config(&dir, text);
        let err = Config::load(Some(&path), no_env()).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { .. }),
            "{text}: {err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("unknown"), "{text}: {message}");
    }
    // An unknown key under a known section, from the environment.
    let err = Config::load(None, env(&[("STRATA_STATE_SPEED", "3")])).unwrap_err();
    assert!(err.to_string().contains("STRATA_STATE_SPEED"), "{err}");
}

#[test]
fn keys_of_capabilities_the_tier_lacks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (!P::PERSISTENT, "[storage]\ndata_dir = \"strata-data\"\n"),
        (!P::PERSISTENT, "[checkpoint]\nkeep = 3\n"),
        (
            P::RECOVERY != Recovery::Full,
            "[object_store]\nurl = \"memory://\"\n",
        ),
        (
            P::INDEXES == IndexSupport::Always,
            "[object_store]\nurl = \"memory://\"\n[indexes]\nenabled = false\n",
        ),
        (
            P::INDEXES == IndexSupport::None,
            "[indexes]\nenabled = true\n",
        ),
        (!P::NETWORKED, "[server]\nlisten = \"127.0.0.1:7070\"\n"),
    ];
    for (lacks, text) in cases {
        if !lacks {
            continue;
        }
        let path = write_config(&dir, text);
        let err = Config::load(Some(&path), no_env())
            .unwrap()
            .validate::<P>()
            .unwrap_err();
        assert!(
            matches!(err, ConfigError::ProfileRequirementError { profile, .. } if profile == P::KIND),
            "{text}: {err:?}"
        );
    }
}

#[test]
fn environment_overrides_the_file() {
    let path = manifest_path(&format!("profiles/{}.toml", P::NAME));
    let config = Config::load(Some(&path), env(&[("STRATA_STATE_CAPACITY", "4096")])).unwrap();
    assert_eq!(config.state.capacity, Some(4096));
    assert_eq!(config.engine.profile.as_deref(), Some(P::NAME));
    config.validate::<P>().unwrap();
    assert_eq!(
        config
            .engine_builder::<P>(None)
            .unwrap()
            .ephemeral()
            .build()
            .unwrap()
            .capacity(),
        4096
    );

    // Without a file, and for the profile name; unrelated variables are ignored.
    let config = Config::load(
        None,
        env(&[
            ("STRATA_ENGINE_PROFILE", "turbo"),
            ("STRATA_LOG", "debug"),
            ("PATH", "/bin"),
        ]),
    )
    .unwrap();
    assert_eq!(config.engine.profile.as_deref(), Some("turbo"));
    assert!(matches!(
        config.validate::<P>(),
        Err(ConfigError::InvalidProfileName { .. })
    ));

    // A value of the wrong kind names the variable.
    let err = Config::load(None, env(&[("STRATA_STATE_CAPACITY", "lots")])).unwrap_err();
    assert!(err.to_string().contains("STRATA_STATE_CAPACITY"), "{err}");
}

#[test]
fn capacity_is_bounded_by_the_tier() {
    let too_many = if P::MAX_KEYS == usize::MAX {
        None
    } else {
        Some(P::MAX_KEYS + 1)
    };
    let config = Config::load(None, env(&[("STRATA_STATE_CAPACITY", "0")])).unwrap();
    assert!(config.validate::<P>().is_err());
    if let Some(n) = too_many {
        let config = Config::load(None, env(&[("STRATA_STATE_CAPACITY", &n.to_string())])).unwrap();
        let err = config.validate::<P>().unwrap_err();
        assert!(err.to_string().contains(&P::MAX_KEYS.to_string()), "{err}");
        assert!(Engine::builder().ephemeral().capacity(n).build().is_err());
    }
}

/// `[cluster]` belongs to the multi-node tier: refused below it; there, checked and read
/// from the environment too (seeds comma-separated).
#[test]
fn the_cluster_section_is_the_multi_node_tier_s() {
    let dir = tempfile::tempdir().unwrap();
    // Valid in every other respect: the tiers with an object store need its URL.
    let store = if P::RECOVERY == Recovery::Full {
        "[object_store]\nurl = \"file:///tmp/strata-store\"\n"
    } else {
        ""
    };
    let path = write_config(
        &dir,
        &format!("{store}[cluster]\nnode_id = \"n1\"\nlisten = \"127.0.0.1:7946\"\nshards = 8\n"),
    );
    let config = Config::load(Some(&path), no_env()).unwrap();
    if !P::MULTI_NODE {
        let err = config.validate::<P>().unwrap_err().to_string();
        assert!(
            err.contains("[cluster] is set, but this tier does not have it"),
            "{err}"
        );
        return;
    }
    let config = Config::load(
        Some(&path),
        env(&[("STRATA_CLUSTER_SEEDS", "127.0.0.2:7946, 127.0.0.3:7946")]),
    )
    .unwrap();
    let settings = config.cluster_settings().unwrap();
    assert_eq!(settings.node_id, "n1");
    assert_eq!(settings.seeds, ["127.0.0.2:7946", "127.0.0.3:7946"]);
    assert_eq!(settings.shards, Some(8));
    for (bad, needle) in [
        ("STRATA_CLUSTER_NODE_ID", ""),
        ("STRATA_CLUSTER_LISTEN", "nowhere"),
        ("STRATA_CLUSTER_SHARDS", "0"),
    ] {
        let value = if needle.is_empty() { "" } else { needle };
        let err = Config::load(Some(&path), env(&[(bad, value)]))
            .and_then(|c| c.cluster_settings())
            .unwrap_err()
            .to_string();
        let key = bad.trim_start_matches("STRATA_CLUSTER_").to_lowercase();
        assert!(
            err.contains(&format!("[cluster] {key}")),
            "{bad}={value}: {err}"
        );
    }
}

/// `[object_store] take_over` is the durable tier's: refused where there is no object store
/// and in a cluster (which moves shards by itself); read from the environment in `durable`.
#[test]
fn take_over_is_the_durable_tier_s() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "[object_store]\nurl = \"file:///tmp/strata-store\"\ntake_over = true\n",
    );
    let config = Config::load(Some(&path), no_env()).unwrap();
    match (P::RECOVERY == Recovery::Full, P::MULTI_NODE) {
        (true, false) => {
            config.validate::<P>().unwrap();
            let settings = config.persist_settings(None).unwrap();
            assert!(settings.object_store.take_over);
            let config = Config::load(
                None,
                env(&[
                    ("STRATA_OBJECT_STORE_URL", "file:///tmp/strata-store"),
                    ("STRATA_OBJECT_STORE_TAKE_OVER", "true"),
                ]),
            )
            .unwrap();
            assert!(
                config
                    .persist_settings(None)
                    .unwrap()
                    .object_store
                    .take_over
            );
        }
        (_, multi_node) => {
            let err = config.validate::<P>().unwrap_err().to_string();
            let says = if multi_node {
                "[object_store] take_over is set"
            } else {
                "[object_store] is set, but this tier does not have it"
            };
            assert!(err.contains(says), "{err}");
        }
    }
}

/// The example configuration of the spec (seed 000), verbatim: its key names are aliases of
/// Strata's, so it is a working durable configuration.
const SPEC_CONFIG: &str = include_str!("fixtures/spec_config.toml");

#[test]
fn the_specs_example_configuration_loads_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, SPEC_CONFIG);
    let config = Config::load(Some(&path), no_env()).unwrap();
    assert_eq!(
        config.object_store.url.as_deref(),
        Some("s3://my-bucket/checkpoints")
    );
    if P::KIND != ProfileKind::Durable {
        let err = config.validate::<P>().unwrap_err();
        assert!(
            matches!(err, ConfigError::FeatureNotCompiled { .. }),
            "{err:?}"
        );
        return;
    }
    config.validate::<P>().unwrap();
    let settings = config.persist_settings(Some(dir.path())).unwrap();
    assert_eq!(
        settings.checkpoint_interval,
        Some(std::time::Duration::from_secs(30))
    );
    assert_eq!(
        settings.index_path(),
        dir.path().join("laminardb_indexes.redb")
    );

    // The same file with a local store: the engine runs and keeps its indexes where it says.
    let store = tempfile::tempdir().unwrap();
    let local = SPEC_CONFIG.replace(
        "s3://my-bucket/checkpoints",
        &format!("file://{}", store.path().display()),
    );
    let path = write_config(&dir, &local);
    let config = Config::load(Some(&path), no_env()).unwrap();
    config.validate::<P>().unwrap();
    let data = dir.path().join("data");
    let mut engine = config
        .engine_builder::<P>(Some(&data))
        .unwrap()
        .build()
        .unwrap();
    engine
        .execute(
            "CREATE TABLE users (id BIGINT PRIMARY KEY, city VARCHAR); \
             CREATE INDEX users_city ON users (city); \
             INSERT INTO users VALUES (1, 'Oslo')",
        )
        .unwrap();
    engine.close().unwrap();
    assert!(data.join("laminardb_indexes.redb").exists());
    assert!(!data.join("indexes.redb").exists());
}

#[test]
fn a_spec_alias_and_its_canonical_key_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "[checkpoint]\nobject_store_url = \"memory://a\"\n[object_store]\nurl = \"memory://b\"\n",
    );
    let message = Config::load(Some(&path), no_env()).unwrap_err().to_string();
    assert!(
        message.contains("[checkpoint] object_store_url") && message.contains("[object_store] url"),
        "{message}"
    );
    let err = Config::load(
        None,
        env(&[
            ("STRATA_CHECKPOINT_OBJECT_STORE_URL", "memory://a"),
            ("STRATA_OBJECT_STORE_URL", "memory://b"),
        ]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("same setting"), "{err}");
}

#[test]
fn an_index_file_path_is_refused_where_there_are_no_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "[indexes]\ndb_path = \"idx.redb\"\n");
    let result = Config::load(Some(&path), no_env()).unwrap().validate::<P>();
    match P::INDEXES {
        IndexSupport::None => assert!(result.unwrap_err().to_string().contains("db_path")),
        // (other keys may be missing, e.g. the object store's URL; not this one)
        _ => {
            if let Err(e) = result {
                assert!(!e.to_string().contains("db_path"), "{e}");
            }
        }
    }
}
