//! Writing accepted rows and quarantine records as Delta data files.
//!
//! A [`PartSink`] collects the rows of one source. A large source writes
//! its own files every `flush_rows` rows (memory stays bounded); a small
//! one (the usual facility-week envelope) hands its rows to the run's
//! [`RunSink`] when it completes, so that thousands of small files do not
//! become thousands of tiny Parquet files. The run's Parquet writes and
//! publishes happen on its writer thread, in commit order, while the
//! readers go on. Files are written straight into
//! the tables' partition folders and are invisible until a publish names
//! them in the Delta log ([`Store::publish`]); a source's rows are
//! published only once the source has been read completely.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::delta::NewFile;
use super::publish::{Batch, SourceCommit, Written};
use super::{SourceRecord, Store, StoreError, LINES, QUARANTINE, VISITS};
use crate::schema::{LineRow, QuarantineRow, VisitRow};

/// Rows held in memory before a flush. At ~300 bytes a row this is well
/// under 100 MB, and large enough for Parquet row groups to compress well.
pub const DEFAULT_FLUSH_ROWS: usize = 200_000;

/// The partition of a row: the province code in the facility code (its
/// first two characters: stable, in the claim itself), year and month.
type Part = (String, i32, i32);

/// Rows of one partition, in chunks: a source's rows are one chunk, and
/// the run's shared files take the chunks of many sources as they are
/// (moved, not copied, on the committing thread).
type Chunks<R> = Vec<Vec<R>>;

/// The chunk of `facility`'s partition that takes the next row. A source
/// has a handful of partitions (province-months), so a scan finds one
/// without allocating a key per row.
fn chunk_of<'m, R>(
    map: &'m mut BTreeMap<Part, Chunks<R>>,
    facility: &str,
    year: i32,
    month: i32,
) -> &'m mut Vec<R> {
    let province = facility.get(..2).unwrap_or("");
    let at = map
        .keys()
        .position(|(p, y, m)| p == province && *y == year && *m == month);
    let chunks = match at {
        Some(i) => map.values_mut().nth(i).expect("the position is in the map"),
        None => map.entry((province.to_string(), year, month)).or_default(),
    };
    // A full chunk is followed by a new one twice its size (up to
    // `MAX_CHUNK_ROWS`) instead of growing: a grown `Vec` of rows copies
    // every row it holds (reallocations under `push_line` and `push_visit`
    // were 4 % of an ingest's CPU samples; 0 now).
    let room = chunks.last().is_some_and(|c| c.len() < c.capacity());
    if !room {
        let cap = chunks
            .last()
            .map_or(FIRST_CHUNK_ROWS, |c| (2 * c.capacity()).min(MAX_CHUNK_ROWS));
        chunks.push(Vec::with_capacity(cap));
    }
    chunks.last_mut().expect("a chunk was just ensured")
}

/// Rows of a partition's first chunk: a facility-week envelope's month
/// holds tens to thousands of rows.
const FIRST_CHUNK_ROWS: usize = 64;

/// The largest chunk, rows (a few MB of line rows).
const MAX_CHUNK_ROWS: usize = 8192;

/// The rows of a partition's chunks, in order, with their exact count: the
/// column builders reserve once instead of growing.
fn rows_of<R>(chunks: &[Vec<R>]) -> impl Iterator<Item = &R> + Clone {
    let n = chunks.iter().map(Vec::len).sum();
    ExactLen {
        inner: chunks.iter().flatten(),
        left: n,
    }
}

/// An iterator that knows how many items are left.
#[derive(Clone)]
struct ExactLen<I> {
    inner: I,
    left: usize,
}

impl<I: Iterator> Iterator for ExactLen<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        let x = self.inner.next()?;
        self.left -= 1;
        Some(x)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for ExactLen<I> {}

/// Partition columns of the visit and line tables.
pub const PARTITION_BY: [&str; 3] = ["facility_province_code", "year", "month"];

/// Columns whose min/max go into each file's statistics.
const STAT_COLUMNS: [&str; 3] = ["facility_code", "admission_date", "discharge_date"];

/// Rows of one or more sources, by partition.
#[derive(Default)]
struct Buffers {
    visits: BTreeMap<Part, Chunks<VisitRow>>,
    lines: BTreeMap<Part, Chunks<LineRow>>,
    quarantine: Vec<QuarantineRow>,
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
        for (k, chunks) in o.visits {
            self.visits.entry(k).or_default().extend(chunks);
        }
        for (k, chunks) in o.lines {
            self.lines.entry(k).or_default().extend(chunks);
        }
        self.quarantine.extend(o.quarantine);
        self.rows += o.rows;
    }

    /// Writes the buffers as data files of the store's tables (not yet
    /// published). Partitions are built into frames and written in
    /// parallel: the last flush of a run (and a flush the readers wait for)
    /// would otherwise run on one core.
    fn write(&mut self, store: &Store) -> Result<Vec<Written>, StoreError> {
        use rayon::prelude::*;
        type Job = (&'static str, Option<Part>, DataFrame);
        let visits: Vec<(Part, Chunks<VisitRow>)> =
            std::mem::take(&mut self.visits).into_iter().collect();
        let lines: Vec<(Part, Chunks<LineRow>)> =
            std::mem::take(&mut self.lines).into_iter().collect();
        let quarantine = std::mem::take(&mut self.quarantine);
        self.rows = 0;
        let mut jobs: Vec<Job> = visits
            .into_par_iter()
            .map(|(k, chunks)| (VISITS, Some(k), VisitRow::frame(rows_of(&chunks))))
            .collect();
        jobs.par_extend(
            lines
                .into_par_iter()
                .map(|(k, chunks)| (LINES, Some(k), LineRow::frame(rows_of(&chunks)))),
        );
        if !quarantine.is_empty() {
            jobs.push((QUARANTINE, None, QuarantineRow::frame(quarantine.iter())));
        }
        // A table is created (from its first frame's schema) before any
        // file of it is written.
        for (table, part, df) in &jobs {
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
        }
        jobs.into_par_iter()
            .map(|(table, part, mut df)| {
                let t = store.table(table);
                let seqs = seqs_of(&df);
                let partition: Vec<(&str, String)> = match &part {
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
                Ok(Written { table, file, seqs })
            })
            .collect()
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
        chunk_of(&mut self.buf.visits, &v.facility_code, v.year, v.month).push(v);
        self.bump()
    }

    pub fn push_line(&mut self, l: LineRow) -> Result<(), StoreError> {
        chunk_of(&mut self.buf.lines, &l.facility_code, l.year, l.month).push(l);
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

    /// Completes the source: a source that already wrote files goes to the
    /// run's writer with them, to be published as its own batch; a small
    /// one joins the run's shared files and is published with them.
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
        // Written by the run's writer after what it already holds, so that
        // sources are published in the order they were committed.
        run.send(Flush {
            buf: std::mem::take(&mut self.buf),
            written: std::mem::take(&mut self.written),
            sources: vec![source],
        })
    }

    /// Drops this source: files it wrote stay unpublished (invisible;
    /// `bhyt store vacuum` deletes them).
    pub fn abort(self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// What the run's writer thread does next: write `buf` as data files and
/// publish them, with the files a large source already wrote, as one batch.
struct Flush {
    buf: Buffers,
    written: Vec<Written>,
    sources: Vec<SourceCommit>,
}

/// The run's writer: a thread that writes and publishes batches in the
/// order they are sent. The Parquet encoding (zstd) and the publish take a
/// second or more per batch; on the committing thread they stalled the
/// readers, which may run only a bounded window ahead of the commits.
struct Writer {
    tx: std::sync::mpsc::SyncSender<Flush>,
    handle: std::thread::JoinHandle<Result<(), StoreError>>,
}

impl Writer {
    fn start(store: Store) -> Writer {
        // One batch queued while one is written: bounded memory.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Flush>(1);
        let handle = std::thread::Builder::new()
            .name("bhyt-writer".into())
            .spawn(move || {
                for mut f in rx {
                    let mut files = f.written;
                    files.extend(f.buf.write(&store)?);
                    store.publish(Batch {
                        files,
                        sources: f.sources,
                    })?;
                }
                Ok(())
            })
            .expect("the writer thread starts");
        Writer { tx, handle }
    }

    /// Waits for every batch sent to be published; the first error, if any.
    fn join(self) -> Result<(), StoreError> {
        drop(self.tx);
        match self.handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Shared files of the small sources of one run, and the run's writer.
pub struct RunSink {
    store: Store,
    buf: Buffers,
    pending: Vec<SourceCommit>,
    flush_rows: usize,
    /// Content hashes read in this run, and by which source.
    hashes: std::collections::HashMap<String, i64>,
    writer: Option<Writer>,
}

impl RunSink {
    pub fn new(store: &Store, flush_rows: usize) -> Self {
        RunSink {
            store: store.clone(),
            buf: Buffers::default(),
            pending: Vec::new(),
            flush_rows: flush_rows.max(1),
            hashes: Default::default(),
            writer: None,
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

    /// Hands the shared files and the sources they hold to the writer, to
    /// be written and published as one batch.
    fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let f = Flush {
            buf: std::mem::take(&mut self.buf),
            written: Vec::new(),
            sources: std::mem::take(&mut self.pending),
        };
        self.send(f)
    }

    fn send(&mut self, f: Flush) -> Result<(), StoreError> {
        let store = &self.store;
        let writer = self
            .writer
            .get_or_insert_with(|| Writer::start(store.clone()));
        if let Err(unsent) = writer.tx.send(f) {
            // The writer stopped on an error: that error is the run's.
            drop(unsent);
            let w = self.writer.take().expect("the writer was just used");
            return match w.join() {
                Err(e) => Err(e),
                Ok(()) => unreachable!("the writer reads until the run drops its sender"),
            };
        }
        Ok(())
    }

    /// Writes and publishes what is pending, and waits until every source
    /// committed in this run is published.
    pub fn finish(mut self) -> Result<(), StoreError> {
        self.flush()?;
        match self.writer.take() {
            Some(w) => w.join(),
            None => Ok(()),
        }
    }
}

impl Drop for RunSink {
    /// A run that stops on an error still waits for its writer: nothing is
    /// published behind the caller's back after it returned.
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows pushed one by one land in chunks that never grow past their
    /// first capacity, and come back in order with their exact count.
    #[test]
    fn chunks_keep_the_order_without_regrowing() {
        let mut map: BTreeMap<Part, Chunks<u32>> = BTreeMap::new();
        for i in 0..20_000u32 {
            let (facility, month) = if i % 3 == 0 {
                ("93001", 1)
            } else {
                ("94001", 2)
            };
            chunk_of(&mut map, facility, 2024, month).push(i);
        }
        for (part, chunks) in &map {
            let caps: Vec<usize> = chunks.iter().map(Vec::capacity).collect();
            assert_eq!(caps[0], FIRST_CHUNK_ROWS, "{part:?}");
            assert!(caps.iter().all(|&c| c <= MAX_CHUNK_ROWS), "{caps:?}");
            let n: usize = chunks.iter().map(Vec::len).sum();
            let rows = rows_of(chunks);
            assert_eq!(rows.size_hint(), (n, Some(n)));
            let got: Vec<u32> = rows.copied().collect();
            let want: Vec<u32> = (0..20_000u32)
                .filter(|i| (i % 3 == 0) == (part.0 == "93"))
                .collect();
            assert_eq!(got, want, "{part:?}");
        }
    }
}
