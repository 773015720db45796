//! `bhyt serve` (the review workspace) and `bhyt users` (its accounts).

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use bhyt::serve::auth::Role;
use bhyt::serve::db::Db;
use bhyt::serve::{AppState, ServeConfig};

use super::{Ctx, Outcome, UsageError};

#[derive(Args)]
pub struct ServeArgs {
    /// Claims store (the registry gives each facility's province). Default: the project's.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Output folder of `bhyt detect` (alerts.parquet). Default `<out_dir>/detect`.
    #[arg(long)]
    pub detect_dir: Option<PathBuf>,
    /// Output folder of `bhyt forecast` (budget_projection.parquet). Default `<out_dir>/forecast`.
    #[arg(long)]
    pub forecast_dir: Option<PathBuf>,
    /// Address to listen on. Keep the default (loopback) and put a TLS proxy in front.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Database: sqlite://FILE (default `<out_dir>/workspace.sqlite`) or
    /// postgres://USER@HOST/DB (a build with `--features postgres`).
    #[arg(long)]
    pub database: Option<String>,
    /// The engine's alert lifecycle database, where decisions are also
    /// recorded (so explained alerts stay quiet). Default: as for `detect`.
    #[arg(long)]
    pub alerts_db: Option<PathBuf>,
    /// The features table the alerts were raised on (their charts). Default as for `detect`.
    #[arg(long)]
    pub features: Option<PathBuf>,
    /// The detector model (the charts' control limits). Default as for `detect`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Audits the inspection team can do in a new round. Default: the project's capacity, else 10.
    #[arg(long)]
    pub capacity: Option<usize>,
    /// Mark the session cookie Secure. Default: on, unless the server listens on loopback.
    #[arg(long)]
    pub secure_cookies: Option<bool>,
}

#[derive(Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Add an account; the password is read from --password-file or one line of stdin.
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        /// Province codes (comma-separated); required for reviewers; none = all for the other roles.
        #[arg(long, value_delimiter = ',')]
        province: Vec<String>,
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Database, as for `bhyt serve`.
        #[arg(long)]
        database: Option<String>,
    },
}

fn database_url(ctx: &Ctx, flag: Option<String>) -> String {
    flag.unwrap_or_else(|| Db::sqlite_url(&ctx.out(None, "workspace.sqlite")))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn usage(e: bhyt::serve::ServeError) -> anyhow::Error {
    match e {
        bhyt::serve::ServeError::Config(m) => UsageError(m).into(),
        e => e.into(),
    }
}

pub fn serve(a: ServeArgs, ctx: &Ctx) -> Result<Outcome> {
    let url = database_url(ctx, a.database);
    if url.starts_with("sqlite://") {
        std::fs::create_dir_all(ctx.out(None, "")).ok();
    }
    let data_dir = ctx
        .data_dir_if_known(a.data_dir)
        .or_else(|| Some("data".into()));
    let features = ctx.features_table(a.features);
    let model = ctx.model(a.model, data_dir.as_deref(), &features);
    let cfg = ServeConfig {
        data_dir,
        detect_dir: ctx.out(a.detect_dir, "detect"),
        forecast_dir: ctx.out(a.forecast_dir, "forecast"),
        secure_cookies: a.secure_cookies.unwrap_or(!a.listen.ip().is_loopback()),
        alerts_db: Some(ctx.alerts_db(a.alerts_db)),
        features: Some(features),
        model: Some(model),
        capacity: ctx.capacity(a.capacity),
    };
    runtime()?.block_on(async {
        let db = Db::connect(&url).await.map_err(usage)?;
        let state = AppState {
            db,
            cfg: Arc::new(cfg),
        };
        bhyt::serve::serve(state, a.listen).await.map_err(usage)
    })?;
    Ok(Outcome::Done)
}

pub fn users(a: UsersArgs, ctx: &Ctx) -> Result<Outcome> {
    match a.command {
        UsersCommand::Add {
            name,
            role,
            province,
            password_file,
            database,
        } => {
            let password = match password_file {
                Some(p) => std::fs::read_to_string(&p)
                    .with_context(|| format!("reading {}", p.display()))?,
                None => {
                    eprintln!("password for {name} (one line on stdin):");
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line
                }
            };
            let password = password.trim_end_matches(['\n', '\r']).to_string();
            let url = database_url(ctx, database);
            if url.starts_with("sqlite://") {
                std::fs::create_dir_all(ctx.out(None, "")).ok();
            }
            runtime()?.block_on(async {
                let db = Db::connect(&url).await.map_err(usage)?;
                bhyt::serve::add_user(&db, &name, role, &province, &password)
                    .await
                    .map_err(usage)
            })?;
            println!(
                "user {name} ({}{}) added",
                role.as_str(),
                if province.is_empty() {
                    String::new()
                } else {
                    format!(", provinces {}", province.join(","))
                }
            );
            Ok(Outcome::Done)
        }
    }
}
