//! Per-facility indicators by period, computed with Polars lazy queries over
//! the claims store: the indicators reviewers already use (see
//! `../shared/domain/users-and-indicators.md`).
//!
//! First part of the features stage: the raw indicators per facility and
//! period. Peer comparison, case-mix standardisation, growth and budget use
//! build on this table.

use polars::prelude::*;

use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("features: {0}")]
    Polars(#[from] PolarsError),
}

/// Length of the periods of the indicator table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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

    pub fn name(self) -> &'static str {
        match self {
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
            Period::Year => "year",
        }
    }
}

/// Line amounts of each visit by category, one row per visit version.
fn line_totals(store: &Store) -> Result<LazyFrame, FeatureError> {
    let cat = |c: &str| {
        col("amount")
            .filter(col("category").eq(lit(c)))
            .sum()
            .alias(format!("{c}_amount"))
    };
    let count = |c: &str| {
        col("quantity")
            .filter(col("category").eq(lit(c)))
            .sum()
            .alias(format!("{c}_count"))
    };
    Ok(store
        .lines()?
        .group_by([col("facility_code"), col("ma_lk"), col("source_seq")])
        .agg([
            cat("bed"),
            cat("drug"),
            cat("supply"),
            cat("lab"),
            cat("imaging"),
            cat("procedure"),
            count("lab"),
            count("imaging"),
        ]))
}

/// Safe ratio: null when the denominator is zero.
fn ratio(num: Expr, den: Expr) -> Expr {
    when(den.clone().gt(lit(0.0)))
        .then(num.cast(DataType::Float64) / den.cast(DataType::Float64))
        .otherwise(lit(NULL).cast(DataType::Float64))
}

/// The indicator table: one row per facility and period.
///
/// Columns: `facility_code`, `period`, `period_start`, `visits`,
/// `outpatient_visits`, `inpatient_episodes`, `patients`,
/// `visits_per_patient`, `total_cost`, `fund_paid`, `avg_cost_outpatient`,
/// `avg_cost_inpatient`, `avg_fund_outpatient`, `avg_fund_inpatient`,
/// `alos`, `bed_days`, `admission_rate`, `bed_cost_share_inpatient`,
/// `drug_share`, `supply_share`, `lab_share`, `imaging_share`,
/// `procedure_share`, `tests_per_visit`, `imaging_per_visit`,
/// `oop_visit_share`, `oop_cost_share`.
pub fn facility_indicators(store: &Store, period: Period) -> Result<LazyFrame, FeatureError> {
    let keys = [col("facility_code"), col("ma_lk"), col("source_seq")];
    let visits = store.visits()?.join(
        line_totals(store)?,
        keys.clone(),
        keys,
        JoinArgs::new(JoinType::Left),
    );
    let fill = |c: &str| col(c).fill_null(lit(0.0));
    let ip = || col("inpatient");
    let op = || col("inpatient").not();
    let sum_if = |c: &str, cond: Expr| fill(c).filter(cond).sum();
    let out = visits
        .with_column(
            col("discharge_date")
                .dt()
                .truncate(lit(period.every()))
                .alias("period_start"),
        )
        .group_by([col("facility_code"), col("period_start")])
        .agg([
            len().cast(DataType::Int64).alias("visits"),
            op().cast(DataType::Int64).sum().alias("outpatient_visits"),
            ip().cast(DataType::Int64).sum().alias("inpatient_episodes"),
            col("patient_key")
                .n_unique()
                .cast(DataType::Int64)
                .alias("patients"),
            col("total_cost").sum().alias("total_cost"),
            fill("fund_paid").sum().alias("fund_paid"),
            col("total_cost")
                .filter(op())
                .mean()
                .alias("avg_cost_outpatient"),
            col("total_cost")
                .filter(ip())
                .mean()
                .alias("avg_cost_inpatient"),
            fill("fund_paid")
                .filter(op())
                .mean()
                .alias("avg_fund_outpatient"),
            fill("fund_paid")
                .filter(ip())
                .mean()
                .alias("avg_fund_inpatient"),
            col("los_days")
                .filter(ip())
                .cast(DataType::Float64)
                .mean()
                .alias("alos"),
            col("los_days")
                .filter(ip())
                .cast(DataType::Int64)
                .sum()
                .alias("bed_days"),
            sum_if("bed_amount", ip()).alias("_bed_ip"),
            col("total_cost").filter(ip()).sum().alias("_cost_ip"),
            fill("drug_amount").sum().alias("_drug"),
            fill("supply_amount").sum().alias("_supply"),
            fill("lab_amount").sum().alias("_lab"),
            fill("imaging_amount").sum().alias("_imaging"),
            fill("procedure_amount").sum().alias("_procedure"),
            fill("lab_count").sum().alias("_lab_n"),
            fill("imaging_count").sum().alias("_imaging_n"),
            col("out_of_province")
                .cast(DataType::Float64)
                .mean()
                .alias("oop_visit_share"),
            col("total_cost")
                .filter(col("out_of_province"))
                .sum()
                .alias("_cost_oop"),
        ])
        .with_columns([
            ratio(col("visits"), col("patients")).alias("visits_per_patient"),
            ratio(col("inpatient_episodes"), col("visits")).alias("admission_rate"),
            ratio(col("_bed_ip"), col("_cost_ip")).alias("bed_cost_share_inpatient"),
            ratio(col("_drug"), col("total_cost")).alias("drug_share"),
            ratio(col("_supply"), col("total_cost")).alias("supply_share"),
            ratio(col("_lab"), col("total_cost")).alias("lab_share"),
            ratio(col("_imaging"), col("total_cost")).alias("imaging_share"),
            ratio(col("_procedure"), col("total_cost")).alias("procedure_share"),
            ratio(col("_lab_n"), col("visits")).alias("tests_per_visit"),
            ratio(col("_imaging_n"), col("visits")).alias("imaging_per_visit"),
            ratio(col("_cost_oop"), col("total_cost")).alias("oop_cost_share"),
            lit(period.name()).alias("period"),
        ])
        .select([
            col("facility_code"),
            col("period"),
            col("period_start"),
            col("visits"),
            col("outpatient_visits"),
            col("inpatient_episodes"),
            col("patients"),
            col("visits_per_patient"),
            col("total_cost"),
            col("fund_paid"),
            col("avg_cost_outpatient"),
            col("avg_cost_inpatient"),
            col("avg_fund_outpatient"),
            col("avg_fund_inpatient"),
            col("alos"),
            col("bed_days"),
            col("admission_rate"),
            col("bed_cost_share_inpatient"),
            col("drug_share"),
            col("supply_share"),
            col("lab_share"),
            col("imaging_share"),
            col("procedure_share"),
            col("tests_per_visit"),
            col("imaging_per_visit"),
            col("oop_visit_share"),
            col("oop_cost_share"),
        ])
        .sort(["facility_code", "period_start"], Default::default());
    Ok(out)
}
