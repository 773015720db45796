//! `bhyt aggregate` (the heavy step as SQL on DataFusion or Ballista) and
//! `bhyt cluster scheduler|executor` (a Ballista cluster from this binary).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use bhyt::aggregate::{self, Engine};
use bhyt::features::FeatureConfig;
use bhyt::format::group_vi;

use super::{load_config, record_run, say, Console, Ctx, Outcome};

#[derive(Clone, Copy, ValueEnum)]
pub enum EngineKind {
    /// Apache DataFusion in this process.
    Datafusion,
    /// An Apache Ballista scheduler (--scheduler).
    Ballista,
}

#[derive(Args)]
pub struct AggregateArgs {
    /// Claims store. Default: the project's, else `data`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where the SQL runs.
    #[arg(long, value_enum, default_value = "datafusion")]
    pub engine: EngineKind,
    /// The Ballista scheduler's address (with --engine ballista).
    #[arg(long, default_value = "df://127.0.0.1:50050")]
    pub scheduler: String,
    /// TOML configuration (FeatureConfig: its shrinkage_visits weighs the case-mix cells).
    /// Default: the project's features_config.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output folder (facility_month, item_reference_prices, casemix_cells .parquet).
    /// Default: `<out_dir>/aggregate` of the project, else `out/aggregate`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object on stdout; the text goes to stderr.
    #[arg(long)]
    pub json: bool,
}

pub fn aggregate(a: AggregateArgs, ctx: &Ctx) -> Result<Outcome> {
    let con = Console { json: a.json };
    let data_dir = ctx.data_dir(a.data_dir);
    let out = ctx.out(a.out, "aggregate");
    let cfg: FeatureConfig = load_config(ctx.config(a.config, |f| &f.features_config).as_deref())?;
    super::require_store(&data_dir)?;
    let store = ctx.open_store(&data_dir)?;
    let engine = match a.engine {
        EngineKind::Datafusion => Engine::DataFusion,
        EngineKind::Ballista => Engine::Ballista {
            scheduler: a.scheduler.clone(),
        },
    };
    let s = aggregate::run(&store, &engine, cfg.shrinkage_visits, &out)?;
    for (name, rows) in &s.rows {
        say!(
            con,
            "{}: {} rows",
            out.join(format!("{name}.parquet")).display(),
            group_vi(*rows as i64)
        );
    }
    say!(con, "{} in {:.2} s", engine.name(), s.seconds);
    let summary = json!({
        "engine": engine.name(),
        "outputs": s.rows.iter().map(|(n, r)| json!({ "name": n, "rows": r })).collect::<Vec<_>>(),
        "seconds": s.seconds,
    });
    record_run(
        Some(&data_dir),
        "aggregate",
        s.seconds,
        json!({ "engine": engine.name(), "shrinkage_visits": cfg.shrinkage_visits }),
        &summary,
    );
    con.emit(&summary)?;
    Ok(Outcome::Done)
}

#[derive(Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Run a Ballista scheduler (until stopped).
    Scheduler {
        /// Address to listen on (gRPC; clients use df://<this address>).
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: std::net::SocketAddr,
    },
    /// Run a Ballista executor registered with a scheduler (until stopped).
    Executor {
        /// The scheduler's address.
        #[arg(long, default_value = "127.0.0.1:50050")]
        scheduler: std::net::SocketAddr,
        /// Address of this executor's Arrow Flight service (shuffle data).
        #[arg(long, default_value = "127.0.0.1:50051")]
        bind: std::net::SocketAddr,
        /// Port of this executor's gRPC service.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Folder for shuffle files. Default: a temporary folder.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Tasks run at once. Default: the number of cores.
        #[arg(long)]
        concurrent_tasks: Option<usize>,
    },
}

#[cfg(feature = "cluster")]
pub fn cluster(a: ClusterArgs) -> Result<Outcome> {
    use bhyt::cluster::{run_executor, run_scheduler, ExecutorOptions};
    match a.command {
        ClusterCommand::Scheduler { bind } => run_scheduler(bind)?,
        ClusterCommand::Executor {
            scheduler,
            bind,
            grpc_port,
            work_dir,
            concurrent_tasks,
        } => run_executor(&ExecutorOptions {
            scheduler,
            bind,
            grpc_port,
            work_dir,
            concurrent_tasks,
        })?,
    }
    Ok(Outcome::Done)
}

#[cfg(not(feature = "cluster"))]
pub fn cluster(_: ClusterArgs) -> Result<Outcome> {
    Err(aggregate::AggregateError::NotBuilt.into())
}
