//! Claim-level checks, one flag per claim, counted per facility and period:
//!
//! - **duplicate**: a claim whose dates overlap an earlier claim of the same
//!   card at the same facility with the same diagnosis category (a claim
//!   sent twice, or shifted by a day);
//! - **los_outlier**: an inpatient stay longer than max(2 × median,
//!   Q3 + `iqr_factor` × IQR) of stays with the same diagnosis category and
//!   visit type in the whole data (cells of at least `min_cell` stays);
//! - **mismatch**: a service that does not fit the visit type — inpatient
//!   bed-days (MA_NHOM 15) on a visit that is not inpatient, or more
//!   bed-days billed than the stay has days (+1).
//!
//! Counts are compared with the rate of the whole province in the same
//! window (see `mod.rs`), so a flag that is common everywhere (a coding
//! habit of the software vendor) raises nobody.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::features::Period;
use crate::store::chunks::{plan_chunks, streamed, visits_per_chunk};
use crate::store::Store;

use super::DetectError;

/// Settings of the claim-level checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClaimConfig {
    /// Stays above Q3 + iqr_factor × IQR (and above 2 × median) are outliers. Default 3.
    pub iqr_factor: f64,
    /// Smallest diagnosis × visit-type cell with a length-of-stay norm. Default 20.
    pub min_cell: u32,
    /// Fewest flagged claims in the window for a check to speak. Default 3.
    pub min_flagged: f64,
}

impl Default for ClaimConfig {
    fn default() -> Self {
        ClaimConfig {
            iqr_factor: 3.0,
            min_flagged: 3.0,
            min_cell: 20,
        }
    }
}

/// The kinds of claim flags, in the order of the count columns.
pub const KINDS: [&str; 3] = ["duplicate", "los_outlier", "mismatch"];

/// Per-claim flags and per facility-period counts.
pub struct ClaimFlags {
    /// facility_code, period_start, claims, {kind}_n, {kind}_cost.
    pub counts: DataFrame,
    /// Flagged claims: facility_code, period_start, ma_lk, kind, total_cost, excess_vnd.
    pub flagged: DataFrame,
}

pub(crate) fn period_start(period: Period) -> Expr {
    let every = match period {
        Period::Week => "1w",
        Period::Month => "1mo",
        Period::Quarter => "1q",
        Period::Year => "1y",
    };
    col("discharge_date")
        .dt()
        .truncate(lit(every))
        .alias("period_start")
}

/// Bytes the claim checks hold per visit of a chunk (visit row, bed-day
/// totals, sort buffers) with what the rest of detection holds beside them:
/// on the scale ladder 1024 let detect peak at 4.1 GB under a 4 GB budget
/// (6.9 M visits, chunks of 3.2 M).
pub const BYTES_PER_VISIT: u64 = 1536;

/// Computes the flags over the whole store: length-of-stay norms in one
/// pass, then the claims facility group by facility group under
/// `memory_mb` (every check compares a claim with its own facility's
/// claims or with the norms).
pub fn flag_claims(
    store: &Store,
    period: Period,
    cfg: &ClaimConfig,
    memory_mb: u64,
) -> Result<ClaimFlags, DetectError> {
    let input = |e: crate::store::StoreError| DetectError::Input(e.to_string());
    let norms = los_norms(store.visits().map_err(input)?, cfg)?;
    let chunks = plan_chunks(
        store.visits().map_err(input)?,
        visits_per_chunk(memory_mb, BYTES_PER_VISIT),
    )?;
    let mut counts = Vec::with_capacity(chunks.len());
    let mut flagged: Vec<Vec<LazyFrame>> = KINDS.iter().map(|_| Vec::new()).collect();
    for chunk in &chunks {
        let visits = chunk.filter(store.visits().map_err(input)?);
        let lines = chunk.filter(store.lines().map_err(input)?);
        let v = chunk_flags(visits, lines, &norms, period)?;
        counts.push(count_flags(&v)?.lazy());
        for (k, out) in KINDS.iter().zip(flagged.iter_mut()) {
            out.push(flagged_of(&v, k)?.lazy());
        }
    }
    let counts = concat(counts, UnionArgs::default())?
        .sort(["facility_code", "period_start"], Default::default())
        .collect()?;
    // Kind by kind, each in the order of the claims (facility, card, time):
    // the order of one pass over the whole store.
    let flagged = concat(
        flagged.into_iter().flatten().collect::<Vec<_>>(),
        UnionArgs::default(),
    )?
    .collect()?;
    Ok(ClaimFlags { counts, flagged })
}

/// Length-of-stay norms per diagnosis category and visit type, from the
/// inpatient stays of the whole store.
fn los_norms(visits: LazyFrame, cfg: &ClaimConfig) -> Result<DataFrame, DetectError> {
    let los = || col("los_days").cast(DataType::Float64);
    Ok(streamed(
        visits
            .filter(col("inpatient"))
            .select([col("dx3"), col("visit_group"), col("los_days")])
            .group_by([col("dx3"), col("visit_group")])
            .agg([
                len().alias("_cell"),
                los().median().alias("_los_med"),
                los()
                    .quantile(lit(0.25), QuantileMethod::Linear)
                    .alias("_q1"),
                los()
                    .quantile(lit(0.75), QuantileMethod::Linear)
                    .alias("_q3"),
            ])
            .filter(col("_cell").gt_eq(lit(cfg.min_cell)))
            .with_column(
                polars::lazy::dsl::max_horizontal([
                    col("_los_med") * lit(2.0),
                    col("_q3") + lit(cfg.iqr_factor) * (col("_q3") - col("_q1")),
                ])?
                .alias("_los_limit"),
            ),
    )?)
}

/// The flags and their excess of a chunk's claims.
fn chunk_flags(
    visits: LazyFrame,
    lines: LazyFrame,
    norms: &DataFrame,
    period: Period,
) -> Result<DataFrame, DetectError> {
    let visits = visits
        .select([
            col("facility_code"),
            col("visit_key"),
            col("ma_lk"),
            col("card_key"),
            col("admit_time"),
            col("discharge_time"),
            col("discharge_date"),
            col("los_days"),
            col("dx3"),
            col("visit_group"),
            col("inpatient"),
            col("total_cost"),
        ])
        .with_column(period_start(period));
    // Bed-day lines per visit.
    let beds = lines
        .filter(col("ma_nhom").eq(lit(14)).or(col("ma_nhom").eq(lit(15))))
        .group_by([col("visit_key")])
        .agg([
            col("quantity").sum().alias("_bed_qty"),
            col("ma_nhom").eq(lit(15)).any(true).alias("_ip_bed"),
        ]);
    let by_card = [col("facility_code"), col("card_key")];
    let v = visits
        .join(
            beds,
            [col("visit_key")],
            [col("visit_key")],
            JoinArgs::new(JoinType::Left),
        )
        .sort(
            ["facility_code", "card_key", "admit_time", "ma_lk"],
            Default::default(),
        )
        .with_columns([
            col("discharge_time")
                .shift(lit(1))
                .over(by_card.clone())?
                .alias("_prev_discharge"),
            col("dx3").shift(lit(1)).over(by_card)?.alias("_prev_dx3"),
        ])
        .with_column(
            crate::features::overlaps(col("_prev_discharge"))
                .and(col("dx3").eq(col("_prev_dx3")))
                .fill_null(lit(false))
                .alias("duplicate"),
        );
    let los = col("los_days").cast(DataType::Float64);
    Ok(v.join(
        norms.clone().lazy(),
        [col("dx3"), col("visit_group")],
        [col("dx3"), col("visit_group")],
        JoinArgs::new(JoinType::Left),
    )
    .with_columns([
        (col("inpatient")
            .and(col("_los_limit").is_not_null())
            .and(los.clone().gt(col("_los_limit"))))
        .fill_null(lit(false))
        .alias("los_outlier"),
        (col("_ip_bed")
            .fill_null(lit(false))
            .and(col("inpatient").not())
            .or(col("_bed_qty")
                .fill_null(lit(0.0))
                .gt(los.clone() + lit(1.0))))
        .alias("mismatch"),
    ])
    .with_columns([
        // What each flag costs: the whole claim for a duplicate, the days
        // beyond the median share for a long stay, the bed-days beyond
        // the stay for a mismatch (approximated by the claim's share).
        when(col("duplicate"))
            .then(col("total_cost"))
            .otherwise(lit(0.0))
            .alias("duplicate_excess"),
        when(col("los_outlier"))
            .then(col("total_cost") * (lit(1.0) - col("_los_med") / los.clone()))
            .otherwise(lit(0.0))
            .alias("los_outlier_excess"),
        when(col("mismatch"))
            .then(
                col("total_cost")
                    * when(col("inpatient"))
                        .then((col("_bed_qty") - los.clone() - lit(1.0)) / col("_bed_qty"))
                        .otherwise(lit(0.5)),
            )
            .otherwise(lit(0.0))
            .alias("mismatch_excess"),
    ])
    .collect()?)
}

/// Flags per facility and period: claims, {kind}_n, {kind}_cost.
fn count_flags(v: &DataFrame) -> Result<DataFrame, DetectError> {
    let mut aggs = vec![len().cast(DataType::Float64).alias("claims")];
    for k in KINDS {
        aggs.push(col(k).cast(DataType::Float64).sum().alias(format!("{k}_n")));
        aggs.push(col(format!("{k}_excess")).sum().alias(format!("{k}_cost")));
    }
    Ok(v.clone()
        .lazy()
        .group_by([col("facility_code"), col("period_start")])
        .agg(aggs)
        .collect()?)
}

/// The claims flagged `kind`, with their excess.
fn flagged_of(v: &DataFrame, kind: &str) -> Result<DataFrame, DetectError> {
    Ok(v.clone()
        .lazy()
        .filter(col(kind))
        .select([
            col("facility_code"),
            col("period_start"),
            col("ma_lk"),
            lit(kind).alias("kind"),
            col("total_cost"),
            col(format!("{kind}_excess")).alias("excess_vnd"),
        ])
        .collect()?)
}
