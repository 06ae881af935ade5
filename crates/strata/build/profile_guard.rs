// The exactly-one-profile rule, shared by `build.rs` (through `include!`) and by
// `tests/build_guard.rs` (as a `#[path]` module), so that the test pins the very messages
// that stop a build. Plain `//` comments: an `include!`d file cannot hold inner doc comments.

/// Every deployment profile, lowest tier first.
pub const PROFILES: [&str; 4] = ["bare-metal", "embedded", "durable", "constellation"];

/// The part of `CARGO_FEATURE_<NAME>` that Cargo derives from a feature name.
pub fn feature_env_name(profile: &str) -> String {
    profile.to_uppercase().replace('-', "_")
}

/// The one profile to build from the enabled profile features, or the message that stops
/// the build: none or several enabled.
pub fn select_profile<'a>(enabled: &[&'a str]) -> Result<&'a str, String> {
    if enabled.len() != 1 {
        let named = if enabled.is_empty() {
            "none is enabled".to_string()
        } else {
            format!("{} are enabled: {}", enabled.len(), enabled.join(", "))
        };
        return Err(format!(
            "strata needs exactly one profile feature, but {named}. The profiles are: \
             bare-metal, embedded, durable, constellation; `embedded` is the default. \
             Pick one, e.g.: cargo build --no-default-features --features durable"
        ));
    }
    Ok(enabled[0])
}

// The capabilities a tier feature enables, from its line in the `[features]` table of
// Cargo.toml, e.g. `durable = ["persistence", "object-store", "server"]` (names only, no
// `dep:` entries).
pub fn tier_capabilities<'a>(manifest: &'a str, tier: &str) -> Vec<&'a str> {
    manifest
        .lines()
        .find_map(|line| line.strip_prefix(tier)?.trim_start().strip_prefix('='))
        .map(|list| {
            list.split('"')
                .skip(1)
                .step_by(2)
                .filter(|name| !name.starts_with("dep:"))
                .collect()
        })
        .unwrap_or_default()
}

// Refuses capability features that the selected tier does not enable: a capability comes
// with its tier and is never chosen on its own. `enabled` are the enabled features.
pub fn check_capabilities(manifest: &str, tier: &str, enabled: &[&str]) -> Result<(), String> {
    let own = tier_capabilities(manifest, tier);
    let known: Vec<&str> = PROFILES
        .iter()
        .flat_map(|t| tier_capabilities(manifest, t))
        .collect();
    let extra: Vec<&str> = enabled
        .iter()
        .copied()
        .filter(|f| known.contains(f) && !own.contains(f))
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    Err(format!(
        "capability feature(s) {} enabled, but the `{tier}` profile does not have them; \
         capabilities come with the profile that has them: enable only a profile feature, e.g.: \
         cargo build --no-default-features --features {}",
        extra.join(", "),
        PROFILES
            .iter()
            .find(|t| extra
                .iter()
                .all(|c| tier_capabilities(manifest, t).contains(c)))
            .unwrap_or(&tier)
    ))
}
