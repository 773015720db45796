//! The features stage in bounded memory: one streaming pass learns the
//! norms every facility is compared with (case-mix cells, reference prices
//! of items, drug classes), small tables whatever the store's size; then
//! the claims are read facility group by facility group ([`plan_chunks`]),
//! each group's indicators needing only its own claims and the norms.

use std::collections::BTreeSet;

use polars::prelude::*;

use super::casemix::{self, CaseMixNorms};
use super::{in_range, ratio, FeatureConfig, FeatureError};
use crate::reference::DrugClassRule;
use crate::store::Store;

/// Collects with Polars' streaming engine: the plan runs in morsels and
/// holds only what its group-bys and joins keep, not the scanned table.
pub(crate) fn streamed(lf: LazyFrame) -> PolarsResult<DataFrame> {
    // One plan has one sink: the result is a single frame.
    Ok(lf.collect_with_engine(Engine::Streaming)?.unwrap_single())
}

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
/// What the process holds besides the chunk (code, norms, Polars' pools).
pub const BASE_MB: u64 = 768;

/// A group of facilities read together, and the store partitions
/// (provinces) that hold their claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub facilities: Vec<String>,
    pub provinces: Vec<String>,
    pub visits: u64,
}

impl Chunk {
    /// Keeps the rows of the chunk's facilities; the province filter lets
    /// the scan skip other provinces' files (the store is partitioned by
    /// province).
    pub fn filter(&self, lf: LazyFrame) -> LazyFrame {
        let provinces = Series::new("p".into(), &self.provinces);
        let facilities = Series::new("f".into(), &self.facilities);
        lf.filter(
            col("facility_province_code")
                .is_in(lit(provinces).implode(false), false)
                .and(col("facility_code").is_in(lit(facilities).implode(false), false)),
        )
    }
}

/// Visits a chunk may hold under a memory budget in MiB.
pub fn visits_per_chunk(memory_mb: u64) -> u64 {
    (memory_mb.saturating_sub(BASE_MB) * 1024 * 1024 / BYTES_PER_VISIT).max(1)
}

/// Facilities in groups of at most `max_visits` visits (in the configured
/// date range), in facility order; a facility larger than that is a group
/// of its own. One streaming count per facility decides.
pub fn plan_chunks(
    store: &Store,
    cfg: &FeatureConfig,
    max_visits: u64,
) -> Result<Vec<Chunk>, FeatureError> {
    let counts = streamed(
        in_range(store.visits()?, cfg)
            .group_by([col("facility_code"), col("facility_province_code")])
            .agg([len().cast(DataType::UInt64).alias("n")]),
    )?
    .sort(
        ["facility_code", "facility_province_code"],
        Default::default(),
    )?;
    let fac = counts.column("facility_code")?.str()?.clone();
    let prov = counts.column("facility_province_code")?.str()?.clone();
    let n = counts.column("n")?.u64()?.clone();
    let mut chunks = Vec::new();
    let mut cur = Chunk {
        facilities: Vec::new(),
        provinces: Vec::new(),
        visits: 0,
    };
    let mut provinces = BTreeSet::new();
    let mut i = 0;
    while i < counts.height() {
        // A facility's rows (one per province it was filed under) together.
        let f = fac.get(i).unwrap_or_default().to_string();
        let mut visits = 0;
        let mut its = Vec::new();
        while i < counts.height() && fac.get(i).unwrap_or_default() == f {
            visits += n.get(i).unwrap_or(0);
            its.extend(prov.get(i).map(str::to_string));
            i += 1;
        }
        if !cur.facilities.is_empty() && cur.visits + visits > max_visits {
            cur.provinces = std::mem::take(&mut provinces).into_iter().collect();
            chunks.push(std::mem::replace(
                &mut cur,
                Chunk {
                    facilities: Vec::new(),
                    provinces: Vec::new(),
                    visits: 0,
                },
            ));
        }
        if visits > max_visits {
            tracing::warn!(
                "facility {f}: {visits} visits, more than a chunk holds under the memory budget \
                 ({max_visits}); read alone"
            );
        }
        cur.facilities.push(f);
        cur.visits += visits;
        provinces.extend(its);
    }
    if !cur.facilities.is_empty() {
        cur.provinces = provinces.into_iter().collect();
        chunks.push(cur);
    }
    Ok(chunks)
}
