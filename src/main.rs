//! `bhyt`: the command-line front of the engine. Each subcommand is a stage
//! of the pipeline; the work is in the library, the commands in `cmd/`.
//!
//! Exit codes (documented in README and `bhyt --help`): 0 done; 1 usage or
//! configuration (a flag, the project file, a configuration file, the key);
//! 2 done, but part of the input was rejected or quarantined; 3 the run
//! failed (an input missing or unreadable, the store, an output not
//! writable).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cmd;

use cmd::{Ctx, Outcome, UsageError};

/// mimalloc: the ingest allocates many small strings on several threads,
/// where glibc malloc spends a quarter of the time in lock contention.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXIT_CODES: &str = "\
Project: every command finds bhyt.toml in the current folder or above (as cargo finds
Cargo.toml) and takes its paths from it; a flag overrides any of them. `bhyt init DIR`
creates one.

Exit codes:
  0  done
  1  usage or configuration error (a flag, bhyt.toml, a configuration file, the key)
  2  done, but part of the input was rejected or quarantined (see the counts)
  3  the run failed (an input missing or unreadable, the store, an output not writable)";

#[derive(Parser)]
#[command(
    name = "bhyt",
    version,
    about = "BHYT cost-anomaly engine: claims → indicators → warnings → forecasts → reports",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Project file (bhyt.toml) or its folder; default: found from the
    /// current folder upwards, or $BHYT_PROJECT.
    #[arg(long, global = true)]
    project: Option<PathBuf>,
    /// Read the claims store as of this snapshot (`bhyt status` lists them):
    /// a rerun of a past week reads exactly what that week's run read.
    #[arg(long, global = true, value_name = "ID")]
    as_of_snapshot: Option<i64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a project folder: bhyt.toml (paths, language, key file location) and its folders.
    #[command(after_help = "Example:\n  bhyt init hau-giang && cd hau-giang && bhyt weekly")]
    Init(cmd::project::InitArgs),
    /// The weekly run a scheduler calls: ingest new files → features → detect → forecast → report, for the last complete week.
    #[command(
        after_help = "Examples:\n  bhyt weekly\n  bhyt weekly --week-of 2024-03-04 --json > week.json"
    )]
    Weekly(cmd::project::WeeklyArgs),
    /// Load claims (Decision 130 XML envelopes or bare documents, CSV, Parquet; plain, .gz or .zip) into the claims store.
    #[command(
        after_help = "Examples:\n  bhyt ingest                        # the project's claims_dir\n  bhyt ingest claims/2024-03 --registry facilities.csv --budgets budgets.csv --data-dir data"
    )]
    Ingest(cmd::ingest::IngestArgs),
    /// Write synthetic claims (Decision 130 envelopes), a facility registry and budgets, deterministically from a seed.
    #[command(
        after_help = "Example:\n  bhyt generate --config datasets/generator/province-year.toml --out gen"
    )]
    Generate(cmd::generate::GenerateArgs),
    /// Compute per-facility indicators by period from the claims store (Parquet).
    #[command(after_help = "Example:\n  bhyt features --period week --to 2024-03-10")]
    Features(cmd::stages::FeaturesArgs),
    /// Raise the week's warnings: nine calibrated detectors (change, peers, forest, mixture, claim checks, upcoding, shift, prescribers, departments), with reasons, excess cost and a lifecycle.
    #[command(
        after_help = "Examples:\n  bhyt detect\n  bhyt detect --as-of 2024-03-04 --lang en --json"
    )]
    Detect(cmd::stages::DetectArgs),
    /// Compare a facility ranking with a labels file (ROC-AUC, average precision, precision at k), or run the family of generated worlds.
    #[command(
        after_help = "Examples:\n  bhyt evaluate --labels gen/labels.csv\n  bhyt evaluate --family --only base,late-batch"
    )]
    Evaluate(cmd::evaluate::EvaluateArgs),
    /// Forecast next year's spending per facility and province with intervals, project this year against the budget, backtest.
    #[command(
        after_help = "Examples:\n  bhyt forecast --backtest\n  bhyt forecast --benchmark --scale 0.25"
    )]
    Forecast(cmd::forecast::ForecastArgs),
    /// Write the users' pages (HTML): the weekly alert list, the audit plan and the planner's page.
    #[command(after_help = "Example:\n  bhyt report --capacity 12 --lang en")]
    Report(cmd::stages::ReportArgs),
    /// Record reviewer decisions on alerts (confirmed, explained, dismissed), or import a reviewed alerts.csv/.xlsx.
    #[command(
        after_help = "Examples:\n  bhyt review --list\n  bhyt review --alert 93001:2024-03-04:cost_per_visit --decision explained --comment \"new ward\" --reviewer lan"
    )]
    Review(cmd::review::ReviewArgs),
    /// What the store holds: sources by status, visits and lines, dates per province, quarantine by rule, last runs.
    #[command(
        after_help = "Examples:\n  bhyt status\n  bhyt status --sources\n  bhyt status --json"
    )]
    Status(cmd::status::StatusArgs),
    /// Housekeeping of the claims store's Delta tables: compact small files, delete files no kept version needs.
    #[command(
        after_help = "Examples:\n  bhyt store optimize\n  bhyt store vacuum --retain-hours 168"
    )]
    Store(cmd::store::StoreArgs),
    /// The heavy step (claims → per-visit totals → facility-month aggregates, case-mix cells, item reference prices) as SQL on Apache DataFusion or a Ballista cluster. Needs the `cluster` feature.
    #[command(
        after_help = "Examples:\n  bhyt aggregate\n  bhyt aggregate --engine ballista --scheduler df://10.0.0.5:50050"
    )]
    Aggregate(cmd::cluster::AggregateArgs),
    /// Run an Apache Ballista scheduler or executor for `bhyt aggregate --engine ballista`. Needs the `cluster` feature.
    #[command(
        after_help = "Examples:\n  bhyt cluster scheduler --bind 127.0.0.1:50050\n  bhyt cluster executor --scheduler 127.0.0.1:50050 --bind 127.0.0.1:50051 --grpc-port 50052"
    )]
    Cluster(cmd::cluster::ClusterArgs),
    /// Run the pipeline on the bundled synthetic sample (no setup needed).
    #[command(after_help = "Example:\n  cargo run --release -- demo")]
    Demo(cmd::demo::DemoArgs),
    /// The review workspace: a web server for reviewers, inspectors and planners (SQLite, or PostgreSQL with --database).
    #[cfg(feature = "serve")]
    #[command(
        after_help = "Examples:\n  bhyt users add lan --role reviewer --province 92 < lan.pass\n  bhyt serve --listen 127.0.0.1:8080"
    )]
    Serve(cmd::serve::ServeArgs),
    /// Accounts of the review workspace.
    #[cfg(feature = "serve")]
    #[command(
        after_help = "Example:\n  bhyt users add admin --role admin --password-file admin.pass"
    )]
    Users(cmd::serve::UsersArgs),
    /// Shell completions, generated from the command definitions.
    #[command(
        after_help = "Example:\n  bhyt completions bash > ~/.local/share/bash-completion/completions/bhyt"
    )]
    Completions(cmd::docs::CompletionsArgs),
    /// The manual page (roff), generated from the command definitions.
    #[command(after_help = "Examples:\n  bhyt man | man -l -\n  bhyt man --out share/man/man1")]
    Man(cmd::docs::ManArgs),
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let ctx = match &cli.command {
        // These never read a project: a broken bhyt.toml must not stop
        // `init` elsewhere or the documentation.
        Command::Init(_)
        | Command::Generate(_)
        | Command::Demo(_)
        | Command::Cluster(_)
        | Command::Completions(_)
        | Command::Man(_) => Ctx::default(),
        _ => Ctx::discover(cli.project.as_deref())?,
    };
    let ctx = Ctx {
        as_of_snapshot: cli.as_of_snapshot,
        ..ctx
    };
    let _ = cmd::AS_OF_SNAPSHOT.set(cli.as_of_snapshot);
    match cli.command {
        Command::Init(a) => cmd::project::init(a),
        Command::Weekly(a) => cmd::project::weekly(a, &ctx),
        Command::Ingest(a) => cmd::ingest::run(a, &ctx),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Features(a) => cmd::stages::features(a, &ctx),
        Command::Detect(a) => cmd::stages::detect(a, &ctx),
        Command::Evaluate(a) => cmd::evaluate::run(a, &ctx),
        Command::Forecast(a) => cmd::forecast::run(a, &ctx),
        Command::Report(a) => cmd::stages::report(a, &ctx),
        Command::Review(a) => cmd::review::run(a, &ctx),
        Command::Store(a) => cmd::store::run(a, &ctx),
        Command::Status(a) => cmd::status::run(a, &ctx),
        Command::Aggregate(a) => cmd::cluster::aggregate(a, &ctx),
        Command::Cluster(a) => cmd::cluster::cluster(a),
        Command::Demo(a) => cmd::demo::run(a),
        #[cfg(feature = "serve")]
        Command::Serve(a) => cmd::serve::serve(a, &ctx),
        #[cfg(feature = "serve")]
        Command::Users(a) => cmd::serve::users(a, &ctx),
        Command::Completions(a) => cmd::docs::completions(a, Cli::command()),
        Command::Man(a) => cmd::docs::man(a, Cli::command()),
    }
}

/// Commands that run until stopped, serving others over the network.
fn serves(c: &Command) -> bool {
    match c {
        Command::Cluster(_) => true,
        #[cfg(feature = "serve")]
        Command::Serve(_) => true,
        _ => false,
    }
}

/// Transparent huge pages off for this process (Linux; `BHYT_ALLOW_THP`
/// set keeps them). With THP on, each fresh 2 MiB of the allocator's
/// memory is faulted in and zeroed whole, which costs more as the
/// machine's memory fragments (a server that has run a while). Measured on
/// 2 cores, this binary against the one before, 5 runs each in turn
/// (benches/README.md): ingest of 1.36 GB 6.94 → 5.97 s (medians; system
/// time 3.7 → 1.2 s), weekly features 2.17 → 1.81 s, detect 3.66 → 2.76 s,
/// peak memory lower in all three, outputs identical.
#[cfg(target_os = "linux")]
fn without_transparent_huge_pages() {
    if std::env::var_os("BHYT_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and
        // changes how the kernel backs this process's future page faults.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

fn main() -> ExitCode {
    #[cfg(target_os = "linux")]
    without_transparent_huge_pages();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BHYT_LOG").unwrap_or_else(|_| {
                // delta-rs warns of its own API choices (vacuum's
                // kept versions): not the user's concern.
                "warn,deltalake_core::operations::vacuum=error".into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // Output piped into `head` or a pager that quits: end quietly as Unix
    // tools do, instead of a panic on the next write. Not for servers: a
    // peer that hangs up must cost a connection, not the process (a
    // Ballista executor died of it).
    #[cfg(unix)]
    if !serves(&cli.command) {
        // SAFETY: restoring the default disposition of SIGPIPE before any
        // thread starts; no handler runs Rust code.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(cli) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Partial) => ExitCode::from(2),
        Err(e) => {
            // The chain of causes on one line, never a backtrace: users
            // read the file, record and field, not the engine's frames.
            eprintln!("error: {e:#}");
            let usage = e.chain().any(|c| c.downcast_ref::<UsageError>().is_some());
            ExitCode::from(if usage { 1 } else { 3 })
        }
    }
}
