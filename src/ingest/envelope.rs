//! Reading one submission envelope (GIAMDINHHS): small ones whole, large
//! ones through a three-stage pipeline (reader thread → workers → writer);
//! each HOSO decoded, validated and written, a damaged file salvaged up to
//! its damage, and the envelope committed or rejected as a whole.

use std::collections::HashSet;
use std::sync::mpsc::sync_channel;

use rayon::prelude::*;

use super::*;
use crate::schema::SmallStr;

/// What reading an envelope gives: its tallies and content hash.
pub(super) type EnvelopeResult = Result<(Tally, String), IngestError>;

/// Envelopes below this size are read whole and processed several at a time.
pub(super) const SMALL_ENVELOPE_BYTES: u64 = 8 << 20;
/// Small envelopes read ahead of the oldest one not yet committed.
pub(super) const SMALL_ENVELOPE_BATCH: usize = 64;

/// Commits (or rejects) an envelope once read.
pub(super) fn finish_envelope(
    job: &Job,
    result: EnvelopeResult,
    sink: PartSink,
    run: &mut RunSink,
    manifest: &mut crate::store::Manifest,
    report: &mut IngestReport,
) -> Result<(), IngestError> {
    match result {
        Ok((tally, hash)) => {
            let earlier = match manifest.find_by_hash(&hash)? {
                Some(of) => Some(of),
                None => run.claim_hash(&hash, job.seq),
            };
            if let Some(of) = earlier {
                // Same bytes as a source already in the store, or read
                // earlier in this run under another name.
                sink.abort()?;
                manifest.mark_duplicate(job.seq, &hash, of)?;
                report.files_unchanged += 1;
                return Ok(());
            }
            let rec = tally.record(job.seq, &job.identity, &hash);
            sink.commit(run, rec, tally.documents_unreadable as i64, job.replaces)?;
            report.absorb(tally, job.replaces.is_some());
        }
        Err(e) => {
            sink.abort()?;
            let msg = e.to_string();
            manifest.reject(job.seq, &msg)?;
            report.files_rejected.push((job.src.display.clone(), msg));
        }
    }
    Ok(())
}

/// A small envelope, read and validated on the calling worker.
pub(super) fn ingest_envelope_whole(
    job: &Job,
    conv: &Converter,
    sink: &mut PartSink,
    pb: &indicatif::ProgressBar,
) -> EnvelopeResult {
    let mut items = Vec::new();
    let collect = |item| {
        items.push(item);
        Ok(())
    };
    // Read whole when it can be (a plain file): scanned from memory, its
    // payloads decoded from where they lie; else streamed and hashed. The
    // worker's file buffer is taken for the file and given back after.
    let mut buf = FILE_BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let whole = job.src.read_whole(Some(pb), SMALL_ENVELOPE_BYTES, &mut buf);
    let whole = match whole {
        Ok(w) => w,
        Err(e) => {
            give_back(buf);
            return Err(unreadable(job, e));
        }
    };
    let (file, hash, base, scanned) = match whole {
        Some(hash) => {
            let scanned = xml::scan_slice(&buf, collect);
            (buf, hash, source_ctx(job), scanned)
        }
        None => {
            give_back(buf);
            let (reader, hasher, base) = open_envelope(job, pb)?;
            let scanned = xml::scan(reader, collect);
            (Vec::new(), source::finish_hash(&hasher), base, scanned)
        }
    };
    let result = read_items(job, items, scanned, &file, conv, &base, sink, hash);
    give_back(file);
    result
}

thread_local! {
    /// A worker's buffer for whole files (at most `SMALL_ENVELOPE_BYTES`).
    static FILE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Returns a file buffer to the worker, emptied (its capacity kept).
fn give_back(mut buf: Vec<u8>) {
    buf.clear();
    FILE_BUFFER.with(|b| *b.borrow_mut() = buf);
}

/// Validates and stores the HOSO records (and stray rows) read from an
/// envelope's bytes.
#[allow(clippy::too_many_arguments)]
fn read_items(
    job: &Job,
    items: Vec<XmlItem>,
    scanned: Result<xml::ScanSummary, xml::XmlError>,
    file: &[u8],
    conv: &Converter,
    base: &SourceCtx,
    sink: &mut PartSink,
    hash: String,
) -> EnvelopeResult {
    let hosos = items
        .iter()
        .filter(|i| matches!(i, XmlItem::Hoso(_)))
        .count();
    let damage = salvage_or_reject(job, scanned.err(), hosos)?;
    let mut tally = Tally::default();
    let mut seen: HashSet<(SmallStr, SmallStr)> = HashSet::new();
    let mut stray: Vec<RawRecord<'static>> = Vec::new();
    for item in items {
        match item {
            XmlItem::Hoso(unit) => {
                let o = process_hoso(unit, file, conv, base);
                apply_outcome(o, base, &mut seen, &mut tally, sink)?;
            }
            XmlItem::Row(r) => stray.push(r),
        }
    }
    finish_stray(stray, conv, base, &mut seen, &mut tally, sink)?;
    if let Some(d) = damage {
        record_damage(d, hosos, base, &mut tally, sink)?;
    }
    Ok((tally, hash))
}

/// A scan that stopped on damage: with `salvage` and at least one complete
/// HOSO before it, the damage to record; otherwise the file's error.
fn salvage_or_reject(
    job: &Job,
    err: Option<xml::XmlError>,
    hosos: usize,
) -> Result<Option<xml::XmlError>, IngestError> {
    match err {
        None => Ok(None),
        Some(e) if job.salvage && hosos > 0 => Ok(Some(e)),
        Some(e) => Err(IngestError::Source {
            file: job.src.display.clone(),
            position: e.position,
            message: e.message,
        }),
    }
}

/// Records where a salvaged file is damaged: one line in the report and a
/// quarantine row for the rest of the file, which could not be read.
fn record_damage(
    e: xml::XmlError,
    hosos: usize,
    base: &SourceCtx,
    tally: &mut Tally,
    sink: &mut PartSink,
) -> Result<(), IngestError> {
    let reason = format!(
        "the file is damaged at byte {} ({}): the {hosos} complete HOSO records before it were \
         read, the rest of the file could not be (--damaged reject refuses the whole file)",
        e.position, e.message
    );
    tally.errors.push(format!("{}: {reason}", base.file));
    let issue = Issue::new(Rule::DamagedFile, None, reason);
    tally.quarantine(
        sink,
        base.quarantine(
            "document",
            format!("after HOSO #{}", hosos.saturating_sub(1)),
            None,
            e.position,
            &issue,
        ),
    )?;
    Ok(())
}

/// An envelope opened for reading: its content (hashed as it is read) and
/// the context its rows are quarantined with.
type Opened = (
    Box<dyn std::io::BufRead + Send>,
    source::SharedHasher,
    SourceCtx,
);

/// Opens a job's envelope, hashing its bytes as they are read.
fn open_envelope(job: &Job, pb: &indicatif::ProgressBar) -> Result<Opened, IngestError> {
    let src = &job.src;
    let (reader, hasher) = src
        .open_hashed(Some(pb.clone()))
        .map_err(|e| unreadable(job, e))?;
    Ok((reader, hasher, source_ctx(job)))
}

/// A job's file that could not be opened or read.
fn unreadable(job: &Job, e: std::io::Error) -> IngestError {
    IngestError::Source {
        file: job.src.display.clone(),
        position: 0,
        message: e.to_string(),
    }
}

/// The context a job's rows are quarantined with.
fn source_ctx(job: &Job) -> SourceCtx {
    SourceCtx::new(&job.src.display, job.seq)
}

/// Rows outside any HOSO of an envelope: validated as one group.
fn finish_stray(
    stray: Vec<RawRecord<'static>>,
    conv: &Converter,
    base: &SourceCtx,
    seen: &mut HashSet<(SmallStr, SmallStr)>,
    tally: &mut Tally,
    sink: &mut PartSink,
) -> Result<(), IngestError> {
    if stray.is_empty() {
        return Ok(());
    }
    let unit = HosoUnit {
        index: u32::MAX,
        inline_rows: stray,
        ..Default::default()
    };
    apply_outcome(process_hoso(unit, &[], conv, base), base, seen, tally, sink)
}

/// HOSO units handed from the reader thread to the workers at a time:
/// small enough that a 10 MB envelope (~1,700 HOSO) fills the pipeline
/// several times over (with 512 the workers idled while the first and the
/// last batch were cut).
const HOSO_BATCH: usize = 128;

pub(super) fn ingest_envelope(
    job: &Job,
    conv: &Converter,
    sink: &mut PartSink,
    pb: &indicatif::ProgressBar,
) -> EnvelopeResult {
    let (reader, hasher, base) = open_envelope(job, pb)?;
    let mut tally = Tally::default();
    let mut seen: HashSet<(SmallStr, SmallStr)> = HashSet::new();
    let mut stray: Vec<RawRecord<'static>> = Vec::new();

    type Damage = Option<(xml::XmlError, usize)>;
    let scan_result = std::thread::scope(|s| -> Result<Result<Damage, IngestError>, IngestError> {
        let (tx, rx) = sync_channel::<Vec<XmlItem>>(2);
        let reader_thread = s.spawn(move || {
            let mut batch = Vec::with_capacity(HOSO_BATCH);
            let mut hosos = 0usize;
            let r = xml::scan(reader, |item| {
                hosos += usize::from(matches!(item, XmlItem::Hoso(_)));
                batch.push(item);
                if batch.len() >= HOSO_BATCH {
                    tx.send(std::mem::take(&mut batch))
                        .map_err(|_| xml::XmlError {
                            position: 0,
                            message: "stopped".into(),
                        })?;
                }
                Ok(())
            });
            // The HOSOs before damage are complete: they go on too.
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
            (r, hosos)
        });
        // Three stages overlap: the reader thread cuts HOSOs, the rayon
        // workers decode and validate a batch, and the writer thread applies
        // the previous batch (duplicate check, Parquet flushes).
        let (otx, orx) = sync_channel::<Vec<Result<HosoOutcome, RawRecord<'static>>>>(2);
        let writer = s.spawn(|| -> Result<(), IngestError> {
            for outcomes in orx {
                for o in outcomes {
                    match o {
                        Ok(o) => apply_outcome(o, &base, &mut seen, &mut tally, sink)?,
                        Err(r) => stray.push(r),
                    }
                }
            }
            Ok(())
        });
        let consume = || -> Result<(), IngestError> {
            for batch in rx {
                let outcomes: Vec<Result<HosoOutcome, RawRecord<'static>>> = batch
                    .into_par_iter()
                    .map(|item| match item {
                        XmlItem::Hoso(unit) => Ok(process_hoso(unit, &[], conv, &base)),
                        XmlItem::Row(r) => Err(r),
                    })
                    .collect();
                if otx.send(outcomes).is_err() {
                    break;
                }
            }
            drop(otx);
            writer.join().expect("writer thread does not panic")
        };
        let consumed = consume();
        let (scanned, hosos) = reader_thread.join().expect("reader thread does not panic");
        let damage = salvage_or_reject(job, scanned.err(), hosos)?;
        Ok(consumed.map(|_| damage.map(|d| (d, hosos))))
    });
    let damage = scan_result??;
    finish_stray(stray, conv, &base, &mut seen, &mut tally, sink)?;
    if let Some((d, hosos)) = damage {
        record_damage(d, hosos, &base, &mut tally, sink)?;
    }
    Ok((tally, source::finish_hash(&hasher)))
}

/// Sequential part of a HOSO: duplicate check and writing.
fn apply_outcome(
    o: HosoOutcome,
    ctx: &SourceCtx,
    seen: &mut HashSet<(SmallStr, SmallStr)>,
    tally: &mut Tally,
    sink: &mut PartSink,
) -> Result<(), IngestError> {
    tally.visits.read += o.visits_read;
    tally.lines.read += o.lines_read;
    tally.documents_unreadable += o.documents_unreadable;
    tally.errors.extend(o.errors);
    for q in o.quarantine {
        tally.quarantine(sink, q)?;
    }
    for b in o.bundles {
        let key = (b.visit.facility_code.clone(), b.visit.ma_lk.clone());
        if seen.contains(&key) {
            let issue = Issue::new(
                Rule::DuplicateVisit,
                Some("MA_LK"),
                format!(
                    "MA_LK {} appears more than once in this file",
                    b.visit.ma_lk
                ),
            );
            reject_bundle(b, &issue, ctx, tally, sink)?;
            continue;
        }
        seen.insert(key);
        tally.visits.accepted += 1;
        tally.lines.accepted += b.lines.len() as u64;
        sink.push_visit(b.visit)?;
        for (l, _) in b.lines {
            sink.push_line(l)?;
        }
    }
    Ok(())
}

fn reject_bundle(
    b: Bundle,
    issue: &Issue,
    ctx: &SourceCtx,
    tally: &mut Tally,
    sink: &mut PartSink,
) -> Result<(), IngestError> {
    let fac = b.visit.facility_code.clone();
    tally.quarantine(
        sink,
        ctx.quarantine(
            "XML1",
            b.visit.ma_lk.to_string(),
            Some(&fac),
            b.position,
            issue,
        ),
    )?;
    let follow = Issue::new(
        Rule::VisitRejected,
        None,
        format!("its visit was quarantined ({})", issue.rule.code()),
    );
    for (l, pos) in b.lines {
        let id = format!("{}/{}", l.ma_lk, l.stt);
        tally.quarantine(
            sink,
            ctx.quarantine(&l.source_table, id, Some(&fac), pos, &follow),
        )?;
    }
    Ok(())
}

/// Decodes, parses and validates one HOSO (runs on a worker thread);
/// `file` is the file its payloads lie in when it was read whole (empty
/// for a stream).
fn process_hoso(unit: HosoUnit, file: &[u8], conv: &Converter, base: &SourceCtx) -> HosoOutcome {
    let mut out = HosoOutcome::default();
    let mut ctx = base.clone();
    ctx.facility_hint = unit.facility.clone();
    ctx.submitted_at = unit
        .created
        .as_deref()
        .and_then(|c| parse_datetime(c, &ValueFormat::default()))
        .map(Ts);

    let mut buffers = Vec::new();
    let mut failure: Option<xml::XmlError> = None;
    for d in unit.docs.iter().filter(|d| xml::wanted_kind(&d.kind)) {
        match xml::decode_base64(d.base64(file), d.position) {
            Ok(b) => buffers.push((d.position, b)),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    let mut raws: Vec<RawRecord<'_>> = unit.inline_rows.to_vec();
    for (pos, buf) in &buffers {
        if let Err(e) = xml::parse_rows(buf, &mut raws) {
            failure.get_or_insert(xml::XmlError {
                position: *pos,
                message: format!("inner document, byte {}: {}", e.position, e.message),
            });
        }
    }
    let (visit_raws, line_raws): (Vec<_>, Vec<_>) =
        raws.into_iter().partition(|r| r.kind == RowKind::Visit);
    out.visits_read = visit_raws.len() as u64;
    out.lines_read = line_raws.len() as u64;

    if let Some(e) = failure {
        // A HOSO with an unreadable document cannot be checked as a whole:
        // its readable rows go to quarantine with the reason.
        out.documents_unreadable += 1;
        let msg = format!(
            "{}: byte {}: HOSO #{}: {}",
            base.file, e.position, unit.index, e.message
        );
        out.errors.push(msg.clone());
        let issue = Issue::new(
            Rule::UnreadableDocument,
            None,
            format!("a document of this HOSO is unreadable: {}", e.message),
        );
        out.quarantine.push(ctx.quarantine(
            "document",
            format!("HOSO #{}", unit.index),
            ctx.facility_hint.as_deref(),
            e.position,
            &issue,
        ));
        for r in &visit_raws {
            out.quarantine.push(ctx.quarantine(
                "XML1",
                visit_record_id(r),
                ctx.facility_hint.as_deref(),
                r.position,
                &issue,
            ));
        }
        for r in &line_raws {
            out.quarantine.push(ctx.quarantine(
                r.kind.table_name(),
                line_record_id(r),
                ctx.facility_hint.as_deref(),
                r.position,
                &issue,
            ));
        }
        return out;
    }
    validate_group(&visit_raws, &line_raws, conv, &ctx, &mut out);
    out
}
