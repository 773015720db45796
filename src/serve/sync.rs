//! What the workspace reads from the engine's outputs: the week's alerts
//! (`<detect>/alerts.parquet`), each facility's current province (the
//! store's registry: rights are by province), and the budget projection
//! (`<forecast>/budget_projection.parquet`).

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::*;

use super::db::AlertRow;
use super::ServeError;

fn read(path: &Path) -> Result<DataFrame, ServeError> {
    LazyFrame::scan_parquet(
        PlRefPath::new(path.to_string_lossy().as_ref()),
        Default::default(),
    )
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
/// open, version 1 for new ones).
pub fn read_alerts(
    detect_dir: &Path,
    data_dir: Option<&Path>,
) -> Result<Vec<AlertRow>, ServeError> {
    let path = detect_dir.join("alerts.parquet");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let df = read(&path)?;
    let map = provinces(data_dir);
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
        })
        .collect())
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
