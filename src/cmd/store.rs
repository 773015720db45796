//! `bhyt store optimize` and `bhyt store vacuum`: housekeeping of the
//! claims store's Delta tables.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;

use bhyt::format::group_vi;
use bhyt::store::Store;

use super::{say, Console, Ctx, Outcome};

#[derive(Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
    /// Claims store. Default: the project's, else `data`.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON object on stdout; the text goes to stderr.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Rewrite each partition's small files as few large ones (ordered by facility and date).
    Optimize {
        /// Target file size in MB.
        #[arg(long, default_value_t = 256)]
        target_mb: i64,
    },
    /// Delete data files that no version kept for time travel needs (older than --retain-hours),
    /// and files of runs that died before their commit.
    Vacuum {
        /// Removed files stay this long (snapshots of this window stay readable).
        #[arg(long, default_value_t = 168)]
        retain_hours: i64,
    },
}

pub fn run(a: StoreArgs, ctx: &Ctx) -> Result<Outcome> {
    let con = Console { json: a.json };
    let dir = ctx.data_dir(a.data_dir);
    super::require_store(&dir)?;
    let store = Store::open(&dir)?;
    let t = Instant::now();
    let out = match a.command {
        StoreCommand::Optimize { target_mb } => {
            anyhow::ensure!(target_mb > 0, "--target-mb must be positive");
            let r = store.optimize(target_mb << 20)?;
            for c in &r {
                say!(
                    con,
                    "{:<11} {} partitions rewritten: {} files ({:.1} MB) → {} files ({:.1} MB)",
                    c.table,
                    group_vi(c.partitions_rewritten as i64),
                    group_vi(c.files_before as i64),
                    c.bytes_before as f64 / 1e6,
                    group_vi(c.files_after as i64),
                    c.bytes_after as f64 / 1e6
                );
            }
            json!({ "optimize": r, "snapshot": Store::open(&dir)?.snapshot()?, "seconds": t.elapsed().as_secs_f64() })
        }
        StoreCommand::Vacuum { retain_hours } => {
            anyhow::ensure!(retain_hours >= 0, "--retain-hours must be ≥ 0");
            let r = store.vacuum(retain_hours)?;
            for (table, n) in &r {
                say!(con, "{table:<11} {} files deleted", group_vi(*n as i64));
            }
            json!({ "vacuum": r.iter().map(|(t, n)| json!({ "table": t, "files_deleted": n })).collect::<Vec<_>>(), "seconds": t.elapsed().as_secs_f64() })
        }
    };
    con.emit(&out)?;
    Ok(Outcome::Done)
}
