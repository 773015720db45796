//! What a store holds, in a screen: sources by status, current visits and
//! lines, the discharge dates each province covers, quarantine by rule, the
//! size on disk and the last run of each stage (`bhyt status`).

use polars::prelude::*;
use serde::Serialize;

use super::{RunRecord, StatusCount, Store, StoreError, LINES, QUARANTINE, VISITS};

/// Current visits of one province (the facility's current province).
#[derive(Debug, Clone, Serialize)]
pub struct ProvinceSpan {
    pub province: String,
    pub facilities: u64,
    pub visits: u64,
    /// First and last discharge day, ISO.
    pub first_discharge: Option<String>,
    pub last_discharge: Option<String>,
}

/// Records quarantined under one rule.
#[derive(Debug, Clone, Serialize)]
pub struct RuleCount {
    pub table: String,
    pub rule: String,
    pub records: u64,
}

/// A store's summary.
#[derive(Debug, Clone, Serialize)]
pub struct StoreSummary {
    pub data_dir: String,
    /// Files and bytes under the data directory (Parquet parts, manifest).
    pub files: u64,
    pub bytes: u64,
    pub sources: Vec<StatusCount>,
    /// Current versions (a resubmitted claim counts once).
    pub visits: u64,
    pub lines: u64,
    pub provinces: Vec<ProvinceSpan>,
    pub quarantine: Vec<RuleCount>,
    pub last_runs: Vec<RunRecord>,
    /// The snapshot read (table versions), and each table's files there.
    pub snapshot: super::Snapshot,
    pub tables: Vec<super::TableStat>,
}

fn polars_err(store: &Store, table: &str) -> impl FnOnce(PolarsError) -> StoreError {
    let path = store.root().join(table);
    move |source| StoreError::Polars { path, source }
}

/// A table's lazy frame, or None when nothing was stored in it yet.
fn optional(r: Result<LazyFrame, StoreError>) -> Result<Option<LazyFrame>, StoreError> {
    match r {
        Ok(l) => Ok(Some(l)),
        Err(StoreError::Empty(..)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn count(df: &DataFrame, c: &str) -> Vec<u64> {
    df.column(c)
        .and_then(|s| s.cast(&DataType::UInt64))
        .map(|s| {
            s.u64()
                .map(|ca| ca.iter().map(|v| v.unwrap_or(0)).collect())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

fn strings(df: &DataFrame, c: &str) -> Vec<Option<String>> {
    df.column(c)
        .and_then(|s| s.cast(&DataType::String))
        .map(|s| {
            s.str()
                .map(|ca| ca.iter().map(|v| v.map(str::to_string)).collect())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

impl Store {
    /// The last discharge day of the current visits (None for an empty
    /// store): one aggregate, for choosing the week to run.
    pub fn last_discharge(&self) -> Result<Option<chrono::NaiveDate>, StoreError> {
        let Some(v) = optional(self.visits())? else {
            return Ok(None);
        };
        let df = v
            .select([col("discharge_date")
                .max()
                .cast(DataType::String)
                .alias("last")])
            .collect()
            .map_err(polars_err(self, VISITS))?;
        Ok(strings(&df, "last")
            .first()
            .cloned()
            .flatten()
            .and_then(|d| d.parse().ok()))
    }

    /// The store's summary. Reads the manifest and scans the tables once
    /// (group-bys only; nothing per visit is kept).
    pub fn summary(&self) -> Result<StoreSummary, StoreError> {
        let manifest = self.manifest()?;
        let (mut files, mut bytes) = (0u64, 0u64);
        for e in walkdir::WalkDir::new(self.root()).into_iter().flatten() {
            if e.file_type().is_file() {
                files += 1;
                bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        let mut provinces = Vec::new();
        let mut visits = 0;
        if let Some(v) = optional(self.visits())? {
            let df = v
                .group_by([col("facility_province")])
                .agg([
                    len().alias("visits"),
                    col("facility_code").n_unique().alias("facilities"),
                    col("discharge_date").min().alias("first"),
                    col("discharge_date").max().alias("last"),
                ])
                .with_columns([
                    col("first").cast(DataType::String),
                    col("last").cast(DataType::String),
                ])
                .sort(["facility_province"], Default::default())
                .collect()
                .map_err(polars_err(self, VISITS))?;
            let (p, n, f, a, b) = (
                strings(&df, "facility_province"),
                count(&df, "visits"),
                count(&df, "facilities"),
                strings(&df, "first"),
                strings(&df, "last"),
            );
            for i in 0..df.height() {
                visits += n[i];
                provinces.push(ProvinceSpan {
                    province: p[i].clone().unwrap_or_default(),
                    facilities: f[i],
                    visits: n[i],
                    first_discharge: a[i].clone(),
                    last_discharge: b[i].clone(),
                });
            }
        }
        let lines = match optional(self.lines())? {
            Some(l) => {
                let df = l
                    .select([len().alias("n")])
                    .collect()
                    .map_err(polars_err(self, LINES))?;
                count(&df, "n").first().copied().unwrap_or(0)
            }
            None => 0,
        };
        let mut quarantine = Vec::new();
        if let Some(q) = optional(self.quarantine())? {
            let df = q
                .group_by([col("table_name"), col("rule")])
                .agg([len().alias("n")])
                .sort(
                    ["n"],
                    SortMultipleOptions::default().with_order_descending(true),
                )
                .collect()
                .map_err(polars_err(self, QUARANTINE))?;
            let (t, r, n) = (
                strings(&df, "table_name"),
                strings(&df, "rule"),
                count(&df, "n"),
            );
            for i in 0..df.height() {
                quarantine.push(RuleCount {
                    table: t[i].clone().unwrap_or_default(),
                    rule: r[i].clone().unwrap_or_default(),
                    records: n[i],
                });
            }
        }
        Ok(StoreSummary {
            data_dir: self.root().display().to_string(),
            files,
            bytes,
            sources: manifest.sources_by_status()?,
            visits,
            lines,
            provinces,
            quarantine,
            last_runs: manifest.last_runs()?,
            snapshot: self.snapshot()?,
            tables: self.table_stats()?,
        })
    }
}
