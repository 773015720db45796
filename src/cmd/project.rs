//! `bhyt init` (a project folder with its `bhyt.toml`) and `bhyt weekly`
//! (what a scheduler calls: ingest what is new → features → detect →
//! forecast → report, for the last complete week).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use chrono::{Datelike, Duration, NaiveDate};
use clap::Args;
use serde_json::json;

use bhyt::features::{FeatureConfig, Period};
use bhyt::forecast::ForecastConfig;
use bhyt::ingest::IngestOptions;
use bhyt::project::Project;
use bhyt::store::Store;

use super::ingest::{ingest_into, KeyArgs};
use super::stages::{record_features, report_options, run_detect, run_report, write_features};
use super::{load_config, p, say, spinner, Console, Ctx, Outcome, UsageError};

#[derive(Args)]
pub struct InitArgs {
    /// Folder of the new project (created if needed).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

pub fn init(a: InitArgs) -> Result<Outcome> {
    let p = Project::init(&a.dir).map_err(|e| UsageError(e.to_string()))?;
    println!("project: {}", p.file_path().display());
    println!("  claims store   {}", p.data_dir().display());
    println!(
        "  new claims     {}  (put the week's files here)",
        p.claims_dir().display()
    );
    println!("  outputs        {}", p.out_dir().display());
    println!(
        "next: set registry/budgets and key_file in {} (the key's location, never the key), then `bhyt weekly`",
        p.file_path().display()
    );
    Ok(Outcome::Done)
}

#[derive(Args)]
pub struct WeeklyArgs {
    /// The week to run (any day of it; weeks run Monday to Sunday). Default:
    /// the last complete week of the data, and not later than last Sunday.
    #[arg(long)]
    pub week_of: Option<NaiveDate>,
    /// Fit the detector again (default: fit only when the project has no model yet).
    #[arg(long)]
    pub refit: bool,
    /// Hide the ingest's progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print one JSON object (every stage's summary) on stdout; the text goes to stderr.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// Monday and Sunday of the week to run: the one holding `week_of`, else
/// the last complete week that ends by `limit`.
pub fn week(week_of: Option<NaiveDate>, limit: NaiveDate) -> (NaiveDate, NaiveDate) {
    let end = match week_of {
        Some(d) => d + Duration::days(6 - i64::from(d.weekday().num_days_from_monday())),
        None => {
            let back = (i64::from(limit.weekday().num_days_from_monday()) + 1) % 7;
            limit - Duration::days(back)
        }
    };
    (end - Duration::days(6), end)
}

pub fn weekly(a: WeeklyArgs, ctx: &Ctx) -> Result<Outcome> {
    let con = Console { json: a.json };
    let Some(project) = &ctx.project else {
        return Err(UsageError(format!(
            "no {} in this folder or above: create one with `bhyt init DIR`",
            bhyt::project::FILE_NAME
        ))
        .into());
    };
    let started = Instant::now();
    let pseudo = a.key.pseudonymizer(ctx)?;
    let data_dir = project.data_dir();

    say!(con, "[1/5] ingest {}", project.claims_dir().display());
    let opts = IngestOptions {
        inputs: vec![project.claims_dir()],
        registry: project.optional(&project.file.registry),
        budgets: project.optional(&project.file.budgets),
        progress: !a.quiet && !a.json,
        ..Default::default()
    };
    let (ingested, outcome) = ingest_into(&data_dir, &opts, &pseudo, con)?;

    let store = Store::open(&data_dir)?;
    let last_day = store
        .last_discharge()?
        .ok_or_else(|| anyhow::anyhow!("the store holds no visits yet: nothing to run"))?;
    let yesterday = chrono::Local::now().date_naive() - Duration::days(1);
    let (monday, sunday) = week(a.week_of, last_day.min(yesterday));
    say!(con, "week {monday} … {sunday} (data to {last_day})");

    let t = Instant::now();
    let mut fcfg: FeatureConfig =
        load_config(project.optional(&project.file.features_config).as_deref())?;
    fcfg.period = Period::Week;
    fcfg.to = Some(sunday);
    let fdir = project.out_dir().join("features");
    let spin = spinner("features");
    let rows = write_features(&store, &fcfg, &fdir)?;
    spin.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    say!(
        con,
        "[2/5] features: {rows} facility-week rows in {secs:.2} s → {}",
        fdir.display()
    );
    record_features(&data_dir, &fcfg, rows, secs, &fdir);

    say!(con, "[3/5] detect");
    let mut dopts = super::stages::detect_options(
        super::stages::DetectArgs {
            features: None,
            data_dir: None,
            model: None,
            fit: a.refit,
            train_to: None,
            config: None,
            as_of: Some(monday),
            alerts_db: None,
            out: None,
            lang: None,
            memory_mb: None,
            json: a.json,
        },
        ctx,
    )?;
    dopts.progress = !a.json;
    let detected = run_detect(&dopts, con)?;

    let t = Instant::now();
    let fcdir = project.out_dir().join("forecast");
    let cfg: ForecastConfig =
        load_config(project.optional(&project.file.forecast_config).as_deref())?;
    let spin = spinner("forecast");
    let forecast = bhyt::forecast::history(&store, Some(sunday)).and_then(|h| {
        let (f, mut tables) = bhyt::forecast::run(&h, &cfg)?;
        bhyt::forecast::write(&h, &f, &mut tables, &fcdir, project.file.lang)
    });
    spin.finish_and_clear();
    let forecasted = match forecast {
        Ok(n) => {
            let secs = t.elapsed().as_secs_f64();
            say!(
                con,
                "[4/5] forecast: {n} series in {secs:.2} s → {}",
                fcdir.display()
            );
            let s = json!({ "series": n, "out": p(&fcdir), "seconds": secs });
            super::record_run(
                Some(&data_dir),
                "forecast",
                secs,
                json!({ "as_of": sunday }),
                &s,
            );
            s
        }
        // Forecasting needs 13 months of history: a young store skips it.
        Err(e) => {
            say!(con, "[4/5] forecast skipped: {e}");
            json!({ "skipped": e.to_string() })
        }
    };

    say!(con, "[5/5] report");
    let ropts = report_options(
        super::stages::ReportArgs {
            detect_dir: None,
            features: None,
            model: None,
            forecast_dir: None,
            data_dir: None,
            capacity: None,
            out: None,
            lang: None,
            memory_mb: None,
        },
        ctx,
    );
    let reported = run_report(&ropts, con)?;
    let summary = json!({
        "project": p(&project.file_path()),
        "week": { "from": monday, "to": sunday },
        "data_to": last_day,
        "ingest": ingested,
        "features": { "rows": rows, "out": p(&fdir) },
        "detect": detected,
        "forecast": forecasted,
        "report": reported,
        "partial_input": outcome == Outcome::Partial,
        "seconds": started.elapsed().as_secs_f64(),
    });
    super::record_run(
        Some(&data_dir),
        "weekly",
        started.elapsed().as_secs_f64(),
        json!({ "week": { "from": monday, "to": sunday } }),
        &json!({ "alerts": detected["alerts"], "partial_input": outcome == Outcome::Partial }),
    );
    con.emit(&summary)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_last_complete_week_ends_on_a_sunday() {
        // 2024-03-10 is a Sunday: its week is complete.
        assert_eq!(
            week(None, d("2024-03-10")),
            (d("2024-03-04"), d("2024-03-10"))
        );
        // A Wednesday: the week before.
        assert_eq!(
            week(None, d("2024-03-13")),
            (d("2024-03-04"), d("2024-03-10"))
        );
        // A Monday: the week that ended the day before.
        assert_eq!(
            week(None, d("2024-03-11")),
            (d("2024-03-04"), d("2024-03-10"))
        );
        // Any day of a chosen week names that week.
        assert_eq!(
            week(Some(d("2024-03-07")), d("2030-01-01")),
            (d("2024-03-04"), d("2024-03-10"))
        );
    }
}
