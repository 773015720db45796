//! `audit.html`: the inspection plan, facilities ranked by expected
//! recoverable amount, with an evidence page per planned facility.

use std::collections::HashMap;

use chrono::NaiveDate;
use polars::prelude::*;

use super::chart::{chart_signal, is_unit_cause};
use super::html::{escape, page};
use super::*;
use crate::detect::signals::{label, show};

/// Weight of evidence of a severity: Φ(severity − 4), 0.5 at the alert
/// threshold, 0.98 at 6, 0.02 at 2. The expected recoverable amount of a
/// facility is its estimated excess × this weight.
pub fn evidence_weight(severity: f64) -> f64 {
    1.0 - crate::detect::calibrate::p_of_severity(severity - 4.0)
}

/// One facility of the audit plan.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub facility_code: String,
    pub severity: f64,
    pub excess_vnd: f64,
    pub expected_recoverable_vnd: f64,
    pub signal: String,
    pub detector: String,
    pub onset: Option<NaiveDate>,
    pub week: NaiveDate,
}

/// Ranks facilities by expected recoverable amount over the last year of
/// scores: for each facility its strongest period (largest severity ×
/// excess weight) in the 52 weeks up to the last period.
pub fn audit_ranking(scores: &DataFrame) -> Result<Vec<AuditRow>, ReportError> {
    let fac = strs(scores, "facility_code");
    let sig = strs(scores, "signal");
    let det = strs(scores, "detector");
    let sev = nums(scores, "severity");
    let exc = nums(scores, "excess_vnd");
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let days = |c: &str| crate::schema::date_column(scores, c);
    let period = days("period_start")?;
    let onset = days("onset")?;
    let last = period.iter().flatten().max().copied().unwrap_or(epoch);
    let from = last - chrono::Duration::weeks(52);
    let mut best: HashMap<&str, AuditRow> = HashMap::new();
    for i in 0..scores.height() {
        let Some(p) = period[i].filter(|p| *p > from) else {
            continue;
        };
        let s = sev[i].unwrap_or(0.0);
        let x = exc[i].unwrap_or(0.0);
        let r = x * evidence_weight(s);
        let e = best.entry(fac[i].as_str()).or_insert_with(|| AuditRow {
            facility_code: fac[i].clone(),
            severity: 0.0,
            excess_vnd: 0.0,
            expected_recoverable_vnd: -1.0,
            signal: String::new(),
            detector: String::new(),
            onset: None,
            week: p,
        });
        if r > e.expected_recoverable_vnd {
            *e = AuditRow {
                facility_code: fac[i].clone(),
                severity: s,
                excess_vnd: x,
                expected_recoverable_vnd: r,
                signal: sig[i].clone(),
                detector: det[i].clone(),
                onset: onset[i],
                week: p,
            };
        }
    }
    let mut rows: Vec<AuditRow> = best.into_values().collect();
    rows.sort_by(|a, b| {
        b.expected_recoverable_vnd
            .total_cmp(&a.expected_recoverable_vnd)
            .then(a.facility_code.cmp(&b.facility_code))
    });
    Ok(rows)
}

/// The columns of the scores table that [`audit_ranking`] reads, over its
/// last 52 weeks (the ranking's window): the table has a row per facility,
/// week and signal over the whole history.
fn recent_scores(path: &Path) -> Result<DataFrame, ReportError> {
    let err = read_error(path);
    let day = || col("period_start").cast(DataType::Int32);
    let cols = [
        "facility_code",
        "signal",
        "detector",
        "severity",
        "excess_vnd",
        "period_start",
        "onset",
    ];
    crate::store::scan_file(path)
        .map_err(err)?
        .select(cols.map(col))
        .filter(day().gt(day().max() - lit(7 * 52)))
        .collect()
        .map_err(err)
}

pub(super) fn audit_plan(o: &ReportOptions) -> Result<(), ReportError> {
    let lang = o.lang;
    let t = |vi: &'static str, en: &'static str| match lang {
        Lang::Vi => vi,
        Lang::En => en,
    };
    let rows = audit_ranking(&recent_scores(&o.detect_dir.join("scores.parquet"))?)?;
    let names = facility_names(o.data_dir.as_deref())?;
    let planned: Vec<&AuditRow> = rows
        .iter()
        .filter(|r| r.expected_recoverable_vnd > 0.0)
        .take(o.capacity)
        .collect();
    // Contributors of the planned facilities, from the store.
    let contrib = match &o.data_dir {
        Some(d) => {
            let mut st = crate::store::Store::open(d)?;
            if let Some(id) = o.store_snapshot {
                st = st.at_snapshot(id)?;
            }
            let spans: Vec<crate::alerts::explain::Span> = planned
                .iter()
                .map(|r| crate::alerts::explain::Span {
                    facility_code: r.facility_code.clone(),
                    window: (
                        r.onset.unwrap_or(r.week),
                        r.week + chrono::Duration::days(6),
                    ),
                    baseline: (
                        r.onset.unwrap_or(r.week) - chrono::Duration::weeks(52),
                        r.onset.unwrap_or(r.week) - chrono::Duration::days(1),
                    ),
                    // Per visit: the year before may start before the
                    // store does, and days without claims would count.
                    volume: false,
                })
                .collect();
            crate::alerts::explain::contributors(&st, &spans, None, 5, o.memory_mb)?
        }
        None => HashMap::new(),
    };
    let indicators = [
        "avg_cost_outpatient",
        "avg_cost_inpatient",
        "alos",
        "admission_rate",
        "oe_cost",
        "oe_los",
        "bed_cost_share_inpatient",
        "drug_supply_price_index",
        "oop_visit_share",
        "overlapping_claim_share",
    ];
    let mut cols = vec!["facility_code", "peer_group", "period_start"];
    cols.extend(indicators);
    cols.extend(planned.iter().map(|r| chart_signal(&r.signal)));
    let f = read_columns(&o.features, &cols)?;
    let fac = strs(&f, "facility_code");
    let group = strs(&f, "peer_group");
    let period = periods(&f)?;
    let vals: HashMap<&str, Vec<Option<f64>>> =
        indicators.iter().map(|c| (*c, nums(&f, c))).collect();
    let unit_facilities: Vec<String> = rows
        .iter()
        .filter(|r| r.expected_recoverable_vnd > 0.0)
        .take(o.capacity.max(1) * 3)
        .filter(|r| is_unit_cause(&r.signal))
        .map(|r| r.facility_code.clone())
        .collect();
    let units = super::units::UnitCharts::read(&o.detect_dir, &unit_facilities);
    let mut table = String::new();
    let mut pages = String::new();
    for (rank, r) in rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.expected_recoverable_vnd > 0.0)
        .take(o.capacity.max(1) * 3)
    {
        let planned_here = rank < o.capacity;
        let name = names.get(&r.facility_code).cloned().unwrap_or_default();
        table.push_str(&format!(
            "<tr class=\"row{}\" data-id=\"{c}\" data-facility=\"{c} {n}\"><td class=\"num\">{}</td><td>{c}<br><span class=\"muted\">{n}</span></td>\
             <td class=\"num\" data-v=\"{:.0}\">{}</td><td class=\"num\" data-v=\"{:.2}\">{:.1}</td><td class=\"num\" data-v=\"{:.0}\">{}</td><td>{}</td><td>{}</td></tr>\n",
            if planned_here { " high" } else { "" },
            rank + 1,
            r.expected_recoverable_vnd,
            vnd(r.expected_recoverable_vnd, lang),
            r.severity,
            r.severity,
            r.excess_vnd,
            vnd(r.excess_vnd, lang),
            escape(label(&r.signal, lang)),
            if planned_here { t("kiểm tra", "audit") } else { "" },
            c = escape(&r.facility_code),
            n = escape(&name),
        ));
        if !planned_here {
            continue;
        }
        // Evidence: indicators over the last 13 weeks against the peer median.
        let g = (0..f.height())
            .find(|&i| fac[i] == r.facility_code)
            .map(|i| group[i].clone())
            .unwrap_or_default();
        let recent =
            |i: usize| period[i] > r.week - chrono::Duration::weeks(13) && period[i] <= r.week;
        let mut ind_rows = String::new();
        for c in indicators {
            let v = &vals[c];
            let own: Vec<f64> = (0..f.height())
                .filter(|&i| fac[i] == r.facility_code && recent(i))
                .filter_map(|i| v[i])
                .collect();
            let mut per_fac: HashMap<&str, Vec<f64>> = HashMap::new();
            for i in 0..f.height() {
                if group[i] == g && recent(i) {
                    if let Some(x) = v[i] {
                        per_fac.entry(fac[i].as_str()).or_default().push(x);
                    }
                }
            }
            let mut means: Vec<f64> = per_fac
                .values()
                .map(|x| x.iter().sum::<f64>() / x.len() as f64)
                .collect();
            means.sort_by(f64::total_cmp);
            if own.is_empty() || means.is_empty() {
                continue;
            }
            let m = own.iter().sum::<f64>() / own.len() as f64;
            let med = means[means.len() / 2];
            let fmt = |x: f64| {
                if c.starts_with("avg_cost") {
                    vnd(x, lang)
                } else {
                    show(c, x, lang)
                }
            };
            let name = match (c, lang) {
                ("avg_cost_outpatient", Lang::Vi) => "chi bình quân lượt ngoại trú (đồng)",
                ("avg_cost_outpatient", Lang::En) => "average cost per outpatient visit (VND)",
                ("avg_cost_inpatient", Lang::Vi) => "chi bình quân đợt nội trú (đồng)",
                ("avg_cost_inpatient", Lang::En) => "average cost per inpatient stay (VND)",
                ("alos", Lang::Vi) => "ngày điều trị bình quân",
                ("alos", Lang::En) => "average length of stay (days)",
                ("admission_rate", Lang::Vi) => "tỷ lệ nhập viện",
                ("admission_rate", Lang::En) => "admission rate",
                _ => label(c, lang),
            };
            ind_rows.push_str(&format!(
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(name),
                fmt(m),
                fmt(med),
                if med.abs() > 0.0 {
                    let r = format!("{:.2}", m / med);
                    if lang == Lang::Vi { r.replace('.', ",") } else { r }
                } else {
                    "–".into()
                }
            ));
        }
        // A doctor or a department: its ratio to its colleagues, as on
        // the alert list; else the driving indicator over up to three
        // years, weekly.
        let unit_chart = units
            .as_ref()
            .filter(|_| is_unit_cause(&r.signal))
            .map(|u| {
                u.data(
                    &super::chart::ChartRequest {
                        facility_code: &r.facility_code,
                        peer_group: "",
                        cause: &r.signal,
                        week: Some(r.week),
                        onset: r.onset,
                    },
                    lang,
                )
            })
            .filter(|d| !d.series.is_empty());
        let svg = match unit_chart {
            Some(data) => format!("<div class=\"chart\">{}</div>", data.chart(lang).svg()?),
            None => {
                let signal = chart_signal(&r.signal).to_string();
                let sv = nums(&f, &signal);
                let series: Vec<(NaiveDate, f64)> = (0..f.height())
                    .filter(|&i| {
                        fac[i] == r.facility_code
                            && period[i] <= r.week
                            && period[i] > r.week - chrono::Duration::weeks(156)
                    })
                    .filter_map(|i| sv[i].map(|x| (period[i], x)))
                    .collect();
                if series.is_empty() {
                    String::new()
                } else {
                    let svg = AlertChart {
                        title: &r.facility_code,
                        series: &series,
                        band: &[],
                        control: None,
                        onset: r.onset,
                        signal: &signal,
                        lang,
                    }
                    .svg()?;
                    format!("<div class=\"chart\">{svg}</div>")
                }
            }
        };
        let k = contrib.get(&r.facility_code).cloned().unwrap_or_default();
        let list = |v: &[(String, f64)]| {
            v.iter()
                .map(|(k, x)| format!("{} (+{})", escape(k), vnd(*x, lang)))
                .collect::<Vec<_>>()
                .join("; ")
        };
        pages.push_str(&format!(
            "<h2 id=\"f{c}\">{}. {c} {n}</h2><p>{}: {} — {}: {} — {}: {}</p>\
             <table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{ind_rows}</tbody></table>\
             {svg}<p><b>MA_LK</b>: {}</p><p><b>{}</b>: {}</p><p><b>{}</b>: {}</p>",
            rank + 1,
            t("Dấu hiệu", "Signal"),
            escape(label(&r.signal, lang)),
            t("từ", "since"),
            r.onset.map(|d| d.format("%d/%m/%Y").to_string()).unwrap_or_default(),
            t("chi vượt ước tính", "estimated excess"),
            vnd(r.excess_vnd, lang),
            t("Chỉ số (13 tuần gần nhất)", "Indicator (last 13 weeks)"),
            t("Cơ sở", "Facility"),
            t("Trung vị nhóm", "Peer median"),
            t("Tỷ số", "Ratio"),
            list(&k.claims),
            t("Dịch vụ, thuốc", "Services, drugs"),
            list(&k.services),
            t("Khoa", "Departments"),
            list(&k.departments),
            c = escape(&r.facility_code),
            n = escape(&names.get(&r.facility_code).cloned().unwrap_or_default()),
        ));
    }
    let title = t(
        "Kế hoạch kiểm tra — xếp hạng theo số tiền có thể thu hồi",
        "Audit plan — ranked by expected recoverable amount",
    );
    let ths: String = [
        t("Hạng", "Rank"),
        t("Cơ sở", "Facility"),
        t(
            "Có thể thu hồi (kỳ vọng, đồng)",
            "Expected recoverable (VND)",
        ),
        t("Mức độ", "Severity"),
        t("Chi vượt ước tính", "Estimated excess"),
        t("Dấu hiệu chính", "Main signal"),
        t("Kế hoạch", "Plan"),
    ]
    .iter()
    .map(|h| format!("<th data-sort>{}</th>", escape(h)))
    .collect();
    let body = format!(
        "<h1>{}</h1><p>{} {} {}</p><div class=\"filters\"><label>{} <input data-filter=\"facility\" size=\"12\"></label></div>\
         <table><thead><tr>{ths}</tr></thead><tbody>{table}</tbody></table>{pages}",
        escape(title),
        t("Số cuộc kiểm tra có thể thực hiện:", "Audits the team can do:"),
        o.capacity,
        t(
            "Số tiền kỳ vọng = chi vượt ước tính × trọng số bằng chứng Φ(mức độ − 4).",
            "Expected amount = estimated excess × evidence weight Φ(severity − 4).",
        ),
        t("Cơ sở", "Facility"),
    );
    crate::store::write_atomic(
        &o.out.join("audit.html"),
        page(title, lang, &body).as_bytes(),
    )?;
    Ok(())
}
