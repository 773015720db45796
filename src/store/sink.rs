//! Writing accepted rows and quarantine records as Delta data files.
//!
//! A [`PartSink`] collects the rows of one source. A large source writes
//! its own files every `flush_rows` rows (memory stays bounded); a small
//! one (the usual facility-week envelope) hands its rows to the run's
//! [`RunSink`] when it completes, so that thousands of small files do not
//! become thousands of tiny Parquet files. Files are written straight into
//! the tables' partition folders and are invisible until a publish names
//! them in the Delta log ([`Store::publish`]); a source's rows are
//! published only once the source has been read completely.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::delta::NewFile;
use super::publish::{Batch, SourceCommit, Written};
use super::{SourceRecord, Store, StoreError, LINES, QUARANTINE, VISITS};
use crate::schema::{
    LineBuilder, LineRow, QuarantineBuilder, QuarantineRow, VisitBuilder, VisitRow,
};

/// Rows held in memory before a flush. At ~300 bytes a row this is well
/// under 100 MB, and large enough for Parquet row groups to compress well.
pub const DEFAULT_FLUSH_ROWS: usize = 200_000;

/// The partition of a row: the province code in the facility code (its
/// first two characters: stable, in the claim itself), year and month.
type Part = (String, i32, i32);

fn province_code(facility: &str) -> String {
    facility.get(..2).unwrap_or("").to_string()
}

/// Partition columns of the visit and line tables.
pub const PARTITION_BY: [&str; 3] = ["facility_province_code", "year", "month"];

/// Columns whose min/max go into each file's statistics.
const STAT_COLUMNS: [&str; 3] = ["facility_code", "admission_date", "discharge_date"];

/// Rows of one or more sources, by partition.
#[derive(Default)]
struct Buffers {
    visits: BTreeMap<Part, VisitBuilder>,
    lines: BTreeMap<Part, LineBuilder>,
    quarantine: QuarantineBuilder,
    rows: usize,
}

/// The distinct `source_seq` values of a frame.
fn seqs_of(df: &DataFrame) -> Vec<i64> {
    let mut v: Vec<i64> = df
        .column("source_seq")
        .ok()
        .and_then(|c| c.i64().ok().map(|c| c.into_no_null_iter().collect()))
        .unwrap_or_default();
    v.sort_unstable();
    v.dedup();
    v
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

    /// Writes the buffers as data files of the store's tables (not yet
    /// published).
    fn write(&mut self, store: &Store) -> Result<Vec<Written>, StoreError> {
        let mut out = Vec::new();
        let mut put = |table: &'static str,
                       mut df: DataFrame,
                       part: Option<&Part>|
         -> Result<(), StoreError> {
            let t = store.table(table);
            if !t.exists() {
                let by: &[&str] = if part.is_some() { &PARTITION_BY } else { &[] };
                let mut schema = df.schema().as_ref().clone();
                if part.is_some() {
                    schema
                        .insert_at_index(0, PARTITION_BY[0].into(), DataType::String)
                        .map_err(|source| StoreError::Polars {
                            path: t.dir().to_path_buf(),
                            source,
                        })?;
                }
                t.create(&schema, by)?;
            }
            let seqs = seqs_of(&df);
            let partition: Vec<(&str, String)> = match part {
                Some((p, y, m)) => {
                    // The partition columns come from the partition, not
                    // from a column the file would also hold.
                    df = df.drop_many(["facility_province_code"]);
                    vec![
                        (PARTITION_BY[0], p.clone()),
                        (PARTITION_BY[1], y.to_string()),
                        (PARTITION_BY[2], m.to_string()),
                    ]
                }
                None => Vec::new(),
            };
            let file: NewFile = t.write_file(&mut df, &partition, &STAT_COLUMNS)?;
            out.push(Written { table, file, seqs });
            Ok(())
        };
        for (k, b) in std::mem::take(&mut self.visits) {
            put(VISITS, b.finish(), Some(&k))?;
        }
        for (k, b) in std::mem::take(&mut self.lines) {
            put(LINES, b.finish(), Some(&k))?;
        }
        if !self.quarantine.is_empty() {
            put(
                QUARANTINE,
                std::mem::take(&mut self.quarantine).finish(),
                None,
            )?;
        }
        self.rows = 0;
        Ok(out)
    }
}

/// Rows of one source.
pub struct PartSink {
    store: Store,
    seq: i64,
    buf: Buffers,
    flush_rows: usize,
    written: Vec<Written>,
}

impl PartSink {
    pub fn new(store: &Store, seq: i64) -> Self {
        PartSink {
            store: store.clone(),
            seq,
            buf: Buffers::default(),
            flush_rows: DEFAULT_FLUSH_ROWS,
            written: Vec::new(),
        }
    }

    pub fn with_flush_rows(mut self, n: usize) -> Self {
        self.flush_rows = n.max(1);
        self
    }

    pub fn seq(&self) -> i64 {
        self.seq
    }

    pub fn push_visit(&mut self, v: VisitRow) -> Result<(), StoreError> {
        let part = (province_code(&v.facility_code), v.year, v.month);
        self.buf.visits.entry(part).or_default().push(v);
        self.bump()
    }

    pub fn push_line(&mut self, l: LineRow) -> Result<(), StoreError> {
        let part = (province_code(&l.facility_code), l.year, l.month);
        self.buf.lines.entry(part).or_default().push(l);
        self.bump()
    }

    pub fn push_quarantine(&mut self, q: QuarantineRow) -> Result<(), StoreError> {
        self.buf.quarantine.push(q);
        self.bump()
    }

    fn bump(&mut self) -> Result<(), StoreError> {
        self.buf.rows += 1;
        if self.buf.rows >= self.flush_rows {
            let w = self.buf.write(&self.store)?;
            self.written.extend(w);
        }
        Ok(())
    }

    /// Completes the source: a source that already wrote files is
    /// published now with them; a small one joins the run's shared files
    /// and is published with them.
    pub fn commit(
        mut self,
        run: &mut RunSink,
        rec: SourceRecord,
        documents_unreadable: i64,
        replaces: Option<i64>,
    ) -> Result<(), StoreError> {
        let source = SourceCommit {
            rec,
            documents_unreadable,
            replaces,
        };
        if self.written.is_empty() {
            run.buf.append(std::mem::take(&mut self.buf));
            run.pending.push(source);
            if run.buf.rows >= run.flush_rows {
                run.flush()?;
            }
            return Ok(());
        }
        let w = self.buf.write(&self.store)?;
        self.written.extend(w);
        self.store.publish(Batch {
            files: std::mem::take(&mut self.written),
            sources: vec![source],
        })?;
        Ok(())
    }

    /// Drops this source: files it wrote stay unpublished (invisible;
    /// `bhyt store vacuum` deletes them).
    pub fn abort(self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Shared files of the small sources of one run.
pub struct RunSink {
    store: Store,
    buf: Buffers,
    pending: Vec<SourceCommit>,
    flush_rows: usize,
    /// Content hashes read in this run, and by which source.
    hashes: std::collections::HashMap<String, i64>,
}

impl RunSink {
    pub fn new(store: &Store, flush_rows: usize) -> Self {
        RunSink {
            store: store.clone(),
            buf: Buffers::default(),
            pending: Vec::new(),
            flush_rows: flush_rows.max(1),
            hashes: Default::default(),
        }
    }

    /// Records that source `seq` has these bytes; returns the source of
    /// this run that had them first, if another did (the same file under
    /// two names).
    pub fn claim_hash(&mut self, hash: &str, seq: i64) -> Option<i64> {
        if hash.is_empty() {
            return None;
        }
        match self.hashes.get(hash) {
            Some(first) if *first != seq => Some(*first),
            Some(_) => None,
            None => {
                self.hashes.insert(hash.to_string(), seq);
                None
            }
        }
    }

    /// Writes the shared files and publishes the sources they hold, as one
    /// batch.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let files = self.buf.write(&self.store)?;
        self.store.publish(Batch {
            files,
            sources: std::mem::take(&mut self.pending),
        })?;
        Ok(())
    }
}
