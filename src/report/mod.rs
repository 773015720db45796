//! What the users read: the weekly alert list for reviewers, the audit
//! plan for inspection teams and the planner's page, as self-contained HTML (inline SVG charts, inline
//! script for sorting and filtering, nothing fetched from the network).
//!
//! Three pages: `alerts.html` (reviewers' weekly list), `audit.html`
//! (inspection plan with an evidence page per planned facility) and
//! `planner.html` (growth by cause, fan charts, projection against the
//! budget); `png/` holds every alert chart as PNG for slides.

mod alerts;
mod audit;
pub mod chart;
pub mod html;
mod planner;
mod units;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use polars::prelude::*;

use crate::detect::Lang;
pub use audit::{audit_ranking, evidence_weight, AuditRow};
pub use chart::{AlertChart, ChartSource};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("report: {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: PolarsError,
    },
    #[error("report: {0}")]
    Polars(#[from] PolarsError),
    #[error("report: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("report: {0}")]
    Chart(String),
}

/// Inputs and output of `bhyt report`.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Output folder of `bhyt detect` (alerts.parquet).
    pub detect_dir: PathBuf,
    /// The weekly features table the alerts were raised on.
    pub features: PathBuf,
    /// The detector model (control limits in the charts), if at hand.
    pub model: Option<PathBuf>,
    /// Output folder of `bhyt forecast`, if any (planner's page).
    pub forecast_dir: Option<PathBuf>,
    /// Claims store, for the evidence pages' top claims and services.
    pub data_dir: Option<PathBuf>,
    /// Read the claims store at this snapshot (`--as-of-snapshot`); None:
    /// the newest.
    pub store_snapshot: Option<i64>,
    /// Audits the inspection team can do: the plan lists this many first.
    pub capacity: usize,
    /// Memory budget, MiB, of the evidence pages' pass over the claims
    /// (default [`crate::store::chunks::DEFAULT_MEMORY_MB`]).
    pub memory_mb: u64,
    pub out: PathBuf,
    pub lang: Lang,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct ReportSummary {
    pub alerts: usize,
    pub pages: Vec<PathBuf>,
}

pub(crate) fn read(path: &Path) -> Result<DataFrame, ReportError> {
    crate::store::scan_file(path)
        .and_then(|l| l.collect())
        .map_err(read_error(path))
}

/// A Polars error reading `path`, named.
pub(crate) fn read_error(path: &Path) -> impl Fn(PolarsError) -> ReportError + Copy + '_ {
    move |source| ReportError::Read {
        path: path.display().to_string(),
        source,
    }
}

/// The named columns of a Parquet file, those it has. The features and
/// scores tables are wide (one column per indicator) and long (facilities ×
/// weeks), and a page draws a dozen of their columns: reading only those
/// keeps the report's memory to what it shows.
pub(crate) fn read_columns(path: &Path, cols: &[&str]) -> Result<DataFrame, ReportError> {
    let err = read_error(path);
    let mut lf = crate::store::scan_file(path).map_err(err)?;
    let schema = lf.collect_schema().map_err(err)?;
    let mut keep: Vec<&str> = Vec::new();
    for c in cols {
        if schema.contains(c) && !keep.contains(c) {
            keep.push(c);
        }
    }
    lf.select(keep.into_iter().map(col).collect::<Vec<_>>())
        .collect()
        .map_err(err)
}

/// Period starts of a features table (a missing date reads as 1970-01-01).
pub(crate) fn periods(f: &DataFrame) -> Result<Vec<NaiveDate>, ReportError> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    Ok(crate::schema::date_column(f, "period_start")?
        .into_iter()
        .map(|d| d.unwrap_or(epoch))
        .collect())
}

/// Facility code → name from the store's registry (empty without one).
pub fn facility_names(data_dir: Option<&Path>) -> Result<HashMap<String, String>, ReportError> {
    let Some(d) = data_dir else {
        return Ok(HashMap::new());
    };
    let st = crate::store::Store::open(d)?;
    if !st.facilities_path().exists() {
        return Ok(HashMap::new());
    }
    let r = st.facilities()?.collect()?;
    Ok(strs(&r, "facility_code")
        .into_iter()
        .zip(strs(&r, "name"))
        .collect())
}

pub(crate) fn strs(df: &DataFrame, c: &str) -> Vec<String> {
    df.column(c)
        .and_then(|c| c.cast(&DataType::String))
        .map(|c| {
            c.str()
                .map(|s| s.iter().map(|v| v.unwrap_or("").to_string()).collect())
                .unwrap_or_default()
        })
        .unwrap_or_else(|_| vec![String::new(); df.height()])
}

pub(crate) fn nums(df: &DataFrame, c: &str) -> Vec<Option<f64>> {
    df.column(c)
        .and_then(|c| c.cast(&DataType::Float64))
        .map(|c| c.f64().map(|s| s.iter().collect()).unwrap_or_default())
        .unwrap_or_else(|_| vec![None; df.height()])
}

pub(crate) fn vnd(x: f64, lang: Lang) -> String {
    match lang {
        Lang::Vi => crate::format::group_vi(x.round() as i64),
        Lang::En => crate::format::group_en(x.round() as i64),
    }
}

/// Writes the pages. Missing inputs skip their page.
pub fn run(o: &ReportOptions) -> Result<ReportSummary, ReportError> {
    let mut summary = ReportSummary::default();
    let alerts_path = o.detect_dir.join("alerts.parquet");
    if alerts_path.exists() {
        let n = alerts::alert_page(o, &alerts_path)?;
        summary.alerts = n;
        summary.pages.push(o.out.join("alerts.html"));
    }
    if o.detect_dir.join("scores.parquet").exists() {
        audit::audit_plan(o)?;
        summary.pages.push(o.out.join("audit.html"));
    }
    if let Some(dir) = &o.forecast_dir {
        if dir.join("budget_projection.parquet").exists() {
            planner::planner_page(o, dir)?;
            summary.pages.push(o.out.join("planner.html"));
        }
    }
    Ok(summary)
}
