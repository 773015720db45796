//! Features in bounded memory give the same results.
//!
//! A generated two-province world runs through features (weekly) and
//! detection. Checked against:
//! - the same stages with a memory budget for about a quarter of the visits,
//!   so that features, claim checks and the prescriber and department
//!   comparisons read the store in chunks of facilities;
//! - golden files written by the code before the features stage was chunked
//!   (commit cc6eafd): the facility-period table and the alert list.
//!
//! `UPDATE_GOLDEN=1 cargo test --test bounded` rewrites the golden files;
//! do that only for a change meant to change results, and say so.

mod common;

use std::path::{Path, PathBuf};

use bhyt::alerts::{self, RunOptions};
use bhyt::detect::DetectConfig;
use bhyt::features::{FeatureConfig, Period};
use bhyt::store::Store;
use chrono::NaiveDate;
use polars::prelude::*;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/bounded")
        .join(name)
}

fn world(d: &Path) -> Store {
    let cfg = bhyt::generate::GenConfig {
        provinces: 2,
        scale: 0.02,
        days: 150,
        start: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        ..Default::default()
    };
    common::generate_and_ingest(d, &cfg)
}

fn read(path: &Path) -> DataFrame {
    bhyt::store::scan_file(path).unwrap().collect().unwrap()
}

fn sorted(df: &DataFrame, by: &[&str]) -> DataFrame {
    df.sort(by.to_vec(), Default::default()).unwrap()
}

/// Same columns in the same order, same rows; floats equal to 1e-9
/// (relative): sums taken in another order differ in the last bits.
fn assert_same(what: &str, got: &DataFrame, want: &DataFrame) {
    assert_eq!(
        got.get_column_names(),
        want.get_column_names(),
        "{what}: columns"
    );
    assert_eq!(got.height(), want.height(), "{what}: rows");
    for (a, b) in got.columns().iter().zip(want.columns()) {
        let name = a.name();
        assert_eq!(a.dtype(), b.dtype(), "{what}: type of {name}");
        if a.dtype().is_float() {
            let x = a.cast(&DataType::Float64).unwrap();
            let y = b.cast(&DataType::Float64).unwrap();
            let (x, y) = (x.f64().unwrap(), y.f64().unwrap());
            for i in 0..x.len() {
                match (x.get(i), y.get(i)) {
                    (None, None) => {}
                    (Some(p), Some(q)) if p.is_nan() && q.is_nan() => {}
                    (Some(p), Some(q)) => assert!(
                        (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0),
                        "{what}: {name} row {i}: {p} vs {q}"
                    ),
                    (p, q) => panic!("{what}: {name} row {i}: {p:?} vs {q:?}"),
                }
            }
        } else {
            assert!(
                a.as_materialized_series()
                    .equals_missing(b.as_materialized_series()),
                "{what}: {name} differs"
            );
        }
    }
}

fn features(store: &Store, cfg: &FeatureConfig, dir: &Path) -> DataFrame {
    let mut t = bhyt::features::compute(store, cfg).unwrap();
    bhyt::features::write(&mut t, dir).unwrap();
    sorted(&t.facility_period, &["facility_code", "period_start"])
}

/// The alert list of the last week, fitted on the world itself, with a low
/// threshold so that the list is not empty.
fn alert_list(d: &Path, features: &Path, memory_mb: u64) -> (DataFrame, DataFrame) {
    let mut config = DetectConfig::default();
    config.alert.alert_severity = 1.0;
    config.memory_mb = memory_mb;
    let o = RunOptions {
        features: features.to_path_buf(),
        ..common::detect_options(d, config)
    };
    alerts::run(&o).unwrap();
    let all = sorted(&read(&d.join("out/alerts.parquet")), &["alert_id"]);
    (all.select(KEPT).unwrap(), all)
}

/// The golden alert columns (the contributors are compared between runs).
const KEPT: [&str; 13] = [
    "alert_id",
    "facility_code",
    "period_start",
    "onset",
    "detector",
    "cause",
    "severity",
    "level",
    "observed",
    "peer_value",
    "expected",
    "excess_vnd",
    "reason_vi",
];

#[test]
fn chunked_features_and_alerts_match_the_whole_store_and_the_golden_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = world(d);
    let cfg = FeatureConfig {
        period: Period::Week,
        ..Default::default()
    };
    let whole = features(&store, &cfg, &d.join("features"));
    let (alerts, alerts_all) = alert_list(d, &d.join("features/facility_period.parquet"), 4096);
    assert!(whole.height() > 100, "{}", whole.height());
    assert!(alerts.height() > 0, "the world raises alerts");

    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(golden("")).unwrap();
        bhyt::store::write_parquet_atomic(&mut whole.clone(), &golden("facility_period.parquet"))
            .unwrap();
        bhyt::store::write_parquet_atomic(&mut alerts.clone(), &golden("alerts.parquet")).unwrap();
        eprintln!(
            "golden files written: {} rows, {} alerts",
            whole.height(),
            alerts.height()
        );
    }
    assert_same(
        "facility_period vs golden",
        &whole,
        &read(&golden("facility_period.parquet")),
    );
    assert_same(
        "alerts vs golden",
        &alerts,
        &read(&golden("alerts.parquet")),
    );

    // A budget for about a quarter of the visits: a few chunks of several
    // facilities each.
    let visits: i64 = whole
        .column("visits")
        .unwrap()
        .i64()
        .unwrap()
        .sum()
        .unwrap();
    let per_visit = bhyt::features::norms::BYTES_PER_VISIT as i64;
    let tiny = FeatureConfig {
        memory_mb: bhyt::store::chunks::BASE_MB + ((visits * per_visit / 4) >> 20) as u64 + 1,
        ..cfg.clone()
    };
    let chunks = bhyt::features::norms::plan(&store, &tiny).unwrap();
    let facilities = whole.column("facility_code").unwrap().n_unique().unwrap();
    assert!(
        (4..facilities / 2).contains(&chunks.len()),
        "{} chunks of {facilities} facilities",
        chunks.len()
    );
    assert_eq!(chunks.iter().map(|c| c.visits as i64).sum::<i64>(), visits);
    let provinces: std::collections::BTreeSet<_> =
        chunks.iter().flat_map(|c| c.provinces.clone()).collect();
    assert_eq!(provinces.len(), 2, "{provinces:?}");
    let chunked = features(&store, &tiny, &d.join("chunked"));
    assert_same("facility_period by chunks", &chunked, &whole);
    let d2 = d.join("second");
    std::fs::create_dir_all(&d2).unwrap();
    std::os::unix::fs::symlink(d.join("data"), d2.join("data")).unwrap();
    // The claim checks and the prescriber and department comparisons in
    // chunks too (their chunks hold more visits: less per visit).
    let (chunked_alerts, chunked_all) = alert_list(
        &d2,
        &d.join("chunked/facility_period.parquet"),
        tiny.memory_mb,
    );
    assert_same("alerts by chunks", &chunked_alerts, &alerts);
    let contributors = ["top_claims", "top_services", "top_departments"];
    assert_same(
        "contributors by chunks",
        &chunked_all.select(contributors).unwrap(),
        &alerts_all.select(contributors).unwrap(),
    );
    // Every doctor's and department's comparison (the charts of their
    // alerts) the same by chunks.
    let units = |d: &Path| read(&d.join("out").join(bhyt::detect::prescriber::UNITS_FILE));
    let (whole_units, chunked_units) = (units(d), units(&d2));
    assert!(whole_units.height() > 0, "the units table has rows");
    assert_same("units by chunks", &chunked_units, &whole_units);
    let services = alerts_all.column("top_services").unwrap().str().unwrap();
    assert!(
        services.iter().any(|s| s.is_some_and(|s| !s.is_empty())),
        "some alert names its services"
    );
}
