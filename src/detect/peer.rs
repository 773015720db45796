//! Peer comparison with credibility: a facility's indicator over a trailing
//! window against the median of its peer group in the same window.
//!
//! z = (x̄ − median) / sqrt(τ² + dispersion² / volume + floor²)
//!
//! where x̄ is the volume-weighted mean over the window, and τ² the spread
//! *between* facilities of the group — the robust variance (1.4826 · MAD)²
//! of the group's window means less their typical sampling variance
//! (empirical Bayes), moderated toward the other groups' (five clinics say
//! little about how far apart clinics may be). A large hospital is judged
//! against τ (a robust z); a commune station with 60 visits a quarter
//! mostly against its own sampling noise, so it needs a far larger gap. A plain robust z of monthly values
//! ranks the smallest, noisiest facilities first; this does not.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::change::Signal;
use super::signals::{excess_signed, row_getter, RowValues};
use super::{median, Panel};

/// Settings of the peer comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerConfig {
    /// Trailing window in periods (13 weeks = a quarter). Default 13.
    pub window: usize,
    /// Smallest group (facilities with enough volume in the window). Default 5.
    pub min_peers: usize,
    /// Indicators compared (columns of the change detector's signals). Default:
    /// all but `visits` (size differences between peers are not anomalies).
    pub signals: Vec<String>,
    /// Smallest volume (visits, stays, new patients: the signal's own) in
    /// the window for a facility to be scored (smaller ones still count
    /// in their group's median and spread). Default 30: below it a
    /// mean of heavy-tailed claim costs is not near normal — one stay of
    /// 6 M VND among seven visits of a commune station in the year's second
    /// week read as O/E cost 3.3 (severity 4.6).
    pub min_window_volume: f64,
    /// Weight, in facilities, of the typical τ² of the period's groups in
    /// a group's own τ² (empirical Bayes, as limma moderates variances):
    /// τ² = ((n − 1) · own + w · typical) / (n − 1 + w). Default 10. Five
    /// clinics' spread is a poor estimate of how far apart clinics' tender
    /// prices may be: a clinic 11 % above four peers that happened to lie
    /// within 2 % of each other alerted all year on the price index.
    pub prior_groups_weight: f64,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            window: 13,
            min_peers: 5,
            signals: [
                "oe_cost",
                "oe_los",
                "oe_admission",
                "oop_new_patient_share",
                "bed_cost_share_inpatient",
                "drug_supply_price_index",
                "overlapping_claim_share",
            ]
            .map(String::from)
            .to_vec(),
            min_window_volume: 30.0,
            prior_groups_weight: 10.0,
        }
    }
}

/// Finite-sample bias correction of the MAD as an estimate of a normal
/// spread: n / (n − 0.8) (Croux & Rousseeuw 1992; within 2 % of the
/// simulated factors from n = 5). Five clinics' MAD is ≈ 0.8 of their
/// spread on average.
fn small_sample_factor(n: usize) -> f64 {
    let n = n as f64;
    n / (n - 0.8)
}

/// Per signal and row: z, window mean, peer median, window excess (VND).
pub(crate) struct PeerOut {
    pub z: Vec<Vec<Option<f64>>>,
    pub window_mean: Vec<Vec<Option<f64>>>,
    pub median: Vec<Vec<Option<f64>>>,
    pub excess: Vec<Vec<f64>>,
}

pub(crate) fn run(p: &Panel, cfg: &PeerConfig, signals: &[&Signal]) -> PeerOut {
    let n = p.len();
    let w = cfg.window.max(1);
    let mut out = PeerOut {
        z: Vec::new(),
        window_mean: Vec::new(),
        median: Vec::new(),
        excess: Vec::new(),
    };
    for s in signals {
        let vol = p.col(&s.volume);
        // Window means and volumes.
        let mut mean = vec![None; n];
        let mut wvol = vec![0.0; n];
        for &(a, b) in &p.ranges {
            for i in a..b {
                let lo = i.saturating_sub(w - 1).max(a);
                let (mut sx, mut sv) = (0.0, 0.0);
                for j in lo..=i {
                    if let (Some(x), Some(v)) = (p.value(s, j), vol[j]) {
                        if v > 0.0 {
                            sx += x * v;
                            sv += v;
                        }
                    }
                }
                if sv >= s.min_volume.max(1.0) {
                    mean[i] = Some(sx / sv);
                    wvol[i] = sv;
                }
            }
        }
        // Group statistics per period.
        let mut by: HashMap<(&str, i32), Vec<usize>> = HashMap::new();
        for i in 0..n {
            if mean[i].is_some() {
                by.entry((p.group[i].as_str(), p.period[i]))
                    .or_default()
                    .push(i);
            }
        }
        // Per group and period: median, between-facility variance τ², size.
        let mut stats: HashMap<(&str, i32), (f64, f64, usize)> = HashMap::new();
        for (&key, rows) in &by {
            if rows.len() < cfg.min_peers {
                continue;
            }
            let mut xs: Vec<f64> = rows.iter().map(|&i| mean[i].unwrap()).collect();
            let m = median(&mut xs);
            let mut dev: Vec<f64> = rows.iter().map(|&i| (mean[i].unwrap() - m).abs()).collect();
            let mad = 1.4826 * small_sample_factor(rows.len()) * median(&mut dev);
            let mut noise: Vec<f64> = rows
                .iter()
                .map(|&i| s.dispersion.powi(2) / wvol[i])
                .collect();
            let tau2 = (mad * mad - median(&mut noise)).max(0.0);
            stats.insert(key, (m, tau2, rows.len()));
        }
        // The typical τ² of the period's groups, toward which each group's
        // own is moderated.
        let mut per_period: HashMap<i32, Vec<f64>> = HashMap::new();
        for (&(_, period), &(_, tau2, _)) in &stats {
            per_period.entry(period).or_default().push(tau2);
        }
        let pooled: HashMap<i32, f64> = per_period
            .into_iter()
            .map(|(k, mut v)| (k, median(&mut v)))
            .collect();
        let mut z = vec![None; n];
        let mut med_col = vec![None; n];
        let mut excess = vec![0.0; n];
        for (key, rows) in &by {
            let Some(&(m, own, size)) = stats.get(key) else {
                continue;
            };
            let df = (size - 1) as f64;
            let tau2 = (df * own + cfg.prior_groups_weight * pooled[&key.1])
                / (df + cfg.prior_groups_weight);
            // Every member shapes the group's median and spread; only those
            // with a credible volume in the window are scored.
            for &i in rows.iter().filter(|&&i| wvol[i] >= cfg.min_window_volume) {
                let d = (tau2 + s.dispersion.powi(2) / wvol[i] + s.floor.powi(2)).sqrt();
                z[i] = Some((mean[i].unwrap() - m) / d);
                med_col[i] = Some(m);
            }
        }
        // Excess over the window, priced period by period at the peer median.
        for &(a, b) in &p.ranges {
            for i in a..b {
                let (Some(m), Some(zi)) = (med_col[i], z[i]) else {
                    continue;
                };
                if zi <= 0.0 {
                    continue;
                }
                let lo = i.saturating_sub(w - 1).max(a);
                for j in lo..=i {
                    let get = row_getter(&p.cols, j);
                    let r = RowValues { get: &get };
                    excess[i] += excess_signed(&s.column, p.value(s, j).unwrap_or(f64::NAN), m, &r);
                }
                excess[i] = excess[i].max(0.0);
            }
        }
        out.z.push(z);
        out.window_mean.push(mean);
        out.median.push(med_col);
        out.excess.push(excess);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Panel;
    use polars::prelude::*;

    /// Price index of a province's facilities over 13 weeks, 500 visits a
    /// week each: five clinics, four of them within 1 % of each other and
    /// one 11 % above; two larger groups whose members lie 6 % apart; and
    /// a tiny clinic (2 visits a week).
    fn panel(tiny_price: f64) -> (Panel, Signal) {
        let (mut fac, mut per, mut x, mut v, mut g) = (vec![], vec![], vec![], vec![], vec![]);
        let mut add = |f: String, group: &str, price: f64, visits: f64| {
            for p in 0..13 {
                fac.push(f.clone());
                per.push(p);
                x.push(price);
                v.push(visits);
                g.push(group.to_string());
            }
        };
        for (k, price) in [0.99, 0.995, 1.0, 1.005, 1.11].iter().enumerate() {
            add(format!("C{k}"), "clinic", *price, 500.0);
        }
        add("TINY".into(), "clinic", tiny_price, 2.0);
        for grp in ["district", "station"] {
            for k in 0..9 {
                add(format!("{grp}{k}"), grp, 0.94 + 0.015 * k as f64, 500.0);
            }
        }
        let df = df!(
            "facility_code" => fac,
            "period_start" => per,
            "drug_supply_price_index" => x,
            "visits" => v,
            "peer_group" => g,
        )
        .unwrap();
        let s = Signal {
            column: "drug_supply_price_index".into(),
            dispersion: 0.3,
            floor: 0.02,
            volume: "visits".into(),
            log: false,
            min_volume: 5.0,
        };
        let p = Panel::from_df(&df, &[s.column.clone(), s.volume.clone()]).unwrap();
        (p, s)
    }

    fn last_z(p: &Panel, out: &PeerOut, f: &str) -> Option<f64> {
        (0..p.len())
            .rfind(|&i| p.fac[i] == f)
            .and_then(|i| out.z[0][i])
    }

    /// Five clinics' spread is moderated toward the other groups': the
    /// clinic 11 % above four close peers is not singled out as it is
    /// against their spread alone.
    #[test]
    fn a_small_groups_spread_is_moderated_toward_the_others() {
        let (p, s) = panel(1.0);
        let cfg = PeerConfig::default();
        let z = last_z(&p, &run(&p, &cfg, &[&s]), "C4").unwrap();
        assert!(z < 3.0, "moderated z {z}");
        let alone = PeerConfig {
            prior_groups_weight: 0.0,
            ..cfg
        };
        let z0 = last_z(&p, &run(&p, &alone, &[&s]), "C4").unwrap();
        assert!(z0 > 4.0, "own spread only: z {z0}");
    }

    /// A facility with too little volume in its window is not scored,
    /// however far off it is, yet it still counts in its group (six
    /// clinics, so the median moves off the middle clinic's price).
    #[test]
    fn a_tiny_window_is_not_scored_but_counts_in_its_group() {
        let (p, s) = panel(3.0);
        let out = run(&p, &PeerConfig::default(), &[&s]);
        assert_eq!(last_z(&p, &out, "TINY"), None);
        let i = (0..p.len()).rfind(|&i| p.fac[i] == "C0").unwrap();
        assert!((out.median[0][i].unwrap() - 1.0025).abs() < 1e-9);
    }
}
