//! Enforces that exactly one deployment profile feature is enabled, and that it is one this
//! release can build. Cargo exposes enabled features as `CARGO_FEATURE_<NAME>` variables.
//! The rule and its messages live in `build/profile_guard.rs`, which `tests/build_guard.rs`
//! also compiles, so the test pins the messages a user sees.

include!("build/profile_guard.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build/profile_guard.rs");
    for profile in PROFILES {
        println!(
            "cargo:rerun-if-env-changed=CARGO_FEATURE_{}",
            feature_env_name(profile)
        );
    }
    let enabled: Vec<&str> = PROFILES
        .iter()
        .copied()
        .filter(|p| std::env::var_os(format!("CARGO_FEATURE_{}", feature_env_name(p))).is_some())
        .collect();
    println!("cargo:rerun-if-changed=Cargo.toml");
    let manifest = std::fs::read_to_string("Cargo.toml").expect("Cargo.toml is readable");
    let features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(str::to_lowercase))
        .map(|f| f.replace('_', "-"))
        .collect();
    let features: Vec<&str> = features.iter().map(String::as_str).collect();
    match select_profile(&enabled)
        .and_then(|profile| check_capabilities(&manifest, profile, &features).map(|()| profile))
    {
        Ok(profile) => println!("cargo:rustc-env=STRATA_BUILD_PROFILE={profile}"),
        // `cargo::error` (Cargo ≥ 1.84) fails the build with just this message: no
        // build-script backtrace, and the library is not compiled.
        Err(message) => println!("cargo::error={message}"),
    }
}
