//! A series' yearly growth, the statistics behind it: year-on-year log
//! ratios, robust means, spikes, a step in level, a change of growth inside
//! the year, the province's seasonal indices. The engine (`engine.rs`)
//! combines them per facility and province.

use super::ForecastConfig;

pub(crate) fn median_of(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut w = v.to_vec();
    crate::detect::median(&mut w)
}

/// Normal-consistent robust standard deviation (1.4826 × MAD).
pub(crate) fn robust_sd(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = median_of(v);
    let dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    1.4826 * median_of(&dev)
}

/// Standard deviation with values beyond four robust standard deviations
/// of the median pulled in: claims are heavy-tailed (a few long stays make
/// a month), so the median absolute deviation alone understates the spread
/// that intervals must cover, while one wild month should not set it.
fn spread(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = median_of(v);
    let cap = 4.0 * robust_sd(v);
    let ss: f64 = v.iter().map(|x| (x - m).clamp(-cap, cap).powi(2)).sum();
    (ss / (v.len() - 1) as f64).sqrt()
}

fn trimmed_mean(v: &[f64], trim: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut w = v.to_vec();
    w.sort_by(f64::total_cmp);
    let k = ((w.len() as f64 * trim).floor() as usize).min((w.len() - 1) / 2);
    let kept = &w[k..w.len() - k];
    kept.iter().sum::<f64>() / kept.len() as f64
}

/// Log seasonal index of each calendar month (mean 0), from the log ratio
/// of each month to the centred 2×12 moving average, median over the
/// years. Zeros when the series is shorter than two years or not positive.
pub fn seasonal_indices(y: &[f64], month0: &[u32]) -> [f64; 12] {
    let n = y.len();
    let mut out = [0.0; 12];
    if n < 24 || y.iter().any(|v| *v <= 0.0) {
        return out;
    }
    let mut by_month: [Vec<f64>; 12] = Default::default();
    for t in 6..n - 6 {
        let ma = (0.5 * y[t - 6] + y[t - 5..t + 6].iter().sum::<f64>() + 0.5 * y[t + 6]) / 12.0;
        by_month[month0[t] as usize].push((y[t] / ma).ln());
    }
    for (m, v) in by_month.iter().enumerate() {
        if !v.is_empty() {
            out[m] = median_of(v);
        }
    }
    let mean = out.iter().sum::<f64>() / 12.0;
    out.iter_mut().for_each(|v| *v -= mean);
    out
}

/// Year-on-year log ratios of the months `from..upto` (each against the
/// same month a year before), with an offset `c` that keeps empty months finite.
fn yoy(y: &[f64], from: usize, upto: usize, c: f64) -> Vec<f64> {
    (from.max(12)..upto)
        .map(|m| ((y[m] + c) / (y[m - 12] + c)).ln())
        .collect()
}

/// The spikes among the last `r.len()` months: year-on-year ratios and
/// deseasonalised log levels (`level`) both more than `z` robust standard
/// deviations above their medians, in runs of at most `max_run` months.
fn spikes(r: &[f64], level: &[f64], z: f64, max_run: usize) -> Vec<bool> {
    let med = median_of(r);
    let sd = robust_sd(r).max(1e-3);
    let lmed = median_of(level);
    let lsd = robust_sd(level).max(1e-3);
    // High against the same month a year before *and* against the year's
    // own months: a month after an empty one is not a spike.
    let high: Vec<bool> = r
        .iter()
        .zip(level)
        .map(|(v, l)| (v - med) / sd > z && (l - lmed) / lsd > z)
        .collect();
    let mut out = vec![false; r.len()];
    let mut i = 0;
    while i < r.len() {
        if high[i] {
            let mut j = i;
            while j < r.len() && high[j] {
                j += 1;
            }
            if j - i <= max_run {
                out[i..j].iter_mut().for_each(|v| *v = true);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// A step in a series' level found in its last two years.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    /// First month at the new level.
    pub at: usize,
    /// Size of the step (log).
    pub delta: f64,
    /// Trend per month (log) on both sides of the step.
    pub slope: f64,
    /// Variance of that slope.
    pub slope_var: f64,
    /// Variance of a month around the fit.
    pub resid_var: f64,
}

/// Solves a 3×3 symmetric system (Gaussian elimination); None if singular.
pub(crate) fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    for i in 0..3 {
        let p = (i..3).max_by(|x, y| a[*x][i].abs().total_cmp(&a[*y][i].abs()))?;
        if a[p][i].abs() < 1e-12 {
            return None;
        }
        a.swap(i, p);
        b.swap(i, p);
        let pivot = a[i];
        for r in i + 1..3 {
            let f = a[r][i] / pivot[i];
            for (x, p) in a[r].iter_mut().zip(&pivot).skip(i) {
                *x -= f * p;
            }
            b[r] -= f * b[i];
        }
    }
    let mut x = [0.0; 3];
    for i in (0..3).rev() {
        x[i] = (b[i] - (i + 1..3).map(|c| a[i][c] * x[c]).sum::<f64>()) / a[i][i];
    }
    Some(x)
}

/// Searches `x[from..upto]` (deseasonalised logs) for one step in level on
/// a common linear trend (least squares over every split with at least six
/// months before and four after); keeps it when it is larger than
/// `min_size` and its t statistic passes `t_min`. A case mix that got
/// heavier, a ward that opened, a fraud that started: a year-on-year ratio
/// straddling such a step measures the step, not the growth.
pub(crate) fn find_step(
    x: &[f64],
    from: usize,
    upto: usize,
    t_min: f64,
    min_size: f64,
) -> Option<Step> {
    let n = upto.checked_sub(from)?;
    if n < 12 {
        return None;
    }
    let mut best: Option<(f64, Step, f64)> = None;
    for at in from + 6..=upto.saturating_sub(4) {
        let mut xtx = [[0.0; 3]; 3];
        let mut xty = [0.0; 3];
        for (m, v) in x.iter().enumerate().take(upto).skip(from) {
            let row = [1.0, (m - from) as f64, if m >= at { 1.0 } else { 0.0 }];
            for i in 0..3 {
                for j in 0..3 {
                    xtx[i][j] += row[i] * row[j];
                }
                xty[i] += row[i] * v;
            }
        }
        let Some(beta) = solve3(xtx, xty) else {
            continue;
        };
        let sse: f64 = (from..upto)
            .map(|m| {
                let d = if m >= at { 1.0 } else { 0.0 };
                let e = x[m] - beta[0] - beta[1] * (m - from) as f64 - beta[2] * d;
                e * e
            })
            .sum();
        let s2 = sse / (n - 3) as f64;
        // Diagonal of (X'X)⁻¹ for the slope and the step.
        let inv = |k: usize| {
            let mut e = [0.0; 3];
            e[k] = 1.0;
            solve3(xtx, e).map_or(f64::INFINITY, |v| v[k])
        };
        let step = Step {
            at,
            delta: beta[2],
            slope: beta[1],
            slope_var: s2 * inv(1),
            resid_var: s2,
        };
        let t = beta[2].abs() / (s2 * inv(2)).sqrt().max(1e-12);
        if best.as_ref().is_none_or(|b| sse < b.0) {
            best = Some((sse, step, t));
        }
    }
    let (_, step, t) = best?;
    (t >= t_min && step.delta.abs() >= min_size).then_some(step)
}

/// A line through year-on-year ratios: its value at the last month, the
/// variance of that value, and the t statistic of its slope.
struct Line {
    end: f64,
    end_var: f64,
    t: f64,
}

/// The least-squares line through the ratios `r` not flagged in `skip`;
/// the residual spread is kept at least `min_sd` (ten points can lie on a
/// line by chance).
fn line_through(r: &[f64], skip: &[bool], min_sd: f64) -> Line {
    let pts: Vec<(f64, f64)> = r
        .iter()
        .zip(skip)
        .enumerate()
        .filter(|(_, (_, s))| !**s)
        .map(|(i, (v, _))| (i as f64, *v))
        .collect();
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let sse: f64 = pts
        .iter()
        .map(|p| (p.1 - my - b * (p.0 - mx)).powi(2))
        .sum();
    let s2 = (sse / (n - 2.0).max(1.0)).max(min_sd * min_sd);
    let at = (r.len() - 1) as f64;
    let lever = 1.0 / n
        + if sxx > 0.0 {
            (at - mx).powi(2) / sxx
        } else {
            0.0
        };
    Line {
        end: my + b * (at - mx),
        end_var: s2 * lever,
        t: if sxx > 0.0 {
            b / (s2 / sxx).sqrt().max(1e-12)
        } else {
            0.0
        },
    }
}

/// A series' growth estimate over the last year.
pub(crate) struct Growth {
    /// Yearly log growth: the trimmed mean of the last year-on-year log
    /// ratios (spikes left out), or the trend around a recent step.
    pub(crate) g: f64,
    /// Variance of that estimate.
    pub(crate) var: f64,
    /// Variance of one month's own noise.
    pub(crate) month_var: f64,
    /// The last 12 months with spikes replaced by last year × growth.
    pub(crate) clean: Vec<f64>,
    /// Mean change of the year-on-year ratio against the same months a year
    /// before (the change of growth this year), when the history allows.
    pub(crate) shock: Option<f64>,
    /// The change of the year-on-year ratios inside the last year: median
    /// of the last six against the first six (spikes left out). Defined
    /// from two years of history, when `shock` is not; a common rise that
    /// lasts half a year shows here before it shows in `shock`.
    pub(crate) half_change: Option<f64>,
    /// A step in level in the last two years.
    pub(crate) step: Option<Step>,
    /// Whether growth changed inside the year (the line through the ratios
    /// sets `g`).
    pub(crate) broke: bool,
    /// The whole window's growth, whatever the line says.
    pub(crate) g_year: f64,
}

/// Growth of a series `y` over the months before `upto`; `season` holds
/// the log seasonal index of each of those months.
pub(crate) fn growth_of(y: &[f64], upto: usize, season: &[f64], cfg: &ForecastConfig) -> Growth {
    let mean = y[..upto].iter().sum::<f64>() / upto.max(1) as f64;
    let c = 0.01 * mean.max(1.0);
    let w = cfg.growth_window.clamp(3, 12);
    let r12 = yoy(y, upto - 12, upto, c);
    let level: Vec<f64> = (upto - 12..upto)
        .map(|m| (y[m] + c).ln() - season[m])
        .collect();
    let spike = spikes(&r12, &level, cfg.spike_z, cfg.spike_months);
    let kept: Vec<f64> = r12
        .iter()
        .zip(&spike)
        .skip(12 - w)
        .filter(|(_, s)| !**s)
        .map(|(v, _)| *v)
        .collect();
    let mut g = trimmed_mean(&kept, cfg.growth_trim);
    let g_year = g;
    let sd = spread(&r12);
    // A change of growth inside the year. Each ratio is the growth of the
    // twelve months before it, so after a slowdown or a speed-up the ratios
    // move for a year and their mean lags by half of it: when the line
    // through them slopes by more than `break_t` standard errors, the line
    // read at the last month is this year's growth now.
    let mut month_var = sd * sd / 2.0;
    let mut var = sd * sd / kept.len().max(1) as f64;
    let mut broke = false;
    if cfg.break_t > 0.0 && r12.len() == 12 && kept.len() >= 8 {
        let line = line_through(&r12, &spike, 0.5 * sd);
        if line.t.abs() > cfg.break_t {
            // Within the recent six ratios' range: a step in the ratios (a
            // level that moved, not its growth) does not go on rising.
            let recent = r12[6..].iter().zip(&spike[6..]).filter(|(_, s)| !**s);
            let lo = recent
                .clone()
                .map(|(v, _)| *v)
                .fold(f64::INFINITY, f64::min);
            let hi = recent.map(|(v, _)| *v).fold(f64::NEG_INFINITY, f64::max);
            g = if lo <= hi {
                line.end.clamp(lo, hi)
            } else {
                line.end
            };
            var = line.end_var;
            broke = true;
        }
    }
    let clean: Vec<f64> = (upto - 12..upto)
        .zip(&spike)
        .map(|(m, s)| {
            if *s {
                ((y[m - 12] + c) * g.exp() - c).max(0.0)
            } else {
                y[m]
            }
        })
        .collect();
    let step = if upto >= 25 && cfg.step_t > 0.0 {
        let x: Vec<f64> = (0..upto).map(|m| (y[m] + c).ln() - season[m]).collect();
        find_step(&x, upto - 24, upto, cfg.step_t, cfg.step_min)
    } else {
        None
    };
    if let Some(st) = step.filter(|st| st.at + 24 > upto) {
        // A year-on-year ratio of the last year straddles the step (it is
        // within the last two years): the trend around it is the growth.
        g = 12.0 * st.slope;
        var = 144.0 * st.slope_var;
        month_var = st.resid_var;
    }
    let shock = (upto >= 36).then(|| {
        let prev = yoy(y, upto - 24, upto - 12, c);
        let prev_g = trimmed_mean(&prev, cfg.growth_trim);
        g - prev_g
    });
    let half = |r: &[f64], s: &[bool]| {
        let v: Vec<f64> = r
            .iter()
            .zip(s)
            .filter(|(_, s)| !**s)
            .map(|(v, _)| *v)
            .collect();
        (v.len() >= 3).then(|| median_of(&v))
    };
    let half_change = match (half(&r12[..6], &spike[..6]), half(&r12[6..], &spike[6..])) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Growth {
        g,
        var,
        month_var,
        clean,
        shock,
        half_change,
        step,
        broke,
        g_year,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rise of the year-on-year ratios in the last six months shows as the
    /// change inside the year before a third year of history exists.
    #[test]
    fn a_rise_inside_the_last_year_is_measured_from_two_years() {
        let cfg = ForecastConfig::default();
        let season = vec![0.0; 30];
        let smooth: Vec<f64> = (0..30)
            .map(|m| 100.0 * (0.09 * m as f64 / 12.0).exp())
            .collect();
        let g = growth_of(&smooth, 30, &season, &cfg);
        assert!(
            g.shock.is_none(),
            "two and a half years: no change against last year"
        );
        assert!(g.half_change.expect("two years").abs() < 1e-3);
        // The last six months 8 % above the trend: their ratios rise by 8 points.
        let mut risen = smooth.clone();
        for v in &mut risen[24..] {
            *v *= 1.08f64;
        }
        let g = growth_of(&risen, 30, &season, &cfg);
        let d = g.half_change.expect("two years");
        assert!((d - 0.08f64.ln_1p()).abs() < 0.005, "{d}");
    }
}
