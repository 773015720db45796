//! Alerts: the weekly run that turns scores into the list reviewers read.
//!
//! [`run`] fits or loads the detector, scores the indicator table, keeps
//! the facility-periods of the week at or above the alert severity, explains
//! each one (a sentence in Vietnamese and English, observed against peers
//! and expected, the estimated excess in VND, top claims, services,
//! departments and prescribers), records the week in the lifecycle database
//! and writes `scores.parquet`, `multivariate.parquet` (inputs of the
//! multivariate models), `alerts.parquet`, `alerts.csv` and `alerts.xlsx`
//! (the sheet reviewers fill in and import back with `bhyt review --import`).

mod dictionary;
pub mod explain;
mod export;
pub mod lifecycle;

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use polars::prelude::*;

use crate::detect::signals::{label, show, vnd};
use crate::detect::{self, DetectConfig, DetectorModel, Lang, ModelMeta, RowScore};
use crate::features::Period;
use crate::store::Store;
pub use dictionary::{render_dictionary, ALERT_COLUMNS};
pub use export::spreadsheet_text;
use export::write_alerts;

pub use lifecycle::{AlertDb, Candidate, Decision, Outcome, WeekPrecision};

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Detect(#[from] detect::DetectError),
    #[error(transparent)]
    Lifecycle(#[from] lifecycle::LifecycleError),
    #[error("{path}: {source}")]
    Polars {
        path: String,
        #[source]
        source: PolarsError,
    },
    #[error("alerts: {0}")]
    Polars2(#[from] PolarsError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("alerts: {0}")]
    Input(String),
}

/// What a weekly run needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub features: PathBuf,
    pub data_dir: Option<PathBuf>,
    /// Read the claims store at this snapshot (`--as-of-snapshot`); None:
    /// the newest.
    pub store_snapshot: Option<i64>,
    pub model: PathBuf,
    pub fit: bool,
    pub train_to: Option<NaiveDate>,
    pub config: DetectConfig,
    pub as_of: Option<NaiveDate>,
    pub alerts_db: PathBuf,
    pub out: PathBuf,
    pub lang: Lang,
    pub progress: bool,
}

/// One alert of the week, explained.
#[derive(Debug, Clone)]
pub struct Alert {
    pub alert_id: String,
    pub state: String,
    pub suppressed: bool,
    pub decision: Option<String>,
    pub score: RowScore,
    pub cause: String,
    pub facility_name: Option<String>,
    pub reason_vi: String,
    pub reason_en: String,
    pub top_claims: String,
    pub top_services: String,
    pub top_departments: String,
    pub top_prescribers: String,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub model_meta: ModelMeta,
    pub fitted: bool,
    pub scored: usize,
    pub as_of: NaiveDate,
    /// Why the default period is not the table's last, when it is not.
    pub as_of_note: Option<String>,
    pub alerts: usize,
    pub new: usize,
    pub continuing: usize,
    pub resolved: usize,
    pub suppressed: usize,
    /// One line per listed alert, most severe first.
    pub top: Vec<String>,
    pub list: Vec<Alert>,
}

/// The cause an alert is tracked (and suppressed) by: the indicator for the
/// change and peer detectors (an explained rise in O/E cost is the same
/// cause whichever of them sees it), `multivariate` for the forest and the
/// mixture, the check for claim checks.
pub fn cause_of(s: &RowScore) -> String {
    match s.detector.as_str() {
        "forest" | "mixture" => "multivariate".into(),
        // One doctor's explained rise is not another's.
        "prescriber" => format!("prescriber:{}", s.prescriber.as_deref().unwrap_or("?")),
        "department" => format!("department:{}", s.department.as_deref().unwrap_or("?")),
        _ => s.signal.clone(),
    }
}

fn period_of(name: &str) -> Period {
    match name {
        "month" => Period::Month,
        "quarter" => Period::Quarter,
        "year" => Period::Year,
        _ => Period::Week,
    }
}

/// Last day of the period starting on `start`.
pub fn period_end(start: NaiveDate, period: &str) -> NaiveDate {
    use chrono::Months;
    match period {
        "month" => start + Months::new(1) - chrono::Duration::days(1),
        "quarter" => start + Months::new(3) - chrono::Duration::days(1),
        "year" => start + Months::new(12) - chrono::Duration::days(1),
        _ => start + chrono::Duration::days(6),
    }
}

/// A peer-group key (`level|grade|kind`, `*` where widened) in words.
pub fn peer_group_words(key: &str, lang: Lang) -> String {
    let parts: Vec<&str> = key.split('|').collect();
    if parts.len() != 3 {
        return key.to_string();
    }
    let level = match (parts[0], lang) {
        ("central", Lang::Vi) => "tuyến trung ương",
        ("provincial", Lang::Vi) => "tuyến tỉnh",
        ("district", Lang::Vi) => "tuyến huyện",
        ("commune", Lang::Vi) => "tuyến xã",
        ("central", Lang::En) => "central level",
        ("provincial", Lang::En) => "provincial level",
        ("district", Lang::En) => "district level",
        ("commune", Lang::En) => "commune level",
        (other, _) => other,
    }
    .to_string();
    let grade = match (parts[1], lang) {
        ("*", _) => None,
        (g, Lang::Vi) => Some(format!("hạng {g}")),
        (g, Lang::En) => Some(format!("grade {g}")),
    };
    let kind = match (parts[2], lang) {
        ("*", _) => None,
        ("general", Lang::Vi) => Some("đa khoa".to_string()),
        ("specialist", Lang::Vi) => Some("chuyên khoa".to_string()),
        ("clinic", Lang::Vi) => Some("phòng khám".to_string()),
        (k, _) => Some(k.to_string()),
    };
    [Some(level), grade, kind]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}

/// `n` periods in words.
fn periods_words(n: u32, period: &str, lang: Lang) -> String {
    let (vi, en, en1) = match period {
        "month" => ("tháng", "months", "month"),
        "quarter" => ("quý", "quarters", "quarter"),
        "year" => ("năm", "years", "year"),
        _ => ("tuần", "weeks", "week"),
    };
    match (lang, n) {
        (Lang::Vi, _) => format!("{n} {vi}"),
        (Lang::En, 1) => format!("the last {en1}"),
        (Lang::En, _) => format!("the last {n} {en}"),
    }
}

/// Relative excess of the alert's indicator, observed / expected − 1
/// (expected: the facility's own expectation, else the peer median; for a
/// claim check, flagged against expected claims). What a later alert must
/// exceed to count as worse after an "explained" decision.
pub fn intensity(s: &RowScore) -> f64 {
    let reference = s.expected.or(s.peer_value);
    match (s.detector.as_str(), s.observed, reference) {
        ("claims", Some(o), Some(e)) => (o - e) / e.max(0.5),
        (_, Some(o), Some(e)) if s.signal == "visits" => (o - e).exp() - 1.0,
        (_, Some(o), Some(e)) if e > 0.0 => o / e - 1.0,
        _ => s.severity / 10.0,
    }
}

/// The reason sentence of an alert (`period`: week, month, … of the table).
pub fn reason(s: &RowScore, lang: Lang, period: &str) -> String {
    let window = periods_words(s.window_periods, period, lang);
    let group = peer_group_words(&s.peer_group, lang);
    let sig = s.signal.as_str();
    let lab = label(sig, lang);
    let v = |x: Option<f64>| x.map(|x| show(sig, x, lang)).unwrap_or_else(|| "–".into());
    let onset = s
        .onset
        .map(|d| d.format("%d/%m/%Y").to_string())
        .unwrap_or_else(|| "–".into());
    let amount = vnd(s.excess_vnd, lang);
    let sev = match lang {
        Lang::Vi => format!("{:.1}", s.severity).replace('.', ","),
        Lang::En => format!("{:.1}", s.severity),
    };
    match (s.detector.as_str(), lang) {
        ("change", Lang::Vi) => format!(
            "{} tăng lên {} từ {} (mức dự kiến theo lịch sử của cơ sở, đã tính biến động chung của nhóm: {}; trung vị nhóm: {}); mức độ {}; chi vượt ước tính {}.",
            capitalise(lab), v(s.observed), onset, v(s.expected), v(s.peer_value), sev, amount
        ),
        ("change", Lang::En) => format!(
            "{} rose to {} from {} (expected from the facility's own history, moved as its peers moved: {}; peer median: {}); severity {}; estimated excess {}.",
            capitalise(lab), v(s.observed), onset, v(s.expected), v(s.peer_value), sev, amount
        ),
        ("peer", Lang::Vi) => format!(
            "{} trong {} gần nhất là {}, cao hơn hẳn trung vị {} của các cơ sở cùng nhóm ({}), kể cả khi đã tính sai số do quy mô; mức độ {}; chi vượt ước tính {}.",
            capitalise(lab), window, v(s.observed), v(s.peer_value), group, sev, amount
        ),
        ("peer", Lang::En) => format!(
            "{} over {} is {}, well above the median {} of its peer group ({}), after allowing for its volume; severity {}; estimated excess {}.",
            capitalise(lab), window, v(s.observed), v(s.peer_value), group, sev, amount
        ),
        ("claims", Lang::Vi) => format!(
            "Có {} {} trong {} gần nhất (từ {}), trong khi theo tỷ lệ chung của tỉnh chỉ khoảng {}; mức độ {}; chi phí liên quan ước tính {}.",
            v(s.observed), lab, window, onset,
            s.expected.map(|e| format!("{e:.1}").replace('.', ",")).unwrap_or_else(|| "–".into()),
            sev, amount
        ),
        ("claims", Lang::En) => format!(
            "{} {} in {} (from {}), where the province rate gives about {}; severity {}; related cost {}.",
            v(s.observed), lab, window, onset,
            s.expected.map(|e| format!("{e:.1}")).unwrap_or_else(|| "–".into()),
            sev, amount
        ),
        ("upcoding", Lang::Vi) => format!(
            "Mã chẩn đoán nặng lên mà điều trị không tương ứng: trong {} gần nhất (từ {}), tỷ lệ nhập viện mà các mã bệnh hàm ý tăng {} so với trước, trong khi số ca nhập viện thực tế so với mức đó giảm {} (đã trừ biến động chung của nhóm); dấu hiệu nâng mức chẩn đoán; mức độ {}; chi vượt ước tính {}.",
            window, onset, pct(s.observed.map(|o| o - 1.0), lang), pct(s.expected.map(|e| 1.0 - e), lang), sev, amount
        ),
        ("upcoding", Lang::En) => format!(
            "Diagnoses coded heavier while care does not follow: over {} (from {}), the admission rate the codes imply rose {} against the baseline while admissions against it fell {} (net of the peer group); signs of upcoding; severity {}; estimated excess {}.",
            window, onset, pct(s.observed.map(|o| o - 1.0), lang), pct(s.expected.map(|e| 1.0 - e), lang), sev, amount
        ),
        ("cost_shift", Lang::Vi) => format!(
            "Chi phí mỗi hồ sơ bằng {} lần mức trước đây của chính cơ sở với cùng chẩn đoán và loại hình khám (đã trừ biến động chung của nhóm), tính trên từng hồ sơ trong {} gần nhất (từ {}); mức độ {}; chi vượt ước tính {}.",
            v(s.observed), window, onset, sev, amount
        ),
        ("cost_shift", Lang::En) => format!(
            "Cost per claim {} times the facility's own earlier level for the same diagnoses and visit types (net of its peer group), counted claim by claim over {} (from {}); severity {}; estimated excess {}.",
            v(s.observed), window, onset, sev, amount
        ),
        ("prescriber", Lang::Vi) => format!(
            "Bác sĩ {}: chi phí bình quân mỗi hồ sơ bằng {} lần mức của các đồng nghiệp cùng cơ sở với cùng chẩn đoán và loại hình khám, trong {} gần nhất (từ {}); mức độ {}; chi vượt ước tính {}.",
            s.prescriber.as_deref().unwrap_or("?"), v(s.observed), window, onset, sev, amount
        ),
        ("prescriber", Lang::En) => format!(
            "Doctor {}: cost per claim {} times that of colleagues at the same facility for the same diagnoses and visit types, over {} (from {}); severity {}; estimated excess {}.",
            s.prescriber.as_deref().unwrap_or("?"), v(s.observed), window, onset, sev, amount
        ),
        ("department", Lang::Vi) => format!(
            "Khoa {}: chi phí bình quân mỗi hồ sơ tăng gấp {} lần so với mức trước đây của chính khoa với cùng chẩn đoán và loại hình khám, trong khi các khoa khác của cơ sở không tăng như vậy, trong {} gần nhất (từ {}); mức độ {}; chi vượt ước tính {}.",
            department_label(s.department.as_deref(), lang), v(s.observed), window, onset, sev, amount
        ),
        ("department", Lang::En) => format!(
            "Department {}: cost per claim {} times its own earlier level for the same diagnoses and visit types, while the facility's other departments did not rise so, over {} (from {}); severity {}; estimated excess {}.",
            department_label(s.department.as_deref(), lang), v(s.observed), window, onset, sev, amount
        ),
        (_, Lang::Vi) => format!(
            "Nhiều chỉ số cùng lệch khỏi các tuần thông thường của cơ sở (mô hình đa biến); lệch nhiều nhất: {} ở mức {} so với dự kiến {}; mức độ {}; chi vượt ước tính {}.",
            lab, v(s.observed), v(s.expected), sev, amount
        ),
        (_, Lang::En) => format!(
            "Several indicators are off together against the facility's usual periods (multivariate model); most of all {} at {} against {} expected; severity {}; estimated excess {}.",
            lab, v(s.observed), v(s.expected), sev, amount
        ),
    }
}

/// A department code with its name when the reference table knows it:
/// "K04 (Khoa Nội tim mạch)".
fn department_label(code: Option<&str>, lang: Lang) -> String {
    let Some(code) = code else {
        return "?".into();
    };
    match crate::reference::departments()
        .iter()
        .find(|d| d.code.eq_ignore_ascii_case(code))
    {
        Some(d) => format!(
            "{code} ({})",
            match lang {
                Lang::Vi => &d.name_vi,
                Lang::En => &d.name_en,
            }
        ),
        None => code.to_string(),
    }
}

/// A relative change as a percentage in the language's notation.
fn pct(x: Option<f64>, lang: Lang) -> String {
    match x {
        Some(x) if x.is_finite() => {
            let t = format!("{:.0} %", 100.0 * x);
            match lang {
                Lang::Vi => t.replace('.', ","),
                Lang::En => t,
            }
        }
        _ => "–".into(),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Contributors listed per kind (claims, services, departments, prescribers).
const TOP_CONTRIBUTORS: usize = 5;

fn join_top(list: &[(String, f64)], lang: Lang) -> String {
    list.iter()
        .map(|(k, x)| {
            let amount = match lang {
                Lang::Vi => crate::format::group_vi(x.round() as i64),
                Lang::En => crate::format::group_en(x.round() as i64),
            };
            format!("{k} (+{amount})")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn read_parquet(path: &std::path::Path) -> Result<DataFrame, AlertError> {
    crate::store::scan_file(path)
        .and_then(|l| l.collect())
        .map_err(|source| AlertError::Polars {
            path: path.display().to_string(),
            source,
        })
}

/// The period alerts are raised for when the user names none: the last
/// one whose volume is normal for it (at least half the median of the
/// eight before). A store's last weeks often hold only a few long stays
/// discharged late, and raising alerts on them measures nothing. Returns
/// the period and, when later ones were passed over, why.
pub fn last_complete_period(
    totals: &[(NaiveDate, f64)],
    period: &str,
) -> (Option<NaiveDate>, Option<String>) {
    let n = totals.len();
    for i in (0..n).rev() {
        let before: Vec<f64> = totals[i.saturating_sub(8)..i].iter().map(|t| t.1).collect();
        if before.len() < 4 {
            return (totals.get(n.saturating_sub(1)).map(|t| t.0), None);
        }
        let mut b = before.clone();
        let med = detect::median(&mut b);
        if totals[i].1 >= 0.5 * med {
            let note = (i + 1 < n).then(|| {
                let later: f64 = totals[i + 1..].iter().map(|t| t.1).sum();
                format!(
                    "as of {}: the last {period} with a usual volume; the {} later {period}(s) \
                     ({} … {}) hold {:.0} visits in all, {:.0} % of one usual {period} \
                     (claims not yet in, or long stays discharged late) — --as-of to choose",
                    totals[i].0,
                    n - 1 - i,
                    totals[i + 1].0,
                    totals[n - 1].0,
                    later,
                    100.0 * later / med.max(1.0)
                )
            });
            return (Some(totals[i].0), note);
        }
    }
    (totals.last().map(|t| t.0), None)
}

/// The weekly run: score, raise, explain, record.
pub fn run(o: &RunOptions) -> Result<RunReport, AlertError> {
    let bar = |msg: &str| {
        if o.progress {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_message(msg.to_string());
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            Some(b)
        } else {
            None
        }
    };
    let table = read_parquet(&o.features)?;
    let period_name = table
        .column("period")
        .ok()
        .and_then(|c| c.str().ok().and_then(|s| s.get(0).map(String::from)))
        .unwrap_or_else(|| "week".into());
    let store = match (&o.data_dir, o.store_snapshot) {
        (Some(d), Some(id)) => Some(Store::open(d)?.at_snapshot(id)?),
        (Some(d), None) => Some(Store::open(d)?),
        (None, _) => None,
    };
    let b = bar("claim-level checks");
    let flags = match &store {
        Some(s) => Some(detect::claims::flag_claims(
            s,
            period_of(&period_name),
            &o.config.claims,
            o.config.memory_mb,
        )?),
        None => None,
    };
    if let Some(b) = b {
        b.finish_and_clear();
    }
    let counts = flags.as_ref().map(|f| &f.counts);
    let (model, fitted) = if o.fit || !o.model.exists() {
        let b = bar("fitting the detector");
        let m = detect::fit(&table, counts, &o.config, o.train_to)?;
        m.save(&o.model)?;
        if let Some(b) = b {
            b.finish_and_clear();
        }
        (m, true)
    } else {
        (DetectorModel::load(&o.model)?, false)
    };
    if model.meta.period != period_name {
        return Err(AlertError::Input(format!(
            "the model {} was fitted on {} periods, the table has {} periods",
            o.model.display(),
            model.meta.period,
            period_name
        )));
    }
    // The prescriber and department comparisons need the model's training range.
    let table = match &store {
        Some(s) => {
            let b = bar("comparing prescribers and departments");
            let (period, train_to, window) = (
                period_of(&period_name),
                model.meta.training_to,
                model.config.peer.window,
            );
            let ps = detect::prescriber::prescriber_stats(
                s,
                period,
                train_to,
                window,
                &model.config.prescriber,
                o.config.memory_mb,
            )?;
            let ds = detect::prescriber::department_stats(
                s,
                period,
                train_to,
                window,
                &model.config.department,
                o.config.memory_mb,
            )?;
            if let Some(b) = b {
                b.finish_and_clear();
            }
            // Every doctor's and department's comparison: the charts of
            // their alerts.
            let mut units = detect::prescriber::units_table(&ps, &ds)?;
            crate::store::write_parquet_atomic(
                &mut units,
                &o.out.join(detect::prescriber::UNITS_FILE),
            )?;
            detect::with_unit_stats(
                &detect::with_unit_stats(&table, &ps.by_facility)?,
                &ds.by_facility,
            )?
        }
        None => {
            // No store, no comparison: a units table of an earlier run
            // would chart comparisons this run did not make.
            let stale = o.out.join(detect::prescriber::UNITS_FILE);
            if stale.exists() {
                std::fs::remove_file(&stale)
                    .map_err(|e| AlertError::Input(format!("{}: {e}", stale.display())))?;
            }
            table
        }
    };
    let scores = model.score(&table, counts)?;
    let mut sf = detect::scores_frame(&scores, &model.config.alert)?;
    crate::store::write_parquet_atomic(&mut sf, &o.out.join("scores.parquet"))?;
    let mut mv = model.multivariate_inputs(&table, counts)?;
    crate::store::write_parquet_atomic(&mut mv, &o.out.join("multivariate.parquet"))?;
    let last = scores
        .iter()
        .map(|s| s.period_start)
        .max()
        .ok_or_else(|| AlertError::Input("the features table is empty".into()))?;
    let (as_of, as_of_note) = match o.as_of {
        Some(d) => (
            scores
                .iter()
                .map(|s| s.period_start)
                .filter(|p| *p <= d)
                .max()
                .ok_or_else(|| AlertError::Input(format!("no period on or before {d}")))?,
            None,
        ),
        None => {
            // Visits per period over all facilities: the last weeks of a
            // store hold only the long stays discharged late, not a week.
            let mut totals: std::collections::BTreeMap<NaiveDate, f64> = Default::default();
            for s in &scores {
                totals.entry(s.period_start).or_default();
            }
            if let (Ok(p), Ok(v)) = (table.column("period_start"), table.column("visits")) {
                if let (Ok(p), Ok(v)) = (p.date(), v.cast(&DataType::Float64)) {
                    let v = v
                        .f64()
                        .cloned()
                        .unwrap_or_else(|_| Float64Chunked::from_vec("v".into(), vec![]));
                    for (d, n) in p.as_date_iter().zip(v.iter()) {
                        if let (Some(d), Some(n)) = (d, n) {
                            *totals.entry(d).or_default() += n;
                        }
                    }
                }
            }
            let totals: Vec<(NaiveDate, f64)> = totals.into_iter().collect();
            let (d, note) = last_complete_period(&totals, &period_name);
            (d.unwrap_or(last), note)
        }
    };
    let mut week: Vec<&RowScore> = scores
        .iter()
        .filter(|s| s.period_start == as_of && s.alert)
        .collect();
    // High alerts first, then by money: severity says how sure, the excess
    // how much it matters (severity saturates near 8 for clear cases).
    let high = model.config.alert.high_severity;
    week.sort_by(|a, b| {
        (b.severity >= high)
            .cmp(&(a.severity >= high))
            .then(b.excess_vnd.total_cmp(&a.excess_vnd))
            .then(b.severity.total_cmp(&a.severity))
            .then(a.facility_code.cmp(&b.facility_code))
    });
    let candidates: Vec<Candidate> = week
        .iter()
        .map(|s| Candidate {
            facility_code: s.facility_code.clone(),
            cause: cause_of(s),
            severity: s.severity,
            excess_vnd: s.excess_vnd,
            intensity: intensity(s),
            reason_vi: reason(s, Lang::Vi, &period_name),
            reason_en: reason(s, Lang::En, &period_name),
        })
        .collect();
    let mut db = AlertDb::open(&o.alerts_db)?;
    let outcomes = db.apply(
        &as_of.to_string(),
        &model.meta.version,
        &candidates,
        &model.config.alert,
    )?;
    // Contributors of the listed alerts.
    let baseline = (
        model.meta.training_from,
        period_end(model.meta.training_to, &period_name),
    );
    let spans: Vec<explain::Span> = week
        .iter()
        .map(|s| explain::Span {
            facility_code: s.facility_code.clone(),
            window: (s.onset.unwrap_or(as_of), period_end(as_of, &period_name)),
            baseline,
            volume: s.signal == "visits",
        })
        .collect();
    let kinds: HashMap<String, String> = week
        .iter()
        .filter(|s| s.detector == "claims")
        .map(|s| (s.facility_code.clone(), s.signal.clone()))
        .collect();
    let contrib = match (&store, &flags) {
        (Some(st), Some(f)) => {
            let b = bar("explaining the alerts");
            let c = explain::contributors(
                st,
                &spans,
                Some((&f.flagged, &kinds)),
                TOP_CONTRIBUTORS,
                o.config.memory_mb,
            )?;
            if let Some(b) = b {
                b.finish_and_clear();
            }
            c
        }
        _ => HashMap::new(),
    };
    let names: HashMap<String, String> = match &store {
        Some(st) if st.facilities_path().exists() => {
            let f = st
                .facilities()?
                .select([col("facility_code"), col("name")])
                .collect()?;
            let c = f.column("facility_code")?.str()?.clone();
            let n = f.column("name")?.str()?.clone();
            (0..f.height())
                .filter_map(|i| Some((c.get(i)?.to_string(), n.get(i)?.to_string())))
                .collect()
        }
        _ => HashMap::new(),
    };
    let mut list = Vec::new();
    for (s, c) in week.iter().zip(&candidates) {
        let out = outcomes
            .iter()
            .find(|x| {
                x.facility_code == c.facility_code && x.cause == c.cause && x.state != "resolved"
            })
            .expect("every candidate has an outcome");
        let mut k = contrib.get(&s.facility_code).cloned().unwrap_or_default();
        // A ward's or a doctor's alert leads its list with that ward or
        // doctor and the comparison's excess: the list's measure (cost
        // per visit of the facility) mixes their cost per claim with how
        // many claims they had, which at a ward of thirty stays a month
        // hides a rise per stay.
        let unit = match s.detector.as_str() {
            "department" => s.department.as_ref().map(|d| (d, &mut k.departments)),
            "prescriber" => s.prescriber.as_ref().map(|d| (d, &mut k.prescribers)),
            _ => None,
        };
        if let Some((code, list)) = unit {
            explain::lead_with(list, code, s.excess_vnd, TOP_CONTRIBUTORS);
        }
        list.push(Alert {
            alert_id: out.alert_id.clone(),
            state: out.state.clone(),
            suppressed: out.suppressed,
            decision: out.decision.clone(),
            score: (*s).clone(),
            cause: c.cause.clone(),
            facility_name: names.get(&s.facility_code).cloned(),
            reason_vi: c.reason_vi.clone(),
            reason_en: c.reason_en.clone(),
            top_claims: join_top(&k.claims, o.lang),
            top_services: join_top(&k.services, o.lang),
            top_departments: join_top(&k.departments, o.lang),
            top_prescribers: join_top(&k.prescribers, o.lang),
        });
    }
    write_alerts(&list, o, as_of)?;
    let count = |st: &str| {
        outcomes
            .iter()
            .filter(|x| x.state == st && !x.suppressed)
            .count()
    };
    let top = list
        .iter()
        .filter(|a| !a.suppressed)
        .map(|a| {
            format!(
                "[{}] {} {:.1} {}",
                a.state,
                a.score.facility_code,
                a.score.severity,
                match o.lang {
                    Lang::Vi => &a.reason_vi,
                    Lang::En => &a.reason_en,
                }
            )
        })
        .collect();
    Ok(RunReport {
        model_meta: model.meta.clone(),
        fitted,
        scored: scores.len(),
        as_of,
        as_of_note,
        alerts: list.iter().filter(|a| !a.suppressed).count(),
        new: count("new"),
        continuing: count("continuing"),
        resolved: count("resolved"),
        suppressed: outcomes.iter().filter(|x| x.suppressed).count(),
        top,
        list,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_week_is_the_last_with_a_usual_volume() {
        let d = |k: u64| NaiveDate::from_ymd_opt(2025, 9, 1).unwrap() + chrono::Days::new(7 * k);
        // Ten usual weeks, then three that hold a few late discharges.
        let mut t: Vec<(NaiveDate, f64)> = (0..10).map(|k| (d(k), 1000.0 + k as f64)).collect();
        t.extend([(d(10), 40.0), (d(11), 5.0), (d(12), 1.0)]);
        let (w, note) = last_complete_period(&t, "week");
        assert_eq!(w, Some(d(9)));
        let note = note.unwrap();
        assert!(
            note.contains("3 later week") && note.contains("46 visits"),
            "{note}"
        );
        // A complete table: its last week, no note.
        let (w, note) = last_complete_period(&t[..10], "week");
        assert_eq!((w, note), (Some(d(9)), None));
        // A dip of a quarter is a quiet week (Tết), not an incomplete one.
        let mut q = t[..10].to_vec();
        q.push((d(10), 600.0));
        assert_eq!(last_complete_period(&q, "week").0, Some(d(10)));
    }
}
