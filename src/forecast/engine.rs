//! The engine's forecast: next year's spending from this year's level and
//! the yearly growth, the way budgets are planned — but estimated robustly
//! and per facility with credibility.
//!
//! For each province:
//! - **Working days**: the effect of one Monday-to-Friday day on a month's
//!   spending, measured on the province's total (`calendar.rs`), is taken
//!   out of every series and the coming months' calendar put back.
//! - **Temporary shocks**: months in which every facility left its course
//!   and came back (a lockdown, a long epidemic) are put back at the level
//!   the neighbouring year shows (`shocks.rs`), before anything is read
//!   from the ratios.
//! - **Season**: the province's log seasonal index of each calendar month
//!   (classical decomposition: log ratio to the centred 12-month moving
//!   average, median over the years). Facilities use the province's: their
//!   own three or four Januaries are too few to estimate twelve indices.
//! - **Growth**: the trimmed mean of the last `growth_window` year-on-year
//!   log ratios of the province's continuing facilities (like for like: a
//!   facility that opened or closed does not count as growth). A year-on-year
//!   ratio compares a month with the same month a year before, so price
//!   steps on 1 January, seasons and smooth growth all give the same yearly
//!   rate; a spike (an epidemic of two months) is trimmed. When the line
//!   through the ratios slopes (growth changed inside the year), the line
//!   read at the last month; across the province, the mean of that and a
//!   local trend's growth (ETS), which follows the change sooner.
//! - **Facilities**: the same estimate on each facility's own months, shrunk
//!   toward the province's growth by credibility (empirical Bayes: the
//!   facility estimate's sampling variance against the spread of true growth
//!   between facilities). Level: the last 12 months with spikes replaced,
//!   combined with the year before moved by the growth (`level_smoothing`).
//!   A facility open for less than two years starts from its recent run
//!   rate; one without spending for `closed_after` months is closed.
//! - **Province total** = the sum of its facilities, so the parts add up and
//!   openings and closings move the total by what they are.
//! - **Intervals**: a log-scale error model per series (one month's noise,
//!   the level's noise, the growth's uncertainty including next year's
//!   change of growth), widened or narrowed by one factor each for
//!   sums of months and single months, measured on the same engine's
//!   forecasts from 12, 9, 6 and 3 months before the end of the history
//!   (inner backtest).

use super::growth::{growth_of, median_of, robust_sd, seasonal_indices, Growth};
use super::shocks;
use super::*;
use model::{SeriesForecast, LEVELS};

/// What the engine knows of one series' forecast errors, on the log scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorModel {
    /// Variance of one month's own noise.
    pub month_var: f64,
    /// Variance of the level the forecast starts from.
    pub level_var: f64,
    /// Variance of the yearly log growth: its estimate and next year's change.
    pub growth_var: f64,
    /// Variance of a month's seasonal index (estimated from few years).
    pub season_var: f64,
    /// Calibration factor of yearly sums (inner backtest).
    pub k_year: f64,
    /// Calibration factor of months (inner backtest).
    pub k_month: f64,
}

impl Default for ErrorModel {
    fn default() -> Self {
        ErrorModel {
            month_var: 0.0,
            level_var: 0.0,
            growth_var: 0.0,
            season_var: 0.0,
            k_year: 1.0,
            k_month: 1.0,
        }
    }
}

impl ErrorModel {
    /// Log-scale standard deviation of the sum of the forecast months `ks`
    /// (0 = the first forecast month). The growth error moves a month by
    /// (k + 6.5)/12 of a year's growth: the level is centred 6.5 months
    /// before the first forecast month.
    pub fn sum_sd(&self, ks: &[usize]) -> f64 {
        if ks.is_empty() {
            return 0.0;
        }
        let n = ks.len() as f64;
        let a = ks.iter().map(|k| (*k as f64 + 6.5) / 12.0).sum::<f64>() / n;
        self.k_year * (self.level_var + a * a * self.growth_var + self.month_var / n).sqrt()
    }

    /// Log-scale standard deviation of forecast month `k`.
    pub fn month_sd(&self, k: usize) -> f64 {
        let a = (k as f64 + 6.5) / 12.0;
        self.k_month
            * (self.month_var + self.season_var + self.level_var + a * a * self.growth_var).sqrt()
    }
}

/// One series' point forecast and error model, before calibration.
#[derive(Debug, Clone)]
pub(crate) struct Fit {
    pub point: Vec<f64>,
    pub err: ErrorModel,
    pub model: &'static str,
}

/// The monthly path of a level and a growth: `base` is the deseasonalised
/// monthly level at horizon step `k0` (fractional months from the first
/// forecast month), growing at `g` a year.
fn path(base: f64, k0: f64, g: f64, season: &[f64], horizon: usize) -> Vec<f64> {
    (0..horizon)
        .map(|k| base * (season[k] + g * (k as f64 - k0) / 12.0).exp())
        .collect()
}

/// Points and error models of every facility and province total from
/// month index `upto` on, before calibration.
pub(crate) fn fit_all(
    h: &History,
    groups: &BTreeMap<String, Vec<String>>,
    upto: usize,
    horizon: usize,
    cfg: &ForecastConfig,
) -> BTreeMap<String, Fit> {
    let month0: Vec<u32> = (0..upto + horizon)
        .map(|i| add_months(h.months[0], i as i32).month0())
        .collect();
    let wd: Vec<f64> = (0..upto + horizon)
        .map(|i| calendar::working_days(add_months(h.months[0], i as i32)))
        .collect();
    let mut out = BTreeMap::new();
    for (p, members) in groups {
        let raw: Vec<Vec<f64>> = members
            .iter()
            // Refunds can make a month negative: spending is at least 0.
            .map(|c| h.series[c][..upto].iter().map(|v| v[0].max(0.0)).collect())
            .collect();
        // Working days: measured on the province's total, taken out of
        // every series here and put back into the forecast months.
        let raw_total: Vec<f64> = (0..upto).map(|i| raw.iter().map(|y| y[i]).sum()).collect();
        let td = calendar::working_day_effect(&raw_total, &wd[..upto]);
        let cal: Vec<f64> = wd.iter().map(|d| (td * (d - 21.75)).exp()).collect();
        let ys: Vec<Vec<f64>> = raw
            .iter()
            .map(|y| y.iter().zip(&cal).map(|(v, f)| v / f).collect())
            .collect();
        // Months of a province-wide temporary shock, put back at the level
        // the neighbouring year shows (a lockdown's base months would
        // read as growth, and throw the season and the steps).
        let corr = shocks::shock_corrections(&ys, upto, cfg.shock_z, cfg.shock_months);
        let ys: Vec<Vec<f64>> = if corr.iter().any(|c| *c != 0.0) {
            ys.iter()
                .map(|y| y.iter().zip(&corr).map(|(v, c)| v * c.exp()).collect())
                .collect()
        } else {
            ys
        };
        let total: Vec<f64> = (0..upto).map(|i| ys.iter().map(|y| y[i]).sum()).collect();
        let idx = seasonal_indices(&total, &month0[..upto]);
        // Season of each forecast month and of each history month.
        let fut: Vec<f64> = month0[upto..].iter().map(|m| idx[*m as usize]).collect();
        let hist: Vec<f64> = month0[..upto].iter().map(|m| idx[*m as usize]).collect();
        // Status of each facility.
        #[derive(PartialEq, Clone, Copy)]
        enum Status {
            Empty,
            Closed,
            Young(usize),
            Continuing,
        }
        let status: Vec<Status> = ys
            .iter()
            .map(|y| {
                let Some(first) = y.iter().position(|v| *v > 0.0) else {
                    return Status::Empty;
                };
                let last = y.iter().rposition(|v| *v > 0.0).unwrap_or(first);
                if upto - 1 - last >= cfg.closed_after.max(1) {
                    Status::Closed
                } else if upto - first - usize::from(first > 0) < 24 {
                    // Two whole years are needed; a facility's first month
                    // is partial unless it is the first of the history.
                    Status::Young(first)
                } else {
                    Status::Continuing
                }
            })
            .collect();
        // Province growth, like for like: the continuing facilities' total,
        // or everything when they are less than half of the last year
        // (a merger without a code table, a young network).
        let cont: Vec<usize> = (0..ys.len())
            .filter(|&i| status[i] == Status::Continuing)
            .collect();
        let last12 = |y: &[f64]| y[upto.saturating_sub(12)..].iter().sum::<f64>();
        let cont_total: Vec<f64> = (0..upto)
            .map(|i| cont.iter().map(|&k| ys[k][i]).sum())
            .collect();
        let like_for_like = last12(&cont_total) >= 0.5 * last12(&total);
        let prov_series = if like_for_like { &cont_total } else { &total };
        let pg = (upto >= 24).then(|| growth_of(prov_series, upto, &hist, cfg));
        let g_p = pg.as_ref().map_or(0.0, |g| g.g);
        // Next year's change of growth: the prior, with what this history shows.
        let shock_var = {
            let prior = cfg.growth_shock_sd * cfg.growth_shock_sd;
            // The larger of the year's change against last year and the
            // change inside the year, averaged with the prior; one year
            // without a change does not narrow the prior.
            // A shock put back within the last year still says how much
            // the province's spending moves now: the changes of the series
            // as it was count too (an older one, e.g. a lockdown two years
            // back, says little of next year's).
            let raw = (upto >= 24 && corr[upto - 12..].iter().any(|c| *c != 0.0)).then(|| {
                let y: Vec<f64> = prov_series
                    .iter()
                    .zip(&corr)
                    .map(|(v, c)| v * (-c).exp())
                    .collect();
                growth_of(&y, upto, &hist, cfg)
            });
            let d2 = pg.as_ref().map(|g| {
                g.shock
                    .into_iter()
                    .chain(g.half_change)
                    .chain(
                        raw.iter()
                            .flat_map(|r| r.shock.into_iter().chain(r.half_change)),
                    )
                    .map(|d| d * d)
                    .fold(f64::NAN, f64::max)
            });
            match d2.filter(|v| v.is_finite()) {
                Some(d2) => prior.max((prior + d2) / 2.0),
                None => prior,
            }
        };
        // Facilities' own growth, and the spread of true growth between them.
        let own: Vec<Option<Growth>> = (0..ys.len())
            .map(|i| (status[i] == Status::Continuing).then(|| growth_of(&ys[i], upto, &hist, cfg)))
            .collect();
        let gs: Vec<f64> = own.iter().flatten().map(|g| g.g).collect();
        let vs: Vec<f64> = own.iter().flatten().map(|g| g.var).collect();
        let tau2 = if gs.len() >= 5 {
            let s = robust_sd(&gs);
            (s * s - median_of(&vs)).max(cfg.growth_spread_min.powi(2))
        } else {
            0.0
        };
        // The growth facilities are shrunk toward (and new ones take): the
        // precision-weighted mean of the facilities' own growths
        // (random effects), without those more than three standard
        // deviations from the median — one big hospital's new ward or
        // fraud does not move every commune station's forecast. With few
        // facilities: the province series' own growth.
        let (g_p, g_p_var) = if gs.len() >= 5 {
            let med = median_of(&gs);
            let (mut sw, mut swg) = (0.0, 0.0);
            for (g, v) in gs.iter().zip(&vs) {
                let w = 1.0 / (v + tau2).max(1e-9);
                if (g - med).abs() * w.sqrt() <= 3.0 {
                    sw += w;
                    swg += w * g;
                }
            }
            if sw > 0.0 {
                (swg / sw, 1.0 / sw)
            } else {
                (g_p, pg.as_ref().map_or(0.0, |p| p.var))
            }
        } else {
            (g_p, pg.as_ref().map_or(0.0, |p| p.var))
        };
        // A change of growth across the province (a slowdown, a speed-up)
        // shows early in the total of its regular facilities (no step of
        // their own, growth near the others'): it moves every facility.
        let regular: Vec<usize> = (0..ys.len())
            .filter(|&i| {
                own[i].as_ref().is_some_and(|g| {
                    g.step.is_none() && (g.g - g_p).abs() <= 3.0 * (g.var + tau2).sqrt().max(1e-6)
                })
            })
            .collect();
        // A change of growth across the province shows early in the total of
        // its regular facilities (no step of their own, growth near the
        // others'); that total's growth, after such a change the new rate
        // (the line's and a local trend's mean: the line through the ratios
        // still lags a change that is months old; ETS on the same total
        // follows it within months but is thrown by price steps).
        let regular_growth = (upto >= 24 && regular.len() >= 5).then(|| {
            let tot: Vec<f64> = (0..upto)
                .map(|m| regular.iter().map(|&k| ys[k][m]).sum())
                .collect();
            let gr = growth_of(&tot, upto, &hist, cfg);
            let g = if gr.broke && cfg.break_blend {
                let last: f64 = tot[upto - 12..upto].iter().sum();
                let next: f64 = super::model::forecast(&tot, 12).point.iter().sum();
                if last > 0.0 && next > 0.0 {
                    0.5 * (gr.g + (next / last).ln())
                } else {
                    gr.g
                }
            } else {
                gr.g
            };
            (gr, g)
        });
        // The change moves every facility.
        let shift = match &regular_growth {
            Some((gr, g)) if gr.broke => g - gr.g_year,
            _ => 0.0,
        };
        let g_p = g_p + shift;
        let month_vars: Vec<f64> = own.iter().flatten().map(|g| g.month_var).collect();
        let typical_month_var = if month_vars.is_empty() {
            0.01
        } else {
            median_of(&month_vars)
        };
        let mut prov_point = vec![0.0; horizon];
        for (i, code) in members.iter().enumerate() {
            let y = &ys[i];
            let fit = match status[i] {
                Status::Empty | Status::Closed => Fit {
                    point: vec![0.0; horizon],
                    err: ErrorModel::default(),
                    model: if status[i] == Status::Closed {
                        "closed"
                    } else {
                        "none"
                    },
                },
                Status::Young(first) => {
                    // Run rate of the last whole months (at most six),
                    // deseasonalised, moved by the province's growth.
                    let n = (upto - first).saturating_sub(1).clamp(1, 6);
                    let months = upto - n..upto;
                    let base = months.clone().map(|m| y[m]).sum::<f64>()
                        / months.clone().map(|m| hist[m].exp()).sum::<f64>();
                    let k0 = -(n as f64 + 1.0) / 2.0;
                    let dev: Vec<f64> = months
                        .clone()
                        .filter(|m| y[*m] > 0.0)
                        .map(|m| (y[m] / (base * hist[m].exp())).ln())
                        .collect();
                    let own_var = if dev.len() >= 3 {
                        dev.iter().map(|d| d * d).sum::<f64>() / (dev.len() - 1) as f64
                    } else {
                        typical_month_var
                    };
                    let month_var = own_var.max(0.5 * typical_month_var);
                    Fit {
                        point: path(base, k0, g_p, &fut, horizon),
                        err: ErrorModel {
                            month_var,
                            // A new facility's ramp-up makes its level and
                            // growth uncertain beyond the sampling noise.
                            level_var: month_var / n as f64 + 0.05 * 0.05,
                            growth_var: shock_var + 0.1 * 0.1,
                            ..Default::default()
                        },
                        model: "run-rate",
                    }
                }
                Status::Continuing => {
                    let gr = own[i]
                        .as_ref()
                        .expect("continuing facilities have a growth");
                    let w = if tau2 + gr.var > 0.0 {
                        tau2 / (tau2 + gr.var)
                    } else {
                        0.0
                    };
                    // Shrunk toward the province (which carries a
                    // province-wide change of growth; a facility whose own
                    // ratios show the change already counts it).
                    let own_g = if gr.broke { gr.g } else { gr.g + shift };
                    let g = g_p + w * (own_g - g_p);
                    // Level: last 12 months (spikes replaced), combined with
                    // the 12 before moved by a year of growth; after a step,
                    // the months since the step.
                    let centre = upto as f64 - 0.5;
                    let (base, level_var, k0) = match gr.step.filter(|st| st.at + 24 > upto) {
                        Some(st) => {
                            let after = st.at..upto;
                            let base = after.clone().map(|m| y[m]).sum::<f64>()
                                / after
                                    .clone()
                                    .map(|m| (hist[m] + g * (m as f64 - centre) / 12.0).exp())
                                    .sum::<f64>();
                            (base, gr.month_var / (upto - st.at) as f64, -0.5)
                        }
                        None => {
                            let l1: f64 = gr.clean.iter().sum();
                            let l0: f64 = y[upto - 24..upto - 12].iter().sum::<f64>() * g.exp();
                            let a = if l0 > 0.0 && gr.step.is_none() {
                                cfg.level_smoothing.clamp(0.0, 1.0)
                            } else {
                                0.0
                            };
                            let level = (1.0 - a) * l1 + a * l0;
                            let base = level
                                / (upto - 12..upto)
                                    .map(|m| (hist[m] + g * (m as f64 - centre) / 12.0).exp())
                                    .sum::<f64>();
                            (
                                base,
                                gr.month_var / 12.0 * ((1.0 - a).powi(2) + a * a),
                                -0.5,
                            )
                        }
                    };
                    Fit {
                        point: path(base, k0, g, &fut, horizon),
                        err: ErrorModel {
                            month_var: gr.month_var,
                            level_var,
                            growth_var: w * gr.var + (1.0 - w).powi(2) * g_p_var + shock_var,
                            ..Default::default()
                        },
                        model: "growth",
                    }
                }
            };
            let mut fit = fit;
            for (v, f) in fit.point.iter_mut().zip(&cal[upto..]) {
                *v *= f;
            }
            for (k, v) in fit.point.iter().enumerate() {
                prov_point[k] += v;
            }
            out.insert(code.clone(), fit);
        }
        if let Some((gr, g)) = regular_growth.filter(|(gr, _)| gr.step.is_none()) {
            let weight = cfg.direct_weight.clamp(0.0, 1.0);
            let direct = direct_path(&gr.clean, g, upto, &hist, &fut, &cal[upto..], horizon);
            blend_toward(
                &mut out,
                members,
                &regular,
                &direct,
                weight,
                &mut prov_point,
            );
        }
        // The province: the sum of its facilities; its own noise and growth
        // uncertainty.
        let err = match &pg {
            Some(g) => ErrorModel {
                month_var: g.month_var,
                level_var: g.month_var / 12.0,
                growth_var: g.var + shock_var,
                // Each index is the median of a few years' ratios.
                season_var: g.month_var / ((upto / 12).max(1) as f64 - 1.0).max(1.0),
                ..Default::default()
            },
            None => ErrorModel {
                month_var: typical_month_var / members.len().max(1) as f64,
                level_var: 0.0,
                growth_var: shock_var + 0.05 * 0.05,
                ..Default::default()
            },
        };
        out.insert(
            province_key(p),
            Fit {
                point: prov_point,
                err,
                model: "growth (sum of facilities)",
            },
        );
    }
    out
}

/// The path of a series forecast directly: its last 12 (clean) months as
/// the level, growing at `g` a year, in the coming months' season and
/// working days (`cal`).
fn direct_path(
    clean: &[f64],
    g: f64,
    upto: usize,
    hist: &[f64],
    fut: &[f64],
    cal: &[f64],
    horizon: usize,
) -> Vec<f64> {
    let centre = upto as f64 - 0.5;
    let level: f64 = clean.iter().sum();
    let base = level
        / (upto - 12..upto)
            .map(|m| (hist[m] + g * (m as f64 - centre) / 12.0).exp())
            .sum::<f64>();
    path(base, -0.5, g, fut, horizon)
        .iter()
        .zip(cal)
        .map(|(v, f)| v * f)
        .collect()
}

/// Reconciles the bottom-up sum of the facilities `set` with a direct
/// forecast of their total: the next 12 months' total becomes the mean of
/// the two (`weight` on the direct one), each facility scaled by the same
/// ratio so its share is kept (top-down proportions); the province's sum
/// follows. Two forecasts whose errors differ — the sum carries each
/// facility's shrinkage, the total's own growth none — combine into one
/// better than either (a province-level error of 0.44 % → 0.37 % on the
/// full-volume step scenario; models/forecast.md).
fn blend_toward(
    out: &mut BTreeMap<String, Fit>,
    members: &[String],
    set: &[usize],
    direct: &[f64],
    weight: f64,
    prov_point: &mut [f64],
) {
    let n = direct.len().min(12);
    let d: f64 = direct[..n].iter().sum();
    let s: f64 = set
        .iter()
        .map(|&k| out[&members[k]].point[..n].iter().sum::<f64>())
        .sum();
    if s <= 0.0 || d <= 0.0 || weight == 0.0 {
        return;
    }
    let r = ((1.0 - weight) * s + weight * d) / s;
    for &k in set {
        let f = out.get_mut(&members[k]).expect("every member is fitted");
        for (v, p) in f.point.iter_mut().zip(prov_point.iter_mut()) {
            *p += *v * (r - 1.0);
            *v *= r;
        }
    }
}

/// Robust scale of standardised errors (normal-consistent, from the median
/// absolute value), kept within [`min`, 5]. Sums of months keep at least
/// 0.9: the inner checks are shorter than a year and see less of the
/// growth's error; single months (0.5) see their noise whole.
fn scale_of(z: &[f64], min: f64) -> Option<f64> {
    if z.len() < 8 {
        return None;
    }
    let a: Vec<f64> = z.iter().map(|v| v.abs()).collect();
    Some((median_of(&a) / 0.6745).clamp(min, 5.0))
}

/// Root mean square of standardised errors `z`, shrunk toward `prior` with
/// `weight` errors' worth of it, within [0.5, 5].
fn shrunk_scale(z: &[f64], prior: f64, weight: f64) -> f64 {
    let n = z.len() as f64;
    let ss: f64 = z.iter().map(|v| v * v).sum();
    ((ss + weight * prior * prior) / (n + weight))
        .sqrt()
        .clamp(0.5, 5.0)
}

/// Calibration factors (sums of months and months; facilities and
/// provinces) from the engine's own forecasts made 12, 9, 6 and 3 months
/// before `upto` (those with two years of history), checked on the months
/// up to `upto`.
pub(crate) fn calibrate(
    h: &History,
    groups: &BTreeMap<String, Vec<String>>,
    upto: usize,
    cfg: &ForecastConfig,
) -> [f64; 4] {
    let mut zy = (Vec::new(), Vec::new());
    let mut zm = (Vec::new(), Vec::new());
    // Origins 12, 9, 6 and 3 months back (each with two years of history
    // before it), forecasting to the end of the history.
    for back in [12usize, 9, 6, 3] {
        if upto < back + 24 {
            continue;
        }
        let o = upto - back;
        let ks: Vec<usize> = (0..back).collect();
        let fits = fit_all(h, groups, o, back, cfg);
        for (code, fit) in &fits {
            if fit.point.iter().all(|v| *v <= 0.0) {
                continue;
            }
            let s = series_of(h, code);
            let actual: Vec<f64> = (0..back).map(|k| s[o + k][0]).collect();
            let c = 0.01 * fit.point.iter().sum::<f64>() / back as f64;
            let ta: f64 = actual.iter().sum();
            let tf: f64 = fit.point.iter().sum();
            let (y, m) = if is_province(code) {
                (&mut zy.1, &mut zm.1)
            } else {
                (&mut zy.0, &mut zm.0)
            };
            let sd = fit.err.sum_sd(&ks);
            if sd > 0.0 && ta > 0.0 {
                y.push((ta / tf).ln() / sd);
            }
            for (k, (a, p)) in actual.iter().zip(&fit.point).enumerate() {
                let sd = fit.err.month_sd(k);
                if sd > 0.0 {
                    m.push(((a + c) / (p + c)).ln() / sd);
                }
            }
        }
    }
    let fac_year = scale_of(&zy.0, 0.9).unwrap_or(1.0);
    let fac_month = scale_of(&zm.0, 0.5).unwrap_or(1.0);
    // A province has one yearly error per inner origin and twelve months
    // per origin that move together (one level, one growth): too few for
    // factors of their own. Their mean squares, shrunk toward the
    // facilities' factors (4 years' and 12 months' weight).
    let prov_year = shrunk_scale(&zy.1, fac_year, 4.0);
    let prov_month = shrunk_scale(&zm.1, fac_month, 12.0);
    [fac_year, fac_month, prov_year, prov_month]
}

/// Monthly forecast with 80/90/95 % bounds from a point and an error model.
pub(crate) fn with_bounds(point: Vec<f64>, err: &ErrorModel, model: &str) -> SeriesForecast {
    let bounds = LEVELS.map(|l| {
        let z = model::z(l);
        let lo = point
            .iter()
            .enumerate()
            .map(|(k, p)| p * (-z * err.month_sd(k)).exp())
            .collect();
        let hi = point
            .iter()
            .enumerate()
            .map(|(k, p)| p * (z * err.month_sd(k)).exp())
            .collect();
        (lo, hi)
    });
    SeriesForecast {
        point,
        bounds,
        model: model.to_string(),
    }
}
