//! The features stage in bounded memory: one streaming pass learns the
//! norms every facility is compared with (case-mix cells, reference prices
//! of items, drug classes), small tables whatever the store's size; then
//! the claims are read facility group by facility group ([`plan_chunks`]),
//! each group's indicators needing only its own claims and the norms
//! ([`crate::store::chunks`]).

use polars::prelude::*;

use super::casemix::{self, CaseMixNorms};
use super::{in_range, ratio, FeatureConfig, FeatureError};
use crate::reference::DrugClassRule;
use crate::store::chunks::{plan_chunks, streamed, visits_per_chunk, Chunk};
use crate::store::Store;

/// What every facility's indicators are measured against.
#[derive(Debug, Clone)]
pub struct Norms {
    pub casemix: CaseMixNorms,
    /// item_code, year → median_price: the median over facilities of their
    /// average unit price of the item in the year.
    pub reference_prices: DataFrame,
    /// item_code, item_name → drug_class (drugs matching a rule only).
    pub drug_classes: DataFrame,
}

/// Current visits in the configured date range with the level of their
/// facility (`unknown` when the registry does not say).
pub(crate) fn visits_with_level(
    store: &Store,
    cfg: &FeatureConfig,
) -> Result<LazyFrame, FeatureError> {
    let registry = store.facilities()?.select([
        col("facility_code"),
        col("level").fill_null(lit("unknown")).alias("level"),
    ]);
    Ok(in_range(store.visits()?, cfg)
        .join(
            registry,
            [col("facility_code")],
            [col("facility_code")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(col("level").fill_null(lit("unknown"))))
}

/// Drug and supply lines in the configured date range.
pub(crate) fn goods(lines: LazyFrame, cfg: &FeatureConfig) -> LazyFrame {
    in_range(
        lines.filter(
            col("category")
                .eq(lit("drug"))
                .or(col("category").eq(lit("supply"))),
        ),
        cfg,
    )
}

impl Norms {
    /// The streaming pass over the store.
    pub fn learn(
        store: &Store,
        cfg: &FeatureConfig,
        rules: &[DrugClassRule],
    ) -> Result<Norms, FeatureError> {
        let t = std::time::Instant::now();
        let cells = streamed(casemix::cells(visits_with_level(store, cfg)?))?;
        let casemix = casemix::norms(cells, cfg.shrinkage_visits)?;
        // The reference price of an item is the median over facilities of
        // their average unit price (one inflating facility does not move it).
        let reference_prices = streamed(
            goods(store.lines()?, cfg)
                .group_by([col("facility_code"), col("item_code"), col("year")])
                .agg([ratio(col("amount").sum(), col("quantity").sum()).alias("facility_price")])
                .group_by([col("item_code"), col("year")])
                .agg([col("facility_price").median().alias("median_price")]),
        )?;
        let drugs = streamed(
            store
                .lines()?
                .filter(col("category").eq(lit("drug")))
                .select([col("item_code"), col("item_name")])
                .unique(None, UniqueKeepStrategy::Any),
        )?;
        let drug_classes = classify_drugs(&drugs, rules)?;
        tracing::info!(
            "norms: {} case-mix cells, {} item prices, {} classed drugs in {:.2} s",
            casemix.cost.height(),
            reference_prices.height(),
            drug_classes.height(),
            t.elapsed().as_secs_f64()
        );
        Ok(Norms {
            casemix,
            reference_prices,
            drug_classes,
        })
    }
}

/// Drug class of each distinct drug (code, name), from the rules (first
/// match wins); drugs no rule names are left out.
fn classify_drugs(drugs: &DataFrame, rules: &[DrugClassRule]) -> Result<DataFrame, FeatureError> {
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
    ])?)
}

/// Bytes the indicator query holds per visit of a chunk (visit row, its
/// line totals, sort and join buffers); measured on the scale ladder
/// (`benches/scale.sh`), rounded up.
pub const BYTES_PER_VISIT: u64 = 2048;

/// Facility groups for the indicator query under `cfg.memory_mb`.
pub fn plan(store: &Store, cfg: &FeatureConfig) -> Result<Vec<Chunk>, FeatureError> {
    Ok(plan_chunks(
        in_range(store.visits()?, cfg),
        visits_per_chunk(cfg.memory_mb, BYTES_PER_VISIT),
    )?)
}
