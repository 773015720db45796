//! Peer comparison with credibility: a facility's indicator over a trailing
//! window against the median of its peer group in the same window.
//!
//! z = (x̄ − median) / sqrt(τ² + dispersion² / volume + floor²)
//!
//! where x̄ is the volume-weighted mean over the window, and τ² the spread
//! *between* facilities of the group — the robust variance (1.4826 · MAD)²
//! of the group's window means less their typical sampling variance
//! (empirical Bayes). A large hospital is judged against τ (a robust z); a
//! commune station with 60 visits a quarter mostly against its own sampling
//! noise, so it needs a far larger gap. A plain robust z of monthly values
//! ranks the smallest, noisiest facilities first; this does not.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::change::Signal;
use super::signals::{excess_vnd, row_getter, RowValues};
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
        }
    }
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
        let mut z = vec![None; n];
        let mut med_col = vec![None; n];
        let mut excess = vec![0.0; n];
        for rows in by.values() {
            if rows.len() < cfg.min_peers {
                continue;
            }
            let mut xs: Vec<f64> = rows.iter().map(|&i| mean[i].unwrap()).collect();
            let m = median(&mut xs);
            let mut dev: Vec<f64> = rows.iter().map(|&i| (mean[i].unwrap() - m).abs()).collect();
            let mad = 1.4826 * median(&mut dev);
            let mut noise: Vec<f64> = rows
                .iter()
                .map(|&i| s.dispersion.powi(2) / wvol[i])
                .collect();
            let tau2 = (mad * mad - median(&mut noise)).max(0.0);
            for &i in rows {
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
                    excess[i] += excess_vnd(&s.column, p.value(s, j).unwrap_or(f64::NAN), m, &r);
                }
            }
        }
        out.z.push(z);
        out.window_mean.push(mean);
        out.median.push(med_col);
        out.excess.push(excess);
    }
    out
}
