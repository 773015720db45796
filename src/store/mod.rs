//! The claims store: Parquet partitioned by period under a data directory,
//! with a SQLite manifest of every source file.
//!
//! Layout (`data/`):
//! ```text
//! manifest.sqlite                       sources and the part files they wrote
//! visits/year=2024/month=01/part-<r|s><seq>-<n>.parquet
//! lines/year=2024/month=01/part-<r|s><seq>-<n>.parquet
//! quarantine/part-<r|s><seq>-<n>.parquet
//! registry/facilities.parquet, registry/budgets.parquet
//! ```
//! Every part file is written under `.staging/` and renamed into place when
//! its source has been read completely, so a reader never sees half a file
//! and a damaged source leaves nothing behind. Small sources of one run share
//! part files (`part-r…`), large ones have their own (`part-s…`); the
//! manifest knows which sources each part holds, so replacing a source
//! removes exactly its rows.
//! A visit sent again in a later file (same facility and MA_LK) is
//! superseded at read time: [`Store::visits`] keeps the newest version.

mod manifest;
pub mod sink;
mod summary;

use std::path::{Path, PathBuf};

use polars::prelude::*;

pub use manifest::{Manifest, RunRecord, SourceRecord, SourceStatus, StatusCount};
pub use sink::{PartSink, RunSink};
pub use summary::{ProvinceSpan, RuleCount, StoreSummary};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("parquet {path}: {source}")]
    Polars {
        path: PathBuf,
        #[source]
        source: PolarsError,
    },
    #[error(
        "store {path} was written with store layout {found}, this engine reads layout {expected}: \
         ingest the claims again into a new data directory"
    )]
    SchemaVersion {
        path: PathBuf,
        found: i64,
        expected: i64,
    },
    #[error("store {0} has no {1} yet: run `bhyt ingest` first")]
    Empty(PathBuf, &'static str),
    #[error(
        "this store was written with another pseudonymisation key (fingerprint {stored}, \
         this run's {given}): the same patient would get two pseudonyms. Use the store's key, \
         or ingest into a new data directory"
    )]
    KeyMismatch { stored: String, given: String },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Handle on a data directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Keys of the current visit versions, computed once per handle: `None`
    /// when no visit was ever resubmitted (then no filtering is needed).
    /// Writers open a new handle, so a handle never sees a stale cache.
    current: Arc<std::sync::OnceLock<Option<DataFrame>>>,
}

pub const VISITS: &str = "visits";
pub const LINES: &str = "lines";
pub const QUARANTINE: &str = "quarantine";
pub const REGISTRY: &str = "registry";

impl Store {
    /// Opens (and creates) a store; removes leftovers of interrupted runs.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(io_err(&root))?;
        let store = Store {
            root,
            current: Default::default(),
        };
        if store.root.join("manifest.sqlite").exists() {
            store.manifest()?;
        }
        let staging = store.staging_root();
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io_err(&staging))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn manifest(&self) -> Result<Manifest, StoreError> {
        Manifest::open(&self.root.join("manifest.sqlite"))
    }

    pub(crate) fn staging_root(&self) -> PathBuf {
        self.root.join(".staging")
    }

    fn table_files(&self, table: &str) -> Result<Vec<PathBuf>, StoreError> {
        let dir = self.root.join(table);
        let mut files = Vec::new();
        if dir.exists() {
            for e in walkdir::WalkDir::new(&dir).sort_by_file_name() {
                let e = e.map_err(|e| StoreError::Io {
                    path: dir.clone(),
                    source: e.into(),
                })?;
                if e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "parquet") {
                    files.push(e.into_path());
                }
            }
        }
        Ok(files)
    }

    fn scan(&self, table: &'static str) -> Result<LazyFrame, StoreError> {
        let files = self.table_files(table)?;
        if files.is_empty() {
            return Err(StoreError::Empty(self.root.clone(), table));
        }
        let paths: Vec<PlRefPath> = files
            .iter()
            .map(|p| PlRefPath::new(p.to_string_lossy().as_ref()))
            .collect();
        let args = ScanArgsParquet {
            hive_options: HiveOptions::new_disabled(),
            ..Default::default()
        };
        LazyFrame::scan_parquet_files(paths.into(), args).map_err(|source| StoreError::Polars {
            path: self.root.join(table),
            source,
        })
    }

    /// All visit versions as stored, resubmissions included.
    pub fn visits_all_versions(&self) -> Result<LazyFrame, StoreError> {
        self.scan(VISITS)
    }

    /// Current visits: for each (facility, MA_LK) the newest version, by
    /// envelope date then ingest order.
    pub fn visits(&self) -> Result<LazyFrame, StoreError> {
        let all = self.scan(VISITS)?;
        Ok(match self.current_versions()? {
            None => all,
            Some(keys) => semi(all, keys),
        })
    }

    /// `visit_key` of the current version of each claim, or `None` when
    /// every claim has a single version.
    fn current_versions(&self) -> Result<Option<LazyFrame>, StoreError> {
        if let Some(c) = self.current.get() {
            return Ok(c.clone().map(|d| d.lazy()));
        }
        let perr = |source| StoreError::Polars {
            path: self.root.join(VISITS),
            source,
        };
        let keys = self
            .scan(VISITS)?
            .select([
                col("claim_key"),
                col("visit_key"),
                col("submitted_at"),
                col("source_seq"),
            ])
            .collect()
            .map_err(perr)?;
        let distinct = keys
            .clone()
            .lazy()
            .select([col("claim_key").n_unique().alias("n")])
            .collect()
            .map_err(perr)?
            .column("n")
            .and_then(|c| c.cast(&DataType::UInt64))
            .map_err(perr)?
            .u64()
            .map_err(perr)?
            .get(0)
            .unwrap_or(0) as usize;
        let current = if distinct == keys.height() {
            None
        } else {
            Some(
                keys.lazy()
                    .sort_by_exprs(
                        [col("submitted_at"), col("source_seq")],
                        SortMultipleOptions::default().with_nulls_last(false),
                    )
                    .unique_stable(
                        Some(Selector::ByName {
                            names: Arc::new(["claim_key".into()]),
                            strict: true,
                        }),
                        UniqueKeepStrategy::Last,
                    )
                    .select([col("visit_key")])
                    .collect()
                    .map_err(perr)?,
            )
        };
        let _ = self.current.set(current.clone());
        Ok(current.map(|d| d.lazy()))
    }

    /// Lines of the current visit versions.
    pub fn lines(&self) -> Result<LazyFrame, StoreError> {
        let all = self.scan(LINES)?;
        Ok(match self.current_versions()? {
            None => all,
            Some(keys) => semi(all, keys),
        })
    }

    pub fn quarantine(&self) -> Result<LazyFrame, StoreError> {
        self.scan(QUARANTINE)
    }

    pub fn facilities_path(&self) -> PathBuf {
        self.root.join(REGISTRY).join("facilities.parquet")
    }

    pub fn budgets_path(&self) -> PathBuf {
        self.root.join(REGISTRY).join("budgets.parquet")
    }

    pub fn facilities(&self) -> Result<LazyFrame, StoreError> {
        read_one(&self.facilities_path(), "facility registry")
    }

    pub fn budgets(&self) -> Result<LazyFrame, StoreError> {
        read_one(&self.budgets_path(), "budgets")
    }
}

fn semi(all: LazyFrame, keys: LazyFrame) -> LazyFrame {
    let on = [col("visit_key")];
    all.join(keys, on.clone(), on, JoinArgs::new(JoinType::Semi))
}

fn read_one(path: &Path, what: &'static str) -> Result<LazyFrame, StoreError> {
    if !path.exists() {
        return Err(StoreError::Empty(path.to_path_buf(), what));
    }
    LazyFrame::scan_parquet(
        PlRefPath::new(path.to_string_lossy().as_ref()),
        Default::default(),
    )
    .map_err(|source| StoreError::Polars {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a frame to Parquet atomically: a temporary file in the same
/// directory, then a rename.
pub fn write_parquet_atomic(df: &mut DataFrame, path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out")
    ));
    let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::full())
        .finish(df)
        .map_err(|source| StoreError::Polars {
            path: path.to_path_buf(),
            source,
        })?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(())
}

/// Writes bytes atomically: a temporary file in the same directory, synced,
/// then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out")
    ));
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(())
}
