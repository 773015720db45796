//! `bhyt`: the command-line front of the engine. Each subcommand is a stage
//! of the pipeline; the work is in the library.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use bhyt::features::{self, FeatureConfig, Period};
use bhyt::format::group_vi;
use bhyt::generate::{generate, GenConfig};
use bhyt::ingest::{self, IngestOptions, IngestReport};
use bhyt::privacy::Pseudonymizer;
use bhyt::store::Store;

mod cmd;

/// mimalloc: the ingest allocates many small strings on several threads,
/// where glibc malloc spends a quarter of the time in lock contention.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "bhyt",
    version,
    about = "BHYT cost-anomaly engine: claims → indicators → warnings → forecasts → reports"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load claims (Decision 130 XML envelopes or bare documents, CSV, Parquet; plain, .gz or .zip) into the claims store.
    Ingest(IngestArgs),
    /// Write synthetic claims (Decision 130 envelopes), a facility registry and budgets, deterministically from a seed.
    Generate(GenerateArgs),
    /// Compute per-facility indicators by period from the claims store (Parquet).
    Features(FeaturesArgs),
    /// Score facilities for sustained, peer-adjusted rises of their indicators (first detector).
    Detect(DetectArgs),
    /// Compare a facility ranking with a labels file: ROC-AUC, average precision, precision at k.
    Evaluate(cmd::evaluate::EvaluateArgs),
    /// Forecast next year's spending per facility and province with intervals, project this year against the budget, backtest.
    Forecast(cmd::forecast::ForecastArgs),
    /// Write the users' pages (HTML): the weekly alert list and the planner's page.
    Report(ReportArgs),
    /// Record reviewer decisions on alerts (confirmed, explained, dismissed), or import a reviewed alerts.csv/.xlsx.
    Review(ReviewArgs),
    /// Show what the store holds: sources in the manifest and quarantine counts.
    Status(StatusArgs),
    /// Run the pipeline on the bundled synthetic sample (no setup needed).
    Demo(DemoArgs),
}

#[derive(Args)]
struct KeyArgs {
    /// File holding the pseudonymisation key (else $BHYT_PSEUDONYM_KEY or $BHYT_PSEUDONYM_KEY_FILE).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Use the fixed demo key. Only for synthetic data: hashes made with it are not private.
    #[arg(long)]
    demo_key: bool,
}

#[derive(Args)]
struct IngestArgs {
    /// Files or folders to read (recursively).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Data directory of the claims store.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Facility registry CSV (facility_code, name, province_code, level, grade, ownership, kind).
    #[arg(long)]
    registry: Option<PathBuf>,
    /// Yearly budgets CSV (facility_code, year, budget_vnd).
    #[arg(long)]
    budgets: Option<PathBuf>,
    /// TOML column mapping for CSV/Parquet extracts with their own column names.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Directory overriding the bundled reference tables (provinces.csv, service_groups.csv, visit_types.csv).
    #[arg(long)]
    reference_dir: Option<PathBuf>,
    /// Largest decompressed size of one .gz file or zip member, in bytes
    /// (past it: a decompression bomb, that input rejected). Default 16 GiB.
    #[arg(long, default_value_t = 16 << 30)]
    max_decompressed_bytes: u64,
    /// Longest XML field (text between two tags, e.g. one inline document),
    /// in bytes; a file with a longer one is rejected. Default 32 MiB.
    #[arg(long, default_value_t = 32 << 20)]
    max_text_bytes: u64,
    /// A damaged envelope: ingest the complete HOSO records before the
    /// damage (salvage) or reject the whole file (reject).
    #[arg(long, value_enum, default_value = "salvage")]
    damaged: bhyt::ingest::Damaged,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    key: KeyArgs,
}

#[derive(Args)]
struct GenerateArgs {
    /// TOML configuration (see datasets/generator/); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "out/generated")]
    out: PathBuf,
    #[arg(long)]
    seed: Option<u64>,
    /// Number of provinces.
    #[arg(long)]
    provinces: Option<usize>,
    /// Volume multiplier (1.0 ≈ 1.53 M visits per province-year).
    #[arg(long)]
    scale: Option<f64>,
    /// First day, yyyy-mm-dd.
    #[arg(long)]
    start: Option<chrono::NaiveDate>,
    /// Number of days.
    #[arg(long)]
    days: Option<u32>,
    /// Compute the totals and labels without writing claims files.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct FeaturesArgs {
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// TOML configuration (FeatureConfig; see models/features.toml); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Period length.
    #[arg(long, value_enum)]
    period: Option<Period>,
    /// First discharge date to include (yyyy-mm-dd).
    #[arg(long)]
    from: Option<chrono::NaiveDate>,
    /// Last discharge date to include (yyyy-mm-dd).
    #[arg(long)]
    to: Option<chrono::NaiveDate>,
    /// Output folder (facility_period, province_outflow, budget, peer_groups .parquet).
    #[arg(long, default_value = "out/features")]
    out: PathBuf,
    /// Only the core indicators (core.parquet): the quick view.
    #[arg(long)]
    core: bool,
}

#[derive(Args)]
struct DetectArgs {
    /// facility_period.parquet written by `bhyt features` (weekly for the weekly run).
    #[arg(long, default_value = "out/features/facility_period.parquet")]
    features: PathBuf,
    /// Claims store: enables the claim-level checks and the top claims, services,
    /// departments and prescribers of each alert.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Saved model (JSON). Scored with as is; fitted and written when missing or with --fit.
    /// Default: the data's own, `<data-dir>/models/detector.json` (without
    /// --data-dir: `models/detector.json` beside the features table).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Fit the model (again) on this table before scoring.
    #[arg(long)]
    fit: bool,
    /// Last day of the training range (default: the first 40 % of the periods).
    #[arg(long)]
    train_to: Option<chrono::NaiveDate>,
    /// TOML configuration (DetectConfig; see models/detector.toml), used when fitting.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Period whose alerts are raised (default: the last period of the table).
    #[arg(long)]
    as_of: Option<chrono::NaiveDate>,
    /// Alert lifecycle database (SQLite).
    #[arg(long, default_value = "out/alerts.sqlite")]
    alerts_db: PathBuf,
    /// Output folder: scores.parquet, alerts.parquet, alerts.csv.
    #[arg(long, default_value = "out/detect")]
    out: PathBuf,
    /// Language of the reasons.
    #[arg(long, value_enum, default_value = "vi")]
    lang: bhyt::detect::Lang,
}

#[derive(Args)]
struct ReportArgs {
    /// Output folder of `bhyt detect`.
    #[arg(long, default_value = "out/detect")]
    detect_dir: PathBuf,
    /// The features table the alerts were raised on.
    #[arg(long, default_value = "out/features/facility_period.parquet")]
    features: PathBuf,
    /// The detector model (control limits in the charts). Default: as for
    /// `detect` (`<data-dir>/models/detector.json`, else beside the features).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output folder of `bhyt forecast` (the planner's page), if any.
    #[arg(long, default_value = "out/forecast")]
    forecast_dir: PathBuf,
    /// Claims store (top claims and services on the audit plan's evidence pages).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Audits the inspection team can do.
    #[arg(long, default_value_t = 10)]
    capacity: usize,
    #[arg(long, default_value = "out/report")]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "vi")]
    lang: bhyt::detect::Lang,
}

#[derive(Args)]
struct ReviewArgs {
    /// Alert lifecycle database written by `bhyt detect`.
    #[arg(long, default_value = "out/alerts.sqlite")]
    alerts_db: PathBuf,
    /// Alert id (first column of alerts.csv).
    #[arg(long, requires = "decision")]
    alert: Option<String>,
    /// confirmed, explained or dismissed (Vietnamese accepted: xác nhận, giải trình, bác bỏ).
    #[arg(long)]
    decision: Option<String>,
    #[arg(long, default_value = "")]
    comment: String,
    #[arg(long, default_value = "")]
    reviewer: String,
    /// A reviewed alerts.csv or alerts.xlsx (columns alert_id, decision, comment, reviewer).
    #[arg(long, conflicts_with = "alert")]
    import: Option<PathBuf>,
    /// List the alerts of a week (default: the latest run) with their decisions.
    #[arg(long)]
    list: bool,
    #[arg(long)]
    as_of: Option<chrono::NaiveDate>,
}

#[derive(Args)]
struct StatusArgs {
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
}

#[derive(Args)]
struct DemoArgs {
    /// Where to write the demo store and outputs.
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    /// The bundled sample.
    #[arg(long, default_value = "datasets/sample")]
    sample: PathBuf,
    /// Language of the alert reasons.
    #[arg(long, value_enum, default_value = "vi")]
    lang: bhyt::detect::Lang,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BHYT_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Ingest(a) => cmd_ingest(a),
        Command::Generate(a) => cmd_generate(a),
        Command::Features(a) => cmd_features(a),
        Command::Detect(a) => cmd_detect(a),
        Command::Evaluate(a) => cmd::evaluate::run(a),
        Command::Forecast(a) => cmd::forecast::run(a),
        Command::Report(a) => cmd_report(a),
        Command::Review(a) => cmd_review(a),
        Command::Status(a) => cmd_status(a),
        Command::Demo(a) => cmd_demo(a),
    }
}

fn cmd_ingest(a: IngestArgs) -> Result<()> {
    let pseudo = Pseudonymizer::from_environment(a.key.key_file.as_deref(), a.key.demo_key)?;
    let store = Store::open(&a.data_dir)?;
    let opts = IngestOptions {
        inputs: a.inputs,
        registry: a.registry,
        budgets: a.budgets,
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
    let t = Instant::now();
    let report = ingest::run(&store, &opts, &pseudo)?;
    print_report(&report, t.elapsed().as_secs_f64(), &a.data_dir);
    Ok(())
}

fn print_report(r: &IngestReport, secs: f64, dir: &std::path::Path) {
    if let Some(c) = r.facilities {
        println!(
            "facility registry: read {} = accepted {} + quarantined {}",
            c.read, c.accepted, c.quarantined
        );
    }
    if let Some(c) = r.budgets {
        println!(
            "budgets:           read {} = accepted {} + quarantined {}",
            c.read, c.accepted, c.quarantined
        );
    }
    println!(
        "files: {} ingested ({} replacing an earlier version), {} unchanged, {} rejected, {} skipped",
        r.files_ingested,
        r.files_replaced,
        r.files_unchanged,
        r.files_rejected.len(),
        r.files_skipped.len()
    );
    for (_, e) in &r.files_rejected {
        println!("  rejected: {e}");
    }
    for (f, why) in &r.files_skipped {
        println!("  skipped:  {f}: {why}");
    }
    for e in &r.errors {
        println!("  error:    {e}");
    }
    for w in &r.warnings {
        println!("  warning:  {w}");
    }
    println!(
        "visits: read {} = accepted {} + quarantined {}",
        group_vi(r.visits.read as i64),
        group_vi(r.visits.accepted as i64),
        group_vi(r.visits.quarantined as i64)
    );
    println!(
        "lines:  read {} = accepted {} + quarantined {}",
        group_vi(r.lines.read as i64),
        group_vi(r.lines.accepted as i64),
        group_vi(r.lines.quarantined as i64)
    );
    if r.documents_unreadable > 0 {
        println!("unreadable inner documents: {}", r.documents_unreadable);
    }
    if !r.by_rule.is_empty() {
        println!("quarantined by rule:");
        for ((table, rule), n) in &r.by_rule {
            println!("  {table:<10} {rule:<28} {n:>10}");
        }
    }
    let mb = r.bytes_read as f64 / 1e6;
    println!(
        "{:.1} MB in {:.2} s ({:.1} MB/s); store: {}",
        mb,
        secs,
        if secs > 0.0 { mb / secs } else { 0.0 },
        dir.display()
    );
}

/// A typed configuration from a TOML file, or its defaults without one.
pub(crate) fn load_config<T: serde::de::DeserializeOwned + Default>(
    path: Option<&std::path::Path>,
) -> Result<T> {
    let Some(p) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

fn cmd_generate(a: GenerateArgs) -> Result<()> {
    let mut cfg: GenConfig = load_config(a.config.as_deref())?;
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    if let Some(v) = a.provinces {
        cfg.provinces = v;
    }
    if let Some(v) = a.scale {
        cfg.scale = v;
    }
    if let Some(v) = a.start {
        cfg.start = v;
    }
    if let Some(v) = a.days {
        cfg.days = v;
    }
    let t = Instant::now();
    let s = if a.dry_run {
        bhyt::generate::simulate(&cfg)?
    } else {
        generate(&cfg, &a.out, !a.quiet)?
    };
    println!(
        "generated {} facilities, {} visits ({} inpatient, {:.1} %), {} lines, {} VND, {} files, {:.1} MB in {:.1} s → {}\n\
         labels: {} anomaly rows ({} benign), true excess {} VND → {}",
        s.facilities,
        group_vi(s.visits as i64),
        group_vi(s.inpatient as i64),
        100.0 * s.inpatient as f64 / s.visits.max(1) as f64,
        group_vi(s.lines as i64),
        group_vi(s.total_cost_vnd.round() as i64),
        s.files,
        s.bytes as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        a.out.display(),
        s.labels.len(),
        s.labels.iter().filter(|l| l.benign).count(),
        group_vi(s.true_excess_vnd.round() as i64),
        a.out.join("labels.csv").display()
    );
    Ok(())
}

fn cmd_features(a: FeaturesArgs) -> Result<()> {
    let store = Store::open(&a.data_dir)?;
    let mut cfg: FeatureConfig = load_config(a.config.as_deref())?;
    if let Some(p) = a.period {
        cfg.period = p;
    }
    cfg.from = a.from.or(cfg.from);
    cfg.to = a.to.or(cfg.to);
    let t = Instant::now();
    let rows = if a.core {
        let mut df = features::core_indicators(&store, &cfg)?.collect()?;
        bhyt::store::write_parquet_atomic(&mut df, &a.out.join("core.parquet"))?;
        df.height()
    } else {
        write_features(&store, &cfg, &a.out)?
    };
    println!(
        "features: {rows} facility-{} rows in {:.2} s → {}",
        cfg.period.name(),
        t.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

fn write_features(store: &Store, cfg: &FeatureConfig, out: &std::path::Path) -> Result<usize> {
    let mut tables = features::compute(store, cfg)?;
    features::write(&mut tables, out)?;
    Ok(tables.facility_period.height())
}

/// The detector model that belongs with the data: under the store, or
/// beside the features table when detection runs without the store. Never
/// a file of the working folder, which would score one province with
/// another's model.
fn default_model(data_dir: Option<&std::path::Path>, features: &std::path::Path) -> PathBuf {
    match data_dir {
        Some(d) => d.join("models").join("detector.json"),
        None => features
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("models")
            .join("detector.json"),
    }
}

fn cmd_detect(a: DetectArgs) -> Result<()> {
    let cfg: bhyt::detect::DetectConfig = load_config(a.config.as_deref())?;
    let model = a
        .model
        .unwrap_or_else(|| default_model(a.data_dir.as_deref(), &a.features));
    let opts = bhyt::alerts::RunOptions {
        features: a.features,
        data_dir: a.data_dir,
        model,
        fit: a.fit,
        train_to: a.train_to,
        config: cfg,
        as_of: a.as_of,
        alerts_db: a.alerts_db,
        out: a.out,
        lang: a.lang,
        progress: true,
    };
    let t = Instant::now();
    let r = bhyt::alerts::run(&opts)?;
    print_detect_report(&r, t.elapsed().as_secs_f64(), &opts);
    Ok(())
}

fn print_detect_report(r: &bhyt::alerts::RunReport, secs: f64, o: &bhyt::alerts::RunOptions) {
    println!(
        "model: {} ({}, trained {}..{}){}",
        o.model.display(),
        r.model_meta.period,
        r.model_meta.training_from,
        r.model_meta.training_to,
        if r.fitted { ", fitted now" } else { "" }
    );
    if let Some(n) = &r.as_of_note {
        println!("{n}");
    }
    println!(
        "scored {} facility-periods; as of {}: {} alerts ({} new, {} continuing, {} suppressed by a review), {} resolved",
        r.scored, r.as_of, r.alerts, r.new, r.continuing, r.suppressed, r.resolved
    );
    for line in r.top.iter().take(10) {
        println!("  {line}");
    }
    println!("{:.2} s → {}", secs, o.out.display());
}

fn cmd_report(a: ReportArgs) -> Result<()> {
    let t = Instant::now();
    let model = a
        .model
        .unwrap_or_else(|| default_model(a.data_dir.as_deref(), &a.features));
    let r = bhyt::report::run(&bhyt::report::ReportOptions {
        detect_dir: a.detect_dir,
        features: a.features,
        model: Some(model),
        forecast_dir: Some(a.forecast_dir),
        data_dir: a.data_dir,
        capacity: a.capacity,
        out: a.out,
        lang: a.lang,
    })?;
    println!(
        "{} alerts listed in {:.2} s",
        r.alerts,
        t.elapsed().as_secs_f64()
    );
    for p in &r.pages {
        println!("  {}", p.display());
    }
    Ok(())
}

fn cmd_review(a: ReviewArgs) -> Result<()> {
    use bhyt::alerts::{lifecycle::read_reviews, AlertDb, Decision};
    anyhow::ensure!(
        a.alerts_db.exists(),
        "{} does not exist: run `bhyt detect` first",
        a.alerts_db.display()
    );
    let db = AlertDb::open(&a.alerts_db)?;
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
            return Ok(());
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
    Ok(())
}

fn cmd_status(a: StatusArgs) -> Result<()> {
    let store = Store::open(&a.data_dir)?;
    let m = store.manifest()?;
    println!(
        "{:>5}  {:<10} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10}  path",
        "seq", "status", "v.read", "v.ok", "v.quar", "l.read", "l.ok", "l.quar"
    );
    for s in m.sources()? {
        println!(
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
            s.error.map(|e| format!("  ({e})")).unwrap_or_default()
        );
    }
    Ok(())
}

/// A spinner for a step without its own progress bar.
fn spinner(step: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new_spinner();
    b.set_message(step.to_string());
    b.enable_steady_tick(std::time::Duration::from_millis(120));
    b
}

fn cmd_demo(a: DemoArgs) -> Result<()> {
    let sample = &a.sample;
    anyhow::ensure!(
        sample.exists(),
        "bundled sample {} not found: run from the repository root",
        sample.display()
    );
    if a.out.exists() {
        std::fs::remove_dir_all(&a.out).with_context(|| format!("clearing {}", a.out.display()))?;
    }
    let data_dir = a.out.join("data");
    let store = Store::open(&data_dir)?;
    let pseudo = Pseudonymizer::demo();
    let opts = IngestOptions {
        inputs: vec![sample.join("claims")],
        registry: Some(sample.join("facilities.csv")),
        budgets: Some(sample.join("budgets.csv")),
        progress: true,
        ..Default::default()
    };
    println!("[1/5] ingest {}", sample.join("claims").display());
    let t = Instant::now();
    let report = ingest::run(&store, &opts, &pseudo)?;
    print_report(&report, t.elapsed().as_secs_f64(), &data_dir);
    let t = Instant::now();
    let out = a.out.join("features");
    let cfg = FeatureConfig {
        period: Period::Week,
        ..Default::default()
    };
    let spin = spinner("features");
    let rows = write_features(&store, &cfg, &out)?;
    spin.finish_and_clear();
    println!(
        "[2/5] features: {rows} facility-week rows in {:.2} s → {}",
        t.elapsed().as_secs_f64(),
        out.display()
    );
    let opts = bhyt::alerts::RunOptions {
        features: out.join("facility_period.parquet"),
        data_dir: Some(data_dir.clone()),
        model: a.out.join("models/detector.json"),
        fit: true,
        train_to: None,
        config: bhyt::detect::DetectConfig::default(),
        as_of: None,
        alerts_db: a.out.join("alerts.sqlite"),
        out: a.out.join("detect"),
        lang: a.lang,
        progress: true,
    };
    let t = Instant::now();
    let r = bhyt::alerts::run(&opts)?;
    print!("[3/5] detect: ");
    print_detect_report(&r, t.elapsed().as_secs_f64(), &opts);
    // Forecasting needs 13+ months of history; the bundled sample may be shorter.
    let t = Instant::now();
    let spin = spinner("forecast");
    let fdir = a.out.join("forecast");
    let forecast = bhyt::forecast::history(&store, None).and_then(|h| {
        let (f, mut tables) = bhyt::forecast::run(&h, &Default::default())?;
        bhyt::forecast::write(&h, &f, &mut tables, &fdir, a.lang)
    });
    spin.finish_and_clear();
    match forecast {
        Ok(n) => println!(
            "[4/5] forecast: {n} series in {:.2} s → {}",
            t.elapsed().as_secs_f64(),
            fdir.display()
        ),
        Err(e) => println!("[4/5] forecast skipped: {e}"),
    }
    let t = Instant::now();
    let spin = spinner("report");
    let rep = bhyt::report::run(&bhyt::report::ReportOptions {
        detect_dir: a.out.join("detect"),
        features: out.join("facility_period.parquet"),
        model: Some(a.out.join("models/detector.json")),
        forecast_dir: Some(fdir),
        data_dir: Some(data_dir.clone()),
        capacity: 10,
        out: a.out.join("report"),
        lang: a.lang,
    })?;
    spin.finish_and_clear();
    println!(
        "[5/5] report: {} alerts listed in {:.2} s",
        rep.alerts,
        t.elapsed().as_secs_f64()
    );
    for p in &rep.pages {
        println!("      {}", p.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The detector model belongs with the data it was fitted on, never
    /// to the folder the command happens to run in.
    #[test]
    fn the_default_model_lives_with_the_data() {
        let f = std::path::Path::new("/w/out/features/facility_period.parquet");
        assert_eq!(
            default_model(Some(std::path::Path::new("/w/data")), f),
            PathBuf::from("/w/data/models/detector.json")
        );
        assert_eq!(
            default_model(None, f),
            PathBuf::from("/w/out/features/models/detector.json")
        );
    }
}
