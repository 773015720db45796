//! `bhyt status`: what the store holds, summary first; `--sources` for the
//! per-file list; `--json` for schedulers and scripts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use bhyt::format::group_vi;
use bhyt::store::StoreSummary;

use super::{say, Console, Ctx, Outcome};

#[derive(Args)]
pub struct StatusArgs {
    /// Claims store. Default: the project's, else `data`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also list every source file with its counts.
    #[arg(long)]
    pub sources: bool,
    /// Print one JSON object on stdout (the summary; with --sources, the
    /// files too); the text goes to stderr.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: StatusArgs, ctx: &Ctx) -> Result<Outcome> {
    let con = Console { json: a.json };
    let dir = ctx.data_dir(a.data_dir);
    super::require_store(&dir)?;
    let store = ctx.open_store(&dir)?;
    let s = store.summary()?;
    print_summary(&s, ctx, con);
    let mut out = serde_json::to_value(&s)?;
    if let Some(p) = &ctx.project {
        out["project"] = json!(p.file_path().display().to_string());
    }
    if a.sources {
        let sources = store.manifest()?.sources()?;
        say!(
            con,
            "\n{:>5}  {:<10} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10}  path",
            "seq",
            "status",
            "v.read",
            "v.ok",
            "v.quar",
            "l.read",
            "l.ok",
            "l.quar"
        );
        for s in &sources {
            say!(
                con,
                "{:>5}  {:<10} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10}  {}{}",
                s.seq,
                s.status,
                s.visits_read,
                s.visits_accepted,
                s.visits_quarantined,
                s.lines_read,
                s.lines_accepted,
                s.lines_quarantined,
                s.path,
                s.error
                    .as_ref()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            );
        }
        out["source_files"] = sources
            .iter()
            .map(|s| {
                json!({
                    "seq": s.seq, "path": s.path, "status": s.status,
                    "visits": { "read": s.visits_read, "accepted": s.visits_accepted, "quarantined": s.visits_quarantined },
                    "lines": { "read": s.lines_read, "accepted": s.lines_accepted, "quarantined": s.lines_quarantined },
                    "error": s.error,
                })
            })
            .collect();
    }
    con.emit(&out)?;
    Ok(Outcome::Done)
}

fn print_summary(s: &StoreSummary, ctx: &Ctx, con: Console) {
    if let Some(p) = &ctx.project {
        say!(con, "project: {}", p.file_path().display());
    }
    say!(
        con,
        "store: {} ({} files, {:.1} MB)",
        s.data_dir,
        group_vi(s.files as i64),
        s.bytes as f64 / 1e6
    );
    say!(con, "snapshot {}:", s.snapshot.id);
    for t in &s.tables {
        say!(
            con,
            "  {:<11} version {:>5}  {:>7} files {:>10.1} MB {:>14} rows",
            t.table,
            t.version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "–".into()),
            group_vi(t.files as i64),
            t.bytes as f64 / 1e6,
            group_vi(t.rows as i64)
        );
    }
    let by_status: Vec<String> = s
        .sources
        .iter()
        .map(|c| format!("{} {}", group_vi(c.sources), c.status))
        .collect();
    say!(
        con,
        "sources: {}",
        if by_status.is_empty() {
            "none".to_string()
        } else {
            by_status.join(", ")
        }
    );
    say!(
        con,
        "current visits {}, lines {}",
        group_vi(s.visits as i64),
        group_vi(s.lines as i64)
    );
    if !s.provinces.is_empty() {
        let names: BTreeMap<String, String> = bhyt::reference::Reference::builtin()
            .provinces()
            .map(|p| (p.current_code.clone(), p.current_name.clone()))
            .collect();
        say!(con, "by province (discharge dates):");
        for p in &s.provinces {
            say!(
                con,
                "  {:<4} {:<24} {:>5} facilities {:>12} visits  {} … {}",
                p.province,
                names.get(&p.province).map(String::as_str).unwrap_or(""),
                p.facilities,
                group_vi(p.visits as i64),
                p.first_discharge.as_deref().unwrap_or("?"),
                p.last_discharge.as_deref().unwrap_or("?")
            );
        }
    }
    let quarantined: u64 = s.quarantine.iter().map(|q| q.records).sum();
    say!(
        con,
        "quarantine: {} records{}",
        group_vi(quarantined as i64),
        if quarantined > 0 { ", by rule:" } else { "" }
    );
    for q in &s.quarantine {
        say!(
            con,
            "  {:<10} {:<28} {:>10}",
            q.table,
            q.rule,
            group_vi(q.records as i64)
        );
    }
    if s.last_runs.is_empty() {
        say!(con, "last runs: none recorded");
    } else {
        say!(con, "last runs:");
        for r in &s.last_runs {
            say!(
                con,
                "  {:<9} {}  {:>7.1} s  {}",
                r.stage,
                r.finished_at,
                r.seconds,
                r.inputs
            );
        }
    }
}
