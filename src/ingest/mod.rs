//! Ingest: claims files (Decision 130 envelopes, bare inner documents, CSV,
//! Parquet) → validated, pseudonymised rows in the claims store.
//!
//! Every record read is either accepted or quarantined with a reason, per
//! source file, and the counts are recorded in the manifest:
//! `read = accepted + quarantined` for visits and for lines. A file that
//! cannot be read at all (bad XML, truncated, wrong encoding) is rejected as
//! a whole with a one-line error naming the file and byte position; the rest
//! of the batch goes on.
//!
//! Small envelopes (the usual facility-week file, under 8 MB) are read
//! whole, one per worker, scanned from memory and committed in input order;
//! their inner documents go through a flat scanner (`flat.rs`) that falls
//! back to quick-xml for anything unusual. Large envelopes are streamed: a
//! reader thread cuts the file into `HOSO` units, worker threads (rayon)
//! decode, parse and validate them, and the accepted rows go to a
//! [`PartSink`] that flushes to Parquet in bounded batches.
//! Loose tables (bare XML1/XML2/XML3 documents, CSV, Parquet) split a visit
//! over several files, so they are validated per batch in three streaming
//! passes (line sums; visits; lines), holding only per-visit keys in memory
//! (`loose.rs`).

pub mod convert;
mod envelope;
pub mod fields;
mod flat;
mod loose;
mod ordered;
mod registry;
pub mod source;
pub mod tabular;
mod values;
pub mod xml;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::Serialize;

use crate::privacy::Pseudonymizer;
use crate::reference::Reference;
use crate::schema::{LineRow, QuarantineRow, Ts, VisitRow};
use crate::store::{PartSink, RunSink, SourceRecord, Store, StoreError};
use convert::{
    attach_line, line_record_id, parse_datetime, parse_number, visit_record_id, Converter, Issue,
    Rule, SourceCtx, ValidationConfig, ValueFormat, VisitAnchor,
};
use envelope::{
    finish_envelope, ingest_envelope, ingest_envelope_whole, SMALL_ENVELOPE_BATCH,
    SMALL_ENVELOPE_BYTES,
};
use fields::{lf, RawRecord, RowKind};
use loose::ingest_loose;
use source::{Format, SourceFile};
use tabular::Mapping;
use xml::{HosoUnit, XmlItem};

pub use registry::facility_lookup;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{file}: position {position}: {message}")]
    Source {
        file: String,
        position: u64,
        message: String,
    },
    #[error("column mapping {path}: {message}")]
    Mapping { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Privacy(#[from] crate::privacy::PrivacyError),
    #[error(transparent)]
    Reference(#[from] crate::reference::ReferenceError),
    #[error("no facility registry in the store: pass --registry FILE.csv (the registry is needed to check facility codes)")]
    NoRegistry,
    #[error("{0}")]
    Other(String),
}

/// Read / accepted / quarantined counts of one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub read: u64,
    pub accepted: u64,
    pub quarantined: u64,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.read += o.read;
        self.accepted += o.accepted;
        self.quarantined += o.quarantined;
    }
    /// The invariant of the whole ingest.
    pub fn balanced(&self) -> bool {
        self.read == self.accepted + self.quarantined
    }
}

/// Options of one ingest run.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub inputs: Vec<PathBuf>,
    pub registry: Option<PathBuf>,
    pub budgets: Option<PathBuf>,
    pub mapping: Option<PathBuf>,
    pub reference_dir: Option<PathBuf>,
    pub validation: ValidationConfig,
    pub progress: bool,
    /// Rows buffered before a Parquet flush (bounds memory).
    pub flush_rows: usize,
    /// Bounds on one input's decompressed size and longest field.
    pub limits: source::Limits,
    /// What a damaged envelope gives (default: the complete HOSO records
    /// before the damage).
    pub damaged: Damaged,
}

/// What to do with an envelope that is damaged part-way (truncated, or
/// garbage inside one inline document): the reader cannot find its way
/// back into the XML after the damage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Damaged {
    /// Ingest the complete HOSO records before the damage, record the rest
    /// of the file as lost (quarantine rule `damaged_file`) with the reason.
    #[default]
    Salvage,
    /// Reject the whole file.
    Reject,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            inputs: Vec::new(),
            registry: None,
            budgets: None,
            mapping: None,
            reference_dir: None,
            validation: ValidationConfig::default(),
            progress: false,
            flush_rows: crate::store::sink::DEFAULT_FLUSH_ROWS,
            limits: source::Limits::default(),
            damaged: Damaged::default(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    pub files_ingested: usize,
    pub files_unchanged: usize,
    pub files_replaced: usize,
    /// (file, one-line error)
    pub files_rejected: Vec<(String, String)>,
    /// (file, why it was not read)
    pub files_skipped: Vec<(String, String)>,
    pub bytes_read: u64,
    pub visits: Counts,
    pub lines: Counts,
    pub documents_unreadable: u64,
    /// (table, rule) → records quarantined
    pub by_rule: BTreeMap<(String, String), u64>,
    /// One-line errors (file, position, message) for unreadable documents.
    pub errors: Vec<String>,
    /// What was read but may not be what the user meant (a registry column
    /// that no name matches).
    pub warnings: Vec<String>,
    pub facilities: Option<Counts>,
    pub budgets: Option<Counts>,
}

/// Per-source tallies.
#[derive(Debug, Default)]
struct Tally {
    visits: Counts,
    lines: Counts,
    documents_unreadable: u64,
    by_rule: BTreeMap<(String, String), u64>,
    errors: Vec<String>,
}

impl Tally {
    fn quarantine(&mut self, sink: &mut PartSink, q: QuarantineRow) -> Result<(), StoreError> {
        match q.table_name.as_str() {
            "XML1" => self.visits.quarantined += 1,
            "XML2" | "XML3" => self.lines.quarantined += 1,
            _ => {}
        }
        *self
            .by_rule
            .entry((q.table_name.clone(), q.rule.clone()))
            .or_default() += 1;
        sink.push_quarantine(q)
    }

    fn record(&self, seq: i64, path: &str, hash: &str) -> SourceRecord {
        SourceRecord {
            seq,
            path: path.to_string(),
            content_hash: hash.to_string(),
            status: "ok".into(),
            visits_read: self.visits.read as i64,
            visits_accepted: self.visits.accepted as i64,
            visits_quarantined: self.visits.quarantined as i64,
            lines_read: self.lines.read as i64,
            lines_accepted: self.lines.accepted as i64,
            lines_quarantined: self.lines.quarantined as i64,
            error: None,
        }
    }
}

/// Runs an ingest into `store`.
pub fn run(
    store: &Store,
    opts: &IngestOptions,
    pseudo: &Pseudonymizer,
) -> Result<IngestReport, IngestError> {
    let reference = match &opts.reference_dir {
        Some(d) => Reference::from_dir(d)?,
        None => Reference::builtin(),
    };
    let mut manifest = store.manifest()?;
    manifest.check_key(&pseudo.fingerprint())?;
    manifest.abandon_pending()?;
    let mut report = IngestReport::default();
    let mapping = match &opts.mapping {
        Some(p) => Mapping::load(p)?,
        None => Mapping::default(),
    };
    let mut registry_q = Vec::new();
    if let Some(p) = &opts.registry {
        let (c, q, w) = registry::load_facilities(p, store, &reference, &mapping.registry.columns)?;
        report.facilities = Some(c);
        registry_q.extend(q);
        report.warnings.extend(w);
    }
    let facilities = match facility_lookup(store) {
        Ok(f) => f,
        Err(IngestError::Store(StoreError::Empty(..))) => return Err(IngestError::NoRegistry),
        Err(e) => return Err(e),
    };
    if let Some(p) = &opts.budgets {
        let (c, q, w) = registry::load_budgets(p, store, &facilities, &mapping.budgets.columns)?;
        report.budgets = Some(c);
        registry_q.extend(q);
        report.warnings.extend(w);
    }
    if opts.registry.is_some() || opts.budgets.is_some() {
        for q in &registry_q {
            *report
                .by_rule
                .entry((q.table_name.clone(), q.rule.clone()))
                .or_default() += 1;
        }
        let mut df = QuarantineRow::frame(registry_q.iter());
        crate::store::write_parquet_atomic(
            &mut df,
            &store
                .root()
                .join(crate::store::REGISTRY)
                .join("quarantine.parquet"),
        )?;
    }
    let conv = Converter {
        reference,
        pseudo: pseudo.clone(),
        facilities,
        validation: opts.validation.clone(),
    };
    let (sources, skipped) = source::discover(&opts.inputs, opts.limits)
        .map_err(|e| IngestError::Other(e.to_string()))?;
    report.files_skipped = skipped.into_iter().map(|s| (s.path, s.reason)).collect();

    let total_bytes: u64 = sources.iter().map(|s| s.raw_size()).sum();
    let pb = progress_bar(opts.progress, total_bytes);

    // Decide, per source, whether it is new, unchanged or a replacement.
    let mut envelopes = Vec::new();
    let mut loose = Vec::new();
    // Loose tables are hashed before reading: the same bytes twice in this
    // run (two names) are read once.
    let mut loose_hashes: HashMap<String, ()> = HashMap::new();
    for src in sources {
        let identity = src.identity();
        let (bytes, mtime) = src.stamp();
        if manifest.find_unchanged(&identity, bytes, mtime)?.is_some() {
            report.files_unchanged += 1;
            pb.inc(bytes);
            continue;
        }
        let is_env = src.format == Format::Xml && src.sniff_envelope().unwrap_or(false);
        // Envelopes are hashed while they are parsed (one read); loose
        // tables are read three times anyway, so they are hashed first.
        let hash = if is_env {
            String::new()
        } else {
            match src.content_hash() {
                Ok((h, _)) => h,
                Err(e) => {
                    report.files_rejected.push((
                        src.display.clone(),
                        format!("{}: cannot read: {e}", src.display),
                    ));
                    continue;
                }
            }
        };
        if !hash.is_empty()
            && (manifest.find_by_hash(&hash)?.is_some()
                || loose_hashes.insert(hash.clone(), ()).is_some())
        {
            report.files_unchanged += 1;
            pb.inc(bytes);
            continue;
        }
        let replaces = manifest.find_by_path(&identity)?;
        let seq = manifest.begin(&identity, &hash, bytes, mtime, src.format.name())?;
        report.bytes_read += bytes;
        let job = Job {
            src,
            seq,
            hash,
            identity,
            replaces,
            salvage: opts.damaged == Damaged::Salvage,
        };
        if is_env {
            envelopes.push(job);
        } else {
            loose.push(job);
        }
    }

    let mut run = RunSink::new(store, opts.flush_rows);
    tracing::info!("{} sources classified", envelopes.len() + loose.len());
    // Small envelopes (the usual facility-day or facility-week submission)
    // are read whole, several at a time, one per worker; large ones stream
    // through the three-stage pipeline with every worker on one file.
    // Results are committed in file order, so a rerun gives the same store.
    let (small, large): (Vec<Job>, Vec<Job>) = envelopes
        .into_iter()
        .partition(|j| j.src.raw_size() < SMALL_ENVELOPE_BYTES);
    // The commits (Parquet writes of the shared files, the publish) are
    // serial; the workers go on reading the next envelopes meanwhile.
    ordered::read_in_order(
        &small,
        rayon::current_num_threads(),
        SMALL_ENVELOPE_BATCH,
        |job| {
            let mut sink = PartSink::new(store, job.seq).with_flush_rows(opts.flush_rows);
            let r = ingest_envelope_whole(job, &conv, &mut sink, &pb);
            (r, sink)
        },
        |job, (r, sink)| finish_envelope(job, r, sink, &mut run, &mut manifest, &mut report),
    )?;
    tracing::info!("small envelopes done");
    for job in &large {
        let mut sink = PartSink::new(store, job.seq).with_flush_rows(opts.flush_rows);
        let r = ingest_envelope(job, &conv, &mut sink, &pb);
        finish_envelope(job, r, sink, &mut run, &mut manifest, &mut report)?;
    }
    if !loose.is_empty() {
        ingest_loose(
            loose,
            store,
            &conv,
            &mapping,
            &mut manifest,
            &mut run,
            &mut report,
            opts,
            &pb,
        )?;
    }
    run.finish()?;
    pb.finish_and_clear();
    Ok(report)
}

impl IngestReport {
    fn absorb(&mut self, t: Tally, replaced: bool) {
        self.files_ingested += 1;
        if replaced {
            self.files_replaced += 1;
        }
        self.visits.add(t.visits);
        self.lines.add(t.lines);
        self.documents_unreadable += t.documents_unreadable;
        for (k, v) in t.by_rule {
            *self.by_rule.entry(k).or_default() += v;
        }
        self.errors.extend(t.errors);
    }
}

struct Job {
    src: SourceFile,
    seq: i64,
    hash: String,
    identity: String,
    replaces: Option<i64>,
    salvage: bool,
}

fn progress_bar(show: bool, total: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} ingest [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb
}

/// Rows of one visit after validation, before duplicate checks.
struct Bundle {
    visit: VisitRow,
    position: u64,
    lines: Vec<(LineRow, u64)>,
}

/// What one HOSO yields.
#[derive(Default)]
struct HosoOutcome {
    bundles: Vec<Bundle>,
    quarantine: Vec<QuarantineRow>,
    visits_read: u64,
    lines_read: u64,
    documents_unreadable: u64,
    errors: Vec<String>,
}

/// Validates a group of visits and lines that arrived together.
fn validate_group(
    visit_raws: &[RawRecord<'_>],
    line_raws: &[RawRecord<'_>],
    conv: &Converter,
    ctx: &SourceCtx,
    out: &mut HosoOutcome,
) {
    // Lines received per MA_LK: (sum of parseable amounts, count).
    let mut sums: HashMap<&str, (f64, usize)> = HashMap::new();
    for r in line_raws {
        if let Some(k) = r.get(lf::MA_LK) {
            let e = sums.entry(k).or_default();
            e.1 += 1;
            if let Some(a) = r
                .get(lf::THANH_TIEN_BV)
                .and_then(|a| parse_number(a, &ctx.format))
            {
                e.0 += a;
            }
        }
    }
    // Visits: convert, then check their total against their lines.
    let mut status: HashMap<String, Result<usize, Rule>> = HashMap::new();
    for r in visit_raws {
        let key = visit_record_id(r);
        let conv_result = conv.visit(r, ctx).and_then(|mut v| {
            let lines = sums.get(v.ma_lk.as_str()).copied();
            conv.attach_lines(&mut v, lines, true)?;
            Ok(v)
        });
        match conv_result {
            Ok(v) => {
                if status.contains_key(&key) {
                    let issue = Issue::new(
                        Rule::DuplicateVisit,
                        Some("MA_LK"),
                        format!("MA_LK {key} appears more than once in this HOSO"),
                    );
                    out.quarantine.push(ctx.quarantine(
                        "XML1",
                        key.clone(),
                        Some(&v.facility_code),
                        r.position,
                        &issue,
                    ));
                    continue;
                }
                status.insert(key, Ok(out.bundles.len()));
                out.bundles.push(Bundle {
                    visit: v,
                    position: r.position,
                    lines: Vec::new(),
                });
            }
            Err(issue) => {
                let fac = r.get(fields::vf::MA_CSKCB).or(ctx.facility_hint.as_deref());
                out.quarantine
                    .push(ctx.quarantine("XML1", key.clone(), fac, r.position, &issue));
                status.entry(key).or_insert(Err(issue.rule));
            }
        }
    }
    for r in line_raws {
        let id = line_record_id(r);
        let table = r.kind.table_name();
        let owner = r.get(lf::MA_LK).and_then(|k| status.get(k));
        let fac = ctx.facility_hint.as_deref();
        match owner {
            None => {
                let issue = Issue::new(
                    Rule::OrphanLine,
                    Some("MA_LK"),
                    "no visit (XML1) with this MA_LK was received with the line",
                );
                out.quarantine
                    .push(ctx.quarantine(table, id, fac, r.position, &issue));
            }
            Some(Err(rule)) => {
                let issue = Issue::new(
                    Rule::VisitRejected,
                    None,
                    format!("its visit was quarantined ({})", rule.code()),
                );
                out.quarantine
                    .push(ctx.quarantine(table, id, fac, r.position, &issue));
            }
            Some(Ok(i)) => {
                let b = &mut out.bundles[*i];
                match conv.line(r, ctx) {
                    Ok(mut l) => {
                        attach_line(&mut l, &VisitAnchor::from(&b.visit));
                        b.lines.push((l, r.position));
                    }
                    Err(issue) => {
                        let q = ctx.quarantine(
                            table,
                            id,
                            Some(&b.visit.facility_code),
                            r.position,
                            &issue,
                        );
                        out.quarantine.push(q);
                    }
                }
            }
        }
    }
}
