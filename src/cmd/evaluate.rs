//! `bhyt evaluate`: a detection run against a labels file, or the family
//! of generated worlds (issue 13), each run end to end and evaluated.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use bhyt::evaluate::family::{self, Targets};

use super::{say, Console, Ctx, Outcome};

#[derive(Args)]
pub struct EvaluateArgs {
    /// scores.parquet written by `bhyt detect`. Default: the project's
    /// `<out_dir>/detect/scores.parquet`, else under `out/`.
    #[arg(long)]
    scores: Option<PathBuf>,
    /// labels.csv (facility_code, start, end, type, benign, true_excess_vnd).
    #[arg(long, required_unless_present_any = ["family", "from_decisions"])]
    labels: Option<PathBuf>,
    /// Instead: the precision of past weeks' alerts by the reviewers'
    /// decisions (confirmed / decided) from the alert database.
    #[arg(long)]
    from_decisions: bool,
    /// Alert lifecycle database (with --from-decisions). Default: the project's, else `out/alerts.sqlite`.
    #[arg(long)]
    alerts_db: Option<PathBuf>,
    /// Days after a label's end during which an alert still counts for it.
    #[arg(long, default_value_t = 56)]
    grace_days: i64,
    /// Also write the per-label outcomes as JSON here.
    #[arg(long)]
    outcomes: Option<PathBuf>,
    /// Print one JSON object (the evaluation, or the family's rows) on
    /// stdout; the table goes to stderr.
    #[arg(long)]
    json: bool,
    /// Instead: generate, ingest, detect and evaluate each world of the
    /// family (prices per claim, tender prices, 2 % volume, small commune
    /// stations, a late batch, another seed) and print the table with the
    /// targets each world misses. Needs no data.
    #[arg(long)]
    family: bool,
    /// Family: volume of the base world (the scale scenarios set their own).
    #[arg(long, default_value_t = 0.3)]
    scale: f64,
    /// Family: also run the full-volume province (several minutes, ≈ 9 GB
    /// of XML while it runs).
    #[arg(long)]
    full: bool,
    /// Family: only these worlds (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Family: working folder (each world's files are removed after it
    /// unless --keep).
    #[arg(long, default_value = "out/evaluate-family")]
    work: PathBuf,
    #[arg(long)]
    keep: bool,
}

pub fn run(a: EvaluateArgs, ctx: &Ctx) -> Result<Outcome> {
    let con = Console { json: a.json };
    if a.family {
        return run_family(&a, con);
    }
    if a.from_decisions {
        return from_decisions(ctx.alerts_db(a.alerts_db.clone()), con);
    }
    let Some(labels) = &a.labels else {
        bail!("--labels is required without --family");
    };
    let labels = bhyt::evaluate::read_labels(labels)?;
    let scores_path = a
        .scores
        .clone()
        .unwrap_or_else(|| ctx.out(None, "detect").join("scores.parquet"));
    let scores = bhyt::evaluate::read_scores(&scores_path)?;
    let e = bhyt::evaluate::evaluate(&scores, &labels, a.grace_days);
    say!(con, "{}", bhyt::evaluate::render(&e).trim_end());
    if let Some(p) = &a.outcomes {
        let json = serde_json::to_string_pretty(&e)?;
        bhyt::store::write_atomic(p, json.as_bytes())?;
    }
    con.emit(&serde_json::to_value(&e)?)?;
    Ok(Outcome::Done)
}

fn run_family(a: &EvaluateArgs, con: Console) -> Result<Outcome> {
    let t = Targets::default();
    let worlds: Vec<_> = family::scenarios(a.scale, a.full)
        .into_iter()
        .filter(|s| a.only.is_empty() || a.only.iter().any(|o| o == s.name))
        .collect();
    if worlds.is_empty() {
        bail!("no world named {:?}", a.only);
    }
    std::fs::create_dir_all(&a.work)?;
    let mut rows = Vec::new();
    for s in &worlds {
        eprintln!("world {}: {}", s.name, s.what);
        let r = family::run_world(s, &a.work, a.keep, &t)?;
        eprintln!("  {:.0} s", r.seconds);
        rows.push(r);
    }
    say!(con, "{}", family::render(&rows, &t).trim_end());
    con.emit(&serde_json::json!({ "worlds": rows }))?;
    Ok(Outcome::Done)
}

fn from_decisions(db: PathBuf, con: Console) -> Result<Outcome> {
    anyhow::ensure!(
        db.exists(),
        "{} does not exist: run `bhyt detect` first",
        db.display()
    );
    let weeks = bhyt::alerts::AlertDb::open(&db)?.precision_by_week()?;
    say!(
        con,
        "{:<12} {:>7} {:>8} {:>10} {:>10}",
        "week",
        "alerts",
        "decided",
        "confirmed",
        "precision"
    );
    let (mut decided, mut confirmed) = (0, 0);
    for w in &weeks {
        decided += w.decided;
        confirmed += w.confirmed;
        say!(
            con,
            "{:<12} {:>7} {:>8} {:>10} {:>10}",
            w.as_of,
            w.alerts,
            w.decided,
            w.confirmed,
            w.precision
                .map_or("–".to_string(), |p| format!("{:.1} %", 100.0 * p))
        );
    }
    let overall = (decided > 0).then(|| confirmed as f64 / decided as f64);
    say!(
        con,
        "all weeks: {confirmed} confirmed of {decided} decided{}",
        overall.map_or(String::new(), |p| format!(" ({:.1} %)", 100.0 * p))
    );
    con.emit(&serde_json::json!({ "weeks": weeks, "decided": decided, "confirmed": confirmed, "precision": overall }))?;
    Ok(Outcome::Done)
}
