//! Case-mix standardisation on the generator's benign "heavier case mix"
//! facility (a new intensive-care unit): its raw average cost rises, its
//! standardised (observed/expected) cost stays normal.

use bhyt::features::{compute, FeatureConfig, Period};
use bhyt::generate::{generate, AnomalyKind, GenConfig};
use bhyt::ingest::{self, IngestOptions};
use bhyt::privacy::Pseudonymizer;
use bhyt::store::Store;
use chrono::{Datelike, NaiveDate};
use polars::prelude::*;

fn sum(df: &DataFrame, c: &str) -> f64 {
    df.column(c)
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .sum()
        .unwrap()
}

#[test]
fn heavier_case_mix_raises_raw_cost_but_not_standardised_cost() {
    let dir = tempfile::tempdir().unwrap();
    let gen = dir.path().join("gen");
    let cfg = GenConfig {
        scale: 0.01,
        days: 300,
        start: NaiveDate::from_ymd_opt(2023, 1, 1).unwrap(),
        ..Default::default()
    };
    let s = generate(&cfg, &gen, false).unwrap();
    let label = s
        .labels
        .iter()
        .find(|l| l.kind == AnomalyKind::CaseMixShift)
        .unwrap();
    let store = Store::open(dir.path().join("data")).unwrap();
    let opts = IngestOptions {
        inputs: vec![gen.join("claims")],
        registry: Some(gen.join("facilities.csv")),
        ..Default::default()
    };
    ingest::run(&store, &opts, &Pseudonymizer::demo()).unwrap();
    let t = compute(
        &store,
        &FeatureConfig {
            period: Period::Month,
            ..Default::default()
        },
    )
    .unwrap();
    let fac = t
        .facility_period
        .lazy()
        .filter(col("facility_code").eq(lit(label.facility_code.clone())))
        .collect()
        .unwrap();
    // Whole months before the shift, and the months after the one it started in.
    let month_of_start = label.start.with_day(1).unwrap();
    let split = |before: bool| {
        let cut = if before {
            col("period_start").lt(lit(month_of_start))
        } else {
            col("period_start").gt(lit(label.start))
        };
        fac.clone().lazy().filter(cut).collect().unwrap()
    };
    let (b, a) = (split(true), split(false));
    assert!(
        b.height() >= 3 && a.height() >= 3,
        "{} / {} months",
        b.height(),
        a.height()
    );
    let raw = |d: &DataFrame| sum(d, "total_cost") / sum(d, "visits");
    let oe = |d: &DataFrame| sum(d, "total_cost") / sum(d, "expected_cost");
    let raw_rise = raw(&a) / raw(&b);
    let oe_change = oe(&a) / oe(&b);
    assert!(raw_rise > 1.25, "raw average cost rose by {raw_rise}");
    // At 1 % volume, rare severe diagnoses are shrunk towards cheaper parents,
    // which leaves a few percent; at full scale the ratio moves < 1 %.
    assert!(
        (oe_change - 1.0).abs() < 0.10 && (oe_change - 1.0).abs() < 0.2 * (raw_rise - 1.0),
        "standardised cost moved by {oe_change} (raw {raw_rise})"
    );
}
