//! Features: per-facility indicators by period, compared fairly.
//!
//! Built with Polars lazy queries over the claims store:
//! - the indicators reviewers already use (`../shared/domain/users-and-indicators.md`),
//!   split by visit-type group where it matters;
//! - case-mix standardisation ([`casemix`]): each visit's expected cost,
//!   length of stay and admission probability given its diagnosis, visit type
//!   and age band, learnt across all facilities of the same level, with
//!   shrinkage for rare diagnoses; per facility observed/expected ratios and
//!   the excess in VND;
//! - growth against the same period last year and against the facility's
//!   own trailing trend;
//! - peer comparison ([`peers`]): ratio to the peer median and robust z-score
//!   (median/MAD) within fair peer groups;
//! - out-of-province spending seen from the province, and budget use.

pub mod budget;
pub mod casemix;
mod dictionary;
mod indicators;
pub mod norms;
pub mod peers;

pub use dictionary::{documented, render_dictionary, FACILITY_PERIOD_COLUMNS};
pub use indicators::{core_indicators, facility_indicators};

use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::store::{write_parquet_atomic, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("features: {0}")]
    Polars(#[from] PolarsError),
    #[error(transparent)]
    Reference(#[from] crate::reference::ReferenceError),
    #[error("features: {0}")]
    Other(String),
}

/// Length of the periods of the indicator table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Week,
    Month,
    Quarter,
    Year,
}

impl Period {
    /// Polars duration string; weeks start on Monday (ISO).
    fn every(self) -> &'static str {
        match self {
            Period::Week => "1w",
            Period::Month => "1mo",
            Period::Quarter => "1q",
            Period::Year => "1y",
        }
    }

    /// Periods of the trailing trend a period is compared with.
    fn trend_len(self) -> usize {
        match self {
            Period::Week => 8,
            Period::Month => 3,
            Period::Quarter => 2,
            Period::Year => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
            Period::Year => "year",
        }
    }
}

/// Configuration of the features stage. Defaults are documented per field.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureConfig {
    /// Period of the table. Default: month.
    pub period: Period,
    /// First and last discharge date to include (inclusive); default: all.
    pub from: Option<chrono::NaiveDate>,
    pub to: Option<chrono::NaiveDate>,
    /// Smallest peer group; smaller groups are widened (level+grade+kind →
    /// level+kind → level → all). Default 5.
    pub min_peer_size: usize,
    /// Compare only within the same province. Default false.
    pub peers_within_province: bool,
    /// Number of clusters of the fallback peer grouping for facilities
    /// without registry attributes. Default 4.
    pub fallback_clusters: usize,
    /// Shrinkage weight (pseudo-visits) of the case-mix cells: a diagnosis
    /// seen in k visits counts half its own mean, half its parent's.
    /// Default 20.
    pub shrinkage_visits: f64,
    /// Directory with a `drug_classes.csv` overriding the bundled one.
    pub reference_dir: Option<PathBuf>,
    /// Memory budget of the stage, MiB. The norms are learnt in a streaming
    /// pass; the claims are then read in groups of facilities small enough
    /// for the budget, so the peak stays near it whatever the store's size
    /// (a single facility larger than the budget is read alone). Default
    /// 4096.
    pub memory_mb: u64,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            period: Period::Month,
            from: None,
            to: None,
            min_peer_size: 5,
            peers_within_province: false,
            fallback_clusters: 4,
            shrinkage_visits: 20.0,
            reference_dir: None,
            memory_mb: crate::store::chunks::DEFAULT_MEMORY_MB,
        }
    }
}

/// The tables the features stage writes.
pub struct FeatureTables {
    /// facility × period: indicators, case mix, growth, peer comparison.
    pub facility_period: DataFrame,
    /// card province × destination province × year: care of a province's
    /// card-holders in other provinces (*chi đi ngoại tỉnh*).
    pub province_outflow: DataFrame,
    /// facility (and province total) × year: budget use and projection.
    pub budget: DataFrame,
    /// facility → peer group.
    pub peer_groups: DataFrame,
}

/// Safe ratio: null when the denominator is zero or null.
pub(crate) fn ratio(num: Expr, den: Expr) -> Expr {
    when(den.clone().gt(lit(0.0)))
        .then(num.cast(DataType::Float64) / den.cast(DataType::Float64))
        .otherwise(lit(NULL).cast(DataType::Float64))
}

/// Start of the period a discharge date falls in.
fn period_start(cfg: &FeatureConfig) -> Expr {
    col("discharge_date")
        .dt()
        .truncate(lit(cfg.period.every()))
        .alias("period_start")
}

/// Aggregations shared by the full and the core indicator tables.
mod agg {
    use polars::prelude::*;

    pub fn visits() -> Expr {
        len().cast(DataType::Int64).alias("visits")
    }

    /// Average total cost of outpatient (`false`) or inpatient (`true`) visits.
    pub fn avg_cost(inpatient: bool) -> Expr {
        let cond = if inpatient {
            col("inpatient")
        } else {
            col("inpatient").not()
        };
        let name = if inpatient {
            "avg_cost_inpatient"
        } else {
            "avg_cost_outpatient"
        };
        col("total_cost").filter(cond).mean().alias(name)
    }

    pub fn alos() -> Expr {
        col("los_days")
            .filter(col("inpatient"))
            .cast(DataType::Float64)
            .mean()
            .alias("alos")
    }

    pub fn oop_visit_share() -> Expr {
        col("out_of_province")
            .cast(DataType::Float64)
            .mean()
            .alias("oop_visit_share")
    }
}

/// Keeps the rows whose discharge date is in the configured range.
pub(crate) fn in_range(lf: LazyFrame, cfg: &FeatureConfig) -> LazyFrame {
    let mut lf = lf;
    if let Some(from) = cfg.from {
        lf = lf.filter(col("discharge_date").gt_eq(lit(from)));
    }
    if let Some(to) = cfg.to {
        lf = lf.filter(col("discharge_date").lt_eq(lit(to)));
    }
    lf
}

/// Visit-type groups with their own volume and average cost columns.
pub const VISIT_GROUPS: [&str; 4] = [
    "outpatient_exam",
    "outpatient_treatment",
    "inpatient",
    "day_inpatient",
];

/// Indicators with growth columns (`_yoy`, `_trend`).
pub const GROWTH_INDICATORS: &[&str] = &[
    "visits",
    "total_cost",
    "avg_cost_outpatient",
    "avg_cost_inpatient",
    "alos",
    "admission_rate",
    "bed_cost_share_inpatient",
    "oe_cost",
];

/// A visit admitted on or before `prev_discharge` (the previous visit of
/// the same card at the same facility) overlaps it: a duplicate or an
/// overlapping claim. Null previous → false.
pub(crate) fn overlaps(prev_discharge: Expr) -> Expr {
    prev_discharge.clone().is_not_null().and(
        col("admit_time")
            .dt()
            .date()
            .lt_eq(prev_discharge.dt().date()),
    )
}

/// Days without a claim after which a card counts as a new patient of the
/// facility again (13 weeks: the peer window).
pub(crate) const NEW_PATIENT_LAPSE_DAYS: i32 = 91;

/// A visit whose card the facility had not billed in the
/// [`NEW_PATIENT_LAPSE_DAYS`] before it (or never, in the store).
pub(crate) fn new_patient(prev_discharge: Expr) -> Expr {
    let day = |e: Expr| e.dt().date().cast(DataType::Int32);
    prev_discharge
        .clone()
        .is_null()
        .or((day(col("admit_time")) - day(prev_discharge)).gt(lit(NEW_PATIENT_LAPSE_DAYS)))
}

/// Computes all feature tables.
pub fn compute(store: &Store, cfg: &FeatureConfig) -> Result<FeatureTables, FeatureError> {
    let t = std::time::Instant::now();
    let indicators = facility_indicators(store, cfg)?.collect()?;
    tracing::info!(
        "indicators and case mix: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let groups = peers::assign(store, &indicators, cfg)?;
    let facility_period = peers::compare(indicators.lazy(), groups.clone().lazy())?.collect()?;
    tracing::info!("peers: {:.2} s", t.elapsed().as_secs_f64());
    let province_outflow = budget::province_outflow(store, cfg)?.collect()?;
    let budget = budget::budget_use(store, cfg)?.collect()?;
    tracing::info!("outflow and budget: {:.2} s", t.elapsed().as_secs_f64());
    Ok(FeatureTables {
        facility_period,
        province_outflow,
        budget,
        peer_groups: groups,
    })
}

/// Writes the tables as Parquet under `dir` (atomically).
pub fn write(tables: &mut FeatureTables, dir: &Path) -> Result<(), FeatureError> {
    write_parquet_atomic(
        &mut tables.facility_period,
        &dir.join("facility_period.parquet"),
    )?;
    write_parquet_atomic(
        &mut tables.province_outflow,
        &dir.join("province_outflow.parquet"),
    )?;
    write_parquet_atomic(&mut tables.budget, &dir.join("budget.parquet"))?;
    write_parquet_atomic(&mut tables.peer_groups, &dir.join("peer_groups.parquet"))?;
    Ok(())
}
