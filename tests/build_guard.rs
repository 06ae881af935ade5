//! Pins the messages that stop a build with no profile, several profiles, or a profile that
//! is not available yet. `build.rs` includes `build/profile_guard.rs`, and so does this test,
//! so these are the very messages a user sees. (`scripts/test-all` also runs `cargo check`
//! on those feature sets and greps the output.)

#[path = "../crates/strata/build/profile_guard.rs"]
mod profile_guard;

use profile_guard::{feature_env_name, select_profile, PROFILES};

const EXACTLY_ONE_TAIL: &str = "The profiles are: bare-metal, embedded, durable, constellation; \
     `embedded` is the default. Pick one, e.g.: cargo build --no-default-features --features durable";

#[test]
fn no_profile_stops_the_build_with_the_exactly_one_message() {
    let message = select_profile(&[]).unwrap_err();
    assert_eq!(
        message,
        format!(
            "strata needs exactly one profile feature, but none is enabled. {EXACTLY_ONE_TAIL}"
        )
    );
}

#[test]
fn two_profiles_stop_the_build_naming_both() {
    let message = select_profile(&["bare-metal", "embedded"]).unwrap_err();
    assert_eq!(
        message,
        format!(
            "strata needs exactly one profile feature, but 2 are enabled: bare-metal, embedded. \
             {EXACTLY_ONE_TAIL}"
        )
    );
}

#[test]
fn every_combination_of_several_profiles_names_the_enabled_ones() {
    for mask in 0u32..16 {
        let enabled: Vec<&str> = PROFILES
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, p)| *p)
            .collect();
        if enabled.len() < 2 {
            continue;
        }
        let message = select_profile(&enabled).unwrap_err();
        let named = format!("{} are enabled: {}.", enabled.len(), enabled.join(", "));
        assert!(message.contains(&named), "{message}");
        assert!(message.ends_with(EXACTLY_ONE_TAIL), "{message}");
    }
}

#[test]
fn every_profile_alone_builds() {
    for profile in PROFILES {
        assert_eq!(select_profile(&[profile]), Ok(profile));
    }
}

#[test]
fn the_profiles_are_the_four_tiers_and_match_the_library() {
    assert_eq!(
        PROFILES,
        ["bare-metal", "embedded", "durable", "constellation"]
    );
    let names: Vec<&str> = strata::profile::TIERS.iter().map(|t| t.name).collect();
    assert_eq!(names, PROFILES);
}

#[test]
fn feature_env_names_are_cargos() {
    let names: Vec<String> = PROFILES.iter().map(|p| feature_env_name(p)).collect();
    assert_eq!(
        names,
        ["BARE_METAL", "EMBEDDED", "DURABLE", "CONSTELLATION"]
    );
}

#[test]
fn this_build_is_the_one_profile_build_rs_selected() {
    let name = <strata::ActiveProfile as strata::PhysicalProfile>::NAME;
    assert!(strata::VERSION.ends_with(&format!("(profile {name})")));
}

#[test]
fn build_rs_uses_the_shared_guard() {
    let build_rs = include_str!("../crates/strata/build.rs");
    assert!(build_rs.contains(r#"include!("build/profile_guard.rs")"#));
    assert!(build_rs.contains("select_profile(&enabled)"));
}

#[test]
fn lib_rs_backs_up_the_guard_with_the_same_facts() {
    // For tools that skip build scripts, `compile_error!` in lib.rs says the same things.
    let flat = |s: &str| {
        s.replace("\\\n", " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let lib_rs = flat(include_str!("../crates/strata/src/lib.rs"));
    for needle in [
        "compile_error!",
        "strata needs exactly one profile feature, but none is enabled",
        "but several are enabled",
        "The profiles are: bare-metal, embedded, durable, constellation; `embedded` is the default",
        "cargo build --no-default-features --features durable",
    ] {
        assert!(
            lib_rs.contains(needle),
            "crates/strata/src/lib.rs lacks: {needle}"
        );
    }
}

/// The scripts (test-all, check-erasure, .ci/run) read the tiers from `scripts/tiers`, which
/// reads them from the guard: they list the same tiers as `strata::profile::TIERS`.
#[test]
fn the_scripts_see_the_tiers_of_the_capability_matrix() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("bash")
        .current_dir(root)
        .arg("-c")
        .arg(r#"source scripts/tiers && echo "${TIERS[*]}""#)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = strata::profile::TIERS.iter().map(|t| t.name).collect();
    assert_eq!(text.trim(), names.join(" "));
    assert_eq!(PROFILES.join(" "), names.join(" "));
}

#[test]
fn a_capability_without_its_tier_stops_the_build() {
    let manifest = include_str!("../crates/strata/Cargo.toml");
    assert_eq!(
        profile_guard::tier_capabilities(manifest, "durable"),
        ["persistence", "object-store", "server"]
    );
    assert!(profile_guard::tier_capabilities(manifest, "bare-metal").is_empty());
    let ok = ["embedded", "persistence", "default"];
    assert_eq!(
        profile_guard::check_capabilities(manifest, "embedded", &ok),
        Ok(())
    );
    let message =
        profile_guard::check_capabilities(manifest, "bare-metal", &["bare-metal", "server"])
            .unwrap_err();
    assert!(
        message.starts_with(
            "capability feature(s) server enabled, but the `bare-metal` profile does not have them"
        ),
        "{message}"
    );
    assert!(message.ends_with("--features durable"), "{message}");
}
