//! The forecasting benchmark: a family of growth shapes drawn with the
//! generator, each backtested (rolling origins, 12 months ahead) with the
//! engine beside the naive baselines. The generator is only the source of
//! the claims' monthly totals here: nothing in the engine knows it.

use super::*;
use crate::generate::{GenConfig, GrowthBreak, Lockdown};

/// One world of the family.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    /// What is special about it.
    pub what: &'static str,
    pub gen: GenConfig,
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// The family at a volume `scale` (1 ≈ one real province) and `seed`:
/// four years (2021–2024) of one province without injected anomalies,
/// unless the scenario says otherwise.
pub fn family(scale: f64, seed: u64) -> Vec<Scenario> {
    let base = GenConfig {
        seed,
        scale,
        provinces: 1,
        start: day(2021, 1, 1),
        days: 1461,
        anomalies: false,
        ..Default::default()
    };
    let smooth = GenConfig {
        price_steps: false,
        volume_growth: 0.05,
        price_growth: 0.067,
        ..base.clone()
    };
    vec![
        Scenario {
            name: "smooth",
            what: "volume +5 % and prices +6.7 % a year, continuously (≈ +12 %)",
            gen: smooth.clone(),
        },
        Scenario {
            name: "steps",
            what: "volume +4 % a year, prices +5 % in one step each 1 January",
            gen: base.clone(),
        },
        Scenario {
            name: "slowdown",
            what: "smooth +12 % a year until mid-2022, then +4 %",
            gen: GenConfig {
                growth_break: Some(GrowthBreak {
                    from: day(2022, 7, 1),
                    volume_growth: 0.02,
                    price_growth: 0.02,
                }),
                ..smooth.clone()
            },
        },
        Scenario {
            name: "speedup",
            what: "+9 % a year (price steps) until mid-2022, then +17 %",
            gen: GenConfig {
                growth_break: Some(GrowthBreak {
                    from: day(2022, 7, 1),
                    volume_growth: 0.07,
                    price_growth: 0.09,
                }),
                ..base.clone()
            },
        },
        Scenario {
            name: "anomalies",
            what: "eight kinds of fraud, a heavier case mix, a grade's price change and an epidemic inside the history",
            gen: GenConfig {
                anomalies: true,
                ..base.clone()
            },
        },
        Scenario {
            name: "lockdown",
            what: "visits halve from mid-July to mid-October 2021 and are back by mid-December (the base months of a year of ratios)",
            gen: GenConfig {
                lockdown: Some(Lockdown {
                    from: day(2021, 7, 15),
                    to: day(2021, 10, 15),
                    share: 0.5,
                }),
                ..base.clone()
            },
        },
        Scenario {
            name: "open-close",
            what: "a private hospital opens in March 2022 (ramping up over six months), another closes in February 2023",
            gen: GenConfig {
                opens: Some(day(2022, 3, 1)),
                closes: Some(day(2023, 2, 1)),
                ..base.clone()
            },
        },
        Scenario {
            name: "merger",
            what: "two provinces merge in July 2022: every facility claims under a new code (registry previous_code)",
            gen: GenConfig {
                provinces: 2,
                province_codes: vec!["93".into(), "94".into()],
                merger: Some(day(2022, 7, 1)),
                scale: scale / 2.0,
                ..base.clone()
            },
        },
        Scenario {
            name: "two-years",
            what: "only two years of history at the origin (2022–2023, checked on 2024)",
            gen: GenConfig {
                start: day(2022, 1, 1),
                days: 1096,
                ..base.clone()
            },
        },
    ]
}

/// The monthly history of a scenario (its claims' totals, simulated).
///
/// Simulating a world takes 10–35 s at 25 % volume and the engine 5 ms:
/// with `BHYT_BENCH_CACHE=<dir>` the simulated monthly totals are kept
/// there, keyed by a hash of the generator's settings, so that work on
/// the engine reruns the family in seconds.
pub fn history_of(s: &Scenario) -> Result<History, ForecastError> {
    let mut summary = crate::generate::GenSummary::default();
    let cache = std::env::var_os("BHYT_BENCH_CACHE").map(|d| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!("{:?}", s.gen).hash(&mut h);
        std::path::PathBuf::from(d).join(format!("{}-{:016x}.json", s.name, h.finish()))
    });
    type Monthly = Vec<((String, NaiveDate), (f64, u64))>;
    let cached: Option<Monthly> = cache
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    match cached {
        Some(m) => summary.monthly = m.into_iter().collect(),
        None => {
            summary = crate::generate::simulate(&s.gen)
                .map_err(|e| ForecastError::Input(format!("scenario {}: {e}", s.name)))?;
            if let Some(p) = &cache {
                let m: Monthly = summary.monthly.clone().into_iter().collect();
                let body =
                    serde_json::to_vec(&m).map_err(|e| ForecastError::Input(e.to_string()))?;
                if let Some(dir) = p.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                crate::store::write_atomic(p, &body)
                    .map_err(|e| ForecastError::Input(format!("{}: {e}", p.display())))?;
            }
        }
    }
    History::from_generated(&s.gen, &summary)
}

/// Backtest of one scenario.
pub fn run(s: &Scenario, cfg: &ForecastConfig) -> Result<Backtest, ForecastError> {
    backtest(&history_of(s)?, cfg)
}
