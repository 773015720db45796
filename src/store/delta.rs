//! Delta Lake tables (delta-rs) under the store: the transaction log makes
//! a batch of files visible in one atomic commit, readers see only files a
//! commit names (a file written by a run that died before its commit is
//! invisible, and removed by `vacuum`), writers take turns by optimistic
//! concurrency on the log, and every version stays readable (time travel)
//! until vacuumed. Spark, Trino, DuckDB and Python `deltalake`/`polars`
//! read the same tables.
//!
//! Files are written by polars (Parquet, zstd, full statistics) into
//! hive-style partition folders and committed here as `add` actions with
//! their row counts; partition columns live in the log and the folder
//! names only, never in the files, so there is one truth for them.
//! delta-rs is async; this module is a blocking facade on a small runtime
//! of its own.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Add, DataType as DeltaType, PrimitiveType, Remove, StructField};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableBuilder};
use polars::prelude::*;

/// Commits between two checkpoints of a table's log.
pub const CHECKPOINT_EVERY: u64 = 10;

/// Errors of the Delta layer.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("delta table {path}: {source}")]
    Delta {
        path: PathBuf,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("delta table {path}: {msg}")]
    Other { path: PathBuf, msg: String },
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bhyt-delta")
            .enable_all()
            .build()
            .expect("the Delta runtime starts")
    })
}

/// Runs a future to completion from blocking code; from inside another
/// runtime (the workspace server) on a thread of its own, since a runtime
/// cannot block inside another.
fn block_on<F>(f: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(|| runtime().block_on(f))
                .join()
                .expect("the Delta thread does not panic")
        })
    } else {
        runtime().block_on(f)
    }
}

/// One data file of a table version.
#[derive(Debug, Clone, PartialEq)]
pub struct TableFile {
    /// Relative to the table's folder (URL-decoded).
    pub path: String,
    pub size: i64,
    pub rows: Option<usize>,
    pub partition: BTreeMap<String, Option<String>>,
}

/// A data file written and not yet committed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFile {
    pub path: String,
    pub size: i64,
    pub rows: usize,
    pub partition: Vec<(String, String)>,
    pub stats: String,
}

/// What a commit does, for the log's `commitInfo` (other engines show it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// New data (and the files a replaced source leaves).
    Write,
    /// The same rows in fewer, larger files.
    Optimize,
}

/// A Delta table in a folder.
#[derive(Debug, Clone)]
pub struct Table {
    dir: PathBuf,
}

fn url_of(dir: &Path) -> Result<url::Url, DeltaError> {
    let abs = std::path::absolute(dir).map_err(|e| DeltaError::Other {
        path: dir.to_path_buf(),
        msg: e.to_string(),
    })?;
    url::Url::from_directory_path(&abs).map_err(|_| DeltaError::Other {
        path: dir.to_path_buf(),
        msg: "not a local path".into(),
    })
}

/// The Delta type of a polars column type.
fn delta_type(dt: &DataType) -> Option<DeltaType> {
    Some(DeltaType::Primitive(match dt {
        DataType::String => PrimitiveType::String,
        DataType::Boolean => PrimitiveType::Boolean,
        DataType::Int8 => PrimitiveType::Byte,
        DataType::Int16 => PrimitiveType::Short,
        DataType::Int32 => PrimitiveType::Integer,
        DataType::Int64 => PrimitiveType::Long,
        DataType::Float32 => PrimitiveType::Float,
        DataType::Float64 => PrimitiveType::Double,
        DataType::Date => PrimitiveType::Date,
        DataType::Datetime(_, None) => PrimitiveType::TimestampNtz,
        DataType::Datetime(_, Some(_)) => PrimitiveType::Timestamp,
        _ => return None,
    }))
}

/// Hive-style folder name of a partition value: `[A-Za-z0-9._-]` kept,
/// everything else %-encoded (hostile values cannot climb out).
pub fn partition_dir(name: &str, value: &str) -> String {
    let mut v = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            v.push(b as char);
        } else {
            v.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{name}={v}")
}

/// `numRecords` and, for the named columns, min and max: what engines use
/// to skip files.
fn stats_json(df: &DataFrame, stat_columns: &[&str]) -> String {
    let mut min = serde_json::Map::new();
    let mut max = serde_json::Map::new();
    for c in stat_columns {
        let Ok(col) = df.column(c) else { continue };
        let s = col.as_materialized_series();
        let as_json = |v: AnyValue| -> Option<serde_json::Value> {
            match v {
                AnyValue::String(x) => Some(x.into()),
                AnyValue::StringOwned(x) => Some(x.as_str().into()),
                AnyValue::Int32(x) => Some(x.into()),
                AnyValue::Int64(x) => Some(x.into()),
                AnyValue::Date(d) => chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163)
                    .map(|d| d.to_string().into()),
                _ => None,
            }
        };
        if let (Ok(lo), Ok(hi)) = (s.min_reduce(), s.max_reduce()) {
            if let (Some(lo), Some(hi)) = (as_json(lo.value().clone()), as_json(hi.value().clone()))
            {
                min.insert(c.to_string(), lo);
                max.insert(c.to_string(), hi);
            }
        }
    }
    serde_json::json!({ "numRecords": df.height(), "minValues": min, "maxValues": max }).to_string()
}

impl Table {
    pub fn at(dir: impl Into<PathBuf>) -> Table {
        Table { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn err(&self) -> impl Fn(deltalake::DeltaTableError) -> DeltaError + '_ {
        move |e| DeltaError::Delta {
            path: self.dir.clone(),
            source: Box::new(e),
        }
    }

    /// Whether the folder holds a Delta table (a log with a first commit).
    pub fn exists(&self) -> bool {
        self.dir
            .join("_delta_log")
            .join("00000000000000000000.json")
            .exists()
    }

    /// Creates the table with the columns of `schema` (partition columns
    /// among them), unless it exists. Two writers creating it at once:
    /// one wins, the other finds it.
    pub fn create(&self, schema: &Schema, partition_by: &[&str]) -> Result<(), DeltaError> {
        if self.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| DeltaError::Other {
            path: self.dir.clone(),
            msg: e.to_string(),
        })?;
        let mut fields = Vec::new();
        for (name, dt) in schema.iter() {
            let t = delta_type(dt).ok_or_else(|| DeltaError::Other {
                path: self.dir.clone(),
                msg: format!("column {name}: type {dt} has no Delta equivalent"),
            })?;
            fields.push(StructField::new(name.to_string(), t, true));
        }
        let url = url_of(&self.dir)?;
        let r = block_on(async move {
            let table = DeltaTableBuilder::from_url(url)?.build()?;
            table
                .create()
                .with_columns(fields)
                .with_partition_columns(partition_by.iter().map(|s| s.to_string()))
                .with_save_mode(SaveMode::Ignore)
                .await
        });
        match r {
            Ok(_) => Ok(()),
            Err(_) if self.exists() => Ok(()),
            Err(e) => Err(self.err()(e)),
        }
    }

    async fn load(
        url: url::Url,
        version: Option<u64>,
    ) -> Result<DeltaTable, deltalake::DeltaTableError> {
        let mut b = DeltaTableBuilder::from_url(url)?;
        if let Some(v) = version {
            b = b.with_version(v);
        }
        b.load().await
    }

    /// The newest version, or None before the first commit: the largest
    /// `<version>.json` of the log folder. Loading the table for it would
    /// replay the log, and a publish asks several times.
    pub fn latest_version(&self) -> Result<Option<u64>, DeltaError> {
        if !self.exists() {
            return Ok(None);
        }
        let log = self.dir.join("_delta_log");
        let entries = std::fs::read_dir(&log).map_err(|e| DeltaError::Other {
            path: log.clone(),
            msg: e.to_string(),
        })?;
        Ok(entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                let stem = name.to_str()?.strip_suffix(".json")?;
                (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| stem.parse::<u64>().ok())
                    .flatten()
            })
            .max())
    }

    /// The data files of a version (the newest when None).
    pub fn files(&self, version: Option<u64>) -> Result<Vec<TableFile>, DeltaError> {
        if !self.exists() {
            return Ok(Vec::new());
        }
        let url = url_of(&self.dir)?;
        let files = block_on(async move {
            let t = Table::load(url, version).await?;
            let mut out = Vec::new();
            for f in t.snapshot()?.log_data() {
                out.push(TableFile {
                    path: f.path().to_string(),
                    size: f.size(),
                    rows: f.num_records(),
                    partition: f.partition_values_map().into_iter().collect(),
                });
            }
            Ok::<_, deltalake::DeltaTableError>(out)
        })
        .map_err(self.err())?;
        Ok(files)
    }

    /// Absolute path of a file of the table.
    pub fn file_path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Writes `df` as one Parquet file of the partition (its columns
    /// without the partition columns), not yet part of the table.
    pub fn write_file(
        &self,
        df: &mut DataFrame,
        partition: &[(&str, String)],
        stat_columns: &[&str],
    ) -> Result<NewFile, DeltaError> {
        let mut rel = partition
            .iter()
            .map(|(k, v)| partition_dir(k, v))
            .collect::<Vec<_>>()
            .join("/");
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(&format!("part-{}.zstd.parquet", uuid::Uuid::new_v4()));
        let names: Vec<PlSmallStr> = partition.iter().map(|(k, _)| (*k).into()).collect();
        let mut data = df.drop_many(names);
        // Delta timestamps are microseconds.
        let casts: Vec<(PlSmallStr, DataType)> = data
            .schema()
            .iter()
            .filter_map(|(n, t)| match t {
                DataType::Datetime(u, tz) if *u != TimeUnit::Microseconds => Some((
                    n.clone(),
                    DataType::Datetime(TimeUnit::Microseconds, tz.clone()),
                )),
                _ => None,
            })
            .collect();
        for (n, t) in casts {
            let c = data
                .column(&n)
                .and_then(|c| c.cast(&t))
                .map_err(|e| DeltaError::Other {
                    path: self.dir.clone(),
                    msg: e.to_string(),
                })?;
            data.with_column(c).map_err(|e| DeltaError::Other {
                path: self.dir.clone(),
                msg: e.to_string(),
            })?;
        }
        let path = self.dir.join(&rel);
        let other = |msg: String| DeltaError::Other {
            path: path.clone(),
            msg,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| other(e.to_string()))?;
        }
        let stats = stats_json(&data, stat_columns);
        let file = std::fs::File::create(&path).map_err(|e| other(e.to_string()))?;
        super::write_parquet_to(&file, &mut data).map_err(|e| other(e.to_string()))?;
        let size = std::fs::metadata(&path)
            .map_err(|e| other(e.to_string()))?
            .len() as i64;
        Ok(NewFile {
            path: rel,
            size,
            rows: data.height(),
            partition: partition
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            stats,
        })
    }

    /// Commits added and removed files as one new version of the table,
    /// on top of `read_version` (the version the writer read; a concurrent
    /// commit since then is checked for conflicts and the commit retried).
    /// `info` goes into the log's `commitInfo`. Returns the new version.
    pub fn commit(
        &self,
        read_version: Option<u64>,
        adds: &[NewFile],
        removes: &[TableFile],
        op: Operation,
        info: HashMap<String, serde_json::Value>,
    ) -> Result<u64, DeltaError> {
        let now = chrono::Utc::now().timestamp_millis();
        let data_change = op == Operation::Write;
        let mut actions: Vec<Action> = Vec::with_capacity(adds.len() + removes.len());
        for f in adds {
            actions.push(Action::Add(Add {
                path: f.path.clone(),
                partition_values: f
                    .partition
                    .iter()
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect(),
                size: f.size,
                modification_time: now,
                data_change,
                stats: Some(f.stats.clone()),
                tags: None,
                deletion_vector: None,
                base_row_id: None,
                default_row_commit_version: None,
                clustering_provider: None,
            }));
        }
        for f in removes {
            actions.push(Action::Remove(Remove {
                path: f.path.clone(),
                data_change,
                deletion_timestamp: Some(now),
                extended_file_metadata: Some(true),
                partition_values: Some(f.partition.clone().into_iter().collect()),
                size: Some(f.size),
                tags: None,
                deletion_vector: None,
                base_row_id: None,
                default_row_commit_version: None,
            }));
        }
        let url = url_of(&self.dir)?;
        let partition_by = adds
            .first()
            .map(|f| f.partition.iter().map(|(k, _)| k.clone()).collect());
        block_on(async move {
            let table = Table::load(url, read_version).await?;
            let operation = match op {
                Operation::Write => DeltaOperation::Write {
                    mode: SaveMode::Append,
                    partition_by,
                    predicate: None,
                },
                Operation::Optimize => DeltaOperation::Optimize {
                    predicate: None,
                    target_size: 0,
                },
            };
            let done = CommitBuilder::default()
                .with_actions(actions)
                .with_app_metadata(info)
                .build(Some(table.snapshot()?), table.log_store(), operation)
                .await?;
            let version = done.version();
            // A checkpoint every CHECKPOINT_EVERY commits: a reader loads
            // the newest checkpoint and the few commits after it instead of
            // replaying the whole log (which made every publish slower as
            // the store grew). The JSON commits stay: old versions stay
            // readable. A crash while writing it leaves the log as it was.
            if (version + 1) % CHECKPOINT_EVERY == 0 {
                let t = Table::load(table.table_url().clone(), Some(version)).await?;
                deltalake::checkpoints::create_checkpoint(&t, None).await?;
            }
            Ok::<_, deltalake::DeltaTableError>(version)
        })
        .map_err(self.err())
    }

    /// Deletes files no kept version names and removed (or never
    /// committed) more than `retain_hours` ago; `keep`: versions whose files
    /// stay readable. Returns how many files were deleted.
    pub fn vacuum(&self, retain_hours: i64, keep: &[u64]) -> Result<usize, DeltaError> {
        let url = url_of(&self.dir)?;
        let keep = keep.to_vec();
        block_on(async move {
            let table = Table::load(url, None).await?;
            let (_, metrics) = table
                .vacuum()
                .with_retention_period(chrono::Duration::hours(retain_hours))
                .with_enforce_retention_duration(false)
                .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
                .with_keep_versions(&keep)
                .await?;
            Ok::<_, deltalake::DeltaTableError>(metrics.files_deleted.len())
        })
        .map_err(self.err())
    }

    /// Makes `version`'s files the table's again, in a new commit (the
    /// versions after it stay in the log, as history).
    pub fn restore(&self, version: u64) -> Result<u64, DeltaError> {
        let url = url_of(&self.dir)?;
        block_on(async move {
            let table = Table::load(url, None).await?;
            let (t, _) = table
                .restore()
                .with_version_to_restore(version)
                .with_ignore_missing_files(true)
                .await?;
            Ok::<_, deltalake::DeltaTableError>(t.version().unwrap_or(version))
        })
        .map_err(self.err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(codes: &[&str], month: i32) -> DataFrame {
        df!(
            "facility_code" => codes,
            "year" => vec![2024; codes.len()],
            "month" => vec![month; codes.len()],
            "cost" => (0..codes.len()).map(|i| i as f64).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    /// A new table partitioned by year and month, in `dir/name`.
    fn created(dir: &std::path::Path, name: &str) -> Table {
        let t = Table::at(dir.join(name));
        t.create(frame(&["92001"], 1).schema(), &["year", "month"])
            .unwrap();
        t
    }

    fn part(month: i32) -> Vec<(&'static str, String)> {
        vec![("year", "2024".into()), ("month", month.to_string())]
    }

    #[test]
    fn files_appear_only_when_committed_and_every_version_stays_readable() {
        let dir = tempfile::tempdir().unwrap();
        let t = created(dir.path(), "visits");
        t.create(frame(&["92001"], 1).schema(), &["year", "month"])
            .unwrap();
        assert_eq!(t.latest_version().unwrap(), Some(0));
        let a = t
            .write_file(
                &mut frame(&["92001", "92002"], 1),
                &part(1),
                &["facility_code"],
            )
            .unwrap();
        assert!(a.path.starts_with("year=2024/month=1/part-"), "{}", a.path);
        // Written, not committed: not in the table.
        assert!(t.files(None).unwrap().is_empty());
        let v1 = t
            .commit(
                Some(0),
                std::slice::from_ref(&a),
                &[],
                Operation::Write,
                HashMap::new(),
            )
            .unwrap();
        let files = t.files(None).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].rows, Some(2));
        assert_eq!(files[0].partition["month"].as_deref(), Some("1"));
        // The file holds no partition column: one truth, in the log.
        let df = ParquetReader::new(std::fs::File::open(t.file_path(&files[0].path)).unwrap())
            .finish()
            .unwrap();
        assert!(df.column("month").is_err() && df.column("cost").is_ok());
        // Replace the file by another in one commit; the old version still reads.
        let b = t
            .write_file(&mut frame(&["92003"], 2), &part(2), &[])
            .unwrap();
        let v2 = t
            .commit(Some(v1), &[b], &files, Operation::Write, HashMap::new())
            .unwrap();
        assert_eq!(
            t.files(None).unwrap()[0].partition["month"].as_deref(),
            Some("2")
        );
        assert_eq!(t.files(Some(v1)).unwrap(), files);
        // Restore: v1's files again, as a new version.
        let v3 = t.restore(v1).unwrap();
        assert!(v3 > v2);
        assert_eq!(t.files(None).unwrap().len(), 1);
        assert_eq!(t.files(None).unwrap()[0].path, files[0].path);
    }

    /// Every CHECKPOINT_EVERY commits the log gets a checkpoint; versions
    /// before and after it read the same files as a replay would, and the
    /// newest version is read from the log folder.
    #[test]
    fn checkpoints_keep_every_version_readable() {
        let dir = tempfile::tempdir().unwrap();
        let t = created(dir.path(), "visits");
        let mut v = 0;
        for i in 0..CHECKPOINT_EVERY + 2 {
            let f = t
                .write_file(
                    &mut frame(&["92001"], 1 + (i % 12) as i32),
                    &part(1 + (i % 12) as i32),
                    &[],
                )
                .unwrap();
            v = t
                .commit(Some(v), &[f], &[], Operation::Write, HashMap::new())
                .unwrap();
        }
        let log = dir.path().join("visits/_delta_log");
        let first = CHECKPOINT_EVERY - 1;
        assert!(
            log.join(format!("{first:020}.checkpoint.parquet")).exists(),
            "checkpoint at version {first}"
        );
        assert!(log.join("_last_checkpoint").exists());
        assert_eq!(t.latest_version().unwrap(), Some(v));
        assert_eq!(v, CHECKPOINT_EVERY + 2);
        for version in [1, first - 1, first, v] {
            assert_eq!(t.files(Some(version)).unwrap().len() as u64, version);
        }
    }

    #[test]
    fn concurrent_appends_both_land() {
        let dir = tempfile::tempdir().unwrap();
        let t = created(dir.path(), "lines");
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let t = t.clone();
                std::thread::spawn(move || {
                    let f = t
                        .write_file(&mut frame(&["92001"], i + 1), &part(i + 1), &[])
                        .unwrap();
                    // Every writer read version 0: the log orders them.
                    t.commit(Some(0), &[f], &[], Operation::Write, HashMap::new())
                        .unwrap()
                })
            })
            .collect();
        let mut versions: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        versions.sort();
        assert_eq!(versions, [1, 2, 3, 4]);
        assert_eq!(t.files(None).unwrap().len(), 4);
    }

    #[test]
    fn hostile_partition_values_stay_in_their_folder() {
        assert_eq!(partition_dir("province", "92"), "province=92");
        assert_eq!(partition_dir("p", "../x/é"), "p=..%2Fx%2F%C3%A9");
    }
}
