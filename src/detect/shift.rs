//! Claim-level cost shift: a facility's claims cost more than the same
//! diagnoses and visit types cost there before, net of its peers.
//!
//! The weekly O/E cost is a ratio of sums: one long, dear stay moves it as
//! much as a rise on every claim, so at a small hospital its week-to-week
//! noise hides a steady 20 % rise for months. Here the evidence is counted
//! claim by claim: each claim's residual is its log cost less the mean log
//! cost of its cell (facility × ICD-10 category × visit type over the
//! training range; the same residuals as the prescriber comparison). Over
//! a trailing window (the peer window, 13 weeks, and a third of it):
//!
//! d = mean residual of the facility − median of its peer group's (the
//! province's when the group has fewer than 3 facilities that period),
//! var = s²/n + τ²,
//!
//! s² the spread of the window's residuals, n its claims, τ² the spread of
//! true shifts between facilities (empirical Bayes on the training
//! windows), at least `ShiftConfig::floor`² for real-world drift the training range
//! cannot show (it is also where the cell means were fitted). z = d/√var,
//! p = 1 − Φ(z), Šidák over the two windows. Log costs make the test
//! robust to a few dear claims; cells make it blind to a change of case
//! mix (more inpatients, heavier diagnoses: other detectors' business). The
//! excess is the window's cost above the facility's own level:
//! cost × (1 − e^(−d)). Causal: a period uses its window and the training
//! cells only.

use std::collections::HashMap;

use super::calibrate::p_of_severity;
use serde::{Deserialize, Serialize};

use super::{median, Panel};

/// Columns joined to the features table by [`super::prescriber::prescriber_stats`]:
/// per facility and period, the priced claims, the sum and sum of squares
/// of their residuals, and their cost.
pub const COLUMNS: [&str; 4] = ["claim_n", "claim_s", "claim_s2", "claim_cost"];

/// Settings of the claim-level cost shift (`[shift]` in `detector.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ShiftConfig {
    /// Least standard deviation of a facility's shift in log cost per
    /// claim: real-world drift the training range cannot show. Default 0.03.
    pub floor: f64,
    /// Fewest priced claims of the facility in a window. Default 30.
    pub min_claims: f64,
}

impl Default for ShiftConfig {
    fn default() -> Self {
        ShiftConfig {
            floor: 0.03,
            min_claims: 30.0,
        }
    }
}

/// Per row: tail probability, shift (log), excess VND.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShiftStat {
    pub p: f64,
    pub d: f64,
    pub excess: f64,
}

impl Default for ShiftStat {
    fn default() -> Self {
        ShiftStat {
            p: 1.0,
            d: 0.0,
            excess: 0.0,
        }
    }
}

/// The shift of every row over trailing windows of `window` periods;
/// `train_end`: first period after training.
fn shift(p: &Panel, train_end: i32, window: usize, cfg: &ShiftConfig) -> Vec<ShiftStat> {
    let n = p.len();
    let Some(cols) = COLUMNS
        .iter()
        .map(|c| p.cols.get(*c))
        .collect::<Option<Vec<_>>>()
    else {
        return vec![ShiftStat::default(); n];
    };
    let get = |k: usize, i: usize| cols[k][i].unwrap_or(0.0);
    let mut mean = vec![None; n];
    let mut var = vec![0.0; n];
    let mut cost = vec![0.0; n];
    for &(a, b) in &p.ranges {
        for i in a..b {
            let lo = i.saturating_sub(window.max(1) - 1).max(a);
            let [mut cn, mut cs, mut cs2, mut cc] = [0.0; 4];
            for j in lo..=i {
                cn += get(0, j);
                cs += get(1, j);
                cs2 += get(2, j);
                cc += get(3, j);
            }
            if cn < cfg.min_claims {
                continue;
            }
            let s2 = ((cs2 - cs * cs / cn) / (cn - 1.0)).max(1e-6);
            mean[i] = Some(cs / cn);
            var[i] = s2 / cn;
            cost[i] = cc;
        }
    }
    let group = p.group_median(&mean, 3);
    let mut all: HashMap<i32, Vec<f64>> = HashMap::new();
    for i in 0..n {
        if let Some(m) = mean[i] {
            all.entry(p.period[i]).or_default().push(m);
        }
    }
    let province: HashMap<i32, f64> = all
        .into_iter()
        .map(|(k, mut v)| (k, median(&mut v)))
        .collect();
    let d: Vec<Option<f64>> = (0..n)
        .map(|i| {
            let m = mean[i]?;
            let shared = group
                .get(&(p.group[i].as_str(), p.period[i]))
                .or_else(|| province.get(&p.period[i]))
                .copied()
                .unwrap_or(0.0);
            Some(m - shared)
        })
        .collect();
    let tau2 = between_facilities(p, &d, &var, train_end).max(cfg.floor * cfg.floor);
    (0..n)
        .map(|i| match d[i] {
            Some(d) => ShiftStat {
                p: p_of_severity(d / (var[i] + tau2).sqrt()),
                d,
                excess: (cost[i] * (1.0 - (-d).exp())).max(0.0),
            },
            None => ShiftStat::default(),
        })
        .collect()
}

/// τ² from the training windows' shifts (see [`super::excess_spread`]).
fn between_facilities(p: &Panel, d: &[Option<f64>], var: &[f64], train_end: i32) -> f64 {
    let train = || (0..d.len()).filter(|&i| p.period[i] < train_end && d[i].is_some());
    super::excess_spread(
        train().filter_map(|i| d[i]).collect(),
        train().map(|i| var[i]).collect(),
    )
}

/// [`shift`] over the window and a third of it: per row the smaller tail
/// probability (Šidák over the two) and its statistics.
pub(crate) fn two_windows(
    p: &Panel,
    train_end: i32,
    window: usize,
    cfg: &ShiftConfig,
) -> Vec<ShiftStat> {
    super::two_windows(
        window,
        |w| shift(p, train_end, w, cfg),
        |s| s.p,
        |s, p| ShiftStat { p, ..s },
    )
}
