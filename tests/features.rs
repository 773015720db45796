//! Indicators per facility and period against values computed by hand on a
//! small fixture (tests/common builds the claims).

mod common;

use bhyt::features::{facility_indicators, Period};
use bhyt::qd130::Style;
use common::*;
use polars::prelude::*;

const CARD_93: &str = "DN4930123456789";
const CARD_HN: &str = "HT2010987654321";
const CARD_94: &str = "GD4940111222333";

fn get(df: &DataFrame, row: usize, c: &str) -> f64 {
    df.column(c)
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .get(row)
        .unwrap_or(f64::NAN)
}

#[test]
fn indicators_match_hand_computed_values() {
    let env = Env::new();
    write(
        &env.path("in/a.xml"),
        "93001",
        &[
            visit("LK1", "93001", CARD_93, true),
            visit("LK2", "93001", CARD_HN, false),
            visit("LK3", "93001", CARD_93, false),
        ],
        &Style::default(),
    );
    write(
        &env.path("in/b.xml"),
        "93002",
        &[visit("LK4", "93002", CARD_94, false)],
        &Style::default(),
    );
    env.ingest(&["in"]);
    let df = facility_indicators(&env.store(), Period::Month)
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(df.height(), 2);
    // Hand computation (see tests/common: an outpatient visit is
    // 10×1,976 + 35,226 + 2×22,756 = 100,498 VND; an inpatient stay adds
    // 5 bed-days × 254,868 and 3 × 4,353 of drugs = 1,387,897 VND).
    let out = 100_498.0;
    let inp = 1_387_897.0;
    let total = inp + 2.0 * out;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    let checks: &[(&str, f64)] = &[
        ("visits", 3.0),
        ("outpatient_visits", 2.0),
        ("inpatient_episodes", 1.0),
        ("patients", 2.0),
        ("visits_per_patient", 1.5),
        ("total_cost", total),
        ("fund_paid", 2.0 * 80_398.0 + 1_110_318.0),
        ("avg_cost_outpatient", out),
        ("avg_cost_inpatient", inp),
        ("avg_fund_inpatient", 1_110_318.0),
        ("alos", 5.0),
        ("bed_days", 5.0),
        ("admission_rate", 1.0 / 3.0),
        ("bed_cost_share_inpatient", 1_274_340.0 / inp),
        ("drug_share", (3.0 * 19_760.0 + 13_059.0) / total),
        ("lab_share", 3.0 * 45_512.0 / total),
        ("imaging_share", 0.0),
        ("tests_per_visit", 2.0),
        ("imaging_per_visit", 0.0),
        ("oop_visit_share", 1.0 / 3.0),
        ("oop_cost_share", out / total),
    ];
    for (c, want) in checks {
        let got = get(&df, 0, c);
        assert!(close(got, *want), "{c}: got {got}, want {want}");
    }
    assert_eq!(
        df.column("facility_code").unwrap().str().unwrap().get(0),
        Some("93001")
    );
    // No inpatients at 93002: inpatient averages are null, not NaN or 0.
    assert!(get(&df, 1, "avg_cost_inpatient").is_nan());
    assert!(get(&df, 1, "bed_cost_share_inpatient").is_nan());
    assert_eq!(get(&df, 1, "oop_visit_share"), 0.0);

    // Weeks start on Monday: 2024-01-10 (Wednesday) is in the week of 2024-01-08.
    let w = facility_indicators(&env.store(), Period::Week)
        .unwrap()
        .collect()
        .unwrap();
    let start = w
        .column("period_start")
        .unwrap()
        .cast(&DataType::String)
        .unwrap();
    assert_eq!(start.str().unwrap().get(0), Some("2024-01-08"));
    let y = facility_indicators(&env.store(), Period::Year)
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(get(&y, 0, "visits"), 3.0);
}
