//! The data dictionary under datasets/ is generated from the schema; this
//! test fails when they drift apart.
//!
//! Paths come from CARGO_MANIFEST_DIR at run time, not `env!` at compile
//! time: with a target directory shared between clones, a test binary built
//! in one clone would otherwise read another clone's files.

#[test]
fn data_dictionary_is_current() {
    let path = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("datasets/data-dictionary.md");
    let fresh = bhyt::schema::render_dictionary();
    if std::env::var_os("UPDATE_DICTIONARY").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "datasets/data-dictionary.md is stale: run UPDATE_DICTIONARY=1 cargo test --test dictionary"
    );
    for c in bhyt::schema::VISIT_COLUMNS {
        assert!(on_disk.contains(&format!("`{}`", c.name)));
    }
}

#[test]
fn features_dictionary_is_current() {
    let path = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("datasets/features-dictionary.md");
    let fresh = bhyt::features::render_dictionary();
    if std::env::var_os("UPDATE_DICTIONARY").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "datasets/features-dictionary.md is stale: run UPDATE_DICTIONARY=1 cargo test --test dictionary"
    );
}

/// models/detector.toml spells out the defaults of DetectConfig.
#[test]
fn detector_config_file_states_the_defaults() {
    let path = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("models/detector.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let file: bhyt::detect::DetectConfig = toml::from_str(&text).unwrap();
    let a = serde_json::to_value(&file).unwrap();
    let b = serde_json::to_value(bhyt::detect::DetectConfig::default()).unwrap();
    assert_eq!(
        a, b,
        "models/detector.toml differs from DetectConfig::default()"
    );
}

#[test]
fn detection_dictionary_is_current() {
    let path = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("datasets/detect-dictionary.md");
    let fresh = bhyt::alerts::render_dictionary();
    if std::env::var_os("UPDATE_DICTIONARY").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "datasets/detect-dictionary.md is stale: run UPDATE_DICTIONARY=1 cargo test --test dictionary"
    );
}

/// models/forecast.toml states the defaults; the example of known changes parses.
#[test]
fn forecast_config_files_parse() {
    let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("models");
    let text = std::fs::read_to_string(dir.join("forecast.toml")).unwrap();
    let file: bhyt::forecast::ForecastConfig = toml::from_str(&text).unwrap();
    let a = serde_json::to_value(&file).unwrap();
    let b = serde_json::to_value(bhyt::forecast::ForecastConfig::default()).unwrap();
    assert_eq!(a, b);
    let text = std::fs::read_to_string(dir.join("forecast-changes.example.toml")).unwrap();
    let ex: bhyt::forecast::ForecastConfig = toml::from_str(&text).unwrap();
    assert_eq!(ex.changes.len(), 3);
    assert_eq!(ex.changes[1].service_group.as_deref(), Some("bed"));
}
