//! `bhyt forecast`: next year's budget per facility and province, this
//! year's projection, the backtest beside the naive baselines, and the
//! benchmark over a family of growth shapes.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use bhyt::forecast::{self, is_province, scenarios, ForecastConfig};
use bhyt::format::group_vi;
use serde_json::json;

use super::{load_config, p, say, Console, Ctx, Outcome};

#[derive(Args)]
pub struct ForecastArgs {
    /// Claims store. Default: the project's, else `data`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Use the data up to this day only (default: all of it).
    #[arg(long)]
    as_of: Option<chrono::NaiveDate>,
    /// TOML configuration with known changes (ForecastConfig; see models/forecast.toml).
    /// Default: the project's forecast_config.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output folder: forecast_monthly, forecast_yearly, forecast_growth,
    /// budget_projection .parquet, charts/. Default `<out_dir>/forecast`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also run the rolling-origin backtest of the store's history, the
    /// engine beside the naive baselines (backtest.parquet and a table).
    #[arg(long)]
    backtest: bool,
    /// Instead of forecasting the store: the benchmark over the family of
    /// generated growth shapes (smooth, steps, trend breaks, anomalies,
    /// openings and closings, a merger, two years only), each backtested
    /// beside the naive baselines. Needs no data.
    #[arg(long)]
    benchmark: bool,
    /// Benchmark: volume scale of the generated provinces (1 ≈ a real province).
    #[arg(long, default_value_t = 0.25)]
    scale: f64,
    /// Benchmark: generator seed.
    #[arg(long, default_value_t = 130)]
    seed: u64,
    /// Benchmark: only these scenarios (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<String>,
    /// Language of the charts (vi, en). Default: the project's, else vi.
    #[arg(long, value_enum)]
    lang: Option<bhyt::detect::Lang>,
    /// Print one JSON object (provinces' next-year totals with intervals,
    /// projections, backtest rows) on stdout; the text goes to stderr.
    #[arg(long)]
    json: bool,
}

pub fn run(a: ForecastArgs, ctx: &Ctx) -> Result<Outcome> {
    let con = Console { json: a.json };
    let cfg: ForecastConfig = load_config(
        ctx.config(a.config.clone(), |f| &f.forecast_config)
            .as_deref(),
    )?;
    if a.benchmark {
        return benchmark(&a, &cfg, con);
    }
    let data_dir = ctx.data_dir(a.data_dir.clone());
    let out = ctx.out(a.out.clone(), "forecast");
    let store = ctx.open_store(&data_dir)?;
    let t = Instant::now();
    let h = forecast::history(&store, a.as_of)?;
    let (f, mut tables) = forecast::run(&h, &cfg)?;
    let charts = forecast::write(&h, &f, &mut tables, &out, ctx.lang(a.lang))?;
    let mut summary = json!({
        "history": { "from": h.months[0], "to": h.last_day, "facilities": h.series.len() },
        "forecast_from": f.start,
        "out": p(&out),
        "charts": charts,
        "provinces": [],
        "projection": [],
    });
    say!(
        con,
        "history {} … {} ({} facilities); forecast from {} → {} ({} charts) in {:.2} s",
        h.months[0],
        h.last_day,
        h.series.len(),
        f.start,
        out.display(),
        charts,
        t.elapsed().as_secs_f64()
    );
    let y = &tables.yearly;
    let ycodes = y.column("code")?.str()?.clone();
    let v =
        |c: &str, i: usize| -> Result<f64> { Ok(y.column(c)?.f64()?.get(i).unwrap_or(f64::NAN)) };
    for i in 0..y.height() {
        let Some(code) = ycodes.get(i).filter(|c| is_province(c)) else {
            continue;
        };
        let year = y.column("year")?.i32()?.get(i).unwrap_or(0);
        say!(
            con,
            "{} ({code}) {}: {} VND, 90 % interval {} … {}",
            h.display_name(code),
            year,
            group_vi(v("forecast_vnd", i)?.round() as i64),
            group_vi(v("lo90", i)?.round() as i64),
            group_vi(v("hi90", i)?.round() as i64),
        );
        summary["provinces"]
            .as_array_mut()
            .expect("an array")
            .push(json!({
                "code": code, "name": h.display_name(code), "year": year,
                "forecast_vnd": v("forecast_vnd", i)?,
                "lo80": v("lo80", i)?, "hi80": v("hi80", i)?,
                "lo90": v("lo90", i)?, "hi90": v("hi90", i)?,
                "lo95": v("lo95", i)?, "hi95": v("hi95", i)?,
            }));
    }
    let g = &tables.growth;
    let gcodes = g.column("code")?.str()?.clone();
    for i in 0..g.height() {
        let Some(code) = gcodes.get(i).filter(|c| is_province(c)) else {
            continue;
        };
        let v = |c: &str| -> Result<f64> { Ok(g.column(c)?.f64()?.get(i).unwrap_or(f64::NAN)) };
        say!(
            con,
            "{} {} → {}: growth {:+.1} % ({} VND): volume {}, price {}, case mix {}, known changes {}, other {}; out-of-province patients {}",
            h.display_name(code),
            g.column("base_year")?.i32()?.get(i).unwrap_or(0),
            g.column("forecast_year")?.i32()?.get(i).unwrap_or(0),
            100.0 * v("growth")?,
            group_vi(v("forecast_vnd")?.round() as i64),
            group_vi(v("volume_vnd")?.round() as i64),
            group_vi(v("price_vnd")?.round() as i64),
            group_vi(v("case_mix_vnd")?.round() as i64),
            group_vi(v("known_changes_vnd")?.round() as i64),
            group_vi(v("other_vnd")?.round() as i64),
            group_vi(v("out_of_province_vnd")?.round() as i64),
        );
    }
    let p = &tables.projection;
    let codes = p.column("code")?.str()?.clone();
    let over = p.column("overrun_vnd")?.f64()?.clone();
    let run_out = p.column("runs_out_in")?.date()?.clone();
    let mut rows: Vec<(String, f64, Option<i32>)> = (0..p.height())
        .filter_map(|i| Some((codes.get(i)?.to_string(), over.get(i)?, run_out.phys.get(i))))
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    say!(
        con,
        "projection {}: expected overrun (+) or surplus (−), VND:",
        p.column("year")?.i32()?.get(0).unwrap_or(0)
    );
    for (c, o, r) in rows
        .iter()
        .filter(|r| is_province(&r.0))
        .chain(rows.iter().filter(|r| !is_province(&r.0)).take(8))
    {
        let month = r.map(|d| {
            (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
                + chrono::Duration::days(d as i64))
            .format("%m/%Y")
            .to_string()
        });
        summary["projection"]
            .as_array_mut()
            .expect("an array")
            .push(json!({ "code": c, "name": h.display_name(c), "overrun_vnd": o, "runs_out_in": month }));
        say!(
            con,
            "  {c:<12} {:<32} {:>20}{}",
            h.display_name(c),
            group_vi(o.round() as i64),
            month
                .map(|m| format!("  budget runs out in {m}"))
                .unwrap_or_default()
        );
    }
    if a.backtest {
        let t = Instant::now();
        let mut b = forecast::backtest(&h, &cfg)?;
        bhyt::store::write_parquet_atomic(&mut b.per_origin, &out.join("backtest.parquet"))?;
        say!(
            con,
            "backtest ({:.2} s; origins {} … {} every {} months, 12 months ahead each; errors of 12-month totals):\n",
            t.elapsed().as_secs_f64(),
            b.origins.first().map(|d| d.to_string()).unwrap_or_default(),
            b.origins.last().map(|d| d.to_string()).unwrap_or_default(),
            cfg.backtest_step
        );
        say!(
            con,
            "{}",
            forecast::backtest::markdown(&[("this store".into(), &b)]).trim_end()
        );
        for (p, o, e) in &b.province_errors {
            say!(
                con,
                "{} ({p}) from {o}: {:+.2} %",
                h.display_name(p),
                100.0 * e
            );
        }
        summary["backtest"] = json!({
            "origins": b.origins,
            "methods": b.methods,
            "coverage_90": coverage_json(&b),
        });
    }
    let secs = t.elapsed().as_secs_f64();
    summary["seconds"] = json!(secs);
    super::record_run(
        Some(&data_dir),
        "forecast",
        secs,
        json!({ "as_of": a.as_of, "backtest": a.backtest }),
        &summary,
    );
    con.emit(&summary)?;
    Ok(Outcome::Done)
}

/// The engine's interval coverage of a backtest, for `--json`.
fn coverage_json(b: &forecast::Backtest) -> serde_json::Value {
    json!({
        "facility_12_month_totals": b.coverage_year,
        "province_12_month_totals": b.coverage_year_province,
        "facility_months": b.coverage_month,
        "province_months": b.coverage_month_province,
    })
}

fn benchmark(a: &ForecastArgs, cfg: &ForecastConfig, con: Console) -> Result<Outcome> {
    let family = scenarios::family(a.scale, a.seed);
    let chosen: Vec<&scenarios::Scenario> = family
        .iter()
        .filter(|s| a.scenario.is_empty() || a.scenario.iter().any(|n| n == s.name))
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = family.iter().map(|s| s.name).collect();
        anyhow::bail!("no such scenario; the family: {}", names.join(", "));
    }
    let pb = indicatif::ProgressBar::new(chosen.len() as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} benchmark [{bar:30}] {pos}/{len} {msg}")
            .expect("template"),
    );
    let t = Instant::now();
    let mut done = Vec::new();
    for s in &chosen {
        pb.set_message(s.name);
        let b = scenarios::run(s, cfg)?;
        done.push((format!("{} ({})", s.name, a.scale), b));
        pb.inc(1);
    }
    pb.finish_and_clear();
    say!(
        con,
        "forecast benchmark: {} scenarios at scale {}, seed {}, in {:.1} s\n",
        chosen.len(),
        a.scale,
        a.seed,
        t.elapsed().as_secs_f64()
    );
    for s in &chosen {
        say!(con, "- {}: {}", s.name, s.what);
    }
    say!(con, "");
    let rows: Vec<(String, &forecast::Backtest)> =
        done.iter().map(|(n, b)| (n.clone(), b)).collect();
    say!(con, "{}", forecast::backtest::markdown(&rows).trim_end());
    con.emit(&json!({
        "scale": a.scale,
        "seed": a.seed,
        "scenarios": done.iter().map(|(n, b)| json!({
            "name": n,
            "methods": b.methods,
            "coverage_90": coverage_json(b),
        })).collect::<Vec<_>>(),
    }))?;
    Ok(Outcome::Done)
}
