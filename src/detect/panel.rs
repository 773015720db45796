//! The indicator table as the detectors read it — one column vector per
//! indicator, rows sorted by facility and period — and the small helpers
//! they share (medians, empirical-Bayes spread, two-window looks, dates).

use std::collections::HashMap;

use polars::prelude::*;

use super::change::Signal;
use super::{calibrate, signals, DetectError};

/// The indicator table as columns, rows sorted by facility and period.
pub(crate) struct Panel {
    pub fac: Vec<String>,
    pub group: Vec<String>,
    pub period: Vec<i32>,
    pub cols: HashMap<String, Vec<Option<f64>>>,
    /// Row range of each facility.
    pub ranges: Vec<(usize, usize)>,
    pub period_name: String,
}

impl Panel {
    pub(super) fn from_df(df: &DataFrame, needed: &[String]) -> Result<Panel, DetectError> {
        let t = df.sort(["facility_code", "period_start"], Default::default())?;
        let fac: Vec<String> = t
            .column("facility_code")?
            .str()?
            .iter()
            .map(|v| v.unwrap_or("").to_string())
            .collect();
        let group: Vec<String> = match t.column("peer_group") {
            Ok(c) => c
                .str()?
                .iter()
                .map(|v| v.unwrap_or("all").to_string())
                .collect(),
            Err(_) => vec!["all".to_string(); fac.len()],
        };
        let period: Vec<i32> = t
            .column("period_start")?
            .cast(&DataType::Int32)?
            .i32()?
            .iter()
            .map(|v| v.unwrap_or(0))
            .collect();
        let period_name = t
            .column("period")
            .ok()
            .and_then(|c| c.str().ok().and_then(|s| s.get(0).map(String::from)))
            .unwrap_or_else(|| "week".into());
        let mut cols = HashMap::new();
        for c in needed {
            if cols.contains_key(c) {
                continue;
            }
            let v: Vec<Option<f64>> = match t.column(c) {
                Ok(col) => col
                    .cast(&DataType::Float64)?
                    .f64()?
                    .iter()
                    .map(|v| v.filter(|x| x.is_finite()))
                    .collect(),
                Err(_) if signals::PRICING_COLUMNS.contains(&c.as_str()) => vec![None; fac.len()],
                Err(_) => {
                    return Err(DetectError::Input(format!(
                        "the features table has no column `{c}` (run `bhyt features`)"
                    )))
                }
            };
            cols.insert(c.clone(), v);
        }
        let mut ranges = Vec::new();
        let mut i = 0;
        while i < fac.len() {
            let mut j = i;
            while j < fac.len() && fac[j] == fac[i] {
                j += 1;
            }
            ranges.push((i, j));
            i = j;
        }
        Ok(Panel {
            fac,
            group,
            period,
            cols,
            ranges,
            period_name,
        })
    }

    pub fn len(&self) -> usize {
        self.fac.len()
    }

    pub fn col(&self, c: &str) -> &[Option<f64>] {
        &self.cols[c]
    }

    /// Value of a signal (log taken for volumes).
    pub fn value(&self, s: &Signal, i: usize) -> Option<f64> {
        let v = self.cols[&s.column][i]?;
        Some(if s.log { v.max(1.0).ln() } else { v })
    }

    /// Median of `v` per (peer group, period), for groups of ≥ `min` values.
    pub fn group_median(&self, v: &[Option<f64>], min: usize) -> HashMap<(&str, i32), f64> {
        let mut by: HashMap<(&str, i32), Vec<f64>> = HashMap::new();
        for i in 0..self.len() {
            if let Some(x) = v[i] {
                by.entry((self.group[i].as_str(), self.period[i]))
                    .or_default()
                    .push(x);
            }
        }
        by.into_iter()
            .filter(|(_, v)| v.len() >= min)
            .map(|(k, mut v)| (k, median(&mut v)))
            .collect()
    }
}

/// τ² of empirical Bayes: the spread of true effects among estimates `d`
/// with sampling variances `v` — the robust spread of `d` (1.4826 · MAD)
/// squared less the median sampling variance; 0 with fewer than 10.
pub(crate) fn excess_spread(mut d: Vec<f64>, mut v: Vec<f64>) -> f64 {
    if d.len() < 10 {
        return 0.0;
    }
    let med = median(&mut d);
    let mut dev: Vec<f64> = d.iter().map(|x| (x - med).abs()).collect();
    let mad = 1.4826 * median(&mut dev);
    (mad * mad - median(&mut v)).max(0.0)
}

/// A per-row statistic over the trailing window and a third of it: per
/// row the one with the smaller tail probability, which becomes the Šidák
/// probability of two looks. `run(w)` computes the statistic for windows
/// of `w` periods; `p` reads and `with_p` sets its tail probability.
pub(crate) fn two_windows<T>(
    window: usize,
    run: impl Fn(usize) -> Vec<T>,
    p: impl Fn(&T) -> f64,
    with_p: impl Fn(T, f64) -> T,
) -> Vec<T> {
    let long = run(window);
    let short_w = window.div_ceil(3).max(1);
    if short_w >= window {
        return long;
    }
    long.into_iter()
        .zip(run(short_w))
        .map(|(l, s)| {
            let best = if p(&s) < p(&l) { s } else { l };
            let q = calibrate::sidak(p(&best), 2);
            with_p(best, q)
        })
        .collect()
}

/// Median of a non-empty slice (sorted in place).
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub(crate) fn date_of(days: i32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days as i64)
}

pub(crate) fn days_of(d: chrono::NaiveDate) -> i32 {
    (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}
