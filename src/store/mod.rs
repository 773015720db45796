//! The claims store: Delta Lake tables under a data directory, and a
//! SQLite manifest of every source file and of the store's snapshots.
//!
//! Layout (`data/`):
//! ```text
//! manifest.sqlite        sources, the data files holding each, snapshots (table versions)
//! visits/_delta_log/     visits, partitioned by facility_province_code / year / month:
//! visits/facility_province_code=92/year=2024/month=3/part-<uuid>.zstd.parquet
//! lines/…                the same partitioning
//! quarantine/…           rejected rows and records, with the rule and reason
//! superseded/…           visit versions replaced by a newer version of the same claim
//! registry/facilities.parquet, registry/budgets.parquet, registry/quarantine.parquet
//! ```
//! Rows enter only through [`Store::publish`]: one Delta commit per table
//! and batch, then a snapshot in the manifest naming the new versions.
//! Readers read the tables at the newest snapshot (or an older one, for
//! a rerun of a past week: [`Store::at_snapshot`]), so a run that dies
//! between its commits is invisible, and the newest version of a
//! resubmitted claim was decided when it was written.
//! Partition columns are in the Delta log and the folder names only: one
//! truth for them, typed (`year`, `month`: integers).

pub mod chunks;
pub mod delta;
mod maintain;
mod manifest;
mod publish;
pub mod sink;
mod summary;

use std::path::{Path, PathBuf};

use polars::prelude::*;

pub use maintain::{TableCompaction, TableStat, DEFAULT_TARGET_BYTES};
pub use manifest::{Manifest, RunRecord, Snapshot, SourceRecord, SourceStatus, StatusCount};
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
    #[error(transparent)]
    Delta(#[from] delta::DeltaError),
    #[error("store {path}: no snapshot {id} (see `bhyt status` for the snapshots)")]
    NoSnapshot { path: PathBuf, id: i64 },
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
        "store {0}: the path holds '%', which the Delta Lake reader (delta-rs) decodes a second \
         time and then looks elsewhere; choose a data directory without '%'"
    )]
    PercentInPath(PathBuf),
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

/// Handle on a data directory. Reads see one snapshot: the newest when
/// the handle first reads (writers open a new handle), or the one given
/// to [`Store::at_snapshot`].
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    snapshot: Arc<std::sync::OnceLock<Snapshot>>,
}

pub const VISITS: &str = "visits";
pub const LINES: &str = "lines";
pub const QUARANTINE: &str = "quarantine";
pub const SUPERSEDED: &str = "superseded";
/// The store's Delta tables; the first three take a batch's rows.
pub(crate) const TABLES: [&str; 4] = [VISITS, LINES, QUARANTINE, SUPERSEDED];
pub const REGISTRY: &str = "registry";

impl Store {
    /// Opens (and creates) a store.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        // Refused before anything is created: `%41` would be read as `A`.
        if std::path::absolute(&root)
            .unwrap_or_else(|_| root.clone())
            .to_string_lossy()
            .contains('%')
        {
            return Err(StoreError::PercentInPath(root));
        }
        std::fs::create_dir_all(&root).map_err(io_err(&root))?;
        let store = Store {
            root,
            snapshot: Default::default(),
        };
        if store.root.join("manifest.sqlite").exists() {
            store.manifest()?;
        }
        Ok(store)
    }

    /// The same store as of an earlier snapshot (time travel: a rerun of a
    /// past week reads what that week's run read).
    pub fn at_snapshot(&self, id: i64) -> Result<Store, StoreError> {
        let snap = self
            .manifest()?
            .snapshot_by_id(id)?
            .ok_or_else(|| StoreError::NoSnapshot {
                path: self.root.clone(),
                id,
            })?;
        let s = Store {
            root: self.root.clone(),
            snapshot: Default::default(),
        };
        let _ = s.snapshot.set(snap);
        Ok(s)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn manifest(&self) -> Result<Manifest, StoreError> {
        Manifest::open(&self.root.join("manifest.sqlite"))
    }

    /// The snapshot this handle reads.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        if let Some(s) = self.snapshot.get() {
            return Ok(*s);
        }
        let s = if self.root.join("manifest.sqlite").exists() {
            self.manifest()?.snapshot()?
        } else {
            Snapshot::default()
        };
        let _ = self.snapshot.set(s);
        Ok(s)
    }

    fn version_of(&self, table: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.snapshot()?.version(table))
    }

    /// A table at a version (None: the newest) as one lazy frame, the
    /// partition columns added from the log; None when it has no file.
    pub(crate) fn scan_table_at(
        &self,
        table: &str,
        version: Option<u64>,
    ) -> Result<Option<LazyFrame>, StoreError> {
        let files = self.table(table).files(version)?;
        self.scan_table_files(table, &files)
    }

    /// These files of a table (from its log) as one lazy frame, the
    /// partition columns added; None when there is none.
    pub(crate) fn scan_table_files(
        &self,
        table: &str,
        files: &[delta::TableFile],
    ) -> Result<Option<LazyFrame>, StoreError> {
        let t = self.table(table);
        if files.is_empty() {
            return Ok(None);
        }
        let perr = |source| StoreError::Polars {
            path: self.root.join(table),
            source,
        };
        // One scan of every file (a union of per-partition scans trips
        // polars' `len()` pushdown); the partition columns are parsed from
        // the hive-style folder names, typed by the table's partitioning.
        let partitioned: Vec<&String> = files[0].partition.keys().collect();
        let hive_options = if partitioned.is_empty() {
            HiveOptions::new_disabled()
        } else {
            let schema: Schema = partitioned
                .iter()
                .map(|k| {
                    let t = match k.as_str() {
                        "year" | "month" => DataType::Int32,
                        _ => DataType::String,
                    };
                    Field::new(k.as_str().into(), t)
                })
                .collect();
            HiveOptions {
                enabled: Some(true),
                hive_start_idx: 0,
                schema: Some(Arc::new(schema)),
                try_parse_dates: false,
            }
        };
        let paths: Vec<PlRefPath> = files
            .iter()
            .map(|f| PlRefPath::new(t.file_path(&f.path).to_string_lossy().as_ref()))
            .collect();
        let args = ScanArgsParquet {
            hive_options,
            glob: false,
            ..Default::default()
        };
        Ok(Some(
            LazyFrame::scan_parquet_files(paths.into(), args).map_err(perr)?,
        ))
    }

    /// Paths of a table's data files at this handle's snapshot (empty when
    /// the table has no version there): what another engine reads, so it
    /// sees exactly what `visits()`/`lines()` see, whatever was left on disk
    /// by replaced versions or interrupted runs.
    pub fn data_files(&self, table: &str) -> Result<Vec<PathBuf>, StoreError> {
        let Some(v) = self.version_of(table)? else {
            return Ok(Vec::new());
        };
        let t = self.table(table);
        Ok(t.files(Some(v))?
            .iter()
            .map(|f| t.file_path(&f.path))
            .collect())
    }

    fn scan(&self, table: &'static str) -> Result<LazyFrame, StoreError> {
        let v = self.version_of(table)?;
        match v {
            Some(v) => self
                .scan_table_at(table, Some(v))?
                .ok_or_else(|| StoreError::Empty(self.root.clone(), table)),
            None => Err(StoreError::Empty(self.root.clone(), table)),
        }
    }

    /// Visit versions superseded by a newer version of their claim, or
    /// None when no claim was ever resubmitted.
    fn superseded(&self) -> Result<Option<LazyFrame>, StoreError> {
        match self.version_of(SUPERSEDED)? {
            Some(v) => self.scan_table_at(SUPERSEDED, Some(v)),
            None => Ok(None),
        }
    }

    /// All visit versions as stored, resubmissions included.
    pub fn visits_all_versions(&self) -> Result<LazyFrame, StoreError> {
        self.scan(VISITS)
    }

    /// Current visits: for each (facility, MA_LK) the newest version, by
    /// envelope date then ingest order (decided at publish).
    pub fn visits(&self) -> Result<LazyFrame, StoreError> {
        let all = self.scan(VISITS)?;
        Ok(match self.superseded()? {
            None => all,
            Some(s) => anti(all, s),
        })
    }

    /// Lines of the current visit versions.
    pub fn lines(&self) -> Result<LazyFrame, StoreError> {
        let all = self.scan(LINES)?;
        Ok(match self.superseded()? {
            None => all,
            Some(s) => anti(all, s),
        })
    }

    /// Rejected rows: the claims' (Delta table) and the registry's.
    pub fn quarantine(&self) -> Result<LazyFrame, StoreError> {
        let registry = self.root.join(REGISTRY).join("quarantine.parquet");
        let claims = self.scan(QUARANTINE);
        if !registry.exists() {
            return claims;
        }
        let reg = read_one(&registry, "quarantine")?;
        Ok(match claims {
            Ok(c) => concat(
                [c, reg],
                UnionArgs {
                    diagonal: true,
                    ..Default::default()
                },
            )
            .map_err(|source| StoreError::Polars {
                path: self.root.join(QUARANTINE),
                source,
            })?,
            Err(StoreError::Empty(..)) => reg,
            Err(e) => return Err(e),
        })
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

fn anti(all: LazyFrame, superseded: LazyFrame) -> LazyFrame {
    let on = [col("visit_key")];
    all.join(
        superseded.select([col("visit_key")]),
        on.clone(),
        on,
        JoinArgs::new(JoinType::Anti),
    )
}

fn read_one(path: &Path, what: &'static str) -> Result<LazyFrame, StoreError> {
    if !path.exists() {
        return Err(StoreError::Empty(path.to_path_buf(), what));
    }
    scan_file(path).map_err(|source| StoreError::Polars {
        path: path.to_path_buf(),
        source,
    })
}

/// A temporary file beside `path`, unique to this writer (two processes
/// writing the same output never share one).
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile, StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_err(dir))
}

/// A lazy scan of one Parquet file named by its path. Never a glob pattern:
/// a store under `/data/[2024]` or an input called `claims*.parquet` is a
/// path, and polars would otherwise expand it (and find nothing, or other
/// files).
pub fn scan_file(path: &Path) -> PolarsResult<LazyFrame> {
    scan_files(vec![PlRefPath::new(path.to_string_lossy().as_ref())])
}

/// A lazy scan of Parquet files named by their paths (never globs).
pub fn scan_files(paths: Vec<PlRefPath>) -> PolarsResult<LazyFrame> {
    let args = ScanArgsParquet {
        glob: false,
        ..Default::default()
    };
    LazyFrame::scan_parquet_files(paths.into(), args)
}

/// Writes a frame as zstd Parquet with full statistics, through a buffer:
/// the writer emits a page at a time, thousands of small writes a file
/// unbuffered.
pub(crate) fn write_parquet_to(file: &std::fs::File, df: &mut DataFrame) -> PolarsResult<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    ParquetWriter::new(&mut w)
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::full())
        .finish(df)?;
    w.flush()?;
    Ok(())
}

/// Writes a frame to Parquet atomically: a temporary file in the same
/// directory, then a rename.
pub fn write_parquet_atomic(df: &mut DataFrame, path: &Path) -> Result<(), StoreError> {
    let tmp = temp_beside(path)?;
    write_parquet_to(tmp.as_file(), df).map_err(|source| StoreError::Polars {
        path: path.to_path_buf(),
        source,
    })?;
    tmp.persist(path).map_err(|e| StoreError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// Writes bytes atomically: a temporary file in the same directory, synced,
/// then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let mut tmp = temp_beside(path)?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| StoreError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}
