//! Accumulates the accepted rows and quarantine records of one source and
//! writes them as staged Parquet parts, flushed every `flush_rows` rows so
//! memory stays bounded whatever the size of the source.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{io_err, write_parquet_atomic, Manifest, SourceRecord, Store, StoreError};
use crate::schema::{
    LineBuilder, LineRow, QuarantineBuilder, QuarantineRow, VisitBuilder, VisitRow,
};

/// Rows held in memory before a flush. At ~300 bytes a row this is well
/// under 100 MB, and large enough for Parquet row groups to compress well.
pub const DEFAULT_FLUSH_ROWS: usize = 200_000;

pub struct PartSink {
    store: Store,
    seq: i64,
    visits: BTreeMap<(i32, i32), VisitBuilder>,
    lines: BTreeMap<(i32, i32), LineBuilder>,
    quarantine: QuarantineBuilder,
    buffered: usize,
    flush_rows: usize,
    n_parts: usize,
    /// (path relative to the store root, table, rows)
    staged: Vec<(String, &'static str, usize)>,
}

impl PartSink {
    pub fn new(store: &Store, seq: i64) -> Self {
        PartSink {
            store: store.clone(),
            seq,
            visits: BTreeMap::new(),
            lines: BTreeMap::new(),
            quarantine: QuarantineBuilder::default(),
            buffered: 0,
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
        self.store.staging_root().join(self.seq.to_string())
    }

    pub fn push_visit(&mut self, v: VisitRow) -> Result<(), StoreError> {
        self.visits.entry((v.year, v.month)).or_default().push(v);
        self.bump()
    }

    pub fn push_line(&mut self, l: LineRow) -> Result<(), StoreError> {
        self.lines.entry((l.year, l.month)).or_default().push(l);
        self.bump()
    }

    pub fn push_quarantine(&mut self, q: QuarantineRow) -> Result<(), StoreError> {
        self.quarantine.push(q);
        self.bump()
    }

    fn bump(&mut self) -> Result<(), StoreError> {
        self.buffered += 1;
        if self.buffered >= self.flush_rows {
            self.flush()?;
        }
        Ok(())
    }

    fn part_name(&mut self) -> String {
        self.n_parts += 1;
        format!("part-{:08}-{:05}.parquet", self.seq, self.n_parts)
    }

    fn stage(
        &mut self,
        rel_dir: String,
        table: &'static str,
        mut df: polars::prelude::DataFrame,
    ) -> Result<(), StoreError> {
        let rows = df.height();
        let rel = format!("{rel_dir}/{}", self.part_name());
        let path = self.staging_dir().join(&rel);
        write_parquet_atomic(&mut df, &path)?;
        self.staged.push((rel, table, rows));
        Ok(())
    }

    /// Writes everything buffered to staged part files.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        for ((y, m), b) in std::mem::take(&mut self.visits) {
            self.stage(
                format!("visits/year={y}/month={m:02}"),
                "visits",
                b.finish(),
            )?;
        }
        for ((y, m), b) in std::mem::take(&mut self.lines) {
            self.stage(format!("lines/year={y}/month={m:02}"), "lines", b.finish())?;
        }
        if !self.quarantine.is_empty() {
            let q = std::mem::take(&mut self.quarantine);
            self.stage("quarantine".to_string(), "quarantine", q.finish())?;
        }
        self.buffered = 0;
        Ok(())
    }

    /// Moves the staged parts into the store and records the source as
    /// committed, replacing `replaces` (a previous version of the same file).
    pub fn commit(
        mut self,
        manifest: &mut Manifest,
        rec: &SourceRecord,
        documents_unreadable: i64,
        replaces: Option<i64>,
    ) -> Result<(), StoreError> {
        self.flush()?;
        let root = self.store.root().to_path_buf();
        for (rel, _, _) in &self.staged {
            let from = self.staging_dir().join(rel);
            let to = root.join(rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            std::fs::rename(&from, &to).map_err(io_err(&to))?;
        }
        if let Some(old) = replaces {
            for rel in manifest.parts_of(old)? {
                let p = root.join(&rel);
                if p.exists() {
                    std::fs::remove_file(&p).map_err(io_err(&p))?;
                }
            }
        }
        manifest.commit(rec, documents_unreadable, &self.staged, replaces)?;
        let dir = self.staging_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(())
    }

    /// Drops everything staged for this source.
    pub fn abort(self) -> Result<(), StoreError> {
        let dir = self.staging_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(())
    }
}
