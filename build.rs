//! Enforces that exactly one deployment profile feature is enabled, and that it is one this
//! release can build. Cargo exposes enabled features as `CARGO_FEATURE_<NAME>` variables.

const PROFILES: [&str; 4] = ["bare-metal", "embedded", "durable", "constellation"];
/// Profiles whose issue has not landed yet: building them stops with an honest message.
const NOT_AVAILABLE_YET: [&str; 2] = ["durable", "constellation"];

fn main() {
    for profile in PROFILES {
        println!("cargo:rerun-if-env-changed=CARGO_FEATURE_{}", env_name(profile));
    }
    let enabled: Vec<&str> = PROFILES
        .iter()
        .copied()
        .filter(|p| std::env::var_os(format!("CARGO_FEATURE_{}", env_name(p))).is_some())
        .collect();
    if enabled.len() != 1 {
        let named = if enabled.is_empty() {
            "none is enabled".to_string()
        } else {
            format!("{} are enabled: {}", enabled.len(), enabled.join(", "))
        };
        fail(&format!(
            "strata needs exactly one profile feature, but {named}. The profiles are: \
             bare-metal, embedded, durable, constellation; `embedded` is the default. \
             Pick one, e.g.: cargo build --no-default-features --features durable"
        ));
    }
    let profile = enabled[0];
    if NOT_AVAILABLE_YET.contains(&profile) {
        fail(&format!(
            "the `{profile}` profile is not available yet in this release of strata: it is \
             planned but not built. Build `embedded` (the default) or `bare-metal` instead, e.g.: \
             cargo build --no-default-features --features embedded"
        ));
    }
    println!("cargo:rustc-env=STRATA_BUILD_PROFILE={profile}");
}

fn env_name(profile: &str) -> String {
    profile.to_uppercase().replace('-', "_")
}

fn fail(message: &str) -> ! {
    // `cargo::error` shows the message without a build-script backtrace (Cargo ≥ 1.84).
    println!("cargo::error={message}");
    std::process::exit(1);
}
