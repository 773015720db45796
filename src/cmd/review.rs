//! `bhyt review`: reviewers' decisions on alerts, one by one or from a
//! reviewed alerts.csv/.xlsx, and the week's list with its decisions.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::{Ctx, Outcome};

#[derive(Args)]
pub struct ReviewArgs {
    /// Alert lifecycle database written by `bhyt detect`. Default: the project's, else `out/alerts.sqlite`.
    #[arg(long)]
    pub alerts_db: Option<PathBuf>,
    /// Alert id (first column of alerts.csv).
    #[arg(long, requires = "decision")]
    pub alert: Option<String>,
    /// confirmed, explained or dismissed (Vietnamese accepted: xác nhận, giải trình, bác bỏ).
    #[arg(long)]
    pub decision: Option<String>,
    #[arg(long, default_value = "")]
    pub comment: String,
    #[arg(long, default_value = "")]
    pub reviewer: String,
    /// A reviewed alerts.csv or alerts.xlsx (columns alert_id, decision, comment, reviewer).
    #[arg(long, conflicts_with = "alert")]
    pub import: Option<PathBuf>,
    /// List the alerts of a week (default: the latest run) with their decisions.
    #[arg(long)]
    pub list: bool,
    #[arg(long)]
    pub as_of: Option<chrono::NaiveDate>,
}

pub fn run(a: ReviewArgs, ctx: &Ctx) -> Result<Outcome> {
    let alerts_db = ctx.alerts_db(a.alerts_db);
    use bhyt::alerts::{lifecycle::read_reviews, AlertDb, Decision};
    anyhow::ensure!(
        alerts_db.exists(),
        "{} does not exist: run `bhyt detect` first",
        alerts_db.display()
    );
    let db = AlertDb::open(&alerts_db)?;
    if let (Some(id), Some(d)) = (&a.alert, &a.decision) {
        let decision = Decision::parse(d)
            .with_context(|| format!("decision `{d}`: use confirmed, explained or dismissed"))?;
        let added = db.decide(id, decision, &a.comment, &a.reviewer)?;
        println!(
            "{id}: {}{}",
            decision.as_str(),
            if added { "" } else { " (already recorded)" }
        );
    }
    if let Some(path) = &a.import {
        let rows = read_reviews(path)?;
        let (added, known) = db.import(&rows, &path.display().to_string())?;
        println!(
            "{}: {} decisions read, {} new, {} already recorded",
            path.display(),
            rows.len(),
            added,
            known
        );
    }
    if a.list || (a.alert.is_none() && a.import.is_none()) {
        let week = match a.as_of {
            Some(d) => Some(d.to_string()),
            None => db.latest_run()?,
        };
        let Some(week) = week else {
            println!("no run recorded");
            return Ok(Outcome::Done);
        };
        println!("alerts of the week of {week}:");
        for w in db.week(&week)? {
            println!(
                "  {:<40} {:<10} {:>5.1} {}{}",
                w.alert_id,
                w.state,
                w.severity,
                w.decision.unwrap_or_else(|| "-".into()),
                if w.suppressed { " (suppressed)" } else { "" }
            );
        }
    }
    Ok(Outcome::Done)
}
