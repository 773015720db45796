//! `bhyt features`, `bhyt detect`, `bhyt report`: the weekly stages after
//! ingest, each a thin layer over its library module.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use bhyt::features::{self, FeatureConfig, Period};
use bhyt::store::Store;

use super::{load_config, p, say, Console, Ctx, Outcome};

#[derive(Args)]
pub struct FeaturesArgs {
    /// Claims store. Default: the project's, else `data`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration (FeatureConfig; see models/features.toml); flags below override it.
    /// Default: the project's features_config.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Period length.
    #[arg(long, value_enum)]
    pub period: Option<Period>,
    /// First discharge date to include (yyyy-mm-dd).
    #[arg(long)]
    pub from: Option<chrono::NaiveDate>,
    /// Last discharge date to include (yyyy-mm-dd).
    #[arg(long)]
    pub to: Option<chrono::NaiveDate>,
    /// Output folder (facility_period, province_outflow, budget, peer_groups .parquet).
    /// Default: `<out_dir>/features` of the project, else `out/features`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Memory budget, MiB (default 4096, or memory_mb of the config): the claims are
    /// read in groups of facilities that fit in it.
    #[arg(long)]
    pub memory_mb: Option<u64>,
    /// Only the core indicators (core.parquet): the quick view.
    #[arg(long)]
    pub core: bool,
}

pub fn features(a: FeaturesArgs, ctx: &Ctx) -> Result<Outcome> {
    let data_dir = ctx.data_dir(a.data_dir);
    let out = ctx.out(a.out, "features");
    let mut cfg: FeatureConfig =
        load_config(ctx.config(a.config, |f| &f.features_config).as_deref())?;
    if let Some(p) = a.period {
        cfg.period = p;
    }
    cfg.from = a.from.or(cfg.from);
    cfg.to = a.to.or(cfg.to);
    cfg.memory_mb = a.memory_mb.unwrap_or(cfg.memory_mb);
    let store = ctx.open_store(&data_dir)?;
    let t = Instant::now();
    let rows = if a.core {
        let mut df = features::core_indicators(&store, &cfg)?.collect()?;
        bhyt::store::write_parquet_atomic(&mut df, &out.join("core.parquet"))?;
        df.height()
    } else {
        write_features(&store, &cfg, &out)?
    };
    let secs = t.elapsed().as_secs_f64();
    println!(
        "features: {rows} facility-{} rows in {secs:.2} s → {}",
        cfg.period.name(),
        out.display()
    );
    record_features(&data_dir, &cfg, rows, secs, &out);
    Ok(Outcome::Done)
}

pub fn write_features(store: &Store, cfg: &FeatureConfig, out: &Path) -> Result<usize> {
    let mut tables = features::compute(store, cfg)?;
    features::write(&mut tables, out)?;
    Ok(tables.facility_period.height())
}

pub fn record_features(data_dir: &Path, cfg: &FeatureConfig, rows: usize, secs: f64, out: &Path) {
    super::record_run(
        Some(data_dir),
        "features",
        secs,
        json!({ "period": cfg.period.name(), "from": cfg.from, "to": cfg.to }),
        &json!({ "rows": rows, "out": p(out) }),
    );
}

#[derive(Args)]
pub struct DetectArgs {
    /// facility_period.parquet written by `bhyt features` (weekly for the weekly run).
    /// Default: the project's `<out_dir>/features/facility_period.parquet`, else under `out/`.
    #[arg(long)]
    pub features: Option<PathBuf>,
    /// Claims store: enables the claim-level checks and the top claims, services,
    /// departments and prescribers of each alert. Default: the project's.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Saved model (JSON). Scored with as is; fitted and written when missing or with --fit.
    /// Default: the project's model, else the data's own, `<data-dir>/models/detector.json`
    /// (without a store: `models/detector.json` beside the features table).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Fit the model (again) on this table before scoring.
    #[arg(long)]
    pub fit: bool,
    /// Last day of the training range (default: the first 40 % of the periods).
    #[arg(long)]
    pub train_to: Option<chrono::NaiveDate>,
    /// TOML configuration (DetectConfig; see models/detector.toml), used when fitting.
    /// Default: the project's detect_config.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Period whose alerts are raised (default: the last period of the table).
    #[arg(long)]
    pub as_of: Option<chrono::NaiveDate>,
    /// Alert lifecycle database (SQLite). Default: the project's, else `out/alerts.sqlite`.
    #[arg(long)]
    pub alerts_db: Option<PathBuf>,
    /// Output folder: scores.parquet, alerts.parquet, alerts.csv. Default `<out_dir>/detect`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Language of the reasons (vi, en). Default: the project's, else vi.
    #[arg(long, value_enum)]
    pub lang: Option<bhyt::detect::Lang>,
    /// Memory budget of the claim-level steps, MiB (default 4096, or memory_mb of the
    /// config): the store is read in groups of facilities that fit in it.
    #[arg(long)]
    pub memory_mb: Option<u64>,
    /// Print one JSON object (the run and its alerts) on stdout; the text goes to stderr.
    #[arg(long)]
    pub json: bool,
}

/// The options of a detection run from its flags and the project.
pub fn detect_options(a: DetectArgs, ctx: &Ctx) -> Result<bhyt::alerts::RunOptions> {
    let mut cfg: bhyt::detect::DetectConfig =
        load_config(ctx.config(a.config, |f| &f.detect_config).as_deref())?;
    cfg.memory_mb = a.memory_mb.unwrap_or(cfg.memory_mb);
    let features = ctx.features_table(a.features);
    let data_dir = ctx.data_dir_if_known(a.data_dir);
    let model = ctx.model(a.model, data_dir.as_deref(), &features);
    Ok(bhyt::alerts::RunOptions {
        features,
        data_dir,
        store_snapshot: ctx.as_of_snapshot,
        model,
        fit: a.fit,
        train_to: a.train_to,
        config: cfg,
        as_of: a.as_of,
        alerts_db: ctx.alerts_db(a.alerts_db),
        out: ctx.out(a.out, "detect"),
        lang: ctx.lang(a.lang),
        progress: true,
    })
}

pub fn detect(a: DetectArgs, ctx: &Ctx) -> Result<Outcome> {
    let con = Console { json: a.json };
    let opts = detect_options(a, ctx)?;
    let summary = run_detect(&opts, con)?;
    con.emit(&summary)?;
    Ok(Outcome::Done)
}

/// Runs detection, prints and records it; returns its JSON summary.
pub fn run_detect(opts: &bhyt::alerts::RunOptions, con: Console) -> Result<serde_json::Value> {
    let t = Instant::now();
    let r = bhyt::alerts::run(opts)?;
    let secs = t.elapsed().as_secs_f64();
    print_detect_report(&r, secs, opts, con);
    let summary = json!({
        "model": p(&opts.model),
        "fitted": r.fitted,
        "trained": { "period": r.model_meta.period, "from": r.model_meta.training_from, "to": r.model_meta.training_to },
        "scored": r.scored,
        "as_of": r.as_of,
        "as_of_note": r.as_of_note,
        "alerts": { "listed": r.alerts, "new": r.new, "continuing": r.continuing, "suppressed": r.suppressed, "resolved": r.resolved },
        "top": r.top,
        "out": p(&opts.out),
        "seconds": secs,
    });
    super::record_run(
        opts.data_dir.as_deref(),
        "detect",
        secs,
        json!({ "features": p(&opts.features), "model": p(&opts.model), "as_of": opts.as_of }),
        &summary,
    );
    Ok(summary)
}

pub fn print_detect_report(
    r: &bhyt::alerts::RunReport,
    secs: f64,
    o: &bhyt::alerts::RunOptions,
    con: Console,
) {
    say!(
        con,
        "model: {} ({}, trained {}..{}){}",
        o.model.display(),
        r.model_meta.period,
        r.model_meta.training_from,
        r.model_meta.training_to,
        if r.fitted { ", fitted now" } else { "" }
    );
    if let Some(n) = &r.as_of_note {
        say!(con, "{n}");
    }
    say!(
        con,
        "scored {} facility-periods; as of {}: {} alerts ({} new, {} continuing, {} suppressed by a review), {} resolved",
        r.scored,
        r.as_of,
        r.alerts,
        r.new,
        r.continuing,
        r.suppressed,
        r.resolved
    );
    for line in r.top.iter().take(10) {
        say!(con, "  {line}");
    }
    say!(con, "{:.2} s → {}", secs, o.out.display());
}

#[derive(Args)]
pub struct ReportArgs {
    /// Output folder of `bhyt detect`. Default `<out_dir>/detect`.
    #[arg(long)]
    pub detect_dir: Option<PathBuf>,
    /// The features table the alerts were raised on. Default as for `detect`.
    #[arg(long)]
    pub features: Option<PathBuf>,
    /// The detector model (control limits in the charts). Default as for `detect`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output folder of `bhyt forecast` (the planner's page), if any. Default `<out_dir>/forecast`.
    #[arg(long)]
    pub forecast_dir: Option<PathBuf>,
    /// Claims store (top claims and services on the audit plan's evidence pages).
    /// Default: the project's.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Audits the inspection team can do. Default: the project's capacity, else 10.
    #[arg(long)]
    pub capacity: Option<usize>,
    /// Output folder of the pages. Default `<out_dir>/report`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Language of the pages (vi, en). Default: the project's, else vi.
    #[arg(long, value_enum)]
    pub lang: Option<bhyt::detect::Lang>,
    /// Memory budget, MiB, of the evidence pages' pass over the claims
    /// (default 4096).
    #[arg(long)]
    pub memory_mb: Option<u64>,
}

pub fn report_options(a: ReportArgs, ctx: &Ctx) -> bhyt::report::ReportOptions {
    let features = ctx.features_table(a.features);
    let data_dir = ctx.data_dir_if_known(a.data_dir);
    let model = ctx.model(a.model, data_dir.as_deref(), &features);
    bhyt::report::ReportOptions {
        detect_dir: ctx.out(a.detect_dir, "detect"),
        features,
        model: Some(model),
        forecast_dir: Some(ctx.out(a.forecast_dir, "forecast")),
        data_dir,
        store_snapshot: ctx.as_of_snapshot,
        capacity: ctx.capacity(a.capacity),
        memory_mb: a
            .memory_mb
            .unwrap_or(bhyt::store::chunks::DEFAULT_MEMORY_MB),
        out: ctx.out(a.out, "report"),
        lang: ctx.lang(a.lang),
    }
}

pub fn report(a: ReportArgs, ctx: &Ctx) -> Result<Outcome> {
    run_report(&report_options(a, ctx), Console { json: false })?;
    Ok(Outcome::Done)
}

/// Writes the pages, prints and records them; returns the JSON summary.
pub fn run_report(o: &bhyt::report::ReportOptions, con: Console) -> Result<serde_json::Value> {
    let t = Instant::now();
    let r = bhyt::report::run(o)?;
    let secs = t.elapsed().as_secs_f64();
    say!(con, "{} alerts listed in {secs:.2} s", r.alerts);
    for page in &r.pages {
        say!(con, "  {}", page.display());
    }
    let summary = json!({
        "alerts": r.alerts,
        "pages": r.pages.iter().map(|x| p(x)).collect::<Vec<_>>(),
        "seconds": secs,
    });
    super::record_run(
        o.data_dir.as_deref(),
        "report",
        secs,
        json!({ "detect_dir": p(&o.detect_dir), "features": p(&o.features) }),
        &summary,
    );
    Ok(summary)
}
