//! The synthetic generator: calibration to the seed province, determinism,
//! labels, out-of-province flows, and the bundled sample.

use std::collections::BTreeSet;

use bhyt::generate::{generate, simulate, AnomalyKind, GenConfig};
use bhyt::ingest::{self, IngestOptions};
use bhyt::privacy::Pseudonymizer;
use bhyt::store::Store;
use chrono::NaiveDate;
use polars::prelude::*;

fn cfg(scale: f64, days: u32, provinces: usize) -> GenConfig {
    GenConfig {
        scale,
        days,
        provinces,
        start: NaiveDate::from_ymd_opt(2023, 1, 1).unwrap(),
        ..Default::default()
    }
}

/// One province-year matches Hậu Giang 2023 within ±5 %: 1,534,733 visits,
/// 779.6 billion VND, about 1 in 8 visits inpatient. Simulated at scale 0.1
/// (every quantity is linear in the scale) to keep the test fast.
#[test]
fn province_year_is_calibrated_to_the_seed_province() {
    let s = simulate(&cfg(0.1, 365, 1)).unwrap();
    let visits = s.visits as f64 * 10.0;
    let cost = s.total_cost_vnd * 10.0;
    let inpatient = s.inpatient as f64 / s.visits as f64;
    assert!(
        (visits / 1_534_733.0 - 1.0).abs() <= 0.05,
        "visits {visits}"
    );
    assert!((cost / 779.6e9 - 1.0).abs() <= 0.05, "cost {cost}");
    assert!(
        (inpatient / 0.125 - 1.0).abs() <= 0.05,
        "inpatient share {inpatient}"
    );
    assert_eq!(s.facilities, 92);
}

#[test]
fn output_is_deterministic_and_labelled() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = cfg(0.01, 21, 2);
    let sa = generate(&c, a.path(), false).unwrap();
    generate(&c, b.path(), false).unwrap();
    let list = |d: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(d)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                (
                    e.path().strip_prefix(d).unwrap().display().to_string(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let (la, lb) = (list(a.path()), list(b.path()));
    assert!(la.len() > 100);
    assert!(la == lb, "same seed, same bytes");
    // Every fraud type and every benign look-alike is labelled, per province.
    let kinds: BTreeSet<AnomalyKind> = sa.labels.iter().map(|l| l.kind).collect();
    assert_eq!(kinds.len(), 12, "{kinds:?}");
    assert!(sa.labels.iter().all(|l| l.benign == l.kind.benign()));
    assert!(sa
        .labels
        .iter()
        .filter(|l| l.benign)
        .all(|l| l.true_excess_vnd == 0.0));
    let labels = std::fs::read_to_string(a.path().join("labels.csv")).unwrap();
    assert!(labels.starts_with("facility_code,start,end,type,benign,true_excess_vnd"));
    assert_eq!(labels.lines().count(), sa.labels.len() + 1);
}

#[test]
fn anomalies_add_excess_cost_over_a_longer_run() {
    let s = simulate(&cfg(0.05, 150, 1)).unwrap();
    for l in s.labels.iter().filter(|l| !l.benign) {
        assert!(l.true_excess_vnd > 0.0, "{:?} has no excess", l.kind);
        assert!(l.start < l.end);
    }
    // The excess is a small part of the province's spending, as in reality.
    assert!(s.true_excess_vnd < 0.1 * s.total_cost_vnd);
}

#[test]
fn generated_claims_ingest_cleanly_with_flows_between_provinces() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen");
    let s = generate(&cfg(0.01, 14, 2), &out, false).unwrap();
    let store = Store::open(dir.path().join("data")).unwrap();
    let opts = IngestOptions {
        inputs: vec![out.join("claims")],
        registry: Some(out.join("facilities.csv")),
        budgets: Some(out.join("budgets.csv")),
        ..Default::default()
    };
    let r = ingest::run(&store, &opts, &Pseudonymizer::demo()).unwrap();
    assert_eq!(r.visits.read, s.visits);
    assert_eq!(r.visits.quarantined, 0, "{:?}", r.by_rule);
    assert_eq!(r.lines.quarantined, 0, "{:?}", r.by_rule);
    assert_eq!(r.budgets.unwrap().quarantined, 0);
    let flows = store
        .visits()
        .unwrap()
        .filter(col("out_of_province"))
        .group_by([col("facility_province"), col("card_province")])
        .agg([len().alias("n")])
        .collect()
        .unwrap();
    let pairs: BTreeSet<(String, String)> = (0..flows.height())
        .map(|i| {
            (
                flows
                    .column("facility_province")
                    .unwrap()
                    .str()
                    .unwrap()
                    .get(i)
                    .unwrap()
                    .to_string(),
                flows
                    .column("card_province")
                    .unwrap()
                    .str()
                    .unwrap()
                    .get(i)
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    // Hậu Giang (now Cần Thơ, 92) and Vĩnh Long (86) treat each other's card-holders.
    assert!(pairs.contains(&("92".into(), "86".into())), "{pairs:?}");
    assert!(pairs.contains(&("86".into(), "92".into())), "{pairs:?}");
}

#[test]
fn bundled_sample_is_small_and_clean() {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("datasets/sample");
    let bytes: u64 = walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(bytes <= 20 * 1024 * 1024, "sample is {bytes} bytes");
    for f in ["facilities.csv", "budgets.csv", "labels.csv"] {
        assert!(root.join(f).exists(), "{f}");
    }
}

/// The settings of the detection family (issue 13) change what they say and
/// nothing else: claim-by-claim drug prices, each facility's own price
/// level, ten-visit-a-week commune stations, and a late batch written
/// apart (ingested in a second run, the store then holds every visit).
#[test]
fn world_settings_shape_the_claims() {
    let dir = tempfile::tempdir().unwrap();
    let base = GenConfig {
        anomalies: false,
        ..cfg(0.02, 70, 1)
    };
    let world = |name: &str, g: GenConfig| {
        let out = dir.path().join(name);
        let s = generate(&g, &out, false).unwrap();
        let store = Store::open(dir.path().join(format!("{name}-data"))).unwrap();
        for sub in ["claims", "claims-late"] {
            if out.join(sub).exists() {
                let opts = IngestOptions {
                    inputs: vec![out.join(sub)],
                    registry: Some(out.join("facilities.csv")),
                    ..Default::default()
                };
                ingest::run(&store, &opts, &Pseudonymizer::demo()).unwrap();
            }
        }
        (s, store, out)
    };
    // Distinct prices of each drug code: within a facility, and across facilities.
    let drug_prices = |store: &Store| -> (f64, f64) {
        let per = |keys: Vec<Expr>| {
            let df = store
                .lines()
                .unwrap()
                .filter(col("category").eq(lit("drug")))
                .group_by(keys)
                .agg([col("unit_price").n_unique().alias("n")])
                .select([col("n").cast(DataType::Float64).mean()])
                .collect()
                .unwrap();
            df.column("n").unwrap().f64().unwrap().get(0).unwrap()
        };
        (
            per(vec![col("facility_code"), col("item_code")]),
            per(vec![col("item_code")]),
        )
    };
    let (_, plain, _) = world("plain", base.clone());
    let (within, across) = drug_prices(&plain);
    assert_eq!(within, 1.0, "one price per code and facility");
    assert!(across <= 2.0, "{across}: grades share the drug list");
    let (_, noisy, _) = world(
        "noisy",
        GenConfig {
            unit_price_noise: 0.25,
            ..base.clone()
        },
    );
    // Few lines per facility and code at 2 % volume: nearly each its own price.
    assert!(drug_prices(&noisy).0 > 1.5, "{:?}", drug_prices(&noisy));
    let (_, bids, _) = world(
        "bids",
        GenConfig {
            bid_spread: 0.2,
            ..base.clone()
        },
    );
    let (within, across) = drug_prices(&bids);
    assert_eq!(within, 1.0);
    assert!(across > 5.0, "{across}: each facility its own price");

    let (_, small, _) = world(
        "small",
        GenConfig {
            station_daily: Some(1.5),
            ..base.clone()
        },
    );
    let per_week = small
        .visits()
        .unwrap()
        .join(
            small
                .facilities()
                .unwrap()
                .select([col("facility_code"), col("level")]),
            [col("facility_code")],
            [col("facility_code")],
            JoinArgs::new(JoinType::Inner),
        )
        .filter(col("level").eq(lit("commune")))
        .group_by([col("facility_code")])
        .agg([len().alias("n")])
        .select([(col("n").cast(DataType::Float64) / lit(10.0)).mean()])
        .collect()
        .unwrap();
    let w = per_week.column("n").unwrap().f64().unwrap().get(0).unwrap();
    assert!((6.0..15.0).contains(&w), "{w} visits a week at a station");

    let (s, late, out) = world(
        "late",
        GenConfig {
            late_batch: true,
            ..base
        },
    );
    assert!(out.join("claims-late").exists());
    let n = late.visits().unwrap().select([len()]).collect().unwrap();
    assert_eq!(
        n.column("len").unwrap().u32().unwrap().get(0).unwrap() as u64,
        s.visits
    );
}
