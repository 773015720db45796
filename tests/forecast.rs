//! Forecasting on generated claims (three years of a small province, no
//! injected anomalies), from the store on disk to Parquet and SVG.

mod common;

use bhyt::forecast::{self, is_province, ForecastConfig, KnownChange};
use chrono::NaiveDate;
use polars::prelude::*;

fn strings(df: &DataFrame, c: &str) -> Vec<String> {
    df.column(c)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap().to_string())
        .collect()
}

fn f64s(df: &DataFrame, c: &str) -> Vec<Option<f64>> {
    df.column(c).unwrap().f64().unwrap().iter().collect()
}

#[test]
fn forecasts_add_up_nest_explain_and_move_with_known_changes() {
    use bhyt::generate::GenConfig;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = GenConfig {
        provinces: 1,
        scale: 0.01,
        days: 1096,
        start: NaiveDate::from_ymd_opt(2022, 1, 1).unwrap(),
        anomalies: false,
        ..Default::default()
    };
    let store = common::generate_and_ingest(d, &cfg);

    // Mid-year: the projection of 2024 against its budget.
    let as_of = NaiveDate::from_ymd_opt(2024, 8, 31).unwrap();
    let h = forecast::history(&store, Some(as_of)).unwrap();
    let (f, mut t) = forecast::run(&h, &ForecastConfig::default()).unwrap();
    // One province in the data: one total.
    let provinces: Vec<&String> = f.by_code.keys().filter(|k| is_province(k)).collect();
    assert_eq!(provinces.len(), 1, "{provinces:?}");
    let province = provinces[0].clone();
    let province = province.as_str();
    assert_eq!(f.start, NaiveDate::from_ymd_opt(2024, 9, 1).unwrap());
    // To the end of next year: Sep 2024 … Dec 2025.
    assert_eq!(f.by_code[province].point.len(), 16);
    // Reconciled: facilities add up to the province, month by month;
    // intervals nest around the point.
    for m in 0..16 {
        let sum: f64 = f
            .by_code
            .iter()
            .filter(|(c, _)| !is_province(c))
            .map(|(_, x)| x.point[m])
            .sum();
        let p = f.by_code[province].point[m];
        assert!((sum - p).abs() <= 1e-6 * p, "month {m}: {sum} vs {p}");
        for x in f.by_code.values() {
            let (lo80, hi80) = (&x.bounds[0].0[m], &x.bounds[0].1[m]);
            let (lo95, hi95) = (&x.bounds[2].0[m], &x.bounds[2].1[m]);
            assert!(lo95 <= lo80 && *lo80 <= x.point[m] && x.point[m] <= *hi80 && hi80 <= hi95);
        }
    }
    // The growth decomposition adds up: base + parts = forecast.
    let g = &t.growth;
    let parts = [
        "volume_vnd",
        "price_vnd",
        "case_mix_vnd",
        "known_changes_vnd",
        "other_vnd",
    ];
    let base = f64s(g, "base_vnd");
    let fc = f64s(g, "forecast_vnd");
    for i in 0..g.height() {
        let s: f64 = parts.iter().map(|p| f64s(g, p)[i].unwrap()).sum();
        assert!((base[i].unwrap() + s - fc[i].unwrap()).abs() < 1.0);
    }
    // The generator grows prices by 5 % a year: the measured price part is positive.
    let codes = strings(g, "code");
    let pi = codes.iter().position(|c| c == province).unwrap();
    let price = f64s(g, "price_vnd")[pi].unwrap() / base[pi].unwrap();
    assert!((0.02..0.09).contains(&price), "price part {price}");
    // Projection: spent to date is the year's actual spending so far, and
    // the projection is at least that.
    let p = &t.projection;
    let spent = f64s(p, "spent_to_date_vnd");
    let proj = f64s(p, "projected_vnd");
    for i in 0..p.height() {
        assert!(proj[i].unwrap() >= spent[i].unwrap() - 1.0);
    }
    forecast::write(&h, &f, &mut t, &d.join("out"), bhyt::detect::Lang::Vi).unwrap();
    let svg =
        std::fs::read_to_string(d.join(format!("out/charts/{}.svg", province.replace(':', "-"))))
            .unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("Toàn tỉnh") && svg.contains("dự báo"));
    assert!(svg.contains("<polygon"), "interval bands drawn");
    for f in ["forecast_monthly", "forecast_growth", "budget_projection"] {
        assert!(d.join(format!("out/{f}.parquet")).exists());
    }
    // The planner's page: growth by cause, the province fan chart, one
    // projection row per facility and province, names from the registry.
    let rep = bhyt::report::run(&bhyt::report::ReportOptions {
        detect_dir: d.join("no-detect"),
        features: d.join("no-features.parquet"),
        model: None,
        forecast_dir: Some(d.join("out")),
        data_dir: Some(d.join("data")),
        store_snapshot: None,
        capacity: 5,
        memory_mb: bhyt::store::chunks::DEFAULT_MEMORY_MB,
        out: d.join("report"),
        lang: bhyt::detect::Lang::Vi,
    })
    .unwrap();
    assert_eq!(rep.pages, vec![d.join("report/planner.html")]);
    let html = std::fs::read_to_string(d.join("report/planner.html")).unwrap();
    assert!(html.contains("Toàn tỉnh") && html.contains("<polygon"));
    assert!(
        html.contains("Năm gốc (2023)") && html.contains("Dự báo (2024)"),
        "years in the headers"
    );
    // One row per facility and province in the projection, and one per
    // code and year in the yearly totals.
    assert_eq!(
        html.matches("<tr class=\"row\"").count(),
        t.projection.height() + t.yearly.height()
    );
    assert!(
        html.contains("Cần Thơ") && html.contains("Khoảng 90 %"),
        "province named, yearly intervals shown"
    );
    assert!(
        html.contains("Trạm Y tế"),
        "facility names from the registry"
    );

    // A known price change for every grade-III facility from 2025: +20 %
    // on their 2025 months, nothing before; the province moves by their share.
    let grade3: Vec<String> = h
        .registry
        .iter()
        .filter(|(_, r)| r[2] == "III")
        .map(|(c, _)| c.clone())
        .collect();
    assert!(!grade3.is_empty());
    let changed = ForecastConfig {
        changes: vec![KnownChange {
            kind: "price".into(),
            from: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
            factor: 1.2,
            grade: Some("III".into()),
            level: None,
            facility_kind: None,
            facility_code: None,
            service_group: None,
            note: "giá dịch vụ hạng III".into(),
        }],
        ..Default::default()
    };
    let (f2, _) = forecast::run(&h, &changed).unwrap();
    let c = &grade3[0];
    assert!((f2.by_code[c].point[0] / f.by_code[c].point[0] - 1.0).abs() < 1e-9);
    assert!((f2.by_code[c].point[5] / f.by_code[c].point[5] - 1.2).abs() < 1e-9);
    assert!(f2.by_code[province].point[5] > f.by_code[province].point[5]);
    assert!(f2.known[c][5] > 0.0 && f2.known[c][0] == 0.0);

    // Backtest on the full three years: it runs, every baseline is scored
    // beside the engine, and the figures are sane.
    let full = forecast::history(&store, None).unwrap();
    let b = forecast::backtest(&full, &ForecastConfig::default()).unwrap();
    assert!(!b.province_errors.is_empty());
    assert_eq!(b.methods.len(), 5);
    assert_eq!(b.methods[0].method, "engine");
    assert!(b.engine().province_error < 0.25, "{:?}", b.engine());
    assert!(b.coverage_year.rate[2] >= b.coverage_year.rate[0]);
    let table = forecast::backtest::markdown(&[("store".into(), &b)]);
    assert!(table.contains("last year × growth") && table.contains("| store |"));
}

/// Yearly totals carry intervals of the yearly sum (narrower than the
/// months' bounds added up), provinces are named, and a facility re-coded
/// after a merger keeps its history under its new code (registry
/// `previous_code`).
#[test]
fn yearly_intervals_names_and_recoded_facilities() {
    use bhyt::generate::GenConfig;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let merger = NaiveDate::from_ymd_opt(2023, 7, 1).unwrap();
    let cfg = GenConfig {
        provinces: 2,
        province_codes: vec!["93".into(), "94".into()],
        scale: 0.004,
        days: 790,
        start: NaiveDate::from_ymd_opt(2022, 1, 1).unwrap(),
        anomalies: false,
        merger: Some(merger),
        ..Default::default()
    };
    let store = common::generate_and_ingest(d, &cfg);
    let h = forecast::history(&store, None).unwrap();
    // Every facility claims under a new code of the merged province
    // (Cần Thơ, 92) from July 2023; the old codes are joined into the new.
    assert!(
        h.series.keys().all(|c| c.starts_with("92")),
        "{:?}",
        h.series.keys().take(3).collect::<Vec<_>>()
    );
    let before = h
        .months
        .iter()
        .position(|m| *m == NaiveDate::from_ymd_opt(2023, 1, 1).unwrap())
        .unwrap();
    let province_before: f64 = h.series.values().map(|s| s[before][0]).sum();
    assert!(province_before > 0.0, "history before the merger kept");
    assert_eq!(h.display_name("province:92"), "Cần Thơ");

    let (f, mut t) = forecast::run(&h, &ForecastConfig::default()).unwrap();
    forecast::write(&h, &f, &mut t, &d.join("out"), bhyt::detect::Lang::Vi).unwrap();
    let y = polars::prelude::LazyFrame::scan_parquet(
        d.join("out/forecast_yearly.parquet")
            .to_str()
            .unwrap()
            .into(),
        Default::default(),
    )
    .unwrap()
    .collect()
    .unwrap();
    let codes = strings(&y, "code");
    let names = strings(&y, "name");
    let i = codes.iter().position(|c| c == "province:92").unwrap();
    assert_eq!(names[i], "Cần Thơ");
    let (p, lo80, hi80, lo95, hi95) = (
        f64s(&y, "forecast_vnd")[i].unwrap(),
        f64s(&y, "lo80")[i].unwrap(),
        f64s(&y, "hi80")[i].unwrap(),
        f64s(&y, "lo95")[i].unwrap(),
        f64s(&y, "hi95")[i].unwrap(),
    );
    assert!(lo95 < lo80 && lo80 < p && p < hi80 && hi80 < hi95);
    // The yearly sum's 90 % interval is narrower than the months' 90 %
    // bounds added up (those assume every month errs the same way).
    let year = y.column("year").unwrap().i32().unwrap().get(i).unwrap();
    let fc = &f.by_code["province:92"];
    let (mut lo_sum, mut hi_sum) = (0.0, 0.0);
    for k in 0..fc.point.len() {
        let month = f
            .start
            .checked_add_months(chrono::Months::new(k as u32))
            .unwrap();
        if chrono::Datelike::year(&month) == year {
            lo_sum += fc.bounds[1].0[k];
            hi_sum += fc.bounds[1].1[k];
        }
    }
    let width = f64s(&y, "hi90")[i].unwrap() - f64s(&y, "lo90")[i].unwrap();
    assert!(width < hi_sum - lo_sum, "{width} vs {}", hi_sum - lo_sum);
}
