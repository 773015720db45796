//! Detection, alerts and their lifecycle on real files: a weekly indicator
//! table written to Parquet, the SQLite lifecycle database, reviewed sheets
//! in CSV and XLSX, and (in the last test) generated claims end to end.

mod common;

use std::path::Path;

use bhyt::alerts::lifecycle::read_reviews;
use bhyt::alerts::{self, AlertDb, Candidate, Decision, RunOptions};
use bhyt::detect::{AlertConfig, DetectConfig, DetectorModel, Lang};
use chrono::NaiveDate;
use polars::prelude::*;

/// A weekly features table: 8 district hospitals with noisy but stable
/// indicators; `riser` raises its O/E cost by 25 % from week `from` for
/// `len` weeks. Every facility's cost moves with a shared season.
fn features(riser: &str, from: usize, len: usize, weeks: usize) -> DataFrame {
    let mut fac = Vec::new();
    let mut period = Vec::new();
    let mut oe = Vec::new();
    let mut visits = Vec::new();
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    for f in 0..8 {
        let code = format!("9300{f}");
        for w in 0..weeks {
            let season = 0.05 * ((w as f64) / 8.0).sin();
            // Deterministic noise of about ±4 %.
            let noise = ((f * 31 + w * 17) % 9) as f64 / 100.0 - 0.04;
            let rise = if code == riser && w >= from && w < from + len {
                0.25
            } else {
                0.0
            };
            fac.push(code.clone());
            period.push(start + chrono::Duration::weeks(w as i64));
            oe.push(1.0 + season + noise + rise);
            visits.push(400.0 + ((f * 7 + w * 3) % 11) as f64);
        }
    }
    let n = fac.len();
    let expected: Vec<f64> = visits.iter().map(|v| v * 300_000.0).collect();
    let total: Vec<f64> = expected.iter().zip(&oe).map(|(e, o)| e * o).collect();
    df!(
        "facility_code" => fac,
        "period" => vec!["week"; n],
        "period_start" => period,
        "peer_group" => vec!["district|III|general"; n],
        "visits" => visits,
        "oe_cost" => oe,
        "expected_cost" => expected,
        "total_cost" => total,
    )
    .unwrap()
}

fn config() -> DetectConfig {
    let mut cfg = DetectConfig::default();
    cfg.change
        .signals
        .retain(|s| s.column == "oe_cost" || s.column == "visits");
    cfg.peer.signals = vec!["oe_cost".into()];
    cfg
}

fn write(df: &mut DataFrame, path: &Path) {
    bhyt::store::write_parquet_atomic(df, path).unwrap();
}

fn options(dir: &Path, as_of: Option<NaiveDate>) -> RunOptions {
    RunOptions {
        features: dir.join("features.parquet"),
        data_dir: None,
        store_snapshot: None,
        model: dir.join("models/detector.json"),
        fit: false,
        train_to: None,
        config: config(),
        as_of,
        alerts_db: dir.join("alerts.sqlite"),
        out: dir.join("out"),
        lang: Lang::Vi,
        progress: false,
    }
}

fn week(w: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Duration::weeks(w)
}

/// The riser is alerted within four weeks of its rise, with an explained
/// reason and an excess in VND, and nobody else ever alerts; the alert is
/// new, then continuing, then resolved when the rise ends; reruns of a week
/// give the same list; a saved model scores without refitting.
#[test]
fn weekly_runs_raise_continue_and_resolve_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &mut features("93003", 20, 12, 48),
        &d.join("features.parquet"),
    );
    let r = alerts::run(&options(d, Some(week(19)))).unwrap();
    assert!(r.fitted && d.join("models/detector.json").exists());
    assert_eq!(r.alerts, 0, "{:?}", r.top);
    let first = (20..26)
        .find(|w| alerts::run(&options(d, Some(week(*w)))).unwrap().alerts > 0)
        .expect("alerted within six weeks");
    assert!(first <= 23, "first alert at week {first}");
    let r = alerts::run(&options(d, Some(week(first)))).unwrap();
    assert_eq!(r.list.len(), 1);
    let a = &r.list[0];
    assert_eq!(a.score.facility_code, "93003");
    assert_eq!(a.state, "new");
    assert_eq!(a.cause, "oe_cost");
    assert!(a.score.excess_vnd > 1.0e6, "{}", a.score.excess_vnd);
    assert!(
        a.reason_vi.contains("O/E chi phí") && a.reason_vi.contains(" đồng"),
        "{}",
        a.reason_vi
    );
    assert!(
        a.reason_en.contains("O/E cost") && a.reason_en.contains("VND "),
        "{}",
        a.reason_en
    );
    // Vietnamese grouping of the amount: 1.234.567 đồng.
    let amount = bhyt::format::group_vi(a.score.excess_vnd.round() as i64);
    assert!(a.reason_vi.contains(&amount), "{} / {amount}", a.reason_vi);
    let id = a.alert_id.clone();
    // The reviewer's page: the alert's row, its reason, its chart.
    let rep = bhyt::report::run(&bhyt::report::ReportOptions {
        detect_dir: d.join("out"),
        features: d.join("features.parquet"),
        model: Some(d.join("models/detector.json")),
        forecast_dir: None,
        data_dir: None,
        store_snapshot: None,
        capacity: 3,
        memory_mb: bhyt::store::chunks::DEFAULT_MEMORY_MB,
        out: d.join("report"),
        lang: Lang::Vi,
    })
    .unwrap();
    assert_eq!(rep.alerts, 1);
    let html = std::fs::read_to_string(d.join("report/alerts.html")).unwrap();
    assert!(html.contains(&format!("data-id=\"{id}\"")));
    assert!(html.contains(&bhyt::report::html::escape(&a.reason_vi)));
    assert!(html.contains(&amount), "amount with Vietnamese grouping");
    assert!(
        html.matches("<svg").count() >= 1 && html.contains("<polyline"),
        "chart drawn"
    );
    rendered_in_chromium(&d.join("report/alerts.html"), 1);
    // The audit plan ranks the riser first and plans it within capacity.
    let audit = std::fs::read_to_string(d.join("report/audit.html")).unwrap();
    let first_row = audit.find("<tr class=\"row").unwrap();
    assert!(audit[first_row..].starts_with("<tr class=\"row high\" data-id=\"93003\""));
    assert!(
        audit.contains("id=\"f93003\""),
        "evidence page of the planned facility"
    );
    // Self-contained: nothing loaded from elsewhere.
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("<link")
    );
    // Rerun of the same week: same outputs.
    let before = std::fs::read(d.join("out/alerts.csv")).unwrap();
    let again = alerts::run(&options(d, Some(week(first)))).unwrap();
    assert_eq!(again.list[0].alert_id, id);
    assert_eq!(again.list[0].state, "new");
    assert_eq!(std::fs::read(d.join("out/alerts.csv")).unwrap(), before);
    let xlsx = std::fs::read(d.join("out/alerts.xlsx")).unwrap();
    alerts::run(&options(d, Some(week(first)))).unwrap();
    assert_eq!(std::fs::read(d.join("out/alerts.xlsx")).unwrap(), xlsx);
    assert!(read_reviews(&d.join("out/alerts.xlsx")).unwrap().is_empty());
    // A reviewer fills the decision in the engine's workbook: read it back,
    // write the same sheet with the decision, and the store imports it.
    let reviewed = decide_in_workbook(
        &d.join("out/alerts.xlsx"),
        "dismissed",
        "số liệu đã kiểm tra",
    );
    let rows = read_reviews(&reviewed).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].alert_id.as_str(), rows[0].decision),
        (id.as_str(), Decision::Dismissed)
    );
    let next = alerts::run(&options(d, Some(week(first + 1)))).unwrap();
    assert_eq!(next.list[0].alert_id, id);
    assert_eq!(next.list[0].state, "continuing");
    // A reviewer marks it explained in the CSV the run wrote; while the
    // rise stays the same, the next weeks do not list it.
    let text = std::fs::read_to_string(d.join("out/alerts.csv")).unwrap();
    let mut rdr = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers = rdr.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    let mut w = csv::Writer::from_path(d.join("reviewed.csv")).unwrap();
    w.write_record(&headers).unwrap();
    for rec in rdr.records() {
        let mut r: Vec<String> = rec.unwrap().iter().map(String::from).collect();
        r[col("decision")] = "giải trình".into();
        r[col("comment")] = "phác đồ mới của Sở Y tế".into();
        w.write_record(&r).unwrap();
    }
    w.flush().unwrap();
    let rows = read_reviews(&d.join("reviewed.csv")).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].alert_id.as_str(), rows[0].decision),
        (id.as_str(), Decision::Explained)
    );
    AlertDb::open(&d.join("alerts.sqlite"))
        .unwrap()
        .decide(&rows[0].alert_id, rows[0].decision, &rows[0].comment, "")
        .unwrap();
    let quiet = alerts::run(&options(d, Some(week(first + 2)))).unwrap();
    assert_eq!((quiet.alerts, quiet.suppressed), (0, 1), "{:?}", quiet.top);
    // The rise ends at week 32; the CUSUM fades and the alert resolves.
    let mut resolved = None;
    for w in first + 3..48 {
        let r = alerts::run(&options(d, Some(week(w)))).unwrap();
        assert!(r.list.iter().all(|a| a.score.facility_code == "93003"));
        if r.resolved > 0 {
            resolved = Some(w);
            break;
        }
    }
    let resolved = resolved.expect("resolved after the rise ended");
    assert!((32..44).contains(&resolved), "resolved at week {resolved}");
    // A saved model scores new data without refitting: the same scores.
    let saved = DetectorModel::load(&d.join("models/detector.json")).unwrap();
    let table = features("93003", 20, 12, 48);
    let a = saved.score(&table, None).unwrap();
    let refit = bhyt::detect::fit(&table, None, &config(), None).unwrap();
    assert_eq!(refit.meta, saved.meta);
    assert!(
        a == refit.score(&table, None).unwrap(),
        "saved and refitted models score differently"
    );
}

/// A shock shared by the whole peer group (a price decision for a grade)
/// raises no alert.
#[test]
fn a_rise_of_the_whole_peer_group_is_not_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut df = features("none", 0, 0, 40);
    df = df
        .lazy()
        .with_column(
            when(col("period_start").gt_eq(lit(week(20))))
                .then(col("oe_cost") * lit(1.12))
                .otherwise(col("oe_cost"))
                .alias("oe_cost"),
        )
        .collect()
        .unwrap();
    write(&mut df, &d.join("features.parquet"));
    let mut o = options(d, None);
    o.fit = true;
    alerts::run(&o).unwrap();
    let s = LazyFrame::scan_parquet(
        PlRefPath::new(d.join("out/scores.parquet").to_string_lossy().as_ref()),
        Default::default(),
    )
    .unwrap()
    .collect()
    .unwrap();
    let alerts = s
        .column("alert")
        .unwrap()
        .bool()
        .unwrap()
        .sum()
        .unwrap_or(0);
    assert_eq!(alerts, 0);
}

fn candidate(f: &str, cause: &str, severity: f64, intensity: f64) -> Candidate {
    Candidate {
        facility_code: f.into(),
        cause: cause.into(),
        severity,
        excess_vnd: 1.0e6,
        intensity,
        reason_vi: format!("{f} {cause}"),
        reason_en: format!("{f} {cause}"),
    }
}

/// Decisions are used: explained and dismissed alerts stay quiet for the
/// same cause until they worsen by the margin (relative excess, not severity); a confirmed one keeps
/// being listed; another cause of the same facility is a new alert.
#[test]
fn reviewer_decisions_suppress_until_the_alert_worsens() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = AlertDb::open(&dir.path().join("a.sqlite")).unwrap();
    let cfg = AlertConfig::default();
    let w1 = db
        .apply(
            "2024-03-04",
            "m",
            &[
                candidate("A", "oe_los", 5.0, 0.20),
                candidate("B", "oe_cost", 4.5, 0.10),
            ],
            &cfg,
        )
        .unwrap();
    assert!(w1.iter().all(|o| o.state == "new" && !o.suppressed));
    let a_id = w1[0].alert_id.clone();
    assert_eq!(a_id, "A:oe_los:2024-03-04");
    assert!(db
        .decide(&a_id, Decision::Explained, "khoa mới mở", "NV1")
        .unwrap());
    assert!(!db
        .decide(&a_id, Decision::Explained, "khoa mới mở", "NV1")
        .unwrap());
    db.decide(&w1[1].alert_id, Decision::Confirmed, "", "NV2")
        .unwrap();
    let w2 = db
        .apply(
            "2024-03-11",
            "m",
            &[
                candidate("A", "oe_los", 6.5, 0.28),
                candidate("A", "oop_visit_share", 4.2, 0.5),
                candidate("B", "oe_cost", 4.6, 0.11),
            ],
            &cfg,
        )
        .unwrap();
    let get = |v: &[bhyt::alerts::Outcome], f: &str, c: &str| {
        v.iter()
            .find(|o| o.facility_code == f && o.cause == c)
            .unwrap()
            .clone()
    };
    let a = get(&w2, "A", "oe_los");
    assert!(a.suppressed && a.state == "continuing");
    assert!(!get(&w2, "A", "oop_visit_share").suppressed);
    assert_eq!(get(&w2, "A", "oop_visit_share").state, "new");
    let b = get(&w2, "B", "oe_cost");
    assert!(!b.suppressed && b.decision.as_deref() == Some("confirmed"));
    // The severity grew (a CUSUM does while a steady rise lasts) but the
    // excess is not half again larger: still suppressed above; now it is
    // (0.20 × 1.5 = 0.30 < 0.32): raised again.
    let w3 = db
        .apply(
            "2024-03-18",
            "m",
            &[candidate("A", "oe_los", 6.3, 0.32)],
            &cfg,
        )
        .unwrap();
    assert!(!get(&w3, "A", "oe_los").suppressed);
    // B and A's out-of-province alert went away: resolved.
    assert_eq!(get(&w3, "B", "oe_cost").state, "resolved");
    assert_eq!(get(&w3, "A", "oop_visit_share").state, "resolved");
    // Rerunning week 2 gives the same outcomes.
    let again = db
        .apply(
            "2024-03-11",
            "m",
            &[
                candidate("A", "oe_los", 6.5, 0.28),
                candidate("A", "oop_visit_share", 4.2, 0.5),
                candidate("B", "oe_cost", 4.6, 0.11),
            ],
            &cfg,
        )
        .unwrap();
    assert_eq!(again, w2);
    assert!(db.decide("nope", Decision::Dismissed, "", "").is_err());
}

/// The reviewed sheet comes back as CSV (with a BOM, Vietnamese words) or
/// XLSX; a bad decision names the file, row and field.
#[test]
fn reviewed_sheets_import_from_csv_and_xlsx() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("alerts.csv");
    std::fs::write(
        &csv,
        "\u{feff}alert_id,facility_code,decision,comment,reviewer\n\
         A:oe_los:2024-03-04,A,Giải trình,khoa mới,NV1\n\
         B:oe_cost:2024-03-04,B,,,\n\
         C:duplicate:2024-03-04,C,confirmed,trùng hồ sơ,NV2\n",
    )
    .unwrap();
    let rows = read_reviews(&csv).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].decision, Decision::Explained);
    assert_eq!(rows[0].comment, "khoa mới");
    assert_eq!(rows[1].decision, Decision::Confirmed);

    let xlsx = dir.path().join("alerts.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in ["alert_id", "severity", "decision", "comment"]
        .iter()
        .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    ws.write_string(1, 0, "A:oe_los:2024-03-04").unwrap();
    ws.write_number(1, 1, 5.2).unwrap();
    ws.write_string(1, 2, "dismissed").unwrap();
    ws.write_string(1, 3, "đã kiểm tra").unwrap();
    wb.save(&xlsx).unwrap();
    let rows = read_reviews(&xlsx).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].decision, Decision::Dismissed);
    assert_eq!(rows[0].comment, "đã kiểm tra");

    std::fs::write(&csv, "alert_id,decision\nA,maybe\n").unwrap();
    let e = read_reviews(&csv).unwrap_err().to_string();
    assert!(
        e.contains("alerts.csv") && e.contains("row 2") && e.contains("decision"),
        "{e}"
    );
}

/// A reviewed sheet is imported all or nothing: an unknown alert or two
/// different decisions for one alert stop the import before anything is
/// written; a clean sheet goes in one transaction (fast at scale).
#[test]
fn review_import_is_all_or_nothing_and_reports_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = AlertDb::open(&dir.path().join("a.sqlite")).unwrap();
    let cands: Vec<Candidate> = (0..20_000)
        .map(|i| candidate(&format!("F{i:05}"), "oe_cost", 5.0, 0.2))
        .collect();
    db.apply("2024-03-04", "m", &cands, &AlertConfig::default())
        .unwrap();
    let row = |n: usize, id: &str, d: Decision, c: &str| bhyt::alerts::lifecycle::ReviewRow {
        row: n,
        alert_id: id.into(),
        decision: d,
        comment: c.into(),
        reviewer: "NV1".into(),
    };
    let decided = |db: &AlertDb| {
        db.week("2024-03-04")
            .unwrap()
            .iter()
            .filter(|w| w.decision.is_some())
            .count()
    };
    // Row 2 fine, row 3 unknown: nothing is written.
    let bad = [
        row(2, "F00000:oe_cost:2024-03-04", Decision::Confirmed, ""),
        row(3, "nope", Decision::Dismissed, ""),
    ];
    let e = db.import(&bad, "r.csv").unwrap_err().to_string();
    assert!(
        e.contains("row 3") && e.contains("nope") && e.contains("nothing imported"),
        "{e}"
    );
    assert_eq!(decided(&db), 0);
    // Two decisions for one alert: reported, nothing written.
    let conflict = [
        row(2, "F00001:oe_cost:2024-03-04", Decision::Confirmed, ""),
        row(3, "F00002:oe_cost:2024-03-04", Decision::Dismissed, ""),
        row(
            4,
            "F00001:oe_cost:2024-03-04",
            Decision::Explained,
            "khoa mới",
        ),
    ];
    let e = db.import(&conflict, "r.csv").unwrap_err().to_string();
    assert!(e.contains("rows 2 and 4") && e.contains("F00001"), "{e}");
    assert_eq!(decided(&db), 0);
    // A clean sheet of 20 000 rows (an identical repeat counts once).
    let mut all: Vec<_> = (0..20_000)
        .map(|i| {
            row(
                i + 2,
                &format!("F{i:05}:oe_cost:2024-03-04"),
                Decision::Dismissed,
                "",
            )
        })
        .collect();
    all.push(row(
        20_002,
        "F00000:oe_cost:2024-03-04",
        Decision::Dismissed,
        "",
    ));
    let t = std::time::Instant::now();
    let (added, known) = db.import(&all, "r.csv").unwrap();
    println!("20 001 rows imported in {:.3} s", t.elapsed().as_secs_f64());
    assert_eq!((added, known), (20_000, 1));
    assert_eq!(decided(&db), 20_000);
    // Again: nothing new.
    assert_eq!(db.import(&all, "r.csv").unwrap(), (0, 20_001));
}

/// Generated claims end to end: ingest, weekly features, detection with
/// the claim checks and contributors; outputs carry no personal value and
/// every alert names claims and services.
#[test]
fn generated_claims_run_through_detection() {
    use bhyt::generate::GenConfig;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = GenConfig {
        provinces: 1,
        scale: 0.03,
        days: 150,
        start: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        ..Default::default()
    };
    let store = common::generate_and_ingest(d, &cfg);
    common::weekly_features(&store, &d.join("features"));
    let mut o = options(d, None);
    o.features = d.join("features/facility_period.parquet");
    o.data_dir = Some(d.join("data"));
    o.config = DetectConfig::default();
    // Low threshold so that this short run lists something to explain.
    o.config.alert.alert_severity = 1.0;
    let r = alerts::run(&o).unwrap();
    assert!(r.scored > 100);
    assert!(!r.list.is_empty());
    for a in &r.list {
        assert!(!a.reason_vi.is_empty() && !a.reason_en.is_empty());
        assert!(
            !a.top_claims.is_empty() || a.score.excess_vnd == 0.0,
            "{a:?}"
        );
    }
    let alerts = std::fs::read_to_string(d.join("out/alerts.csv")).unwrap();
    assert!(alerts.starts_with('\u{feff}'));
    // A rerun of the week with the saved model gives the same scores to the
    // bit (sums of floats in a fixed order, whatever the threads did).
    let mut again = o.clone();
    again.out = d.join("out-again");
    again.alerts_db = d.join("alerts-again.sqlite");
    alerts::run(&again).unwrap();
    assert!(
        std::fs::read(d.join("out/scores.parquet")).unwrap()
            == std::fs::read(d.join("out-again/scores.parquet")).unwrap(),
        "scores.parquet differs on a rerun"
    );
    assert!(
        std::fs::read(d.join("out/units.parquet")).unwrap()
            == std::fs::read(d.join("out-again/units.parquet")).unwrap(),
        "units.parquet differs on a rerun"
    );
    // Every output column is documented.
    let units: Vec<(&str, &str)> = [("kind", "")]
        .into_iter()
        .chain(bhyt::detect::prescriber::UNIT_COLUMNS)
        .collect();
    for (file, doc) in [
        ("out/alerts.parquet", bhyt::alerts::ALERT_COLUMNS),
        ("out/scores.parquet", bhyt::detect::SCORE_COLUMNS),
        ("out/units.parquet", &units[..]),
    ] {
        let df = LazyFrame::scan_parquet(
            PlRefPath::new(d.join(file).to_string_lossy().as_ref()),
            Default::default(),
        )
        .unwrap()
        .collect()
        .unwrap();
        for c in df.get_column_names() {
            assert!(
                doc.iter().any(|(n, _)| *n == c.as_str()),
                "{file}: {c} undocumented"
            );
        }
        assert_eq!(df.width(), doc.len(), "{file}");
    }
    // No card number or name of the claims in any output.
    let personal = personal_values(&d.join("gen/claims"));
    assert!(personal.len() > 20);
    for f in [
        "out/alerts.csv",
        "out/scores.parquet",
        "out/alerts.parquet",
        "out/units.parquet",
        "alerts.sqlite",
    ] {
        let bytes = std::fs::read(d.join(f)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for v in &personal {
            assert!(!text.contains(v.as_str()), "{f} holds {v}");
        }
    }
}

/// Card numbers and names of the first envelope's claims (base64 XML1 inside).
fn personal_values(dir: &Path) -> Vec<String> {
    use base64::Engine;
    let file = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .find(|e| e.path().extension().is_some_and(|x| x == "xml"))
        .unwrap();
    let xml = std::fs::read_to_string(file.path()).unwrap();
    let mut out = Vec::new();
    for part in xml.split("<NOIDUNGFILE>").skip(1) {
        let b64: String = part
            .split("</NOIDUNGFILE>")
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            continue;
        };
        let inner = String::from_utf8_lossy(&bytes);
        for tag in ["MA_THE_BHYT", "HO_TEN"] {
            for piece in inner.split(&format!("<{tag}>")).skip(1) {
                let v = piece.split(&format!("</{tag}>")).next().unwrap().trim();
                if v.len() >= 6 && !v.contains('<') {
                    out.push(v.to_string());
                }
            }
        }
    }
    out
}

/// Opens a page in headless Chromium (Debian's `chromium`; `.ci/run`
/// installs it): its script ran (it marks the body), the alert rows and
/// their SVG charts are in the rendered DOM, and a screenshot has content.
fn rendered_in_chromium(page: &Path, rows: usize) {
    let url = format!("file://{}", page.display());
    let chromium = |args: &[&str]| {
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=3000",
            ])
            .args(args)
            .arg(&url)
            .output()
            .expect("chromium is installed (.ci/run installs it)")
    };
    let dom = String::from_utf8_lossy(&chromium(&["--dump-dom"]).stdout).to_string();
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page's script did not run"
    );
    assert_eq!(dom.matches("<tr class=\"row").count(), rows);
    assert!(dom.matches("<svg").count() >= rows && dom.contains("<polyline"));
    let shot = page.with_extension("png");
    let o = chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1200,900",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = std::fs::read(&shot).unwrap();
    // A blank page is a few kilobytes; text, table and chart make it larger.
    assert!(png.len() > 20_000, "screenshot of {} bytes", png.len());
}

/// Copies the engine's alerts.xlsx cell by cell (calamine → rust_xlsxwriter)
/// with `decision` and `comment` filled in on every row, as a reviewer would.
fn decide_in_workbook(path: &Path, decision: &str, comment: &str) -> std::path::PathBuf {
    use calamine::{open_workbook, Data, Reader, Xlsx};
    let mut wb: Xlsx<_> = open_workbook(path).unwrap();
    let sheet = wb.sheet_names()[0].clone();
    let range = wb.worksheet_range(&sheet).unwrap();
    let header: Vec<String> = range
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let dcol = header.iter().position(|h| h == "decision").unwrap();
    let ccol = header.iter().position(|h| h == "comment").unwrap();
    let mut out = rust_xlsxwriter::Workbook::new();
    let ws = out.add_worksheet();
    for (r, row) in range.rows().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let (r32, c16) = (r as u32, c as u16);
            if r > 0 && c == dcol {
                ws.write_string(r32, c16, decision).unwrap();
            } else if r > 0 && c == ccol {
                ws.write_string(r32, c16, comment).unwrap();
            } else {
                match cell {
                    Data::Float(v) => ws.write_number(r32, c16, *v).unwrap(),
                    Data::Int(v) => ws.write_number(r32, c16, *v as f64).unwrap(),
                    Data::Empty => ws,
                    other => ws.write_string(r32, c16, other.to_string()).unwrap(),
                };
            }
        }
    }
    let reviewed = path.with_file_name("alerts-reviewed.xlsx");
    out.save(&reviewed).unwrap();
    reviewed
}

/// `bhyt evaluate --from-decisions`: a week's precision is confirmed over
/// decided, by each alert's latest decision; undecided alerts count as
/// listed, not as decided.
#[test]
fn precision_of_past_weeks_comes_from_the_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = AlertDb::open(&dir.path().join("a.sqlite")).unwrap();
    let cfg = AlertConfig::default();
    let w = db
        .apply(
            "2024-03-04",
            "m",
            &[
                candidate("A", "oe_los", 5.0, 0.20),
                candidate("B", "oe_cost", 4.5, 0.10),
                candidate("C", "oe_cost", 4.4, 0.10),
            ],
            &cfg,
        )
        .unwrap();
    assert!(db.precision_by_week().unwrap()[0].precision.is_none());
    db.decide(&w[0].alert_id, Decision::Dismissed, "", "NV1")
        .unwrap();
    // The latest decision counts: dismissed, then confirmed on review.
    db.decide(&w[0].alert_id, Decision::Confirmed, "hóa đơn trùng", "NV2")
        .unwrap();
    db.decide(&w[1].alert_id, Decision::Explained, "khoa mới", "NV1")
        .unwrap();
    let p = db.precision_by_week().unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].alerts, p[0].decided, p[0].confirmed), (3, 2, 1));
    assert_eq!(p[0].precision, Some(0.5));
}
