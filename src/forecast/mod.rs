//! Budget forecasting for planners: next year's spending per facility and
//! province, month by month with 80/90/95 % intervals; this year's
//! projection against the budget; the growth explained; a rolling-origin
//! backtest.
//!
//! Each facility's and the province's monthly spending (T_TONGCHI_BV by
//! discharge month) is forecast by [`model::forecast`] (ETS in logs). The
//! facility forecasts are then reconciled to the province total
//! (proportional top-down: each month's facility points and bounds are
//! scaled so the points sum to the province point), because the province
//! series is smoother and better forecast than the sum of ninety noisy
//! ones, and planners need the parts to add up. Known changes (a price
//! decision for a grade or a service group, a coverage change) multiply the
//! forecast from their date.

pub mod chart;
pub mod model;

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

/// Settings of `bhyt forecast` (`models/forecast.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ForecastConfig {
    /// Backtest: months between forecast origins. Default 3.
    pub backtest_step: usize,
    /// Backtest: fewest months of history at an origin. Default 24.
    pub backtest_min_history: usize,
    /// Forecast facilities with the province's seasonal profile instead of
    /// their own (fewer, steadier parameters for small series). Default true.
    pub province_season: bool,
    /// Weight of the share forecast (facility's share of the province's
    /// last 12 months × the province forecast) against the facility's own.
    /// Default 0.8 (backtest on generated data: 0 → median facility MAPE
    /// 9.0 %, 0.5 → 8.1 %, 0.8 → 7.9 %, 1 → 7.8 %; kept below 1 so a
    /// facility's own trend still counts).
    pub share_weight: f64,
    /// Known changes.
    #[serde(rename = "change")]
    pub changes: Vec<KnownChange>,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            backtest_step: 3,
            backtest_min_history: 24,
            province_season: true,
            share_weight: 0.8,
            changes: Vec::new(),
        }
    }
}

/// Monthly panel from the store: spending, visits, out-of-province spending
/// and a case-mix index per facility and month, plus the facility registry.
pub struct History {
    pub months: Vec<NaiveDate>,
    /// facility → (spending, visits, out-of-province spending, expected cost) per month.
    pub series: BTreeMap<String, Vec<[f64; 4]>>,
    pub registry: HashMap<String, [String; 4]>,
    /// facility → service group → share of spending in the last 12 months.
    pub group_share: HashMap<String, HashMap<String, f64>>,
    /// facility → price change of the last 12 months against the 12 before (Paasche).
    pub price_change: HashMap<String, f64>,
    /// province → the same over its facilities.
    pub province_price_change: HashMap<String, f64>,
    /// facility → current province (of the facility, after the 2025 mergers).
    pub province_of: BTreeMap<String, String>,
    /// Last discharge date in the data.
    pub last_day: NaiveDate,
    pub budgets: HashMap<(String, i32), f64>,
}

fn month_of(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap()
}

pub(crate) fn add_months(d: NaiveDate, n: i32) -> NaiveDate {
    let m = d.year() * 12 + d.month0() as i32 + n;
    NaiveDate::from_ymd_opt(m.div_euclid(12), m.rem_euclid(12) as u32 + 1, 1).unwrap()
}

fn str_col(df: &DataFrame, c: &str) -> Result<Vec<String>, ForecastError> {
    Ok(df
        .column(c)?
        .cast(&DataType::String)?
        .str()?
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect())
}

fn f64_col(df: &DataFrame, c: &str) -> Result<Vec<f64>, ForecastError> {
    Ok(df
        .column(c)?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .map(|v| v.unwrap_or(0.0))
        .collect())
}

fn date_col(df: &DataFrame, c: &str) -> Result<Vec<NaiveDate>, ForecastError> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    Ok(crate::schema::date_column(df, c)?
        .into_iter()
        .map(|d| d.unwrap_or(epoch))
        .collect())
}

/// Reads the history up to `as_of` (inclusive; default: all).
pub fn history(store: &Store, as_of: Option<NaiveDate>) -> Result<History, ForecastError> {
    let mut visits = store.visits()?;
    if let Some(d) = as_of {
        visits = visits.filter(col("discharge_date").lt_eq(lit(d)));
    }
    let visits = visits
        .select([
            col("facility_code"),
            col("facility_province"),
            col("visit_key"),
            col("discharge_date"),
            col("total_cost"),
            col("out_of_province"),
            col("visit_group"),
            col("dx3"),
        ])
        .with_column(
            col("discharge_date")
                .dt()
                .truncate(lit("1mo"))
                .alias("month"),
        )
        .collect()?;
    if visits.height() == 0 {
        return Err(ForecastError::Input("the store holds no visits".into()));
    }
    // Case mix: each visit's expected cost is the mean cost of its
    // diagnosis category and visit type over all the data (years pooled,
    // so prices do not move it).
    let v = visits
        .lazy()
        .with_column(
            col("total_cost")
                .mean()
                .over([col("dx3"), col("visit_group")])?
                .alias("expected"),
        )
        .group_by([col("facility_code"), col("month")])
        .agg([
            col("facility_province").first().alias("province"),
            col("total_cost").sum().alias("cost"),
            len().cast(DataType::Float64).alias("visits"),
            col("total_cost")
                .filter(col("out_of_province"))
                .sum()
                .alias("oop"),
            col("expected").sum().alias("expected"),
        ])
        .collect()?;
    let f = str_col(&v, "facility_code")?;
    let prov = str_col(&v, "province")?;
    let province_of: BTreeMap<String, String> =
        f.iter().cloned().zip(prov.iter().cloned()).collect();
    let m = date_col(&v, "month")?;
    let cost = f64_col(&v, "cost")?;
    let vis = f64_col(&v, "visits")?;
    let oop = f64_col(&v, "oop")?;
    let exp = f64_col(&v, "expected")?;
    let last_day = store
        .visits()?
        .select([col("discharge_date").max()])
        .collect()?;
    let mut last_day = date_col(&last_day, "discharge_date")?[0];
    if let Some(d) = as_of {
        last_day = last_day.min(d);
    }
    let first = *m.iter().min().unwrap();
    let last = month_of(last_day);
    let mut months = vec![first];
    while *months.last().unwrap() < last {
        months.push(add_months(*months.last().unwrap(), 1));
    }
    let idx: HashMap<NaiveDate, usize> = months.iter().enumerate().map(|(i, d)| (*d, i)).collect();
    let mut series: BTreeMap<String, Vec<[f64; 4]>> = BTreeMap::new();
    for i in 0..v.height() {
        let s = series
            .entry(f[i].clone())
            .or_insert_with(|| vec![[0.0; 4]; months.len()]);
        if let Some(&k) = idx.get(&m[i]) {
            s[k] = [cost[i], vis[i], oop[i], exp[i]];
        }
    }
    let mut registry = HashMap::new();
    if store.facilities_path().exists() {
        let r = store.facilities()?.collect()?;
        let code = str_col(&r, "facility_code")?;
        let get = |c: &str| str_col(&r, c).unwrap_or_else(|_| vec![String::new(); r.height()]);
        let (name, level, grade, kind) = (get("name"), get("level"), get("grade"), get("kind"));
        for i in 0..r.height() {
            registry.insert(
                code[i].clone(),
                [
                    name[i].clone(),
                    level[i].clone(),
                    grade[i].clone(),
                    kind[i].clone(),
                ],
            );
        }
    }
    let mut budgets = HashMap::new();
    if store.budgets_path().exists() {
        let b = store.budgets()?.collect()?;
        let code = str_col(&b, "facility_code")?;
        let year = f64_col(&b, "year")?;
        let amount = f64_col(&b, "budget_vnd")?;
        for i in 0..b.height() {
            budgets.insert((code[i].clone(), year[i] as i32), amount[i]);
        }
    }
    let (group_share, amounts) = line_statistics(store, last_day)?;
    let mut price_change = HashMap::new();
    let mut by_province: HashMap<String, (f64, f64)> = HashMap::new();
    for (fac, (a, b)) in &amounts {
        if *b > 0.0 {
            price_change.insert(fac.clone(), a / b - 1.0);
        }
        if let Some(p) = province_of.get(fac) {
            let e = by_province.entry(p.clone()).or_default();
            e.0 += a;
            e.1 += b;
        }
    }
    let province_price_change = by_province
        .into_iter()
        .filter(|(_, (_, b))| *b > 0.0)
        .map(|(p, (a, b))| (p, a / b - 1.0))
        .collect();
    Ok(History {
        months,
        series,
        registry,
        group_share,
        price_change,
        province_price_change,
        province_of,
        last_day,
        budgets,
    })
}

/// Service-group shares of the last 12 months, and per facility the two
/// sums of the price change of the last 12 months against the 12 before: Σ amount / Σ quantity × the
/// earlier period's province median unit price of the same item (Paasche).
#[allow(clippy::type_complexity)]
fn line_statistics(
    store: &Store,
    last_day: NaiveDate,
) -> Result<
    (
        HashMap<String, HashMap<String, f64>>,
        HashMap<String, (f64, f64)>,
    ),
    ForecastError,
> {
    let recent = last_day - chrono::Duration::days(365);
    let before = last_day - chrono::Duration::days(730);
    let lines = store
        .lines()?
        .filter(
            col("discharge_date")
                .gt(lit(before))
                .and(col("discharge_date").lt_eq(lit(last_day))),
        )
        .select([
            col("facility_code"),
            col("item_code"),
            col("category"),
            col("quantity"),
            col("amount"),
            col("discharge_date").gt(lit(recent)).alias("recent"),
        ])
        .collect()?;
    let shares = lines
        .clone()
        .lazy()
        .filter(col("recent"))
        .group_by([col("facility_code"), col("category")])
        .agg([col("amount").sum().alias("a")])
        .with_column((col("a") / col("a").sum().over([col("facility_code")])?).alias("share"))
        .collect()?;
    let mut group_share: HashMap<String, HashMap<String, f64>> = HashMap::new();
    {
        let f = str_col(&shares, "facility_code")?;
        let c = str_col(&shares, "category")?;
        let s = f64_col(&shares, "share")?;
        for i in 0..shares.height() {
            group_share
                .entry(f[i].clone())
                .or_default()
                .insert(c[i].clone(), s[i]);
        }
    }
    let base = lines
        .clone()
        .lazy()
        .filter(col("recent").not().and(col("quantity").gt(lit(0.0))))
        .group_by([col("item_code")])
        .agg([(col("amount") / col("quantity")).median().alias("p0")]);
    let priced = lines
        .lazy()
        .filter(col("recent").and(col("quantity").gt(lit(0.0))))
        .join(
            base,
            [col("item_code")],
            [col("item_code")],
            JoinArgs::new(JoinType::Inner),
        )
        .with_column((col("quantity") * col("p0")).alias("at_p0"));
    let per = priced
        .clone()
        .group_by([col("facility_code")])
        .agg([
            col("amount").sum().alias("a"),
            col("at_p0").sum().alias("b"),
        ])
        .collect()?;
    let mut amounts = HashMap::new();
    {
        let f = str_col(&per, "facility_code")?;
        let a = f64_col(&per, "a")?;
        let b = f64_col(&per, "b")?;
        for i in 0..per.height() {
            amounts.insert(f[i].clone(), (a[i], b[i]));
        }
    }
    Ok((group_share, amounts))
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
fn provinces(h: &History) -> BTreeMap<String, Vec<String>> {
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

fn total(h: &History, codes: &[String], upto: usize) -> Vec<f64> {
    (0..upto)
        .map(|i| codes.iter().map(|c| h.series[c][i][0]).sum())
        .collect()
}

/// Forecasts `horizon` months from month index `upto` (exclusive end of history).
pub fn forecast_from(h: &History, upto: usize, horizon: usize, cfg: &ForecastConfig) -> Forecasts {
    use rayon::prelude::*;
    let start = add_months(h.months[0], upto as i32);
    let groups = provinces(h);
    let month0: Vec<u32> = (0..upto + horizon)
        .map(|i| add_months(h.months[0], i as i32).month0())
        .collect();
    // Each province's own series, and its seasonal profile: a facility's
    // own months are too few and too noisy to estimate twelve seasonal
    // indices (measured: median facility MAPE 9.8 % with their own MSTL
    // season, 9.0 % with the province's; models/forecast.md).
    let prov_y: BTreeMap<&String, Vec<f64>> =
        groups.iter().map(|(p, c)| (p, total(h, c, upto))).collect();
    let profiles: BTreeMap<&String, Option<[f64; 12]>> = prov_y
        .iter()
        .map(|(p, y)| {
            let prof = if cfg.province_season {
                model::seasonal_profile(y, &month0[..upto])
            } else {
                None
            };
            (*p, prof)
        })
        .collect();
    let codes: Vec<&String> = h.series.keys().collect();
    let province_of = |c: &String| h.province_of.get(c).cloned().unwrap_or_else(|| "?".into());
    // From each facility's first month with spending.
    let firsts: Vec<usize> = codes
        .iter()
        .map(|c| {
            h.series[*c][..upto]
                .iter()
                .position(|v| v[0] > 0.0)
                .unwrap_or(upto)
        })
        .collect();
    let ys: Vec<Vec<f64>> = codes
        .iter()
        .zip(&firsts)
        .map(|(c, &first)| h.series[*c][first..upto].iter().map(|v| v[0]).collect())
        .collect();
    let seasons: Vec<Option<Vec<f64>>> = codes
        .iter()
        .zip(&firsts)
        .map(|(c, &first)| {
            profiles
                .get(&province_of(c))
                .copied()
                .flatten()
                .map(|p| month0[first..].iter().map(|m| p[*m as usize]).collect())
        })
        .collect();
    // Interval calibration: the facilities' recent forecast errors pooled
    // (one factor for all, stable).
    let pooled: Vec<f64> = ys
        .par_iter()
        .zip(seasons.par_iter())
        .flat_map(|(y, s)| model::self_check(y, s.as_deref()))
        .collect();
    let k_fac = model::inflation(&pooled);
    let mut by_code: BTreeMap<String, SeriesForecast> = codes
        .par_iter()
        .zip(ys.par_iter())
        .zip(seasons.par_iter())
        .map(|((c, y), s)| {
            (
                (*c).clone(),
                model::forecast(y, horizon, k_fac, s.as_deref()),
            )
        })
        .collect();
    let first_of: HashMap<&String, usize> =
        codes.iter().copied().zip(firsts.iter().copied()).collect();
    let mut known: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut totals: Vec<(String, SeriesForecast)> = Vec::new();
    for (p, members) in &groups {
        let py = &prov_y[p];
        // The province's own check has few points: the facilities' factor is its floor.
        let k_prov = model::inflation(&model::self_check(py, None)).max(k_fac);
        let province = model::forecast(py, horizon, k_prov, None);
        // Combination with the share forecast: the facility's share of the
        // province's last 12 months × the province forecast. For small,
        // noisy facilities a year's share is a steadier level than the end
        // of their own smoothed series; the weight was chosen on the
        // backtest (models/forecast.md).
        let prov_12: f64 = py[upto.saturating_sub(12)..].iter().sum();
        if cfg.share_weight > 0.0 && upto >= 12 && prov_12 > 0.0 {
            for c in members {
                if first_of[c] + 12 > upto {
                    continue;
                }
                let own_12: f64 = h.series[c][upto - 12..upto].iter().map(|v| v[0]).sum();
                let share = own_12 / prov_12;
                let f = by_code.get_mut(c).unwrap();
                for m in 0..horizon {
                    let own = f.point[m];
                    let mixed = cfg.share_weight * share * province.point[m]
                        + (1.0 - cfg.share_weight) * own;
                    if own > 0.0 {
                        f.scale(m, mixed / own);
                    }
                }
            }
        }
        // Proportional reconciliation to the province point forecast.
        for m in 0..horizon {
            let sum: f64 = members.iter().map(|c| by_code[c].point[m]).sum();
            if sum > 0.0 {
                let k = province.point[m] / sum;
                for c in members {
                    by_code.get_mut(c).unwrap().scale(m, k);
                }
            }
        }
        // Known changes.
        for code in members {
            let f = by_code.get_mut(code).unwrap();
            let reg = h.registry.get(code);
            let mut eff = vec![0.0; horizon];
            for c in &cfg.changes {
                let matches = c.facility_code.as_ref().is_none_or(|x| x == code)
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
            known.insert(code.clone(), eff);
        }
        // The province is the sum of its (reconciled, changed) facilities;
        // its bounds keep the province model's relative width.
        let mut prov = province.clone();
        for m in 0..horizon {
            let sum: f64 = members.iter().map(|c| by_code[c].point[m]).sum();
            if province.point[m] > 0.0 {
                prov.scale(m, sum / province.point[m]);
            }
        }
        let prov_known: Vec<f64> = (0..horizon)
            .map(|m| members.iter().map(|c| known[c][m]).sum())
            .collect();
        known.insert(province_key(p), prov_known);
        totals.push((province_key(p), prov));
    }
    by_code.extend(totals);
    Forecasts {
        start,
        by_code,
        known,
    }
}

/// Series of a code (a province is the sum of its facilities).
fn series_of(h: &History, code: &str) -> Vec<[f64; 4]> {
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

/// The tables `bhyt forecast` writes.
pub struct ForecastTables {
    /// code, month, actual, point, lo/hi 80, 90, 95, model.
    pub monthly: DataFrame,
    /// Growth from the last complete year to the forecast year, decomposed.
    pub growth: DataFrame,
    /// In-year projection against the budget.
    pub projection: DataFrame,
}

/// Runs the forecast from the end of the history to the end of next year.
pub fn run(
    h: &History,
    cfg: &ForecastConfig,
) -> Result<(Forecasts, ForecastTables), ForecastError> {
    for (i, c) in cfg.changes.iter().enumerate() {
        if c.kind != "price" && c.kind != "coverage" {
            return Err(ForecastError::Input(format!(
                "change {}: kind `{}` is neither price nor coverage",
                i + 1,
                c.kind
            )));
        }
        if !(c.factor.is_finite() && c.factor > 0.0) {
            return Err(ForecastError::Input(format!(
                "change {}: factor {} must be positive",
                i + 1,
                c.factor
            )));
        }
    }
    let upto = last_complete(h);
    if upto < 13 {
        return Err(ForecastError::Input(format!(
            "{upto} complete months of history: at least 13 are needed (36 for a seasonal forecast)"
        )));
    }
    let last_month = h.months[upto - 1];
    // To the end of next year.
    let horizon = (12 - last_month.month0() as usize - 1) + 12;
    let horizon = if horizon == 11 { 12 } else { horizon };
    let horizon = horizon.max(12);
    let f = forecast_from(h, upto, horizon, cfg);
    let monthly = monthly_table(h, &f, upto)?;
    let growth = growth_table(h, &f, upto)?;
    let projection = projection_table(h, &f, upto)?;
    Ok((
        f,
        ForecastTables {
            monthly,
            growth,
            projection,
        },
    ))
}

fn monthly_table(h: &History, f: &Forecasts, upto: usize) -> Result<DataFrame, ForecastError> {
    let mut code = Vec::new();
    let mut month = Vec::new();
    let mut actual: Vec<Option<f64>> = Vec::new();
    let mut point: Vec<Option<f64>> = Vec::new();
    let mut b: [Vec<Option<f64>>; 6] = Default::default();
    let mut model = Vec::new();
    for (c, fc) in &f.by_code {
        let s = series_of(h, c);
        for (i, m) in h.months.iter().enumerate().take(upto) {
            code.push(c.clone());
            month.push(*m);
            actual.push(Some(s[i][0]));
            point.push(None);
            for v in b.iter_mut() {
                v.push(None);
            }
            model.push(String::new());
        }
        for k in 0..fc.point.len() {
            code.push(c.clone());
            let m = add_months(f.start, k as i32);
            month.push(m);
            // Actuals of a partial last month are not shown as complete.
            actual.push(None);
            point.push(Some(fc.point[k]));
            for (l, (lo, hi)) in fc.bounds.iter().enumerate() {
                b[2 * l].push(lo.get(k).copied());
                b[2 * l + 1].push(hi.get(k).copied());
            }
            model.push(fc.model.clone());
        }
    }
    let names = ["lo80", "hi80", "lo90", "hi90", "lo95", "hi95"];
    let mut cols = vec![
        Column::new("code".into(), code),
        Column::new("month".into(), month),
        Column::new("actual_vnd".into(), actual),
        Column::new("forecast_vnd".into(), point),
    ];
    for (n, v) in names.iter().zip(b) {
        cols.push(Column::new((*n).into(), v));
    }
    cols.push(Column::new("model".into(), model));
    Ok(DataFrame::new_infer_height(cols)?)
}

fn growth_table(h: &History, f: &Forecasts, upto: usize) -> Result<DataFrame, ForecastError> {
    // Base year: the last complete calendar year of the history; forecast
    // year: the next one.
    let last_month = h.months[upto - 1];
    let base_year = if last_month.month() == 12 {
        last_month.year()
    } else {
        last_month.year() - 1
    };
    let fy = base_year + 1;
    let mut rows: Vec<(String, [f64; 9])> = Vec::new();
    for (c, fc) in &f.by_code {
        let s = series_of(h, c);
        let year_sum = |y: i32, k: usize| -> f64 {
            h.months
                .iter()
                .zip(&s)
                .take(upto)
                .filter(|(m, _)| m.year() == y)
                .map(|(_, v)| v[k])
                .sum()
        };
        // Forecast-year spending: actual months of that year + forecast months.
        let mut f1 = year_sum(fy, 0);
        let mut known = 0.0;
        for k in 0..fc.point.len() {
            if add_months(f.start, k as i32).year() == fy {
                f1 += fc.point[k];
                known += f.known[c][k];
            }
        }
        let a0 = year_sum(base_year, 0);
        let (v0, oop0, e0) = (
            year_sum(base_year, 1),
            year_sum(base_year, 2),
            year_sum(base_year, 3),
        );
        let (vp, ep) = (year_sum(base_year - 1, 1), year_sum(base_year - 1, 3));
        if a0 <= 0.0 || v0 <= 0.0 {
            continue;
        }
        // Volume: the forecast-year visits from the visits series.
        let y: Vec<f64> = s[..upto].iter().map(|v| v[1]).collect();
        let first = y.iter().position(|v| *v > 0.0).unwrap_or(0);
        let vf = model::forecast(&y[first..], fc.point.len(), 1.0, None);
        let mut v1 = year_sum(fy, 1);
        for k in 0..fc.point.len() {
            if add_months(f.start, k as i32).year() == fy {
                v1 += vf.point[k];
            }
        }
        let vol = v1 / v0 - 1.0;
        let prov_change = |p: &str| h.province_price_change.get(p).copied().unwrap_or(0.0);
        let price = match c.strip_prefix("province:") {
            Some(p) => prov_change(p),
            None => h.price_change.get(c).copied().unwrap_or_else(|| {
                prov_change(h.province_of.get(c).map(String::as_str).unwrap_or("?"))
            }),
        };
        // Case mix: expected cost per visit, change of the last year carried forward.
        let cmi = if vp > 0.0 && ep > 0.0 && e0 > 0.0 {
            (e0 / v0) / (ep / vp) - 1.0
        } else {
            0.0
        };
        let volume_vnd = a0 * vol;
        let price_vnd = a0 * (1.0 + vol) * price;
        let case_mix_vnd = a0 * (1.0 + vol) * (1.0 + price) * cmi;
        let oop1 = if a0 > 0.0 { oop0 / a0 * f1 } else { 0.0 };
        let other = f1 - a0 - volume_vnd - price_vnd - case_mix_vnd - known;
        rows.push((
            c.clone(),
            [
                a0,
                f1,
                volume_vnd,
                price_vnd,
                case_mix_vnd,
                known,
                other,
                oop1 - oop0,
                f1 / a0 - 1.0,
            ],
        ));
    }
    let n = rows.len();
    let col_of = |k: usize| rows.iter().map(|r| r.1[k]).collect::<Vec<f64>>();
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            "code".into(),
            rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        ),
        Column::new("base_year".into(), vec![base_year; n]),
        Column::new("forecast_year".into(), vec![fy; n]),
        Column::new("base_vnd".into(), col_of(0)),
        Column::new("forecast_vnd".into(), col_of(1)),
        Column::new("growth".into(), col_of(8)),
        Column::new("volume_vnd".into(), col_of(2)),
        Column::new("price_vnd".into(), col_of(3)),
        Column::new("case_mix_vnd".into(), col_of(4)),
        Column::new("known_changes_vnd".into(), col_of(5)),
        Column::new("other_vnd".into(), col_of(6)),
        Column::new("out_of_province_vnd".into(), col_of(7)),
    ])?)
}

fn projection_table(h: &History, f: &Forecasts, upto: usize) -> Result<DataFrame, ForecastError> {
    // The year of the last data month (the current year).
    let year = h.months[h.months.len() - 1].year();
    let mut rows: Vec<(String, [Option<f64>; 8], Option<NaiveDate>)> = Vec::new();
    for (c, fc) in &f.by_code {
        let s = series_of(h, c);
        let spent: f64 = h
            .months
            .iter()
            .zip(&s)
            .filter(|(m, _)| m.year() == year)
            .map(|(_, v)| v[0])
            .sum();
        let complete: f64 = h
            .months
            .iter()
            .zip(&s)
            .take(upto)
            .filter(|(m, _)| m.year() == year)
            .map(|(_, v)| v[0])
            .sum();
        let mut proj = [complete; 3];
        let (mut lo, mut hi) = (complete, complete);
        let mut path = Vec::new();
        let mut cum = complete;
        for k in 0..fc.point.len() {
            let m = add_months(f.start, k as i32);
            if m.year() != year {
                continue;
            }
            proj[0] += fc.point[k];
            lo += fc.bounds[1].0[k];
            hi += fc.bounds[1].1[k];
            cum += fc.point[k];
            path.push((m, cum));
        }
        proj[1] = lo;
        proj[2] = hi;
        let budget = if let Some(p) = c.strip_prefix("province:") {
            let b: f64 = h
                .budgets
                .iter()
                .filter(|((code, y), _)| {
                    *y == year && h.province_of.get(code).map(String::as_str) == Some(p)
                })
                .map(|(_, v)| *v)
                .sum();
            (b > 0.0).then_some(b)
        } else {
            h.budgets.get(&(c.clone(), year)).copied()
        };
        // Month the budget runs out: first month whose cumulative spending
        // (actual, then forecast) passes it.
        let run_out = budget.and_then(|b| {
            let mut cum = 0.0;
            for (m, v) in h.months.iter().zip(&s).take(upto) {
                if m.year() == year {
                    cum += v[0];
                    if cum > b {
                        return Some(*m);
                    }
                }
            }
            path.iter().find(|(_, v)| *v > b).map(|(m, _)| *m)
        });
        rows.push((
            c.clone(),
            [
                budget,
                Some(spent),
                Some(proj[0]),
                Some(proj[1]),
                Some(proj[2]),
                budget.map(|b| proj[0] - b),
                budget.map(|b| proj[1] - b),
                budget.map(|b| proj[2] - b),
            ],
            run_out,
        ));
    }
    let n = rows.len();
    let col_of = |k: usize| rows.iter().map(|r| r.1[k]).collect::<Vec<Option<f64>>>();
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            "code".into(),
            rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        ),
        Column::new("year".into(), vec![year; n]),
        Column::new("as_of".into(), vec![h.last_day; n]),
        Column::new("budget_vnd".into(), col_of(0)),
        Column::new("spent_to_date_vnd".into(), col_of(1)),
        Column::new("projected_vnd".into(), col_of(2)),
        Column::new("projected_lo90".into(), col_of(3)),
        Column::new("projected_hi90".into(), col_of(4)),
        Column::new("overrun_vnd".into(), col_of(5)),
        Column::new("overrun_lo90".into(), col_of(6)),
        Column::new("overrun_hi90".into(), col_of(7)),
        Column::new(
            "runs_out_in".into(),
            rows.iter().map(|r| r.2).collect::<Vec<Option<NaiveDate>>>(),
        ),
    ])?)
}

/// Rolling-origin backtest: from each origin (every `backtest_step` months
/// with at least `backtest_min_history` months before and 12 after),
/// forecast 12 months and compare with what happened.
pub struct Backtest {
    /// code, origin, MAPE over the 12 months, error of the 12-month total.
    pub per_origin: DataFrame,
    /// Median facility MAPE, mean absolute province 12-month error, and the
    /// coverage of the 80/90/95 % intervals over all facility-months.
    pub median_facility_mape: f64,
    pub province_error: f64,
    /// (province code, origin, error of the 12-month total).
    pub province_errors: Vec<(String, NaiveDate, f64)>,
    pub coverage: [f64; 3],
    pub province_coverage: [f64; 3],
}

pub fn backtest(h: &History, cfg: &ForecastConfig) -> Result<Backtest, ForecastError> {
    let upto_all = last_complete(h);
    let mut origins = Vec::new();
    let mut o = upto_all.saturating_sub(12);
    while o >= cfg.backtest_min_history && o + 12 <= upto_all {
        origins.push(o);
        if o < cfg.backtest_step {
            break;
        }
        o -= cfg.backtest_step;
    }
    origins.reverse();
    if origins.is_empty() {
        return Err(ForecastError::Input(format!(
            "{upto_all} complete months: a backtest needs {} months of history and 12 to check",
            cfg.backtest_min_history
        )));
    }
    let mut code = Vec::new();
    let mut origin = Vec::new();
    let mut mape = Vec::new();
    let mut total_err = Vec::new();
    let mut hit = [0usize; 3];
    let mut n = 0usize;
    let mut phit = [0usize; 3];
    let mut pn = 0usize;
    let mut per_code: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut province_errors = Vec::new();
    for &o in &origins {
        let f = forecast_from(h, o, 12, cfg);
        for (c, fc) in &f.by_code {
            let s = series_of(h, c);
            let actual: Vec<f64> = (0..12).map(|k| s[o + k][0]).collect();
            // Facilities that had no spending before the origin are new: skip.
            if s[..o].iter().all(|v| v[0] == 0.0) {
                continue;
            }
            let apes: Vec<f64> = (0..12)
                .filter(|&k| actual[k] > 0.0)
                .map(|k| (fc.point[k] - actual[k]).abs() / actual[k])
                .collect();
            let m = apes.iter().sum::<f64>() / apes.len().max(1) as f64;
            let ta: f64 = actual.iter().sum();
            let tf: f64 = fc.point.iter().sum();
            let err = if ta > 0.0 { (tf - ta) / ta } else { 0.0 };
            for k in 0..12 {
                for (l, (lo, hi)) in fc.bounds.iter().enumerate() {
                    let inside = actual[k] >= lo[k] && actual[k] <= hi[k];
                    if is_province(c) {
                        phit[l] += inside as usize;
                    } else {
                        hit[l] += inside as usize;
                    }
                }
                if is_province(c) {
                    pn += 1;
                } else {
                    n += 1;
                }
            }
            if is_province(c) {
                province_errors.push((c.clone(), h.months[o], err));
            } else {
                per_code.entry(c.clone()).or_default().push(m);
            }
            code.push(c.clone());
            origin.push(h.months[o]);
            mape.push(m);
            total_err.push(err);
        }
    }
    let mut fac: Vec<f64> = per_code
        .values()
        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
        .collect();
    let median = if fac.is_empty() {
        f64::NAN
    } else {
        crate::detect::median(&mut fac)
    };
    let province_error = province_errors.iter().map(|e| e.2.abs()).sum::<f64>()
        / province_errors.len().max(1) as f64;
    Ok(Backtest {
        per_origin: DataFrame::new_infer_height(vec![
            Column::new("code".into(), code),
            Column::new("origin".into(), origin),
            Column::new("mape".into(), mape),
            Column::new("total_error".into(), total_err),
        ])?,
        median_facility_mape: median,
        province_error,
        province_errors,
        coverage: [0, 1, 2].map(|l| hit[l] as f64 / n.max(1) as f64),
        province_coverage: [0, 1, 2].map(|l| phit[l] as f64 / pn.max(1) as f64),
    })
}

/// Writes the tables and the fan charts under `dir`.
pub fn write(
    h: &History,
    f: &Forecasts,
    t: &mut ForecastTables,
    dir: &Path,
    lang: crate::detect::Lang,
) -> Result<usize, ForecastError> {
    crate::store::write_parquet_atomic(&mut t.monthly, &dir.join("forecast_monthly.parquet"))?;
    crate::store::write_parquet_atomic(&mut t.growth, &dir.join("forecast_growth.parquet"))?;
    crate::store::write_parquet_atomic(&mut t.projection, &dir.join("budget_projection.parquet"))?;
    let charts = dir.join("charts");
    let mut n = 0;
    for (code, fc) in &f.by_code {
        let s = series_of(h, code);
        let upto = last_complete(h);
        let from = upto.saturating_sub(36);
        let hist: Vec<(NaiveDate, f64)> = (from..upto).map(|i| (h.months[i], s[i][0])).collect();
        let name = if let Some(p) = code.strip_prefix("province:") {
            match lang {
                crate::detect::Lang::Vi => format!("Toàn tỉnh {p}"),
                crate::detect::Lang::En => format!("Province total {p}"),
            }
        } else {
            h.registry
                .get(code)
                .map(|r| format!("{code} {}", r[0]))
                .unwrap_or_else(|| code.clone())
        };
        chart::fan_chart(
            &charts.join(format!("{}.svg", code.replace(':', "-"))),
            &name,
            &hist,
            f.start,
            fc,
            lang,
        )?;
        if is_province(code) {
            chart::fan_chart(
                &charts.join(format!("{}.png", code.replace(':', "-"))),
                &name,
                &hist,
                f.start,
                fc,
                lang,
            )?;
        }
        n += 1;
    }
    Ok(n)
}
