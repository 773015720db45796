//! Province-wide temporary shocks in the history: months that every
//! facility's spending left together and came back from — a lockdown that
//! halved visits for a season, a strike, an epidemic of several months.
//!
//! Growth is read from year-on-year ratios, and a ratio whose base month was
//! such a shock measures the shock, not the growth: a season of lockdowns
//! one year makes the same months of the next year look 50–100 % "grown",
//! and a trimmed mean of twelve ratios keeps most of them. The season (a
//! median over few years) and the search for steps in level are thrown the
//! same way. So before anything else, the months of a shock are found on
//! the typical year-on-year ratio (the spending-weighted mean of the middle
//! half of the facilities' ratios: one big hospital's fraud or new ward
//! does not move it, nor do the commune stations' chance swings) and every
//! facility's spending of those months is put back at the level the
//! neighbouring year shows.
//!
//! Which year was odd is read from a third one: a dip shows as low ratios
//! entering and high ratios a year later, against a year on either side
//! that agrees. With two years only, the earlier year is taken as the odd
//! one (the recent months stay as they were, as a planner would keep
//! them), except for runs of at most three high months, which the spike
//! rule of `growth.rs` already judges on the level.

/// Log corrections per month (0 for an ordinary month): a facility's
/// spending of month `m` becomes `y[m] × exp(c[m])`. `ys` are the
/// facilities' monthly series (calendar-adjusted); only months `..upto`
/// are read.
pub(crate) fn shock_corrections(ys: &[Vec<f64>], upto: usize, z: f64, max_run: usize) -> Vec<f64> {
    if z <= 0.0 || upto < 24 || ys.len() < 5 {
        return vec![0.0; upto];
    }
    // The typical year-on-year log ratio of each month: the mean of the
    // middle half of the facilities' ratios weighted by spending (a commune
    // station's ratio is mostly noise; the quarters at each end leave out
    // one hospital's fraud or new ward).
    let typical: Vec<f64> = (12..upto)
        .map(|t| {
            let r: Vec<(f64, f64)> = ys
                .iter()
                .filter(|y| y[t] > 0.0 && y[t - 12] > 0.0)
                .map(|y| ((y[t] / y[t - 12]).ln(), y[t - 12]))
                .collect();
            if r.len() >= 5 {
                middle_mean(r, 0.25)
            } else {
                f64::NAN
            }
        })
        .collect();
    corrections(&typical, upto, z, max_run)
}

/// Corrections from the typical year-on-year log ratios (index t − 12 for
/// month t; NaN unknown).
fn corrections(typical: &[f64], upto: usize, z: f64, max_run: usize) -> Vec<f64> {
    let mut corr = vec![0.0; upto];
    let known: Vec<f64> = typical.iter().copied().filter(|v| v.is_finite()).collect();
    if known.len() < 12 {
        return corr;
    }
    // Centre and spread of the ordinary months: the shortest half of the
    // ratios (a season of lockdown can be five of twelve ratios, which a
    // median absolute deviation would count as spread). At least one
    // point: the typical ratio of a real province moves by that.
    let (g0, s0) = shorth(&known);
    let s0 = s0.max(0.01);
    // Deviation of the ratio of month t (t ≥ 12), NaN when unknown.
    let dev = |t: usize| typical[t - 12] - g0;
    // Months beyond `k` spreads, by sign (0 inside).
    let beyond = |t: usize, k: f64| {
        let d = dev(t);
        if d.is_finite() && d.abs() > k * s0 {
            d.signum()
        } else {
            0.0
        }
    };
    // A run starts at a month beyond `z` spreads and takes in the months
    // next to it beyond half that, of the same sign (a lockdown's first
    // and last weeks, the month of return).
    let mut sign_of = vec![0.0; upto];
    for t in 12..upto {
        let s = beyond(t, z);
        if s == 0.0 || sign_of[t] != 0.0 {
            continue;
        }
        sign_of[t] = s;
        let mut k = t;
        while k > 12 && sign_of[k - 1] == 0.0 && beyond(k - 1, 0.5 * z) == s {
            k -= 1;
            sign_of[k] = s;
        }
        let mut k = t;
        while k + 1 < upto && beyond(k + 1, 0.5 * z) == s {
            k += 1;
            sign_of[k] = s;
        }
    }
    // Is the run of ratios `a..=b` matched a year away (`shift` = −12 or
    // +12) by ratios of the opposite sign (Some(true)), by ordinary ratios
    // (Some(false)), or not known (None)?
    let mirrored = |a: usize, b: usize, s: f64, shift: i64| -> Option<bool> {
        let (a2, b2) = (a as i64 + shift, b as i64 + shift);
        if a2 < 12 || b2 >= upto as i64 {
            return None;
        }
        let d: Vec<f64> = (a2..=b2).map(|t| dev(t as usize)).collect();
        if d.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mean = d.iter().sum::<f64>() / d.len() as f64;
        if mean * s < -0.5 * z * s0 {
            Some(true)
        } else if mean.abs() < 0.5 * z * s0 {
            Some(false)
        } else {
            None
        }
    };
    let mut sum = vec![0.0; upto];
    let mut count = vec![0usize; upto];
    let mut t = 12;
    while t < upto {
        let s = sign_of[t];
        if s == 0.0 {
            t += 1;
            continue;
        }
        let a = t;
        while t < upto && sign_of[t] == s {
            t += 1;
        }
        let b = t - 1;
        let len = b - a + 1;
        if len > max_run || b + 1 >= upto {
            // Longer: a lasting change of level. Still running at the end
            // of the history: a change of growth may be starting; a shock
            // is known when it is over.
            continue;
        }
        // Earlier year odd: the year before it agrees with the later one
        // (its ratios are mirrored), or the year after the later one agrees
        // with it (ordinary ratios a year on). Later year odd: the reverse.
        let earlier = mirrored(a, b, s, -12).or_else(|| mirrored(a, b, s, 12).map(|m| !m));
        let earlier = match earlier {
            Some(e) => e,
            // Two years only: a short rise is the spike rule's to judge.
            None if s > 0.0 && len <= 3 => continue,
            None => true,
        };
        for r in a..=b {
            // The ratio's excess over the typical growth, put back on the
            // odd month: raise an earlier dip, lower a later spike.
            let (m, c) = if earlier {
                (r - 12, dev(r))
            } else {
                (r, -dev(r))
            };
            sum[m] += c;
            count[m] += 1;
        }
    }
    for m in 0..upto {
        if count[m] > 0 {
            corr[m] = sum[m] / count[m] as f64;
        }
    }
    corr
}

/// Centre and normal-consistent spread of the shortest half of `v` (the
/// least-median-of-squares location and scale; breaks down only when half
/// the values are odd).
fn shorth(v: &[f64]) -> (f64, f64) {
    let mut w = v.to_vec();
    w.sort_by(f64::total_cmp);
    let h = w.len() / 2 + 1;
    let (i, width) = (0..=w.len() - h)
        .map(|i| (i, w[i + h - 1] - w[i]))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0));
    // The middle half of a normal sample spans 1.349 sd.
    ((w[i] + w[i + h - 1]) / 2.0, width / 1.349)
}

/// Weighted mean of the values between the weighted `trim` and `1 − trim`
/// quantiles (a value straddling a bound counts with the part inside).
fn middle_mean(mut vw: Vec<(f64, f64)>, trim: f64) -> f64 {
    vw.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = vw.iter().map(|p| p.1).sum();
    let (lo, hi) = (trim * total, (1.0 - trim) * total);
    let (mut at, mut sw, mut swv) = (0.0, 0.0, 0.0);
    for (v, w) in vw {
        let inside = (at + w).min(hi) - at.max(lo);
        if inside > 0.0 {
            sw += inside;
            swv += inside * v;
        }
        at += w;
    }
    if sw > 0.0 {
        swv / sw
    } else {
        f64::NAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten facilities growing 8 % a year with a season; `dip` multiplies
    /// the months given.
    fn province(months: usize, dip: &[(usize, f64)]) -> Vec<Vec<f64>> {
        (0..10)
            .map(|f| {
                (0..months)
                    .map(|m| {
                        let season = 1.0 + 0.2 * ((m % 12) as f64 * 0.52).sin();
                        let noise = 1.0 + 0.004 * (((m * 7 + f * 13) % 11) as f64 - 5.0);
                        let shock = dip.iter().find(|(k, _)| *k == m).map_or(1.0, |d| d.1);
                        (100.0 + 10.0 * f as f64)
                            * (0.08 * m as f64 / 12.0).exp()
                            * season
                            * noise
                            * shock
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_lockdown_in_the_first_year_is_put_back_at_its_level() {
        let dip: Vec<(usize, f64)> = vec![(6, 0.6), (7, 0.5), (8, 0.5), (9, 0.7), (10, 0.9)];
        // Two years: the earlier year is taken as odd.
        let ys = province(24, &dip);
        let c = shock_corrections(&ys, 24, 4.0, 9);
        for (m, f) in &dip {
            assert!((c[*m] + f.ln()).abs() < 0.03, "month {m}: {}", c[*m]);
        }
        assert!(c[12..].iter().all(|v| *v == 0.0), "{c:?}");
        // Three years: the third agrees with the second.
        let ys = province(36, &dip);
        let c = shock_corrections(&ys, 36, 4.0, 9);
        for (m, f) in &dip {
            assert!((c[*m] + f.ln()).abs() < 0.03, "month {m}: {}", c[*m]);
        }
        assert!(c[12..].iter().all(|v| *v == 0.0), "{c:?}");
    }

    #[test]
    fn a_spike_in_the_middle_year_is_lowered_and_ordinary_years_untouched() {
        let spike: Vec<(usize, f64)> = vec![(18, 1.3), (19, 1.5), (20, 1.4), (21, 1.2)];
        let ys = province(36, &spike);
        let c = shock_corrections(&ys, 36, 4.0, 9);
        for (m, f) in &spike {
            assert!((c[*m] + f.ln()).abs() < 0.03, "month {m}: {}", c[*m]);
        }
        let untouched = (0..36).filter(|m| !(18..=21).contains(m));
        assert!(untouched.clone().all(|m| c[m] == 0.0), "{c:?}");
        // No shock, no correction; a lasting step (a year and more) neither.
        let ys = province(36, &[]);
        assert!(shock_corrections(&ys, 36, 4.0, 9).iter().all(|v| *v == 0.0));
        let step: Vec<(usize, f64)> = (14..36).map(|m| (m, 1.25)).collect();
        let ys = province(36, &step);
        assert!(shock_corrections(&ys, 36, 4.0, 9).iter().all(|v| *v == 0.0));
    }
}
