//! Budget forecasting for planners: next year's spending per facility and
//! province, month by month with 80/90/95 % intervals; this year's
//! projection against the budget; the growth explained; a rolling-origin
//! backtest.
//!
//! Each facility's monthly spending (T_TONGCHI_BV by discharge month) is
//! forecast by the growth engine ([`engine`]: this year's level × a yearly
//! growth estimated robustly and shrunk toward the province's); a province
//! is the sum of its facilities, so the parts add up. Known changes (a
//! price decision for a grade or a service group, a coverage change)
//! multiply the forecast from their date. [`backtest`] measures it beside
//! the naive rules of [`baselines`]; [`scenarios`] over a family of
//! generated growth shapes.

pub mod backtest;
pub mod baselines;
mod calendar;
pub mod chart;
pub mod engine;
mod growth;
mod history;
pub mod model;
pub mod scenarios;
mod shocks;
mod tables;

pub use backtest::{backtest, Backtest, MethodScore};
pub use engine::ErrorModel;
pub use history::{history, History};
pub use tables::{run, write, ForecastTables};

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::store::Store;
use model::SeriesForecast;

#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    #[error("forecast: {0}")]
    Polars(#[from] PolarsError),
    #[error("forecast: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("forecast: {0}")]
    Input(String),
    #[error("forecast: chart {path}: {reason}")]
    Chart { path: String, reason: String },
}

/// A change known in advance that moves the forecast from a date.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KnownChange {
    /// `price` (multiplies the prices of the matching spending) or
    /// `coverage` (multiplies the number of visits, hence spending).
    pub kind: String,
    /// First day it applies.
    pub from: NaiveDate,
    /// Multiplier, e.g. 1.12.
    pub factor: f64,
    /// Only facilities of this grade / level / kind / code (all when absent).
    pub grade: Option<String>,
    pub level: Option<String>,
    pub facility_kind: Option<String>,
    pub facility_code: Option<String>,
    /// Only this service group's spending (a `category` of
    /// `datasets/reference/service_groups.csv`: drug, lab, bed, …); its share
    /// of the facility's spending in the last 12 months is what moves.
    pub service_group: Option<String>,
    /// Shown in the outputs.
    #[serde(default)]
    pub note: String,
}

/// Settings of `bhyt forecast` (`models/forecast.toml`). Defaults were
/// chosen on the benchmark over a family of growth shapes
/// (`bhyt forecast --benchmark`, `models/forecast.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForecastConfig {
    /// Backtest: months between forecast origins. Default 3.
    pub backtest_step: usize,
    /// Backtest: fewest months of history at an origin. Default 24.
    pub backtest_min_history: usize,
    /// Months of year-on-year ratios the yearly growth is estimated from
    /// (the last ones). Default 12: a whole year, so no month's season or
    /// price step weighs twice.
    pub growth_window: usize,
    /// Share of the year-on-year ratios trimmed at each end before their
    /// mean is taken (robust to a month of odd claims). Default 0.15.
    pub growth_trim: f64,
    /// When the line through the last 12 year-on-year ratios slopes by more
    /// than this many standard errors, growth changed inside the year and
    /// the line read at the last month sets it. Default 3; 0 turns it off.
    pub break_t: f64,
    /// After such a change across the province, its new growth is the mean
    /// of the line's and a local trend's (ETS on the province's regular
    /// facilities' total). Default true.
    pub break_blend: bool,
    /// A month whose year-on-year ratio is more than this many robust
    /// standard deviations above the others' is a spike (an epidemic, a
    /// one-off) when it belongs to a run of at most `spike_months` such
    /// months; it counts in the level at last year's value × the growth.
    /// Longer runs are taken as a real change of level. Default 3.5 and 3.
    pub spike_z: f64,
    pub spike_months: usize,
    /// A run of at most `shock_months` months in which the typical
    /// facility's year-on-year ratio is more than `shock_z` robust standard
    /// deviations from its usual value is a province-wide temporary shock (a
    /// lockdown, a long epidemic): every facility's spending of the odd
    /// months is put back at the level the neighbouring year shows before
    /// the season, growth and steps are read (`shocks.rs`). Default 4 and
    /// 9; `shock_z = 0` turns it off.
    pub shock_z: f64,
    pub shock_months: usize,
    /// Months without spending after which a facility is taken as closed
    /// (forecast 0). Default 3.
    pub closed_after: usize,
    /// Weight of the year before last, moved by two years of growth, in a
    /// facility's level (the rest is the last 12 months): halves the
    /// noise of a small facility's level when its growth is known. Default 0.3.
    pub level_smoothing: f64,
    /// A step in a series' level in its last two years (a heavier case mix,
    /// a new ward, a fraud that started) is taken as a change of level,
    /// not of growth, when its t statistic is at least `step_t` and its
    /// size at least `step_min` (log). Default 6 and 0.1 (about 10 %); 0
    /// turns it off.
    pub step_t: f64,
    pub step_min: f64,
    /// Least standard deviation of true yearly growth between facilities
    /// (log): facilities never grow alike, and where many small stations'
    /// noise hides the spread the estimate comes out 0 and a large
    /// hospital growing 9 % a year is given the others' 14 %. Default
    /// 0.01 (0.02 lost the median facility in five of six independent
    /// provinces).
    pub growth_spread_min: f64,
    /// Standard deviation of the change of a province's yearly growth from
    /// one year to the next: a prior, averaged with the largest change the
    /// history shows (against last year, or inside the last year) and never
    /// narrowed by it. Default 0.02.
    pub growth_shock_sd: f64,
    /// Weight of the direct forecast of the regular facilities' total (its
    /// own growth, unshrunk) against the sum of their forecasts; the
    /// facilities are scaled to the blend, keeping their shares. Default
    /// 0.5; 0: bottom-up only.
    pub direct_weight: f64,
    /// Known changes.
    #[serde(rename = "change")]
    pub changes: Vec<KnownChange>,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            backtest_step: 3,
            backtest_min_history: 24,
            growth_window: 12,
            growth_trim: 0.15,
            break_t: 3.0,
            break_blend: true,
            spike_z: 3.5,
            spike_months: 3,
            shock_z: 4.0,
            shock_months: 9,
            closed_after: 3,
            level_smoothing: 0.3,
            step_t: 6.0,
            step_min: 0.1,
            growth_spread_min: 0.01,
            growth_shock_sd: 0.02,
            direct_weight: 0.5,
            changes: Vec::new(),
        }
    }
}

pub(crate) fn month_of(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap()
}

pub(crate) fn add_months(d: NaiveDate, n: i32) -> NaiveDate {
    let m = d.year() * 12 + d.month0() as i32 + n;
    NaiveDate::from_ymd_opt(m.div_euclid(12), m.rem_euclid(12) as u32 + 1, 1).unwrap()
}

pub(crate) fn str_col(df: &DataFrame, c: &str) -> Result<Vec<String>, ForecastError> {
    Ok(df
        .column(c)?
        .cast(&DataType::String)?
        .str()?
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect())
}

pub(crate) fn f64_col(df: &DataFrame, c: &str) -> Result<Vec<f64>, ForecastError> {
    Ok(df
        .column(c)?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .map(|v| v.unwrap_or(0.0))
        .collect())
}

pub(crate) fn date_col(df: &DataFrame, c: &str) -> Result<Vec<NaiveDate>, ForecastError> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    Ok(crate::schema::date_column(df, c)?
        .into_iter()
        .map(|d| d.unwrap_or(epoch))
        .collect())
}

/// Code of a province total in every output: `province:<province>`.
pub fn province_key(p: &str) -> String {
    format!("province:{p}")
}

/// Whether a code is a province total.
pub fn is_province(code: &str) -> bool {
    code.starts_with("province:")
}

/// Forecasts of every facility and the province over `h` months after the
/// history's last complete month, reconciled, with known changes applied.
pub struct Forecasts {
    /// First forecast month.
    pub start: NaiveDate,
    pub by_code: BTreeMap<String, SeriesForecast>,
    /// Effect of the known changes per code and month (VND, point).
    pub known: BTreeMap<String, Vec<f64>>,
    /// Error model of each code (log scale), for intervals of any sum of months.
    pub errors: BTreeMap<String, ErrorModel>,
}

impl Forecasts {
    /// Sum of the forecast months `ks` of `code` and its 80/90/95 % bounds
    /// (log-normal around the sum, from the yearly error model: a sum is
    /// far surer than its months' bounds added up).
    pub fn sum_with_bounds(&self, code: &str, ks: &[usize]) -> (f64, [(f64, f64); 3]) {
        let Some(f) = self.by_code.get(code) else {
            return (0.0, [(0.0, 0.0); 3]);
        };
        let point: f64 = ks.iter().filter_map(|k| f.point.get(*k)).sum();
        let sd = self.errors.get(code).map_or(0.0, |e| e.sum_sd(ks));
        let b = model::LEVELS.map(|l| {
            let z = model::z(l);
            (point * (-z * sd).exp(), point * (z * sd).exp())
        });
        (point, b)
    }
}

/// The last complete month of the history (the month of the last day when
/// that day is the month's last, else the month before).
pub fn last_complete(h: &History) -> usize {
    let next = h.last_day + chrono::Duration::days(1);
    let k = h.months.len();
    if next.day() == 1 {
        k
    } else {
        k - 1
    }
}

/// Facilities of each province.
pub(crate) fn provinces(h: &History) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for code in h.series.keys() {
        let p = h
            .province_of
            .get(code)
            .cloned()
            .unwrap_or_else(|| "?".into());
        out.entry(p).or_default().push(code.clone());
    }
    out
}

/// Forecasts `horizon` months from month index `upto` (exclusive end of
/// history): the engine's points and calibrated intervals, known changes applied.
pub fn forecast_from(h: &History, upto: usize, horizon: usize, cfg: &ForecastConfig) -> Forecasts {
    let start = add_months(h.months[0], upto as i32);
    let groups = provinces(h);
    let fits = engine::fit_all(h, &groups, upto, horizon, cfg);
    let [fac_year, fac_month, prov_year, prov_month] = engine::calibrate(h, &groups, upto, cfg);
    let mut by_code = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for (code, fit) in fits {
        let mut err = fit.err;
        if is_province(&code) {
            (err.k_year, err.k_month) = (prov_year, prov_month);
        } else {
            (err.k_year, err.k_month) = (fac_year, fac_month);
        }
        by_code.insert(
            code.clone(),
            engine::with_bounds(fit.point, &err, fit.model),
        );
        errors.insert(code, err);
    }
    let mut known: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (p, members) in &groups {
        for code in members {
            let f = by_code.get_mut(code).expect("every member is forecast");
            known.insert(code.clone(), apply_changes(h, code, f, start, cfg));
        }
        // The province is the sum of its (changed) facilities; its bounds
        // keep their relative width.
        let key = province_key(p);
        for m in 0..horizon {
            let sum: f64 = members.iter().map(|c| by_code[c].point[m]).sum();
            let prov = by_code.get_mut(&key).expect("every province is forecast");
            if prov.point[m] > 0.0 {
                prov.scale(m, sum / prov.point[m]);
            }
        }
        let prov_known: Vec<f64> = (0..horizon)
            .map(|m| members.iter().map(|c| known[c][m]).sum())
            .collect();
        known.insert(key, prov_known);
    }
    Forecasts {
        start,
        by_code,
        known,
        errors,
    }
}

/// Applies the known changes that match a facility to its forecast from
/// their date; returns their effect per month (VND).
fn apply_changes(
    h: &History,
    code: &str,
    f: &mut SeriesForecast,
    start: NaiveDate,
    cfg: &ForecastConfig,
) -> Vec<f64> {
    let reg = h.registry.get(code);
    let mut eff = vec![0.0; f.point.len()];
    for c in &cfg.changes {
        let matches = c.facility_code.as_deref().is_none_or(|x| x == code)
            && c.level
                .as_ref()
                .is_none_or(|x| reg.is_some_and(|r| &r[1] == x))
            && c.grade
                .as_ref()
                .is_none_or(|x| reg.is_some_and(|r| &r[2] == x))
            && c.facility_kind
                .as_ref()
                .is_none_or(|x| reg.is_some_and(|r| &r[3] == x));
        if !matches {
            continue;
        }
        let share = match &c.service_group {
            Some(g) => h
                .group_share
                .get(code)
                .and_then(|m| m.get(g))
                .copied()
                .unwrap_or(0.0),
            None => 1.0,
        };
        let mult = 1.0 + (c.factor - 1.0) * share;
        for (m, e) in eff.iter_mut().enumerate() {
            if add_months(start, m as i32) >= month_of(c.from) {
                let before = f.point[m];
                f.scale(m, mult);
                *e += f.point[m] - before;
            }
        }
    }
    eff
}

/// Series of a code (a province is the sum of its facilities).
pub(crate) fn series_of(h: &History, code: &str) -> Vec<[f64; 4]> {
    if let Some(p) = code.strip_prefix("province:") {
        let members: Vec<&Vec<[f64; 4]>> = h
            .series
            .iter()
            .filter(|(c, _)| h.province_of.get(*c).map(String::as_str).unwrap_or("?") == p)
            .map(|(_, s)| s)
            .collect();
        (0..h.months.len())
            .map(|i| {
                let mut a = [0.0; 4];
                for s in &members {
                    for k in 0..4 {
                        a[k] += s[i][k];
                    }
                }
                a
            })
            .collect()
    } else {
        h.series[code].clone()
    }
}
