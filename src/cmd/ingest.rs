//! `bhyt ingest`: claims files into the store, with the counts of what was
//! accepted and quarantined.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use bhyt::format::group_vi;
use bhyt::ingest::{self, IngestOptions, IngestReport};
use bhyt::privacy::Pseudonymizer;
use bhyt::store::Store;

use super::{p, say, Console, Ctx, Outcome, UsageError};

#[derive(Args)]
pub struct KeyArgs {
    /// File holding the pseudonymisation key (else the project's key_file,
    /// $BHYT_PSEUDONYM_KEY or $BHYT_PSEUDONYM_KEY_FILE).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Use the fixed demo key. Only for synthetic data: hashes made with it are not private.
    #[arg(long)]
    pub demo_key: bool,
}

impl KeyArgs {
    /// The key, or a usage error saying where it may come from.
    pub fn pseudonymizer(&self, ctx: &Ctx) -> Result<Pseudonymizer> {
        let file = ctx.key_file(self.key_file.clone());
        Pseudonymizer::from_environment(file.as_deref(), self.demo_key)
            .map_err(|e| UsageError(e.to_string()).into())
    }
}

#[derive(Args)]
pub struct IngestArgs {
    /// Files or folders to read (recursively). Default: the project's claims_dir.
    pub inputs: Vec<PathBuf>,
    /// Data directory of the claims store. Default: the project's, else `data`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Facility registry CSV (facility_code, name, province_code, level, grade, ownership, kind).
    /// Default: the project's registry, if set.
    #[arg(long)]
    pub registry: Option<PathBuf>,
    /// Yearly budgets CSV (facility_code, year, budget_vnd). Default: the project's budgets, if set.
    #[arg(long)]
    pub budgets: Option<PathBuf>,
    /// TOML column mapping for CSV/Parquet extracts with their own column names.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Directory overriding the bundled reference tables (provinces.csv, service_groups.csv, visit_types.csv).
    #[arg(long)]
    pub reference_dir: Option<PathBuf>,
    /// Largest decompressed size of one .gz file or zip member, in bytes
    /// (past it: a decompression bomb, that input rejected). Default 16 GiB.
    #[arg(long, default_value_t = 16 << 30)]
    pub max_decompressed_bytes: u64,
    /// Longest XML field (text between two tags, e.g. one inline document),
    /// in bytes; a file with a longer one is rejected. Default 32 MiB.
    #[arg(long, default_value_t = 32 << 20)]
    pub max_text_bytes: u64,
    /// A damaged envelope: ingest the complete HOSO records before the
    /// damage (salvage) or reject the whole file (reject).
    #[arg(long, value_enum, default_value = "salvage")]
    pub damaged: bhyt::ingest::Damaged,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print one JSON object (the counts) on stdout; the text goes to stderr.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn run(a: IngestArgs, ctx: &Ctx) -> Result<Outcome> {
    let con = Console { json: a.json };
    let pseudo = a.key.pseudonymizer(ctx)?;
    let inputs = if a.inputs.is_empty() {
        match &ctx.project {
            Some(p) => vec![p.claims_dir()],
            None => {
                return Err(UsageError(
                    "no input: name files or folders, or run inside a project (`bhyt init`)".into(),
                )
                .into())
            }
        }
    } else {
        a.inputs
    };
    let project = ctx.project.as_ref();
    let opts = IngestOptions {
        inputs,
        registry: a
            .registry
            .or_else(|| project.and_then(|p| p.optional(&p.file.registry))),
        budgets: a
            .budgets
            .or_else(|| project.and_then(|p| p.optional(&p.file.budgets))),
        mapping: a.mapping,
        reference_dir: a.reference_dir,
        progress: !a.quiet,
        limits: bhyt::ingest::source::Limits {
            max_decompressed_bytes: a.max_decompressed_bytes,
            max_text_bytes: a.max_text_bytes,
        },
        damaged: a.damaged,
        ..Default::default()
    };
    let data_dir = ctx.data_dir(a.data_dir);
    let (report, outcome) = ingest_into(&data_dir, &opts, &pseudo, con)?;
    con.emit(&report)?;
    Ok(outcome)
}

/// Runs an ingest, prints its counts, records the run; returns its JSON
/// summary and whether part of the input was turned away.
pub fn ingest_into(
    data_dir: &Path,
    opts: &IngestOptions,
    pseudo: &Pseudonymizer,
    con: Console,
) -> Result<(serde_json::Value, Outcome)> {
    let store = Store::open(data_dir)?;
    let t = Instant::now();
    let r = ingest::run(&store, opts, pseudo)?;
    let secs = t.elapsed().as_secs_f64();
    print_report(&r, secs, data_dir, con);
    let summary = to_json(&r, secs);
    super::record_run(
        Some(data_dir),
        "ingest",
        secs,
        json!({ "inputs": opts.inputs.iter().map(|i| p(i)).collect::<Vec<_>>() }),
        &summary,
    );
    Ok((summary, outcome(&r)))
}

/// Partial when a file was rejected or a record quarantined.
pub fn outcome(r: &IngestReport) -> Outcome {
    let turned_away = !r.files_rejected.is_empty()
        || r.visits.quarantined > 0
        || r.lines.quarantined > 0
        || r.documents_unreadable > 0
        || r.facilities.is_some_and(|c| c.quarantined > 0)
        || r.budgets.is_some_and(|c| c.quarantined > 0);
    if turned_away {
        Outcome::Partial
    } else {
        Outcome::Done
    }
}

pub fn to_json(r: &IngestReport, secs: f64) -> serde_json::Value {
    let counts = |c: &bhyt::ingest::Counts| json!({ "read": c.read, "accepted": c.accepted, "quarantined": c.quarantined });
    json!({
        "files": {
            "ingested": r.files_ingested,
            "replaced": r.files_replaced,
            "unchanged": r.files_unchanged,
            "rejected": r.files_rejected.iter().map(|(f, e)| json!({"file": f, "error": e})).collect::<Vec<_>>(),
            "skipped": r.files_skipped.iter().map(|(f, e)| json!({"file": f, "why": e})).collect::<Vec<_>>(),
        },
        "visits": counts(&r.visits),
        "lines": counts(&r.lines),
        "documents_unreadable": r.documents_unreadable,
        "quarantined_by_rule": r.by_rule.iter().map(|((t, rule), n)| json!({"table": t, "rule": rule, "records": n})).collect::<Vec<_>>(),
        "facilities": r.facilities.as_ref().map(counts),
        "budgets": r.budgets.as_ref().map(counts),
        "errors": r.errors,
        "warnings": r.warnings,
        "bytes_read": r.bytes_read,
        "seconds": secs,
    })
}

pub fn print_report(r: &IngestReport, secs: f64, dir: &Path, con: Console) {
    if let Some(c) = r.facilities {
        say!(
            con,
            "facility registry: read {} = accepted {} + quarantined {}",
            c.read,
            c.accepted,
            c.quarantined
        );
    }
    if let Some(c) = r.budgets {
        say!(
            con,
            "budgets:           read {} = accepted {} + quarantined {}",
            c.read,
            c.accepted,
            c.quarantined
        );
    }
    say!(
        con,
        "files: {} ingested ({} replacing an earlier version), {} unchanged, {} rejected, {} skipped",
        r.files_ingested,
        r.files_replaced,
        r.files_unchanged,
        r.files_rejected.len(),
        r.files_skipped.len()
    );
    for (_, e) in &r.files_rejected {
        say!(con, "  rejected: {e}");
    }
    for (f, why) in &r.files_skipped {
        say!(con, "  skipped:  {f}: {why}");
    }
    for e in &r.errors {
        say!(con, "  error:    {e}");
    }
    for w in &r.warnings {
        say!(con, "  warning:  {w}");
    }
    say!(
        con,
        "visits: read {} = accepted {} + quarantined {}",
        group_vi(r.visits.read as i64),
        group_vi(r.visits.accepted as i64),
        group_vi(r.visits.quarantined as i64)
    );
    say!(
        con,
        "lines:  read {} = accepted {} + quarantined {}",
        group_vi(r.lines.read as i64),
        group_vi(r.lines.accepted as i64),
        group_vi(r.lines.quarantined as i64)
    );
    if r.documents_unreadable > 0 {
        say!(
            con,
            "unreadable inner documents: {}",
            r.documents_unreadable
        );
    }
    if !r.by_rule.is_empty() {
        say!(con, "quarantined by rule:");
        for ((table, rule), n) in &r.by_rule {
            say!(con, "  {table:<10} {rule:<28} {n:>10}");
        }
    }
    let mb = r.bytes_read as f64 / 1e6;
    say!(
        con,
        "{:.1} MB in {:.2} s ({:.1} MB/s); store: {}",
        mb,
        secs,
        if secs > 0.0 { mb / secs } else { 0.0 },
        dir.display()
    );
}
