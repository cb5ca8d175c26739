//! The ConfigMap content shipped in `deploy/config` stays valid and equal to the built-in defaults.

use std::path::Path;

use gateway_ports::{DedupSettings, RetrySettings, SecuritySettings, StormSettings};

#[test]
fn the_shipped_config_directory_is_valid_and_matches_the_defaults() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config");
    let loaded = gateway_adapter_file_config::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.storm, StormSettings::default());
    assert_eq!(loaded.dedup, DedupSettings::default());
    assert_eq!(loaded.retry, RetrySettings::default());
    assert_eq!(loaded.security, SecuritySettings::default());
}
