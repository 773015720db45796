//! What the workspace reads from the engine's outputs: the week's alerts
//! (`<detect>/alerts.parquet`) with their charts (drawn from the features
//! table and the detector model), the audit ranking (`<detect>/scores.parquet`),
//! each facility's current province (the store's registry: rights are by
//! province), and the budget projection (`<forecast>/budget_projection.parquet`).

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::*;

use super::db::AlertRow;
use super::plan::PlanRow;
use super::{ServeConfig, ServeError};
use crate::report::chart::{ChartRequest, ChartSource};

fn read(path: &Path) -> Result<DataFrame, ServeError> {
    crate::store::scan_file(path)
        .and_then(|l| l.collect())
        .map_err(|e| ServeError::Input(format!("{}: {e}", path.display())))
}

fn strings(df: &DataFrame, c: &str) -> Vec<String> {
    df.column(c)
        .and_then(|s| s.cast(&DataType::String))
        .map(|s| {
            s.str()
                .map(|ca| ca.iter().map(|v| v.unwrap_or("").to_string()).collect())
                .unwrap_or_default()
        })
        .unwrap_or_else(|_| vec![String::new(); df.height()])
}

fn floats(df: &DataFrame, c: &str) -> Vec<f64> {
    df.column(c)
        .and_then(|s| s.cast(&DataType::Float64))
        .map(|s| {
            s.f64()
                .map(|ca| ca.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
                .unwrap_or_default()
        })
        .unwrap_or_else(|_| vec![f64::NAN; df.height()])
}

/// facility code → current province code, from the store's registry; the
/// code's first two characters when the registry does not know it.
pub fn provinces(data_dir: Option<&Path>) -> HashMap<String, String> {
    let Some(reg) = data_dir
        .map(|d| d.join("registry").join("facilities.parquet"))
        .filter(|p| p.exists())
    else {
        return HashMap::new();
    };
    match read(&reg) {
        Ok(df) => strings(&df, "facility_code")
            .into_iter()
            .zip(strings(&df, "province"))
            .collect(),
        Err(e) => {
            tracing::warn!("{e}");
            HashMap::new()
        }
    }
}

pub fn province_of(map: &HashMap<String, String>, facility: &str) -> String {
    map.get(facility)
        .filter(|p| !p.is_empty())
        .cloned()
        .unwrap_or_else(|| facility.chars().take(2).collect())
}

/// The alerts of `<detect_dir>/alerts.parquet` as workspace rows (status
/// open, version 1 for new ones), each with its chart when the features
/// table is at hand.
pub fn read_alerts(cfg: &ServeConfig) -> Result<Vec<AlertRow>, ServeError> {
    let path = cfg.detect_dir.join("alerts.parquet");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let df = read(&path)?;
    let map = provinces(cfg.data_dir.as_deref());
    let causes = strings(&df, "cause");
    let mut charts = match cfg.features.as_deref().filter(|p| p.exists()) {
        Some(f) => match ChartSource::open(f, cfg.model.as_deref(), &causes)
            .map(|c| c.with_units(&cfg.detect_dir, &strings(&df, "facility_code"), &causes))
        {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("alert charts left out: {e}");
                None
            }
        },
        None => None,
    };
    let col = |c: &str| strings(&df, c);
    let (id, as_of, fac, name, det, cause, state) = (
        col("alert_id"),
        col("period_start"),
        col("facility_code"),
        col("facility_name"),
        col("detector"),
        col("cause"),
        col("state"),
    );
    let (vi, en) = (col("reason_vi"), col("reason_en"));
    let (group, onset) = (col("peer_group"), col("onset"));
    let date = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    let evidence: Vec<[String; 4]> = {
        let (c, s, d, p) = (
            col("top_claims"),
            col("top_services"),
            col("top_departments"),
            col("top_prescribers"),
        );
        (0..df.height())
            .map(|i| [c[i].clone(), s[i].clone(), d[i].clone(), p[i].clone()])
            .collect()
    };
    let (sev, excess) = (floats(&df, "severity"), floats(&df, "excess_vnd"));
    Ok((0..df.height())
        .map(|i| AlertRow {
            alert_id: id[i].clone(),
            as_of: as_of[i].clone(),
            facility_code: fac[i].clone(),
            facility_name: name[i].clone(),
            province: province_of(&map, &fac[i]),
            detector: det[i].clone(),
            cause: cause[i].clone(),
            state: state[i].clone(),
            severity: if sev[i].is_finite() { sev[i] } else { 0.0 },
            excess_vnd: if excess[i].is_finite() {
                excess[i]
            } else {
                0.0
            },
            reason_vi: vi[i].clone(),
            reason_en: en[i].clone(),
            evidence: serde_json::json!({
                "claims": evidence[i][0], "services": evidence[i][1],
                "departments": evidence[i][2], "prescribers": evidence[i][3],
            })
            .to_string(),
            status: "open".into(),
            assignee: String::new(),
            version: 1,
            chart_svg: charts
                .as_mut()
                .map(|c| {
                    let data = c.data(
                        &ChartRequest {
                            facility_code: &fac[i],
                            peer_group: &group[i],
                            cause: &cause[i],
                            week: date(&as_of[i]),
                            onset: date(&onset[i]),
                        },
                        crate::detect::Lang::Vi,
                    );
                    // A cause with no facility series (a doctor, a ward)
                    // has no chart rather than an empty frame.
                    if data.series.is_empty() {
                        return String::new();
                    }
                    data.chart(crate::detect::Lang::Vi)
                        .svg()
                        .unwrap_or_else(|e| {
                            tracing::warn!("chart of {}: {e}", id[i]);
                            String::new()
                        })
                })
                .unwrap_or_default(),
        })
        .collect())
}

/// The audit ranking of `<detect_dir>/scores.parquet`: the round (the
/// scores' last week) and its facilities with an expected recoverable
/// amount, best first, three times the capacity at most (as `audit.html`).
pub fn read_plan(cfg: &ServeConfig) -> Result<Option<(String, Vec<PlanRow>)>, ServeError> {
    let path = cfg.detect_dir.join("scores.parquet");
    if !path.exists() {
        return Ok(None);
    }
    let scores = read(&path)?;
    let ranking = crate::report::audit_ranking(&scores)
        .map_err(|e| ServeError::Input(format!("{}: {e}", path.display())))?;
    let Some(round) = ranking.iter().map(|r| r.week).max() else {
        return Ok(None);
    };
    let round = round.to_string();
    let map = provinces(cfg.data_dir.as_deref());
    let names = crate::report::facility_names(cfg.data_dir.as_deref()).unwrap_or_default();
    let rows = ranking
        .into_iter()
        .filter(|r| r.expected_recoverable_vnd > 0.0)
        .take(cfg.capacity.max(1) * 3)
        .enumerate()
        .map(|(i, r)| PlanRow {
            round: round.clone(),
            facility_name: names.get(&r.facility_code).cloned().unwrap_or_default(),
            province: province_of(&map, &r.facility_code),
            rank: i as i64 + 1,
            expected_recoverable_vnd: r.expected_recoverable_vnd,
            severity: r.severity,
            excess_vnd: r.excess_vnd,
            signal: r.signal,
            onset: r.onset.map(|d| d.to_string()).unwrap_or_default(),
            status: "proposed".into(),
            owner: String::new(),
            note: String::new(),
            version: 1,
            facility_code: r.facility_code,
        })
        .collect();
    Ok(Some((round, rows)))
}

/// One row of the budget projection.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BudgetRow {
    pub code: String,
    pub name: String,
    pub province: String,
    pub budget_vnd: f64,
    pub spent_to_date_vnd: f64,
    pub projected_vnd: f64,
    pub projected_lo90: f64,
    pub projected_hi90: f64,
    pub overrun_vnd: f64,
}

pub fn read_budget(
    forecast_dir: &Path,
    data_dir: Option<&Path>,
) -> Result<Vec<BudgetRow>, ServeError> {
    let path = forecast_dir.join("budget_projection.parquet");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let df = read(&path)?;
    let map = provinces(data_dir);
    let (code, name) = (strings(&df, "code"), strings(&df, "name"));
    let f = |c: &str| floats(&df, c);
    let (b, s, p, lo, hi, o) = (
        f("budget_vnd"),
        f("spent_to_date_vnd"),
        f("projected_vnd"),
        f("projected_lo90"),
        f("projected_hi90"),
        f("overrun_vnd"),
    );
    Ok((0..df.height())
        .map(|i| BudgetRow {
            province: match code[i].strip_prefix("province:") {
                Some(p) => p.to_string(),
                None => province_of(&map, &code[i]),
            },
            code: code[i].clone(),
            name: name[i].clone(),
            budget_vnd: b[i],
            spent_to_date_vnd: s[i],
            projected_vnd: p[i],
            projected_lo90: lo[i],
            projected_hi90: hi[i],
            overrun_vnd: o[i],
        })
        .collect())
}
