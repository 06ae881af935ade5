//! Object stores for the tests: one fresh, empty store of each kind available (`memory://`,
//! `file://`, and S3 when `scripts/s3-test-server` runs; `STRATA_REQUIRE_S3=1` makes its
//! absence a failure).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use strata::checkpoint::ObjectStoreSettings;

pub fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// Settings for a store URL; S3 ones get the test server's endpoint and credentials.
pub fn store_settings(url: &str) -> ObjectStoreSettings {
    let mut s = ObjectStoreSettings {
        url: Some(url.to_string()),
        timeout: Duration::from_secs(20),
        ..ObjectStoreSettings::default()
    };
    if url.starts_with("s3://") {
        s.endpoint = std::env::var("STRATA_TEST_S3_ENDPOINT").ok();
        s.allow_http = true;
        s.region = Some("us-east-1".into());
        s.access_key_id = Some("test".into());
        s.secret_access_key = Some("test".into());
    }
    s
}

/// One fresh, empty store of each kind available: `(kind, url)`.
pub fn stores(test: &str, tmp: &Path) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("memory", format!("memory://{}", unique(test))),
        (
            "file",
            format!("file://{}", tmp.join(format!("{test}-store")).display()),
        ),
    ];
    match std::env::var("STRATA_TEST_S3_ENDPOINT") {
        Ok(_) => {
            let bucket =
                std::env::var("STRATA_TEST_S3_BUCKET").unwrap_or_else(|_| "strata-test".into());
            out.push(("s3", format!("s3://{bucket}/{}", unique(test))));
        }
        Err(_) => {
            assert!(
                std::env::var_os("STRATA_REQUIRE_S3").is_none(),
                "STRATA_REQUIRE_S3 is set but STRATA_TEST_S3_ENDPOINT is not: start the server \
                 with scripts/s3-test-server"
            );
            eprintln!("note: no S3 test server (STRATA_TEST_S3_ENDPOINT unset): s3 skipped");
        }
    }
    out
}
