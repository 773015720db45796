//! Writing accepted rows and quarantine records as Parquet parts.
//!
//! A [`PartSink`] collects the rows of one source. A large source flushes
//! its own staged parts every `flush_rows` rows (memory stays bounded); a
//! small one (the usual facility-week envelope) hands its rows to the run's
//! [`RunSink`] when it completes, so that thousands of small files do not
//! become thousands of tiny Parquet parts. Either way a source's rows reach
//! the store only once the source has been read completely, and the
//! manifest commit that marks it ingested comes after its parts are in place.

use std::collections::BTreeMap;
use std::path::PathBuf;

use polars::prelude::*;

use super::{io_err, write_parquet_atomic, Manifest, SourceRecord, Store, StoreError};
use crate::schema::{
    LineBuilder, LineRow, QuarantineBuilder, QuarantineRow, VisitBuilder, VisitRow,
};

/// Rows held in memory before a flush. At ~300 bytes a row this is well
/// under 100 MB, and large enough for Parquet row groups to compress well.
pub const DEFAULT_FLUSH_ROWS: usize = 200_000;

/// Rows of one or more sources, by partition.
#[derive(Default)]
struct Buffers {
    visits: BTreeMap<(i32, i32), VisitBuilder>,
    lines: BTreeMap<(i32, i32), LineBuilder>,
    quarantine: QuarantineBuilder,
    rows: usize,
}

impl Buffers {
    fn append(&mut self, o: Buffers) {
        for (k, b) in o.visits {
            self.visits.entry(k).or_default().append(b);
        }
        for (k, b) in o.lines {
            self.lines.entry(k).or_default().append(b);
        }
        self.quarantine.append(o.quarantine);
        self.rows += o.rows;
    }

    /// Folders (relative to the store) of the partitions holding rows.
    fn partition_dirs(&self) -> Vec<String> {
        let mut d: Vec<String> = self
            .visits
            .keys()
            .map(|(y, m)| format!("visits/year={y}/month={m:02}"))
            .chain(
                self.lines
                    .keys()
                    .map(|(y, m)| format!("lines/year={y}/month={m:02}")),
            )
            .collect();
        if !self.quarantine.is_empty() {
            d.push("quarantine".to_string());
        }
        d
    }

    /// Writes the buffers as parts under `dir` (relative names `table/...`),
    /// named `<prefix>-<n>.parquet`; returns (relative path, table, rows).
    fn write(
        &mut self,
        dir: &std::path::Path,
        prefix: &str,
        counter: &mut usize,
    ) -> Result<Vec<(String, &'static str, usize)>, StoreError> {
        let mut out = Vec::new();
        let mut stage =
            |rel_dir: String, table: &'static str, mut df: DataFrame| -> Result<(), StoreError> {
                *counter += 1;
                let rel = format!("{rel_dir}/{prefix}-{:05}.parquet", *counter);
                let rows = df.height();
                write_parquet_atomic(&mut df, &dir.join(&rel))?;
                out.push((rel, table, rows));
                Ok(())
            };
        for ((y, m), b) in std::mem::take(&mut self.visits) {
            stage(
                format!("visits/year={y}/month={m:02}"),
                "visits",
                b.finish(),
            )?;
        }
        for ((y, m), b) in std::mem::take(&mut self.lines) {
            stage(format!("lines/year={y}/month={m:02}"), "lines", b.finish())?;
        }
        if !self.quarantine.is_empty() {
            let q = std::mem::take(&mut self.quarantine);
            stage("quarantine".to_string(), "quarantine", q.finish())?;
        }
        self.rows = 0;
        Ok(out)
    }
}

fn move_into_store(
    store: &Store,
    staging: &std::path::Path,
    parts: &[(String, &'static str, usize)],
) -> Result<(), StoreError> {
    for (rel, _, _) in parts {
        let from = staging.join(rel);
        let to = store.root().join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        std::fs::rename(&from, &to).map_err(io_err(&to))?;
    }
    Ok(())
}

/// Rows of one source.
pub struct PartSink {
    store: Store,
    seq: i64,
    buf: Buffers,
    flush_rows: usize,
    n_parts: usize,
    staged: Vec<(String, &'static str, usize)>,
}

impl PartSink {
    pub fn new(store: &Store, seq: i64) -> Self {
        PartSink {
            store: store.clone(),
            seq,
            buf: Buffers::default(),
            flush_rows: DEFAULT_FLUSH_ROWS,
            n_parts: 0,
            staged: Vec::new(),
        }
    }

    pub fn with_flush_rows(mut self, n: usize) -> Self {
        self.flush_rows = n.max(1);
        self
    }

    pub fn seq(&self) -> i64 {
        self.seq
    }

    fn staging_dir(&self) -> PathBuf {
        self.store.staging_root().join(format!("s{}", self.seq))
    }

    pub fn push_visit(&mut self, v: VisitRow) -> Result<(), StoreError> {
        self.buf
            .visits
            .entry((v.year, v.month))
            .or_default()
            .push(v);
        self.bump()
    }

    pub fn push_line(&mut self, l: LineRow) -> Result<(), StoreError> {
        self.buf.lines.entry((l.year, l.month)).or_default().push(l);
        self.bump()
    }

    pub fn push_quarantine(&mut self, q: QuarantineRow) -> Result<(), StoreError> {
        self.buf.quarantine.push(q);
        self.bump()
    }

    fn bump(&mut self) -> Result<(), StoreError> {
        self.buf.rows += 1;
        if self.buf.rows >= self.flush_rows {
            let dir = self.staging_dir();
            let prefix = format!("part-s{:08}", self.seq);
            let parts = self.buf.write(&dir, &prefix, &mut self.n_parts)?;
            self.staged.extend(parts);
        }
        Ok(())
    }

    /// Completes the source: a source that already flushed parts commits
    /// them now; a small one joins the run's shared parts and is committed
    /// with them.
    pub fn commit(
        mut self,
        run: &mut RunSink,
        manifest: &mut Manifest,
        rec: SourceRecord,
        documents_unreadable: i64,
        replaces: Option<i64>,
    ) -> Result<(), StoreError> {
        if self.staged.is_empty() {
            let dirs = self.buf.partition_dirs();
            run.buf.append(std::mem::take(&mut self.buf));
            run.pending.push(Pending {
                rec,
                documents_unreadable,
                replaces,
                dirs,
            });
            if run.buf.rows >= run.flush_rows {
                run.flush(manifest)?;
            }
            return Ok(());
        }
        let dir = self.staging_dir();
        let prefix = format!("part-s{:08}", self.seq);
        let parts = self.buf.write(&dir, &prefix, &mut self.n_parts)?;
        self.staged.extend(parts);
        move_into_store(&self.store, &dir, &self.staged)?;
        manifest.commit(&rec, documents_unreadable, &self.staged, replaces)?;
        if let Some(old) = replaces {
            self.store.purge_source(manifest, old)?;
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(())
    }

    /// Drops everything of this source.
    pub fn abort(self) -> Result<(), StoreError> {
        let dir = self.staging_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(())
    }
}

struct Pending {
    rec: SourceRecord,
    documents_unreadable: i64,
    replaces: Option<i64>,
    /// Partitions this source has rows in: only their parts are recorded
    /// as holding it.
    dirs: Vec<String>,
}

/// Shared parts of the small sources of one run.
pub struct RunSink {
    store: Store,
    run: i64,
    buf: Buffers,
    pending: Vec<Pending>,
    flush_rows: usize,
    n_parts: usize,
}

impl RunSink {
    /// `run` numbers the run's part files (the first source sequence of the run).
    pub fn new(store: &Store, run: i64, flush_rows: usize) -> Self {
        RunSink {
            store: store.clone(),
            run,
            buf: Buffers::default(),
            pending: Vec::new(),
            flush_rows: flush_rows.max(1),
            n_parts: 0,
        }
    }

    /// Writes the shared parts and commits the sources they hold.
    pub fn flush(&mut self, manifest: &mut Manifest) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let dir = self.store.staging_root().join(format!("r{}", self.run));
        let prefix = format!("part-r{:08}", self.run);
        let parts = self.buf.write(&dir, &prefix, &mut self.n_parts)?;
        move_into_store(&self.store, &dir, &parts)?;
        let pending = std::mem::take(&mut self.pending);
        let commits: Vec<_> = pending
            .iter()
            .map(|p| {
                let own: Vec<(String, &'static str, usize)> = parts
                    .iter()
                    .filter(|(rel, _, _)| {
                        p.dirs
                            .iter()
                            .any(|d| rel.rsplit_once('/').is_some_and(|(dir, _)| dir == d))
                    })
                    .cloned()
                    .collect();
                (&p.rec, p.documents_unreadable, own, p.replaces)
            })
            .collect();
        manifest.commit_many(&commits)?;
        for p in &pending {
            if let Some(old) = p.replaces {
                self.store.purge_source(manifest, old)?;
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(())
    }
}

impl Store {
    /// Removes the rows of a superseded source from the part files that
    /// hold them (deleting parts that held only its rows).
    pub fn purge_source(&self, manifest: &mut Manifest, seq: i64) -> Result<(), StoreError> {
        for rel in manifest.parts_of(seq)? {
            let path = self.root().join(&rel);
            if !path.exists() {
                continue;
            }
            if manifest.part_sources(&rel)?.iter().all(|s| *s == seq) {
                std::fs::remove_file(&path).map_err(io_err(&path))?;
            } else {
                let perr = |source| StoreError::Polars {
                    path: path.clone(),
                    source,
                };
                let mut df = LazyFrame::scan_parquet(
                    PlRefPath::new(path.to_string_lossy().as_ref()),
                    Default::default(),
                )
                .and_then(|lf| lf.filter(col("source_seq").neq(lit(seq))).collect())
                .map_err(perr)?;
                write_parquet_atomic(&mut df, &path)?;
            }
        }
        manifest.forget_parts(seq)?;
        Ok(())
    }
}
