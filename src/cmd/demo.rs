//! `bhyt demo`: every stage on the bundled synthetic sample, no setup.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use bhyt::features::{FeatureConfig, Period};
use bhyt::ingest::{self, IngestOptions};
use bhyt::privacy::Pseudonymizer;
use bhyt::store::Store;

use super::ingest::print_report;
use super::stages::{print_detect_report, write_features};
use super::{spinner, Console, Outcome};

#[derive(Args)]
pub struct DemoArgs {
    /// Where to write the demo store and outputs.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// The bundled sample.
    #[arg(long, default_value = "datasets/sample")]
    pub sample: PathBuf,
    /// Language of the alert reasons.
    #[arg(long, value_enum, default_value = "vi")]
    pub lang: bhyt::detect::Lang,
    /// Then open the results in the review workspace (`bhyt serve`), with a
    /// demo admin account whose password is printed.
    #[cfg(feature = "serve")]
    #[arg(long)]
    pub serve: bool,
    /// Address of the workspace with --serve.
    #[cfg(feature = "serve")]
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
}

pub fn run(a: DemoArgs) -> Result<Outcome> {
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
    print_report(
        &report,
        t.elapsed().as_secs_f64(),
        &data_dir,
        Console { json: false },
    );
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
        store_snapshot: None,
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
    print_detect_report(
        &r,
        t.elapsed().as_secs_f64(),
        &opts,
        Console { json: false },
    );
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
        store_snapshot: None,
        capacity: 10,
        memory_mb: bhyt::store::chunks::DEFAULT_MEMORY_MB,
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
    #[cfg(feature = "serve")]
    if a.serve {
        serve_demo(&a, &data_dir)?;
    }
    Ok(Outcome::Done)
}

/// The demo's outputs in the workspace: a fresh database beside them, one
/// admin account (`demo`, a random password printed once).
#[cfg(feature = "serve")]
fn serve_demo(a: &DemoArgs, data_dir: &std::path::Path) -> Result<()> {
    use bhyt::serve::{auth, db::Db, AppState, ServeConfig};
    let db_path = a.out.join("workspace.sqlite");
    let password = auth::token()[..20].to_string();
    let cfg = ServeConfig {
        data_dir: Some(data_dir.to_path_buf()),
        detect_dir: a.out.join("detect"),
        forecast_dir: a.out.join("forecast"),
        secure_cookies: !a.listen.ip().is_loopback(),
        alerts_db: Some(a.out.join("alerts.sqlite")),
        features: Some(a.out.join("features").join("facility_period.parquet")),
        model: Some(a.out.join("models/detector.json")),
        capacity: 10,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let db = Db::connect(&Db::sqlite_url(&db_path)).await?;
            bhyt::serve::add_user(&db, "demo", auth::Role::Admin, &[], &password).await?;
            println!("workspace: log in as `demo` with password {password}");
            bhyt::serve::serve(
                AppState {
                    db,
                    cfg: std::sync::Arc::new(cfg),
                },
                a.listen,
            )
            .await
        })?;
    Ok(())
}
