//! Indicators per facility and period against values computed by hand on a
//! small fixture (tests/common builds the claims).

mod common;

use bhyt::features::{facility_indicators, FeatureConfig, Period};
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
    let df = facility_indicators(&env.store(), &cfg(Period::Month))
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
        // Two cards claimed here for the first time (LK3 is CARD_93 again),
        // one of them from another province.
        ("new_patients", 2.0),
        ("oop_new_patients", 1.0),
        ("oop_cost_share", out / total),
        ("avg_fund_outpatient", 80_398.0),
        ("vg_outpatient_exam_visits", 2.0),
        ("vg_inpatient_visits", 1.0),
        ("vg_outpatient_exam_avg_cost", out),
        ("vg_inpatient_avg_cost", inp),
        // One facility per level and one diagnosis: every cell is the
        // facility itself, so observed = expected.
        ("oe_cost", 1.0),
        ("excess_cost_vnd", 0.0),
        ("oe_los", 1.0),
        ("oe_admission", 1.0),
        // LK3 (outpatient, 10 January) falls on LK1's discharge day, same card.
        ("overlapping_claim_share", 1.0 / 3.0),
        // Drug 40.218: 93001 bills 33 units for 72,339 VND, 93002 10 units at
        // 1,976; the reference price is the median of the two average prices.
        (
            "drug_supply_price_index",
            72_339.0 / (33.0 * (72_339.0 / 33.0 + 1_976.0) / 2.0),
        ),
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
    let w = facility_indicators(&env.store(), &cfg(Period::Week))
        .unwrap()
        .collect()
        .unwrap();
    let start = w
        .column("period_start")
        .unwrap()
        .cast(&DataType::String)
        .unwrap();
    assert_eq!(start.str().unwrap().get(0), Some("2024-01-08"));
    let y = facility_indicators(&env.store(), &cfg(Period::Year))
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(get(&y, 0, "visits"), 3.0);
}

fn cfg(period: Period) -> FeatureConfig {
    FeatureConfig {
        period,
        ..Default::default()
    }
}

fn set_dates(h: &mut bhyt::qd130::Hoso, admit: &str, discharge: &str) {
    h.xml1.set("NGAY_VAO", admit).set("NGAY_RA", discharge);
}

/// Ratio to the peer median and robust z on three district facilities, the
/// widening of a small group, and the clustering fallback.
#[test]
fn peer_ratios_and_robust_z() {
    let env = Env::new();
    std::fs::write(
        env.path("registry.csv"),
        "facility_code,name,province_code,level,grade,ownership,kind\n\
         93011,A,93,district,III,public,general\n93012,B,93,district,III,public,general\n\
         93013,C,93,district,III,public,general\n93001,P,93,provincial,I,public,general\n93099,X,93,,,,\n",
    )
    .unwrap();
    for (fac, extra) in [
        ("93011", 0.0),
        ("93012", 50_000.0),
        ("93013", 200_000.0),
        ("93001", 0.0),
        ("93099", 0.0),
    ] {
        let mut h = visit(&format!("L{fac}"), fac, CARD_93, false);
        if extra > 0.0 {
            h.xml3.push(service(&format!("L{fac}"), 9, 8, 1.0, extra));
            retotal(&mut h);
        }
        write(
            &env.path(&format!("in/{fac}.xml")),
            fac,
            &[h],
            &Style::default(),
        );
    }
    env.ingest(&["in"]);
    let mut c = cfg(Period::Month);
    c.min_peer_size = 3;
    let t = bhyt::features::compute(&env.store(), &c).unwrap();
    let df = t
        .facility_period
        .sort(["facility_code"], Default::default())
        .unwrap();
    let row = |code: &str| -> usize {
        (0..df.height())
            .find(|&i| df.column("facility_code").unwrap().str().unwrap().get(i) == Some(code))
            .unwrap()
    };
    let g = |code: &str, c: &str| get(&df, row(code), c);
    let (a, b, cc) = (100_498.0, 150_498.0, 300_498.0);
    assert_eq!(g("93013", "avg_cost_outpatient"), cc);
    assert!((g("93013", "avg_cost_outpatient_peer_ratio") - cc / b).abs() < 1e-12);
    // MAD of (a, b, c) around b = median(50,000, 0, 150,000) = 50,000.
    let z = (cc - b) / (1.4826 * 50_000.0);
    assert!((g("93013", "avg_cost_outpatient_peer_z") - z).abs() < 1e-9);
    assert!(
        (g("93011", "avg_cost_outpatient_peer_z") + (b - a) / (1.4826 * 50_000.0)).abs() < 1e-9
    );
    assert_eq!(g("93012", "avg_cost_outpatient_peer_z"), 0.0);
    let groups = t.peer_groups;
    let basis = |code: &str| -> String {
        let i = (0..groups.height())
            .find(|&i| {
                groups
                    .column("facility_code")
                    .unwrap()
                    .str()
                    .unwrap()
                    .get(i)
                    == Some(code)
            })
            .unwrap();
        groups
            .column("peer_basis")
            .unwrap()
            .str()
            .unwrap()
            .get(i)
            .unwrap()
            .to_string()
    };
    assert_eq!(basis("93011"), "registry");
    // A lone provincial hospital is compared with everyone (group too small).
    assert_eq!(basis("93001"), "widened");
    // Missing registry attributes: the peer group comes from the clustering.
    assert_eq!(basis("93099"), "cluster");
    assert!(get(&df, row("93011"), "peer_n") >= 3.0);
}

/// Growth against last year, out-of-province seen from the province, and
/// budget use projected with the seasonal share learnt from a complete
/// earlier year.
#[test]
fn growth_outflow_and_budget() {
    let env = Env::new();
    let mut jan23 = visit("Y1", "93001", CARD_93, false);
    set_dates(&mut jan23, "202301100734", "202301100930");
    let mut dec23 = visit("Y0", "93001", CARD_93, false);
    set_dates(&mut dec23, "202312300734", "202312300930");
    let this1 = visit("Y2", "93001", CARD_93, false);
    let this2 = visit("Y3", "93001", CARD_HN, false);
    write(
        &env.path("in/a.xml"),
        "93001",
        &[jan23, dec23, this1, this2],
        &Style::default(),
    );
    std::fs::write(
        env.path("budgets.csv"),
        "facility_code,year,budget_vnd\n93001,2024,5000000\n",
    )
    .unwrap();
    env.ingest_with(&["in"], |o| o.budgets = Some(env.path("budgets.csv")));
    let t = bhyt::features::compute(&env.store(), &cfg(Period::Month)).unwrap();
    let df = t.facility_period;
    assert_eq!(df.height(), 3);
    // January 2024 against January 2023: 2 visits against 1.
    assert_eq!(get(&df, 2, "visits_yoy"), 1.0);
    assert_eq!(get(&df, 2, "total_cost_yoy"), 1.0);
    assert!(get(&df, 0, "visits_yoy").is_nan());
    // Hà Nội (01) card-holders' care in Cần Thơ (92).
    let o = t.province_outflow;
    assert_eq!(o.height(), 1);
    assert_eq!(
        o.column("card_province").unwrap().str().unwrap().get(0),
        Some("01")
    );
    assert_eq!(
        o.column("destination_province")
            .unwrap()
            .str()
            .unwrap()
            .get(0),
        Some("92")
    );
    assert_eq!(get(&o, 0, "total_cost"), 100_498.0);
    assert_eq!(get(&o, 0, "share_of_card_holders_cost"), 1.0);
    // Budget as of 10 January 2024: 200,996 VND spent of 5,000,000. In 2023
    // half of the year's spending had come by 10 January, so the year end
    // is projected at twice the spending to date.
    let b = t
        .budget
        .clone()
        .lazy()
        .filter(
            col("facility_code")
                .eq(lit("93001"))
                .and(col("year").eq(lit(2024))),
        )
        .collect()
        .unwrap();
    assert_eq!(b.height(), 1);
    let spent = 2.0 * 100_498.0;
    assert_eq!(get(&b, 0, "spent_to_date"), spent);
    assert_eq!(get(&b, 0, "use_rate"), spent / 5_000_000.0);
    assert_eq!(get(&b, 0, "seasonal_share"), 0.5);
    assert!((get(&b, 0, "projected_year_end") - 2.0 * spent).abs() < 1e-6);
    assert!((get(&b, 0, "projected_overrun_vnd") - (2.0 * spent - 5_000_000.0)).abs() < 1e-6);
    assert_eq!(
        b.column("projection_basis").unwrap().str().unwrap().get(0),
        Some("seasonal")
    );
    // The province row adds up its facilities.
    let p = t
        .budget
        .lazy()
        .filter(
            col("facility_code")
                .eq(lit("province:92"))
                .and(col("year").eq(lit(2024))),
        )
        .collect()
        .unwrap();
    assert_eq!(get(&p, 0, "budget_vnd"), 5_000_000.0);
    assert_eq!(get(&p, 0, "spent_to_date"), spent);
}

#[test]
fn drug_classes_come_from_the_reference_table() {
    let env = Env::new();
    let mut h = visit("V1", "93001", CARD_93, false);
    h.xml2[0].set("TEN_THUOC", "Vitamin B1 100mg");
    write(&env.path("in/a.xml"), "93001", &[h], &Style::default());
    env.ingest(&["in"]);
    let df = facility_indicators(&env.store(), &cfg(Period::Month))
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(get(&df, 0, "vitamin_mineral_drug_share"), 1.0);
    assert_eq!(get(&df, 0, "adjuvant_drug_share"), 0.0);
}

/// Two visits of one card admitted at the same minute: the one discharged
/// later overlaps the other, whatever order the rows come in (the later one
/// is written first here, so an order taken from the input flags the wrong
/// one, in the wrong week).
#[test]
fn the_overlap_of_two_visits_admitted_together_is_the_later_discharge() {
    let env = Env::new();
    let mut later = visit("LK9", "93001", CARD_93, false);
    later.xml1.set("NGAY_RA", "202401170930");
    let earlier = visit("LK8", "93001", CARD_93, false);
    write(
        &env.path("in/a.xml"),
        "93001",
        &[later, earlier],
        &Style::default(),
    );
    env.ingest(&["in"]);
    let df = facility_indicators(&env.store(), &cfg(Period::Week))
        .unwrap()
        .collect()
        .unwrap()
        .sort(["period_start"], Default::default())
        .unwrap();
    assert_eq!(df.height(), 2, "two weeks");
    assert_eq!(get(&df, 0, "overlapping_claim_share"), 0.0, "week of 8 Jan");
    assert_eq!(
        get(&df, 1, "overlapping_claim_share"),
        1.0,
        "week of 15 Jan"
    );
}

/// One out-of-province patient who comes back every week is one patient:
/// the share of visits sees a quarter of them from another province at both
/// facilities, the share of new patients only where each is a new person (as
/// phantom patients are).
#[test]
fn a_returning_out_of_province_patient_counts_once() {
    let env = Env::new();
    let (mut returning, mut phantom) = (Vec::new(), Vec::new());
    for week in 0..20u32 {
        let day = chrono::NaiveDate::from_ymd_opt(2024, 1, 8).unwrap()
            + chrono::Duration::weeks(week as i64);
        let stamp = format!("{}0800", day.format("%Y%m%d"));
        for (fac, out) in [("93001", &mut returning), ("93002", &mut phantom)] {
            for k in 0..4u32 {
                let lk = format!("{fac}W{week}K{k}");
                let card = if k == 0 && fac == "93001" {
                    CARD_HN.to_string() // the same border resident every week
                } else if k == 0 {
                    format!("HT20100000{week:05}") // a new card from province 01
                } else {
                    format!("GD4930{fac}{week:02}{k:02}") // new local patients
                };
                let mut h = visit(&lk, fac, &card, false);
                set_dates(&mut h, &stamp, &stamp);
                out.push(h);
            }
        }
    }
    write(
        &env.path("in/r.xml"),
        "93001",
        &returning,
        &Style::default(),
    );
    write(&env.path("in/p.xml"), "93002", &phantom, &Style::default());
    env.ingest(&["in"]);
    let df = facility_indicators(&env.store(), &cfg(Period::Month))
        .unwrap()
        .sort(["facility_code", "period_start"], Default::default())
        .collect()
        .unwrap();
    let rows = |fac: &str| -> Vec<usize> {
        let f = df.column("facility_code").unwrap().str().unwrap().clone();
        (0..df.height())
            .filter(|&i| f.get(i) == Some(fac))
            .collect()
    };
    let sum = |fac: &str, c: &str| rows(fac).iter().map(|&i| get(&df, i, c)).sum::<f64>();
    for fac in ["93001", "93002"] {
        assert_eq!(sum(fac, "visits"), 80.0, "{fac}");
        assert_eq!(sum(fac, "oop_visits"), 20.0, "{fac}");
        // January to March: the claims do not reach 13 weeks back yet.
        assert!(get(&df, rows(fac)[2], "oop_new_patient_share").is_nan());
    }
    // 93001: 1 + 3 × 20 new cards, one from elsewhere; 93002: 80, 20 from elsewhere.
    assert_eq!(sum("93001", "new_patients"), 61.0);
    assert_eq!(sum("93001", "oop_new_patients"), 1.0);
    assert_eq!(sum("93002", "new_patients"), 80.0);
    assert_eq!(sum("93002", "oop_new_patients"), 20.0);
    // May: the returning patient is not new; a quarter of the visits are his.
    let may = *rows("93001").last().unwrap();
    assert_eq!(get(&df, may, "oop_visit_share"), 0.25);
    assert_eq!(get(&df, may, "oop_new_patient_share"), 0.0);
    let may = *rows("93002").last().unwrap();
    assert_eq!(get(&df, may, "oop_new_patient_share"), 0.25);
}

/// What an admission beyond expectation costs: at a district hospital
/// that admits two of its four patients of a diagnosis its peer admits
/// none of (so one more than the level's rate implies), the gap between
/// that diagnosis' stays and its outpatient visits; a diagnosis with
/// stays only has no outpatient to compare with and does not count; the
/// peer, below expectation, has none.
#[test]
fn an_extra_admission_is_priced_at_its_diagnosis_outpatient_gap() {
    let env = Env::new();
    std::fs::write(
        env.path("registry.csv"),
        "facility_code,name,province_code,level,grade,ownership,kind\n\
         93011,A,93,district,III,public,general\n93012,B,93,district,III,public,general\n",
    )
    .unwrap();
    for fac in ["93011", "93012"] {
        let mut hosos: Vec<_> = (0..4)
            .map(|k| visit(&format!("L{fac}{k}"), fac, CARD_93, fac == "93012" && k < 2))
            .collect();
        if fac == "93012" {
            // A stay of another diagnosis, never seen as an outpatient.
            let mut h = visit(&format!("L{fac}9"), fac, CARD_HN, true);
            h.xml1.set("MA_BENH_CHINH", "K35.8");
            hosos.push(h);
        }
        write(
            &env.path(&format!("in/{fac}.xml")),
            fac,
            &hosos,
            &Style::default(),
        );
    }
    env.ingest(&["in"]);
    let df = facility_indicators(&env.store(), &cfg(Period::Month))
        .unwrap()
        .collect()
        .unwrap()
        .sort(["facility_code"], Default::default())
        .unwrap();
    assert_eq!(df.height(), 2);
    // See `indicators_match_hand_computed_values`: an outpatient visit is
    // 100,498 VND, a stay 1,387,897.
    let got = get(&df, 1, "extra_admission_cost");
    assert!((got - (1_387_897.0 - 100_498.0)).abs() < 1e-6, "{got}");
    assert!(get(&df, 0, "extra_admission_cost").is_nan());
}
