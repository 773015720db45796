//! `bhyt generate`: synthetic claims, registry and budgets for tests and
//! demos, deterministically from a seed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use bhyt::format::group_vi;
use bhyt::generate::{generate, GenConfig};

use super::{load_config, Outcome};

#[derive(Args)]
pub struct GenerateArgs {
    /// TOML configuration (see datasets/generator/); flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "out/generated")]
    pub out: PathBuf,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of provinces.
    #[arg(long)]
    pub provinces: Option<usize>,
    /// Volume multiplier (1.0 ≈ 1.53 M visits per province-year).
    #[arg(long)]
    pub scale: Option<f64>,
    /// First day, yyyy-mm-dd.
    #[arg(long)]
    pub start: Option<chrono::NaiveDate>,
    /// Number of days.
    #[arg(long)]
    pub days: Option<u32>,
    /// Compute the totals and labels without writing claims files.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: GenerateArgs) -> Result<Outcome> {
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
    Ok(Outcome::Done)
}
