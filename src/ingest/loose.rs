//! Loose tables (bare XML1/XML2/XML3 documents, CSV, Parquet): a visit's
//! rows may be split over several files, so they are validated per batch in
//! three streaming passes (line sums; visits; lines), holding only per-visit
//! keys in memory.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::convert::{
    attach_line, line_record_id, parse_number, visit_record_id, Converter, Issue, Rule, SourceCtx,
    VisitAnchor,
};
use super::fields::{self, lf, RawRecord, RowKind};
use super::source::{Format, SourceFile};
use super::tabular::{self, Mapping};
use super::xml::{self, XmlItem};
use super::{IngestError, IngestOptions, IngestReport, Job, Tally};
use crate::store::{PartSink, RunSink, Store};

/// State of a visit key during the loose passes.
#[derive(Debug, Clone)]
enum LooseVisit {
    Accepted { visit_idx: usize },
    Rejected(Rule),
}

fn for_each_loose(
    src: &SourceFile,
    mapping: &Mapping,
    f: &mut dyn FnMut(RawRecord<'static>) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    match src.format {
        Format::Csv => tabular::for_each_csv(src, mapping, f),
        Format::Parquet => tabular::for_each_parquet(src, mapping, f),
        Format::Xml => {
            let reader = src.open(None).map_err(|e| IngestError::Source {
                file: src.display.clone(),
                position: 0,
                message: e.to_string(),
            })?;
            let mut inner_err = None;
            let r = xml::scan(reader, |item| {
                if let XmlItem::Row(r) = item {
                    if let Err(e) = f(r) {
                        inner_err = Some(e);
                        return Err(xml::XmlError {
                            position: 0,
                            message: "stopped".into(),
                        });
                    }
                }
                Ok(())
            });
            if let Some(e) = inner_err {
                return Err(e);
            }
            r.map(|_| ()).map_err(|e| IngestError::Source {
                file: src.display.clone(),
                position: e.position,
                message: e.message,
            })
        }
    }
}

/// Rows of loose tables converted per batch on all cores.
const LOOSE_BATCH: usize = 4096;

/// Reads the rows of a loose source that `want` selects, converts them a
/// batch at a time in parallel, and hands each row with its conversion to
/// `apply`, in file order.
fn for_each_converted<T: Send>(
    src: &SourceFile,
    mapping: &Mapping,
    want: impl Fn(RowKind) -> bool,
    convert: impl Fn(&RawRecord<'static>) -> T + Sync,
    apply: &mut dyn FnMut(RawRecord<'static>, T) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    fn flush<T: Send>(
        buf: &mut Vec<RawRecord<'static>>,
        convert: &(impl Fn(&RawRecord<'static>) -> T + Sync),
        apply: &mut dyn FnMut(RawRecord<'static>, T) -> Result<(), IngestError>,
    ) -> Result<(), IngestError> {
        let converted: Vec<T> = buf.par_iter().map(convert).collect();
        for (r, t) in buf.drain(..).zip(converted) {
            apply(r, t)?;
        }
        Ok(())
    }
    let mut buf = Vec::with_capacity(LOOSE_BATCH);
    for_each_loose(src, mapping, &mut |r| {
        if want(r.kind) {
            buf.push(r);
            if buf.len() >= LOOSE_BATCH {
                flush(&mut buf, &convert, apply)?;
            }
        }
        Ok(())
    })?;
    flush(&mut buf, &convert, apply)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn ingest_loose(
    jobs: Vec<Job>,
    store: &Store,
    conv: &Converter,
    mapping: &Mapping,
    manifest: &mut crate::store::Manifest,
    run: &mut RunSink,
    report: &mut IngestReport,
    opts: &IngestOptions,
    pb: &indicatif::ProgressBar,
) -> Result<(), IngestError> {
    let fmt = mapping.value_format();
    // Pass 1: read every loose source once: rejects unreadable ones, sums lines.
    let mut sums: HashMap<String, (f64, usize)> = HashMap::new();
    let mut has_lines = false;
    let mut ok_jobs = Vec::new();
    for job in jobs {
        let mut local: HashMap<String, (f64, usize)> = HashMap::new();
        let mut saw_lines = false;
        let r = for_each_loose(&job.src, mapping, &mut |r| {
            if r.kind != RowKind::Visit {
                saw_lines = true;
                if let Some(k) = r.get(lf::MA_LK) {
                    let e = local.entry(k.to_string()).or_default();
                    e.1 += 1;
                    if let Some(a) = r.get(lf::THANH_TIEN_BV).and_then(|a| parse_number(a, &fmt)) {
                        e.0 += a;
                    }
                }
            }
            Ok(())
        });
        pb.inc(job.src.raw_size());
        match r {
            Ok(()) => {
                has_lines |= saw_lines;
                for (k, (s, n)) in local {
                    let e = sums.entry(k).or_default();
                    e.0 += s;
                    e.1 += n;
                }
                ok_jobs.push(job);
            }
            Err(e) => {
                let msg = e.to_string();
                manifest.reject(job.seq, &msg)?;
                report.files_rejected.push((job.src.display.clone(), msg));
            }
        }
    }
    let mut sinks: Vec<PartSink> = ok_jobs
        .iter()
        .map(|j| PartSink::new(store, j.seq).with_flush_rows(opts.flush_rows))
        .collect();
    let mut tallies: Vec<Tally> = ok_jobs.iter().map(|_| Tally::default()).collect();
    let mut state: HashMap<String, LooseVisit> = HashMap::new();
    // Per accepted visit only what its lines need: memory grows with the
    // number of visits, not with the size of the files.
    let mut facts: Vec<VisitAnchor> = Vec::new();

    // Pass 2: visits.
    for (ji, job) in ok_jobs.iter().enumerate() {
        let mut ctx = SourceCtx::new(&job.src.display, job.seq);
        ctx.format = fmt.clone();
        let tally = &mut tallies[ji];
        let sink = &mut sinks[ji];
        let mut seen_here: HashSet<String> = HashSet::new();
        let converter = |r: &RawRecord<'static>| conv.visit(r, &ctx);
        for_each_converted(
            &job.src,
            mapping,
            |k| k == RowKind::Visit,
            converter,
            &mut |r, converted| {
                tally.visits.read += 1;
                let key = visit_record_id(&r);
                let result = converted.and_then(|mut v| {
                    if !seen_here.insert(v.ma_lk.to_string()) {
                        return Err(Issue::new(
                            Rule::DuplicateVisit,
                            Some("MA_LK"),
                            format!("MA_LK {} appears more than once in this file", v.ma_lk),
                        ));
                    }
                    let lines = sums.get(v.ma_lk.as_str()).copied();
                    conv.attach_lines(&mut v, lines, has_lines)?;
                    Ok(v)
                });
                match result {
                    Ok(v) => {
                        tally.visits.accepted += 1;
                        state.insert(
                            key,
                            LooseVisit::Accepted {
                                visit_idx: facts.len(),
                            },
                        );
                        facts.push(VisitAnchor::from(&v));
                        sink.push_visit(v)?;
                    }
                    Err(issue) => {
                        let fac = r.get(fields::vf::MA_CSKCB).map(str::to_string);
                        tally.quarantine(
                            sink,
                            ctx.quarantine("XML1", key.clone(), fac.as_deref(), r.position, &issue),
                        )?;
                        if issue.rule != Rule::DuplicateVisit {
                            state.entry(key).or_insert(LooseVisit::Rejected(issue.rule));
                        }
                    }
                }
                Ok(())
            },
        )?;
    }
    // Pass 3: lines.
    for (ji, job) in ok_jobs.iter().enumerate() {
        let mut ctx = SourceCtx::new(&job.src.display, job.seq);
        ctx.format = fmt.clone();
        let tally = &mut tallies[ji];
        let sink = &mut sinks[ji];
        let converter = |r: &RawRecord<'static>| conv.line(r, &ctx);
        for_each_converted(
            &job.src,
            mapping,
            |k| k != RowKind::Visit,
            converter,
            &mut |r, converted| {
                tally.lines.read += 1;
                let id = line_record_id(&r);
                let table = if r.get(lf::MA_THUOC).is_some() {
                    "XML2"
                } else {
                    r.kind.table_name()
                };
                let owner = r.get(lf::MA_LK).and_then(|k| state.get(k)).cloned();
                let line_fac = r.get(lf::MA_CSKCB).map(str::to_string);
                match owner {
                    Some(LooseVisit::Accepted { visit_idx })
                        if line_fac
                            .as_deref()
                            .is_none_or(|f| f == facts[visit_idx].facility_code) =>
                    {
                        let anchor = &facts[visit_idx];
                        match converted {
                            Ok(mut l) => {
                                // The line joins the version of its visit.
                                attach_line(&mut l, anchor);
                                tally.lines.accepted += 1;
                                sink.push_line(l)?;
                            }
                            Err(issue) => {
                                let q = ctx.quarantine(
                                    table,
                                    id,
                                    Some(&anchor.facility_code),
                                    r.position,
                                    &issue,
                                );
                                tally.quarantine(sink, q)?;
                            }
                        }
                    }
                    Some(LooseVisit::Rejected(rule)) => {
                        let issue = Issue::new(
                            Rule::VisitRejected,
                            None,
                            format!("its visit was quarantined ({})", rule.code()),
                        );
                        tally.quarantine(
                            sink,
                            ctx.quarantine(table, id, line_fac.as_deref(), r.position, &issue),
                        )?;
                    }
                    _ => {
                        let issue = Issue::new(
                            Rule::OrphanLine,
                            Some("MA_LK"),
                            "no visit (XML1) with this MA_LK in the batch",
                        );
                        tally.quarantine(
                            sink,
                            ctx.quarantine(table, id, line_fac.as_deref(), r.position, &issue),
                        )?;
                    }
                }
                Ok(())
            },
        )?;
    }
    for ((job, sink), tally) in ok_jobs.into_iter().zip(sinks).zip(tallies) {
        let rec = tally.record(job.seq, &job.identity, &job.hash);
        sink.commit(run, rec, 0, job.replaces)?;
        report.absorb(tally, job.replaces.is_some());
    }
    Ok(())
}
