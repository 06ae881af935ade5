// The exactly-one-profile rule, shared by `build.rs` (through `include!`) and by
// `tests/build_guard.rs` (as a `#[path]` module), so that the test pins the very messages
// that stop a build. Plain `//` comments: an `include!`d file cannot hold inner doc comments.

/// Every deployment profile, lowest tier first.
pub const PROFILES: [&str; 4] = ["bare-metal", "embedded", "durable", "constellation"];

/// Profiles whose issue has not landed yet: building them stops with an honest message.
pub const NOT_AVAILABLE_YET: [&str; 1] = ["constellation"];

/// The part of `CARGO_FEATURE_<NAME>` that Cargo derives from a feature name.
pub fn feature_env_name(profile: &str) -> String {
    profile.to_uppercase().replace('-', "_")
}

/// The one profile to build from the enabled profile features, or the message that stops
/// the build: none or several enabled, or one that this release cannot build yet.
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
    let profile = enabled[0];
    if NOT_AVAILABLE_YET.contains(&profile) {
        return Err(format!(
            "the `{profile}` profile is not available yet in this release of strata: it is \
             planned but not built. Build `durable`, `embedded` (the default) or `bare-metal` instead, e.g.: \
             cargo build --no-default-features --features embedded"
        ));
    }
    Ok(profile)
}
