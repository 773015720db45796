//! Publishing a batch of sources: the only way rows enter the store.
//!
//! Under the store's write lock (an immediate transaction on the manifest,
//! so concurrent runs in any process take turns here while their reading
//! and parsing overlap):
//! 1. tables that are ahead of the last snapshot (a publisher died between
//!    its Delta commits and its snapshot) are restored to it;
//! 2. sources whose bytes are already in the store, or earlier in this
//!    batch, are duplicates: their rows are left out;
//! 3. the files of a replaced source (a corrected file of the same path)
//!    are removed, shared ones rewritten without its rows — in the same
//!    commit as the new rows;
//! 4. one commit per table (visits, lines, quarantine), then the
//!    superseded visit versions (a resubmitted claim's older versions) are
//!    decided and committed;
//! 5. the snapshot (the new table versions) and the sources' records are
//!    written in the manifest transaction, which commits last.
//!
//! A crash anywhere leaves readers on the previous snapshot; the next
//! publisher repairs the tables in step 1.

use std::collections::{BTreeSet, HashMap};

use polars::prelude::*;

use super::delta::{NewFile, Operation, Table, TableFile};
use super::manifest::{self, Snapshot};
use super::{SourceRecord, Store, StoreError, LINES, QUARANTINE, SUPERSEDED, TABLES, VISITS};

/// A data file written for a batch, and the sources whose rows it holds.
pub(crate) struct Written {
    pub table: &'static str,
    pub file: NewFile,
    pub seqs: Vec<i64>,
}

/// A source read completely, to be marked committed.
pub(crate) struct SourceCommit {
    pub rec: SourceRecord,
    pub documents_unreadable: i64,
    pub replaces: Option<i64>,
}

pub(crate) struct Batch {
    pub files: Vec<Written>,
    pub sources: Vec<SourceCommit>,
}

/// Test hook: `BHYT_CRASH_AFTER_COMMITS=n` ends the process after the
/// n-th Delta commit of a publish, before the snapshot (crash tests).
fn crash_point(commits: usize) {
    if std::env::var("BHYT_CRASH_AFTER_COMMITS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        == Some(commits)
    {
        eprintln!("BHYT_CRASH_AFTER_COMMITS={commits}: exiting");
        std::process::exit(137);
    }
}

/// Rewrites a file of `table` without the rows of `drop` sources.
fn rewrite_without(
    t: &Table,
    file: &TableFile,
    drop: &BTreeSet<i64>,
) -> Result<Option<NewFile>, StoreError> {
    let path = t.file_path(&file.path);
    let perr = |source| StoreError::Polars {
        path: path.clone(),
        source,
    };
    let dropped: Vec<i64> = drop.iter().copied().collect();
    let mut df = crate::store::scan_file(&path)
        .and_then(|lf| {
            lf.filter(
                col("source_seq")
                    .is_in(lit(Series::new("d".into(), dropped)).implode(false), false)
                    .not(),
            )
            .collect()
        })
        .map_err(perr)?;
    if df.height() == 0 {
        return Ok(None);
    }
    let partition: Vec<(&str, String)> = file
        .partition
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone().unwrap_or_default()))
        .collect();
    Ok(Some(t.write_file(&mut df, &partition, &[])?))
}

impl Store {
    pub(crate) fn table(&self, name: &str) -> Table {
        Table::at(self.root().join(name))
    }

    /// Publishes a batch (see the module's documentation). Returns the new
    /// snapshot.
    pub(crate) fn publish(&self, batch: Batch) -> Result<Snapshot, StoreError> {
        let mut m = self.manifest()?;
        let tx = m.lock()?;
        let snap = manifest::snapshot_in(&tx)?;
        // 1. Tables ahead of the snapshot go back to it.
        for name in TABLES {
            let t = self.table(name);
            if let Some(latest) = t.latest_version()? {
                let want = snap.version(name).unwrap_or(0);
                if latest != want {
                    tracing::warn!(
                        "{name}: version {latest} was never published (interrupted run): back to {want}"
                    );
                    t.restore(want)?;
                }
            }
        }
        // 2. Duplicates: the same bytes committed before or earlier here.
        let mut seen: HashMap<String, i64> = HashMap::new();
        let mut duplicates: Vec<(i64, String, i64)> = Vec::new();
        let mut kept: Vec<&SourceCommit> = Vec::new();
        for s in &batch.sources {
            let h = &s.rec.content_hash;
            let earlier = if h.is_empty() {
                None
            } else {
                match seen.get(h) {
                    Some(seq) => Some(*seq),
                    None => manifest::committed_hash(&tx, h)?,
                }
            };
            match earlier {
                Some(of) => duplicates.push((s.rec.seq, h.clone(), of)),
                None => {
                    if !h.is_empty() {
                        seen.insert(h.clone(), s.rec.seq);
                    }
                    kept.push(s);
                }
            }
        }
        let dropped: BTreeSet<i64> = duplicates.iter().map(|d| d.0).collect();
        let mut adds: HashMap<&'static str, Vec<(NewFile, Vec<i64>)>> = HashMap::new();
        for w in batch.files {
            let own: Vec<i64> = w
                .seqs
                .iter()
                .filter(|s| !dropped.contains(s))
                .copied()
                .collect();
            if own.is_empty() {
                continue; // only duplicates' rows: never published
            }
            let file = if own.len() < w.seqs.len() {
                let t = self.table(w.table);
                let as_table_file = TableFile {
                    path: w.file.path.clone(),
                    size: w.file.size,
                    rows: Some(w.file.rows),
                    partition: w
                        .file
                        .partition
                        .iter()
                        .map(|(k, v)| (k.clone(), Some(v.clone())))
                        .collect(),
                };
                match rewrite_without(&t, &as_table_file, &dropped)? {
                    Some(f) => f,
                    None => continue,
                }
            } else {
                w.file
            };
            adds.entry(w.table).or_default().push((file, own));
        }
        // 3. Replaced sources: their files go, shared ones are rewritten.
        let replaced: BTreeSet<i64> = kept.iter().filter_map(|s| s.replaces).collect();
        let mut removes: HashMap<&'static str, Vec<TableFile>> = HashMap::new();
        let mut moved: Vec<(String, String)> = Vec::new();
        if !replaced.is_empty() {
            for name in [VISITS, LINES, QUARANTINE] {
                let t = self.table(name);
                let current: HashMap<String, TableFile> = t
                    .files(None)?
                    .into_iter()
                    .map(|f| (f.path.clone(), f))
                    .collect();
                let mut touched = BTreeSet::new();
                for old in &replaced {
                    for rel in manifest::parts_of(&tx, *old)? {
                        if let Some(p) = rel.strip_prefix(&format!("{name}/")) {
                            touched.insert(p.to_string());
                        }
                    }
                }
                for p in touched {
                    let Some(f) = current.get(&p) else { continue };
                    let holders = manifest::part_sources(&tx, &format!("{name}/{p}"))?;
                    let rest: Vec<i64> = holders
                        .into_iter()
                        .filter(|s| !replaced.contains(s))
                        .collect();
                    if !rest.is_empty() {
                        if let Some(nf) = rewrite_without(&t, f, &replaced)? {
                            moved.push((format!("{name}/{p}"), format!("{name}/{}", nf.path)));
                            adds.entry(name).or_default().push((nf, Vec::new()));
                        }
                    }
                    removes.entry(name).or_default().push(f.clone());
                }
            }
        }
        // 4. One commit per table.
        let mut next = snap;
        let mut commits = 0;
        let info: HashMap<String, serde_json::Value> = [(
            "bhyt".to_string(),
            serde_json::json!({
                "sources": kept.iter().map(|s| s.rec.seq).collect::<Vec<_>>(),
                "replaced": replaced.iter().collect::<Vec<_>>(),
                "snapshot": snap.id + 1,
            }),
        )]
        .into_iter()
        .collect();
        let mut new_visit_files = Vec::new();
        let mut new_provinces = BTreeSet::new();
        for name in [VISITS, LINES, QUARANTINE] {
            let a = adds.get(name).map(Vec::as_slice).unwrap_or(&[]);
            let r = removes.get(name).map(Vec::as_slice).unwrap_or(&[]);
            if a.is_empty() && r.is_empty() {
                continue;
            }
            let t = self.table(name);
            let files: Vec<NewFile> = a.iter().map(|(f, _)| f.clone()).collect();
            let v = t.commit(
                t.latest_version()?,
                &files,
                r,
                Operation::Write,
                info.clone(),
            )?;
            commits += 1;
            crash_point(commits);
            next.set(name, v);
            if name == VISITS {
                new_visit_files = files.iter().map(|f| t.file_path(&f.path)).collect();
                new_provinces = files
                    .iter()
                    .flat_map(|f| &f.partition)
                    .filter(|(k, _)| k == super::sink::PARTITION_BY[0])
                    .map(|(_, v)| v.clone())
                    .collect();
            }
        }
        if !removes.is_empty() || !new_visit_files.is_empty() {
            let full = removes.contains_key(VISITS);
            let new = (new_visit_files.as_slice(), &new_provinces);
            if let Some(v) = self.decide_superseded(next.visits, new, full, &info)? {
                next.set(SUPERSEDED, v);
                commits += 1;
                crash_point(commits);
            }
        }
        // 5. The snapshot and the sources, in the manifest transaction.
        let parts: Vec<manifest::SourceEntry> = kept
            .iter()
            .map(|s| {
                let own = adds
                    .iter()
                    .flat_map(|(table, fs)| {
                        fs.iter()
                            .filter(|(_, seqs)| seqs.contains(&s.rec.seq))
                            .map(move |(f, _)| (format!("{table}/{}", f.path), *table, f.rows))
                    })
                    .collect();
                (&s.rec, s.documents_unreadable, own, s.replaces)
            })
            .collect();
        let snapshot = manifest::publish(tx, &next, &parts, &duplicates, &moved, &replaced)?;
        Ok(snapshot)
    }

    /// Decides which visit versions are superseded by a newer version of
    /// the same claim (newest by envelope date, then ingest order) and
    /// commits them to the `superseded` table: incrementally for the claims
    /// of `new_files` (in the partitions of `new_provinces`), or from
    /// scratch when visits were removed (a replaced source may have held the
    /// newest version). Returns the new version, or None when nothing
    /// changed.
    ///
    /// A claim's versions are its facility's, so they lie in the province
    /// partitions of the new files: only those are read, and a publish
    /// costs what its provinces hold, not what the whole store holds.
    fn decide_superseded(
        &self,
        visits_version: Option<u64>,
        (new_files, new_provinces): (&[std::path::PathBuf], &BTreeSet<String>),
        full: bool,
        info: &HashMap<String, serde_json::Value>,
    ) -> Result<Option<u64>, StoreError> {
        let Some(vv) = visits_version else {
            return Ok(None);
        };
        let perr = |source| StoreError::Polars {
            path: self.root().join(VISITS),
            source,
        };
        // The files to read, chosen from the log by their partition: a
        // filter on the partition column would still open every file of
        // the store to plan the scan, and the store grows with each publish.
        let files: Vec<TableFile> = self
            .table(VISITS)
            .files(Some(vv))?
            .into_iter()
            .filter(|f| {
                full || f
                    .partition
                    .get(super::sink::PARTITION_BY[0])
                    .and_then(Option::as_ref)
                    .is_some_and(|p| new_provinces.contains(p))
            })
            .collect();
        let all = self.scan_table_files(VISITS, &files)?;
        let Some(all) = all else { return Ok(None) };
        let keys = [
            col("claim_key"),
            col("visit_key"),
            col("submitted_at"),
            col("source_seq"),
        ];
        let candidates = if full {
            all.select(keys)
        } else {
            let paths: Vec<PlRefPath> = new_files
                .iter()
                .map(|p| PlRefPath::new(p.to_string_lossy().as_ref()))
                .collect();
            if paths.is_empty() {
                return Ok(None);
            }
            let batch = crate::store::scan_files(paths)
                .map_err(perr)?
                .select([col("claim_key")])
                .unique(None, UniqueKeepStrategy::Any);
            all.select(keys).join(
                batch,
                [col("claim_key")],
                [col("claim_key")],
                JoinArgs::new(JoinType::Semi),
            )
        };
        let newest = col("visit_key")
            .last()
            .over([col("claim_key")])
            .map_err(perr)?;
        let losers = candidates
            .sort_by_exprs(
                [col("submitted_at"), col("source_seq")],
                SortMultipleOptions::default().with_nulls_last(false),
            )
            .filter(col("visit_key").neq(newest))
            .select([col("visit_key"), col("claim_key")])
            .collect()
            .map_err(perr)?;
        let t = self.table(SUPERSEDED);
        if !t.exists() {
            t.create(losers.schema().as_ref(), &[])?;
        }
        let old = t.files(None)?;
        let mut fresh = if full {
            losers
        } else {
            // Only versions not already known as superseded.
            let known = self.scan_table_at(SUPERSEDED, None)?;
            match known {
                Some(k) => losers
                    .lazy()
                    .join(
                        k.select([col("visit_key")]),
                        [col("visit_key")],
                        [col("visit_key")],
                        JoinArgs::new(JoinType::Anti),
                    )
                    .collect()
                    .map_err(perr)?,
                None => losers,
            }
        };
        if fresh.height() == 0 && (!full || old.is_empty()) {
            return Ok(None);
        }
        let adds = if fresh.height() > 0 {
            vec![t.write_file(&mut fresh, &[], &[])?]
        } else {
            Vec::new()
        };
        let removes: &[TableFile] = if full { &old } else { &[] };
        let v = t.commit(
            t.latest_version()?,
            &adds,
            removes,
            Operation::Write,
            info.clone(),
        )?;
        Ok(Some(v))
    }
}
