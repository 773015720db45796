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
pub mod peers;

use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::reference::{drug_classes, DrugClassRule};
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

/// Drug class of each distinct drug (code, name) of the store, from the
/// rules (first match wins): a small table joined to the lines.
fn drug_class_table(store: &Store, rules: &[DrugClassRule]) -> Result<LazyFrame, FeatureError> {
    let drugs = store
        .lines()?
        .filter(col("category").eq(lit("drug")))
        .select([col("item_code"), col("item_name")])
        .unique(None, UniqueKeepStrategy::First)
        .collect()?;
    let codes = drugs.column("item_code")?.str()?.clone();
    let names = drugs.column("item_name")?.str()?.clone();
    let mut out_code = Vec::new();
    let mut out_name = Vec::new();
    let mut out_class = Vec::new();
    for i in 0..drugs.height() {
        let code = codes.get(i).unwrap_or("");
        let name = names.get(i).map(str::to_lowercase).unwrap_or_default();
        let class = rules.iter().find(|r| match r.field.as_str() {
            "code" => r.pattern == code,
            _ => name.contains(&r.pattern.to_lowercase()),
        });
        if let Some(r) = class {
            out_code.push(codes.get(i).map(str::to_string));
            out_name.push(names.get(i).map(str::to_string));
            out_class.push(r.class.clone());
        }
    }
    Ok(DataFrame::new_infer_height(vec![
        Column::new("item_code".into(), out_code),
        Column::new("item_name".into(), out_name),
        Column::new("drug_class".into(), out_class),
    ])?
    .lazy())
}

/// Line amounts of each visit by category and drug class.
fn line_totals(store: &Store, rules: &[DrugClassRule]) -> Result<LazyFrame, FeatureError> {
    let cat = |c: &str| {
        col("amount")
            .filter(col("category").eq(lit(c)))
            .sum()
            .alias(format!("{c}_amount"))
    };
    let class = |c: &str| {
        col("amount")
            .filter(col("drug_class").eq(lit(c)))
            .sum()
            .alias(format!("{c}_amount"))
    };
    let count = |c: &str| {
        col("quantity")
            .filter(col("category").eq(lit(c)))
            .sum()
            .alias(format!("{c}_count"))
    };
    let keys = [col("visit_key")];
    // Drug classes touch few lines: they are summed apart (an inner join of
    // the drug lines with the small class table) and joined per visit, so
    // the ten million lines are grouped once, on their own columns.
    let classes = store
        .lines()?
        .filter(col("category").eq(lit("drug")))
        .select([
            col("visit_key"),
            col("item_code"),
            col("item_name"),
            col("amount"),
        ])
        .join(
            drug_class_table(store, rules)?,
            [col("item_code"), col("item_name")],
            [col("item_code"), col("item_name")],
            JoinArgs::new(JoinType::Inner),
        )
        .group_by(keys.clone())
        .agg([
            class("originator"),
            class("adjuvant"),
            class("vitamin_mineral"),
        ]);
    Ok(store
        .lines()?
        .select([
            col("visit_key"),
            col("category"),
            col("amount"),
            col("quantity"),
        ])
        .group_by(keys.clone())
        .agg([
            cat("bed"),
            cat("drug"),
            cat("supply"),
            cat("lab"),
            cat("imaging"),
            cat("procedure"),
            count("lab"),
            count("imaging"),
        ])
        .join(classes, keys.clone(), keys, JoinArgs::new(JoinType::Left)))
}

/// Drug and supply price index per facility and period: what the facility
/// billed for drugs and supplies over what the same quantities cost at the
/// reference price of each item code in the year (median over facilities).
/// Unit-price inflation moves it; case mix and volume do not.
fn price_index(store: &Store, cfg: &FeatureConfig) -> Result<LazyFrame, FeatureError> {
    let mut goods = store.lines()?.filter(
        col("category")
            .eq(lit("drug"))
            .or(col("category").eq(lit("supply"))),
    );
    goods = in_range(goods, cfg);
    // One pass over the lines: quantities and amounts per facility, period
    // and item; the reference price of an item is the median over
    // facilities of their average unit price (one inflating facility does
    // not move it).
    let per_item = goods
        .with_column(period_start(cfg))
        .group_by([
            col("facility_code"),
            col("period_start"),
            col("item_code"),
            col("year"),
        ])
        .agg([
            col("amount").sum().alias("amount"),
            col("quantity").sum().alias("quantity"),
        ]);
    let reference = per_item
        .clone()
        .group_by([col("facility_code"), col("item_code"), col("year")])
        .agg([ratio(col("amount").sum(), col("quantity").sum()).alias("facility_price")])
        .group_by([col("item_code"), col("year")])
        .agg([col("facility_price").median().alias("median_price")]);
    Ok(per_item
        .join(
            reference,
            [col("item_code"), col("year")],
            [col("item_code"), col("year")],
            JoinArgs::new(JoinType::Left),
        )
        .group_by([col("facility_code"), col("period_start")])
        .agg([ratio(
            col("amount").sum(),
            (col("quantity") * col("median_price")).sum(),
        )
        .alias("drug_supply_price_index")]))
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

/// Visits of the store within the configured date range, with their line
/// totals, case-mix expectations and period.
fn enriched_visits(store: &Store, cfg: &FeatureConfig) -> Result<LazyFrame, FeatureError> {
    let rules = drug_classes(cfg.reference_dir.as_deref())?;
    let keys = [col("visit_key")];
    let mut visits = store.visits()?;
    visits = in_range(visits, cfg);
    // A claim overlapping an earlier claim of the same card at the same
    // facility (same or overlapping dates): duplicate and overlapping claims.
    let by_card = [col("facility_code"), col("card_key")];
    let visits = visits
        .sort(
            ["facility_code", "card_key", "admit_time"],
            Default::default(),
        )
        .with_column(
            col("discharge_time")
                .shift(lit(1))
                .over(by_card)?
                .alias("_prev_discharge"),
        )
        .with_column(overlaps(col("_prev_discharge")).alias("overlaps_previous"));
    // Only what the indicators need: the case-mix steps materialise the frame.
    let visits = visits.select([
        col("facility_code"),
        col("visit_key"),
        col("overlaps_previous"),
        col("patient_key"),
        col("total_cost"),
        col("fund_paid"),
        col("inpatient"),
        col("los_days"),
        col("visit_group"),
        col("dx3"),
        col("age_band"),
        col("out_of_province"),
        col("discharge_date"),
    ]);
    let registry = store.facilities()?.select([
        col("facility_code"),
        col("level").fill_null(lit("unknown")).alias("level"),
    ]);
    let visits = visits
        .join(
            line_totals(store, &rules)?,
            keys.clone(),
            keys,
            JoinArgs::new(JoinType::Left),
        )
        .join(
            registry,
            [col("facility_code")],
            [col("facility_code")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(col("level").fill_null(lit("unknown")));
    let t = std::time::Instant::now();
    let visits = casemix::with_expectations(visits, cfg.shrinkage_visits)?.lazy();
    tracing::info!(
        "visits, lines and case mix: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    Ok(visits.with_column(period_start(cfg)))
}

/// Raw and case-mix indicators per facility and period.
pub fn facility_indicators(store: &Store, cfg: &FeatureConfig) -> Result<LazyFrame, FeatureError> {
    let visits = enriched_visits(store, cfg)?;
    let fill = |c: &str| col(c).fill_null(lit(0.0));
    let ip = || col("inpatient");
    let op = || col("inpatient").not();
    let mut aggs = vec![
        agg::visits(),
        op().cast(DataType::Int64).sum().alias("outpatient_visits"),
        ip().cast(DataType::Int64).sum().alias("inpatient_episodes"),
        col("patient_key")
            .n_unique()
            .cast(DataType::Int64)
            .alias("patients"),
        col("total_cost").sum().alias("total_cost"),
        fill("fund_paid").sum().alias("fund_paid"),
        agg::avg_cost(false),
        agg::avg_cost(true),
        fill("fund_paid")
            .filter(op())
            .mean()
            .alias("avg_fund_outpatient"),
        fill("fund_paid")
            .filter(ip())
            .mean()
            .alias("avg_fund_inpatient"),
        agg::alos(),
        col("los_days")
            .filter(ip())
            .cast(DataType::Int64)
            .sum()
            .alias("bed_days"),
        fill("bed_amount").filter(ip()).sum().alias("_bed_ip"),
        col("total_cost").filter(ip()).sum().alias("_cost_ip"),
        fill("drug_amount").sum().alias("_drug"),
        fill("supply_amount").sum().alias("_supply"),
        fill("lab_amount").sum().alias("_lab"),
        fill("imaging_amount").sum().alias("_imaging"),
        fill("procedure_amount").sum().alias("_procedure"),
        fill("originator_amount").sum().alias("_originator"),
        fill("adjuvant_amount").sum().alias("_adjuvant"),
        fill("vitamin_mineral_amount").sum().alias("_vitamin"),
        fill("lab_count").sum().alias("_lab_n"),
        fill("imaging_count").sum().alias("_imaging_n"),
        agg::oop_visit_share(),
        col("overlaps_previous")
            .cast(DataType::Float64)
            .mean()
            .alias("overlapping_claim_share"),
        col("total_cost")
            .filter(col("out_of_province"))
            .sum()
            .alias("oop_cost"),
        col("out_of_province")
            .cast(DataType::Int64)
            .sum()
            .alias("oop_visits"),
        col("expected_cost").sum().alias("expected_cost"),
        col("los_days")
            .filter(ip())
            .cast(DataType::Float64)
            .sum()
            .alias("_los_ip"),
        col("expected_los").filter(ip()).sum().alias("_exp_los"),
        col("expected_admission").sum().alias("expected_admissions"),
    ];
    for g in VISIT_GROUPS {
        let is = col("visit_group").eq(lit(g));
        aggs.push(
            is.clone()
                .cast(DataType::Int64)
                .sum()
                .alias(format!("vg_{g}_visits")),
        );
        aggs.push(
            col("total_cost")
                .filter(is)
                .mean()
                .alias(format!("vg_{g}_avg_cost")),
        );
    }
    let table = visits
        .group_by([col("facility_code"), col("period_start")])
        .agg(aggs)
        .with_columns([
            ratio(col("visits"), col("patients")).alias("visits_per_patient"),
            ratio(col("inpatient_episodes"), col("visits")).alias("admission_rate"),
            ratio(col("_bed_ip"), col("_cost_ip")).alias("bed_cost_share_inpatient"),
            ratio(col("_drug"), col("total_cost")).alias("drug_share"),
            ratio(col("_supply"), col("total_cost")).alias("supply_share"),
            ratio(col("_lab"), col("total_cost")).alias("lab_share"),
            ratio(col("_imaging"), col("total_cost")).alias("imaging_share"),
            ratio(col("_procedure"), col("total_cost")).alias("procedure_share"),
            ratio(col("_originator"), col("_drug")).alias("originator_drug_share"),
            ratio(col("_adjuvant"), col("_drug")).alias("adjuvant_drug_share"),
            ratio(col("_vitamin"), col("_drug")).alias("vitamin_mineral_drug_share"),
            ratio(col("_lab_n"), col("visits")).alias("tests_per_visit"),
            ratio(col("_imaging_n"), col("visits")).alias("imaging_per_visit"),
            ratio(col("oop_cost"), col("total_cost")).alias("oop_cost_share"),
            ratio(col("total_cost"), col("expected_cost")).alias("oe_cost"),
            (col("total_cost") - col("expected_cost")).alias("excess_cost_vnd"),
            ratio(col("_los_ip"), col("_exp_los")).alias("oe_los"),
            ratio(col("inpatient_episodes"), col("expected_admissions")).alias("oe_admission"),
            lit(cfg.period.name()).alias("period"),
        ])
        .select([all()
            .exclude_cols([
                "_bed_ip",
                "_cost_ip",
                "_drug",
                "_supply",
                "_lab",
                "_imaging",
                "_procedure",
                "_originator",
                "_adjuvant",
                "_vitamin",
                "_lab_n",
                "_imaging_n",
                "_los_ip",
                "_exp_los",
            ])
            .as_expr()])
        .join(
            price_index(store, cfg)?,
            [col("facility_code"), col("period_start")],
            [col("facility_code"), col("period_start")],
            JoinArgs::new(JoinType::Left),
        );
    with_growth(table, cfg.period)
}

/// Growth against the same period one year earlier (`_yoy`, relative) and
/// against the mean of the facility's previous periods (`_trend`, relative).
fn with_growth(table: LazyFrame, period: Period) -> Result<LazyFrame, FeatureError> {
    // Join key of "the same period": for weeks the day number (last year's
    // week + 364 days = this week), else year·10000 + month·100 + day.
    let day_no = || {
        col("period_start")
            .cast(DataType::Int32)
            .cast(DataType::Int64)
    };
    let ymd = |years_ahead: i64| {
        (col("period_start").dt().year().cast(DataType::Int64) + lit(years_ahead)) * lit(10_000i64)
            + col("period_start").dt().month().cast(DataType::Int64) * lit(100i64)
            + col("period_start").dt().day().cast(DataType::Int64)
    };
    let (this_key, last_key) = match period {
        Period::Week => (day_no(), day_no() + lit(364i64)),
        _ => (ymd(0), ymd(1)),
    };
    let last_year = table.clone().select(
        [col("facility_code"), last_key.alias("_key")]
            .into_iter()
            .chain(
                GROWTH_INDICATORS
                    .iter()
                    .map(|c| col(*c).alias(format!("{c}_ly"))),
            )
            .collect::<Vec<_>>(),
    );
    let n = period.trend_len();
    let opts = RollingOptionsFixedWindow {
        window_size: n,
        min_periods: n,
        ..Default::default()
    };
    let mut growth = Vec::new();
    for c in GROWTH_INDICATORS {
        growth.push((ratio(col(*c), col(format!("{c}_ly"))) - lit(1.0)).alias(format!("{c}_yoy")));
        let trailing = col(*c)
            .cast(DataType::Float64)
            .shift(lit(1))
            .rolling_mean(opts.clone())
            .over([col("facility_code")])?;
        growth.push((ratio(col(*c), trailing) - lit(1.0)).alias(format!("{c}_trend")));
    }
    let mut drop: Vec<String> = GROWTH_INDICATORS
        .iter()
        .map(|c| format!("{c}_ly"))
        .collect();
    drop.push("_key".into());
    Ok(table
        .with_column(this_key.alias("_key"))
        .join(
            last_year,
            [col("facility_code"), col("_key")],
            [col("facility_code"), col("_key")],
            JoinArgs::new(JoinType::Left),
        )
        .sort(["facility_code", "period_start"], Default::default())
        .with_columns(growth)
        .select([all().exclude_cols(drop).as_expr()]))
}

/// The core indicators only (visits, outpatient/inpatient average cost,
/// ALOS, admission rate, bed-day cost share of inpatient cost,
/// out-of-province share of visits) per facility and period: the quick view,
/// and the like-for-like comparison with other tools in `benches/`.
pub fn core_indicators(store: &Store, cfg: &FeatureConfig) -> Result<LazyFrame, FeatureError> {
    let keys = [col("visit_key")];
    let bed = store
        .lines()?
        .filter(col("category").eq(lit("bed")))
        .group_by(keys.clone())
        .agg([col("amount").sum().alias("bed_amount")]);
    let mut v = store.visits()?;
    v = in_range(v, cfg);
    let ip = || col("inpatient");
    Ok(v.select([
        col("facility_code"),
        col("visit_key"),
        col("discharge_date"),
        col("total_cost"),
        col("inpatient"),
        col("los_days"),
        col("out_of_province"),
    ])
    .join(bed, keys.clone(), keys, JoinArgs::new(JoinType::Left))
    .with_column(period_start(cfg))
    .group_by([col("facility_code"), col("period_start")])
    .agg([
        agg::visits(),
        agg::avg_cost(false),
        agg::avg_cost(true),
        agg::alos(),
        ip().cast(DataType::Float64).mean().alias("admission_rate"),
        col("bed_amount")
            .fill_null(lit(0.0))
            .filter(ip())
            .sum()
            .alias("_bed"),
        col("total_cost").filter(ip()).sum().alias("_ip"),
        agg::oop_visit_share(),
    ])
    .with_column(ratio(col("_bed"), col("_ip")).alias("bed_cost_share_inpatient"))
    .select([all().exclude_cols(["_bed", "_ip"]).as_expr()])
    .sort(["facility_code", "period_start"], Default::default()))
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

/// Column families of `facility_period.parquet` and their meaning; `{i}`
/// stands for an indicator of [`GROWTH_INDICATORS`] (growth columns) or any
/// numeric column above (peer columns),
/// `{g}` for a visit-type group of [`VISIT_GROUPS`].
pub const FACILITY_PERIOD_COLUMNS: &[(&str, &str)] = &[
    ("facility_code", "MA_CSKCB"),
    ("period", "week, month, quarter or year"),
    ("period_start", "first day of the period (weeks start on Monday)"),
    ("visits", "visits (lượt KCB) discharged in the period"),
    ("outpatient_visits", "visits of non-inpatient types"),
    ("inpatient_episodes", "visits of inpatient types (03, 04, 06, 09)"),
    ("patients", "distinct persons (patient_key)"),
    ("visits_per_patient", "visits / patients (tần suất)"),
    ("total_cost", "sum of T_TONGCHI_BV, VND"),
    ("fund_paid", "sum of T_BHTT, VND"),
    ("avg_cost_outpatient", "average T_TONGCHI_BV per outpatient visit (chi bình quân lượt ngoại trú), VND"),
    ("avg_cost_inpatient", "average T_TONGCHI_BV per inpatient episode (chi bình quân đợt nội trú), VND"),
    ("avg_fund_outpatient", "average T_BHTT per outpatient visit, VND"),
    ("avg_fund_inpatient", "average T_BHTT per inpatient episode, VND"),
    ("alos", "average length of stay of inpatient episodes, days"),
    ("bed_days", "sum of inpatient lengths of stay, days"),
    ("admission_rate", "inpatient episodes / visits (tỷ lệ nhập viện)"),
    ("bed_cost_share_inpatient", "bed-day lines (MA_NHOM 14/15) / total cost of inpatient episodes"),
    ("drug_share", "drug lines / total cost"),
    ("supply_share", "supply lines / total cost"),
    ("lab_share", "lab-test lines / total cost"),
    ("imaging_share", "imaging lines / total cost"),
    ("procedure_share", "procedure and surgery lines / total cost"),
    ("originator_drug_share", "originator-brand drugs / drug cost (datasets/reference/drug_classes.csv)"),
    ("adjuvant_drug_share", "adjuvant drugs / drug cost"),
    ("vitamin_mineral_drug_share", "vitamins and minerals / drug cost"),
    ("tests_per_visit", "lab-test quantity / visits"),
    ("imaging_per_visit", "imaging quantity / visits"),
    ("oop_visits", "visits of patients with another province's card"),
    ("oop_visit_share", "out-of-province share of visits"),
    ("oop_cost", "cost of out-of-province patients, VND"),
    ("oop_cost_share", "out-of-province share of cost"),
    ("overlapping_claim_share", "share of visits whose dates overlap an earlier visit of the same card at the facility (duplicate or overlapping claims)"),
    ("drug_supply_price_index", "cost of drugs and supplies / their cost at the reference price of each item code in the year (median over facilities of their average unit price)"),
    ("expected_cost", "sum of the visits' expected cost given diagnosis, visit type and age band at the facility's level, VND"),
    ("expected_admissions", "sum of the visits' expected admission probabilities"),
    ("oe_cost", "observed / expected cost (indirect standardisation)"),
    ("excess_cost_vnd", "observed − expected cost, VND"),
    ("oe_los", "observed / expected inpatient days"),
    ("oe_admission", "observed / expected admissions"),
    ("vg_{g}_visits", "visits of visit-type group {g}"),
    ("vg_{g}_avg_cost", "average cost of a visit of group {g}, VND"),
    ("{i}_yoy", "relative change against the same period one year earlier (52 weeks for weeks)"),
    ("{i}_trend", "relative change against the mean of the facility's previous 8 weeks / 3 months / 2 quarters / 2 years"),
    ("peer_group", "peer group key level|grade|kind (`*` where widened, `all` for everyone)"),
    ("peer_basis", "registry, widened (group below min_peer_size) or cluster (registry attributes missing)"),
    ("peer_size", "facilities in the peer group"),
    ("peer_n", "facilities of the peer group with data in the period"),
    ("{c}_peer_ratio", "value / peer median in the period, for every numeric column {c} above (indicators, growth, case mix)"),
    ("{c}_peer_z", "robust z-score (value − peer median) / (1.4826 · MAD) for every numeric column {c} above; null when MAD = 0"),
];

/// Whether a column name is described by [`FACILITY_PERIOD_COLUMNS`].
pub fn documented(column: &str) -> bool {
    for suffix in ["_peer_ratio", "_peer_z"] {
        if let Some(base) = column.strip_suffix(suffix) {
            return documented(base);
        }
    }
    FACILITY_PERIOD_COLUMNS.iter().any(|(pat, _)| {
        if pat.contains("{g}") {
            VISIT_GROUPS.iter().any(|g| pat.replace("{g}", g) == column)
        } else if pat.contains("{i}") {
            GROWTH_INDICATORS
                .iter()
                .any(|i| pat.replace("{i}", i) == column)
        } else {
            *pat == column
        }
    })
}

/// Renders `datasets/features-dictionary.md`.
pub fn render_dictionary() -> String {
    let mut s = String::from(
        "# Data dictionary of the features stage\n\n\
         Generated from `src/features/mod.rs` (`UPDATE_DICTIONARY=1 cargo test --test dictionary`).\n\
         Written by `bhyt features` under the output folder.\n\n\
         ## facility_period.parquet — one row per facility and period\n\n| column | meaning |\n|---|---|\n",
    );
    for (c, m) in FACILITY_PERIOD_COLUMNS {
        s.push_str(&format!("| `{c}` | {m} |\n"));
    }
    s.push_str(&format!(
        "\n`{{g}}` ∈ {}.\n`{{i}}` of `_yoy`/`_trend` ∈ {}.\n",
        VISIT_GROUPS.join(", "),
        GROWTH_INDICATORS.join(", "),
    ));
    s.push_str(
        "\n## province_outflow.parquet — a province's card-holders treated in other provinces (chi đi ngoại tỉnh)\n\n\
         | column | meaning |\n|---|---|\n\
         | `card_province` | current province of the card |\n| `destination_province` | current province of the facility |\n\
         | `year` | discharge year |\n| `visits` | visits |\n| `inpatient_episodes` | inpatient episodes |\n\
         | `total_cost` | T_TONGCHI_BV, VND |\n| `fund_paid` | T_BHTT, VND |\n\
         | `card_holders_cost` | cost of all the province's card-holders in the data (any destination), VND |\n\
         | `share_of_card_holders_cost` | total_cost / card_holders_cost |\n\
         \n## budget.parquet — budget use per facility and per province (`province:<code>`) and year\n\n\
         | column | meaning |\n|---|---|\n\
         | `facility_code` | MA_CSKCB, or `province:<code>` for the province total |\n| `province` | current province |\n\
         | `year` | budget year |\n| `as_of` | last discharge date in the data (for earlier years the year is complete) |\n\
         | `budget_vnd` | yearly budget (dự toán), VND |\n| `spent_to_date` | total cost up to `as_of`, VND |\n\
         | `use_rate` | spent_to_date / budget |\n\
         | `seasonal_share` | share of a year's spending usually reached by `as_of` (from complete earlier years; linear by days without them) |\n\
         | `projection_basis` | actual, seasonal or linear |\n| `projected_year_end` | spent_to_date / seasonal_share, VND |\n\
         | `projected_use_rate` | projected_year_end / budget |\n| `projected_overrun_vnd` | projected_year_end − budget (negative: surplus), VND |\n\
         \n## peer_groups.parquet\n\n| column | meaning |\n|---|---|\n\
         | `facility_code` | MA_CSKCB |\n| `peer_group` | see facility_period |\n| `peer_basis` | see facility_period |\n| `peer_size` | facilities in the group |\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_compares_with_the_mean_of_previous_periods() {
        let df = df!(
            "facility_code" => ["A", "A", "A", "A"],
            "period_start" => [
                chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
                chrono::NaiveDate::from_ymd_opt(2024, 2, 1).unwrap(),
                chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
                chrono::NaiveDate::from_ymd_opt(2024, 4, 1).unwrap(),
            ],
            "visits" => [10i64, 20, 30, 60],
        )
        .unwrap();
        let mut lf = df.lazy();
        for c in GROWTH_INDICATORS.iter().filter(|c| **c != "visits") {
            lf = lf.with_column(lit(1.0).alias(*c));
        }
        let out = with_growth(lf, Period::Month).unwrap().collect().unwrap();
        let t = out.column("visits_trend").unwrap().f64().unwrap().clone();
        assert_eq!(t.get(2), None, "needs 3 earlier months");
        assert!((t.get(3).unwrap() - 2.0).abs() < 1e-12);
    }
}
