//! Working days: a month with a Sunday more and a Monday less has fewer
//! outpatient visits, so a year-on-year ratio moves by a few points for
//! no reason but the calendar. The engine measures that effect on each
//! province's total (it is not assumed: a source that books claims evenly
//! shows none) and takes it out before estimating growth, then puts the
//! coming months' calendar back into the forecast — the trading-day
//! adjustment of official statistics (X-13's `td` regressor), with one
//! coefficient per province.

use chrono::{Datelike, NaiveDate, Weekday};

/// Monday-to-Friday days of the month that starts on `first`.
pub(crate) fn working_days(first: NaiveDate) -> f64 {
    let mut d = first;
    let mut n = 0u32;
    while d.month() == first.month() {
        if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            n += 1;
        }
        d = d.succ_opt().expect("dates stay in range");
    }
    f64::from(n)
}

/// The log effect of one working day on a month's spending, measured on
/// `total` (monthly spending) with `wd` its months' working days:
/// year-on-year log ratios regressed on the change of working days, with a
/// level and a trend for the growth (which moves slowly against the
/// calendar's month-to-month jumps); months more than 3.5 robust sd off the
/// first fit (an epidemic, a step) are left out of the second. Zero when
/// the effect is not clear (|t| < 2) or the history is under two years.
pub(crate) fn working_day_effect(total: &[f64], wd: &[f64]) -> f64 {
    let n = total.len().min(wd.len());
    if n < 24 {
        return 0.0;
    }
    let mean = total[..n].iter().sum::<f64>() / n as f64;
    let c = 0.01 * mean.max(1.0);
    let rows: Vec<([f64; 3], f64)> = (12..n)
        .filter(|&m| total[m] > 0.0 && total[m - 12] > 0.0)
        .map(|m| {
            let r = ((total[m] + c) / (total[m - 12] + c)).ln();
            ([1.0, (m - 12) as f64 / 12.0, wd[m] - wd[m - 12]], r)
        })
        .collect();
    let mut keep = vec![true; rows.len()];
    let mut fit = None;
    for _ in 0..2 {
        let Some((beta, resid, se)) = least_squares(&rows, &keep) else {
            return 0.0;
        };
        let mut abs: Vec<f64> = resid.iter().map(|r| r.abs()).collect();
        abs.sort_by(f64::total_cmp);
        let scale = abs[abs.len() / 2] / 0.6745;
        for (k, r) in keep.iter_mut().zip(&resid) {
            *k = r.abs() <= 3.5 * scale.max(1e-9);
        }
        fit = Some((beta[2], se));
    }
    match fit {
        Some((b, se)) if se > 0.0 && (b / se).abs() >= 2.0 => b,
        _ => 0.0,
    }
}

/// Ordinary least squares on three regressors over the rows kept: the
/// coefficients, every row's residual, and the third coefficient's
/// standard error.
fn least_squares(rows: &[([f64; 3], f64)], keep: &[bool]) -> Option<([f64; 3], Vec<f64>, f64)> {
    let mut xtx = [[0.0; 3]; 3];
    let mut xty = [0.0; 3];
    let mut n = 0usize;
    for ((x, y), _) in rows.iter().zip(keep).filter(|(_, k)| **k) {
        for i in 0..3 {
            for j in 0..3 {
                xtx[i][j] += x[i] * x[j];
            }
            xty[i] += x[i] * y;
        }
        n += 1;
    }
    if n < 12 {
        return None;
    }
    let beta = super::growth::solve3(xtx, xty)?;
    let resid: Vec<f64> = rows
        .iter()
        .map(|(x, y)| y - (0..3).map(|i| beta[i] * x[i]).sum::<f64>())
        .collect();
    let sse: f64 = resid
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(r, _)| r * r)
        .sum();
    let s2 = sse / (n - 3) as f64;
    let inv = super::growth::solve3(xtx, [0.0, 0.0, 1.0])?;
    Some((beta, resid, (s2 * inv[2]).max(0.0).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_working_days() {
        let d = |y, m| NaiveDate::from_ymd_opt(y, m, 1).unwrap();
        assert_eq!(working_days(d(2024, 2)), 21.0); // leap February from a Thursday
        assert_eq!(working_days(d(2023, 2)), 20.0);
        assert_eq!(working_days(d(2024, 6)), 20.0);
    }

    #[test]
    fn measures_the_effect_and_nothing_when_there_is_none() {
        let start = NaiveDate::from_ymd_opt(2021, 1, 1).unwrap();
        let wd: Vec<f64> = (0..48)
            .map(|i| working_days(super::super::add_months(start, i)))
            .collect();
        // 10 % growth a year, 3 % per working day, small noise.
        let noise = |i: usize| 0.004 * ((i * 7919 % 13) as f64 - 6.0) / 6.0;
        let with: Vec<f64> = (0..48)
            .map(|i| 1e9 * (0.1 * i as f64 / 12.0 + 0.03 * wd[i] + noise(i)).exp())
            .collect();
        let b = working_day_effect(&with, &wd);
        assert!((b - 0.03).abs() < 0.004, "{b}");
        let without: Vec<f64> = (0..48)
            .map(|i| 1e9 * (0.1 * i as f64 / 12.0 + noise(i)).exp())
            .collect();
        assert!(working_day_effect(&without, &wd).abs() < 0.004);
        // Too short a history: no effect claimed.
        assert_eq!(working_day_effect(&with[..23], &wd[..23]), 0.0);
    }
}
