//! Housekeeping of the store's tables: `bhyt store optimize` (small files
//! of a partition rewritten as few large ones, ordered by facility and
//! date) and `bhyt store vacuum` (files no kept version names deleted).
//!
//! Compaction is written here, not taken from delta-rs: its `optimize`
//! needs DataFusion, which would double the default build. It is a plain
//! rewrite committed as Delta's `OPTIMIZE` (remove + add, `dataChange`
//! false), so other engines know no row changed.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::delta::{NewFile, Operation, TableFile};
use super::manifest;
use super::{Store, StoreError, LINES, QUARANTINE, TABLES, VISITS};

/// What compaction did to one table.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableCompaction {
    pub table: String,
    pub partitions_rewritten: usize,
    pub files_before: usize,
    pub files_after: usize,
    pub bytes_before: i64,
    pub bytes_after: i64,
}

/// Files and bytes of one table at the snapshot a handle reads.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableStat {
    pub table: String,
    pub version: Option<u64>,
    pub files: usize,
    pub bytes: i64,
    pub rows: usize,
}

/// Target size of a compacted file.
pub const DEFAULT_TARGET_BYTES: i64 = 256 << 20;

impl Store {
    /// Files, bytes and rows of each table at this handle's snapshot.
    pub fn table_stats(&self) -> Result<Vec<TableStat>, StoreError> {
        let snap = self.snapshot()?;
        let mut out = Vec::new();
        for name in TABLES {
            let v = snap.version(name);
            let files = match v {
                Some(v) => self.table(name).files(Some(v))?,
                None => Vec::new(),
            };
            out.push(TableStat {
                table: name.to_string(),
                version: v,
                files: files.len(),
                bytes: files.iter().map(|f| f.size).sum(),
                rows: files.iter().filter_map(|f| f.rows).sum(),
            });
        }
        Ok(out)
    }

    /// Rewrites every partition of visits, lines and quarantine that holds
    /// more than one file into files of about `target_bytes`, rows ordered
    /// by facility then discharge date (readers skip files by those
    /// columns' statistics). One commit per table and a new snapshot, under
    /// the store's write lock.
    pub fn optimize(&self, target_bytes: i64) -> Result<Vec<TableCompaction>, StoreError> {
        let mut m = self.manifest()?;
        let tx = m.lock()?;
        let snap = manifest::snapshot_in(&tx)?;
        let mut next = snap;
        let mut report = Vec::new();
        let mut moved: Vec<(String, Vec<String>)> = Vec::new();
        for name in [VISITS, LINES, QUARANTINE] {
            let Some(version) = snap.version(name) else {
                continue;
            };
            let t = self.table(name);
            if t.latest_version()? != Some(version) {
                // An interrupted publish left the table ahead: the next
                // ingest repairs it; compaction waits for that.
                continue;
            }
            let files = t.files(Some(version))?;
            let mut by_part: BTreeMap<Vec<(String, Option<String>)>, Vec<TableFile>> =
                BTreeMap::new();
            for f in files {
                by_part
                    .entry(f.partition.clone().into_iter().collect())
                    .or_default()
                    .push(f);
            }
            let mut r = TableCompaction {
                table: name.to_string(),
                ..Default::default()
            };
            let (mut adds, mut removes): (Vec<NewFile>, Vec<TableFile>) = (vec![], vec![]);
            for (part, group) in by_part {
                let bytes: i64 = group.iter().map(|f| f.size).sum();
                r.files_before += group.len();
                r.bytes_before += bytes;
                let wanted = ((bytes + target_bytes - 1) / target_bytes).max(1) as usize;
                if group.len() <= wanted {
                    r.files_after += group.len();
                    r.bytes_after += bytes;
                    continue;
                }
                let paths: Vec<PlRefPath> = group
                    .iter()
                    .map(|f| PlRefPath::new(t.file_path(&f.path).to_string_lossy().as_ref()))
                    .collect();
                let perr = |source| StoreError::Polars {
                    path: t.dir().to_path_buf(),
                    source,
                };
                let lf = crate::store::scan_files(paths).map_err(perr)?;
                let names = lf.clone().collect_schema().map_err(perr)?;
                let order: Vec<PlSmallStr> = ["facility_code", "discharge_date", "ma_lk"]
                    .iter()
                    .filter(|c| names.contains(c))
                    .map(|c| (*c).into())
                    .collect();
                let df = if order.is_empty() {
                    lf.collect()
                } else {
                    lf.sort(order, SortMultipleOptions::default()).collect()
                }
                .map_err(perr)?;
                let partition: Vec<(&str, String)> = part
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.clone().unwrap_or_default()))
                    .collect();
                let per_file = df.height().div_ceil(wanted).max(1);
                let mut new_paths = Vec::new();
                let mut offset = 0;
                while offset < df.height() {
                    let mut chunk = df.slice(offset as i64, per_file);
                    offset += per_file;
                    let f = t.write_file(
                        &mut chunk,
                        &partition,
                        &["facility_code", "admission_date", "discharge_date"],
                    )?;
                    r.files_after += 1;
                    r.bytes_after += f.size;
                    new_paths.push(format!("{name}/{}", f.path));
                    adds.push(f);
                }
                for f in &group {
                    moved.push((format!("{name}/{}", f.path), new_paths.clone()));
                }
                removes.extend(group);
                r.partitions_rewritten += 1;
            }
            if !removes.is_empty() {
                let info = [(
                    "bhyt".to_string(),
                    serde_json::json!({ "optimize": { "target_bytes": target_bytes } }),
                )]
                .into_iter()
                .collect();
                let v = t.commit(Some(version), &adds, &removes, Operation::Optimize, info)?;
                next.set(name, v);
            }
            report.push(r);
        }
        manifest::compacted(tx, &next, &moved)?;
        Ok(report)
    }

    /// Deletes the data files no version worth keeping names: files removed
    /// (by a replacement or compaction) more than `retain_hours` ago and not
    /// in a snapshot's version, and files no commit ever named (a run that
    /// died) older than that. Returns the files deleted per table.
    pub fn vacuum(&self, retain_hours: i64) -> Result<Vec<(String, usize)>, StoreError> {
        // Time travel to a snapshot taken within the retention window (and
        // to the newest) stays possible.
        let since = (chrono::Utc::now() - chrono::Duration::hours(retain_hours))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let m = self.manifest()?;
        let mut snaps = m.snapshots_since(&since)?;
        snaps.push(m.snapshot()?);
        let mut out = Vec::new();
        for name in TABLES {
            let t = self.table(name);
            if !t.exists() {
                continue;
            }
            let keep: Vec<u64> = snaps.iter().filter_map(|s| s.version(name)).collect();
            out.push((name.to_string(), t.vacuum(retain_hours, &keep)?));
        }
        Ok(out)
    }
}
