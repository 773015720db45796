//! Detection, first detector: sustained rises against the facility's own
//! baseline, net of what its peers did in the same period.
//!
//! For each facility and signal, a period's value is compared with the
//! facility's baseline (its first periods) in units of a standard deviation
//! that adds the sampling noise of the period (dispersion² / volume): a
//! commune station with 20 visits a month needs a much larger move than a
//! provincial hospital to count, which is the credibility weighting small
//! facilities need. The peer group's median z of the same period is
//! subtracted, so a price change for a whole grade or a province-wide
//! epidemic moves no one. A CUSUM accumulates the excess over `k` so that a
//! sustained shift stands out from single noisy periods; the facility score
//! is the largest CUSUM over signals and periods.
//!
//! This is the statistical core of the detection stage; the alert
//! lifecycle, the explanations, the multivariate models and the calibration
//! come on top of it.

use std::collections::HashMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("detect: {0}")]
    Polars(#[from] PolarsError),
    #[error("detect: {0}")]
    Input(String),
}

/// One monitored signal: a column of the features table where a rise is
/// the bad direction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signal {
    pub column: String,
    /// Per-unit dispersion: the sampling sd of the signal is dispersion /
    /// sqrt(volume).
    pub dispersion: f64,
    /// Smallest sd (absolute), against zero-variance baselines.
    pub floor: f64,
    /// Volume column of the sampling noise (visits or inpatient episodes).
    pub volume: String,
    /// Take the logarithm first (volumes).
    #[serde(default)]
    pub log: bool,
    /// Periods with less volume than this say nothing about the signal
    /// (e.g. fewer than 5 expected admissions at a commune station).
    #[serde(default)]
    pub min_volume: f64,
}

/// Configuration of the change detector; defaults are documented per field.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ChangeConfig {
    /// Share of the periods used as baseline (at least 3 periods). Default 0.4.
    pub baseline_share: f64,
    /// CUSUM allowance in sd per period. Default 1.0.
    pub cusum_k: f64,
    /// Smallest peer group whose median z is subtracted. Default 3.
    pub min_peers: usize,
    pub signals: Vec<Signal>,
}

fn signal(column: &str, dispersion: f64, floor: f64, volume: &str) -> Signal {
    Signal {
        column: column.into(),
        dispersion,
        floor,
        volume: volume.into(),
        log: false,
        min_volume: 5.0,
    }
}

impl Default for ChangeConfig {
    fn default() -> Self {
        let mut visits = signal("visits", 1.0, 0.05, "visits");
        visits.log = true;
        ChangeConfig {
            baseline_share: 0.4,
            cusum_k: 1.0,
            min_peers: 3,
            signals: vec![
                signal("oe_cost", 1.0, 0.05, "visits"),
                signal("oe_los", 0.6, 0.05, "inpatient_episodes"),
                // Poisson noise of admissions: sd of O/E ≈ 1 / sqrt(expected admissions).
                signal("oe_admission", 1.0, 0.05, "expected_admissions"),
                signal("oop_visit_share", 0.3, 0.01, "visits"),
                signal("bed_cost_share_inpatient", 0.3, 0.01, "inpatient_episodes"),
                signal("drug_supply_price_index", 0.3, 0.02, "visits"),
                signal("overlapping_claim_share", 0.2, 0.005, "visits"),
                visits,
            ],
        }
    }
}

/// Score of one facility: the largest CUSUM, with the signal and period
/// where it peaked.
#[derive(Debug, Clone, PartialEq)]
pub struct FacilityScore {
    pub facility_code: String,
    pub score: f64,
    pub signal: String,
    pub peak_period: Option<i32>,
}

/// Scores every facility of a `facility_period` table (from `bhyt features`).
pub fn score_facilities(
    table: &DataFrame,
    cfg: &ChangeConfig,
) -> Result<Vec<FacilityScore>, DetectError> {
    let t = table.sort(["facility_code", "period_start"], Default::default())?;
    let n = t.height();
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
        Err(_) => vec!["all".to_string(); n],
    };
    let period: Vec<i32> = t
        .column("period_start")?
        .cast(&DataType::Int32)?
        .i32()?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect();
    let mut periods: Vec<i32> = period.clone();
    periods.sort_unstable();
    periods.dedup();
    if periods.len() < 4 {
        return Err(DetectError::Input(format!(
            "{} periods: the change detector needs at least 4",
            periods.len()
        )));
    }
    let n_base =
        ((periods.len() as f64 * cfg.baseline_share).round() as usize).clamp(3, periods.len() - 1);
    let base_end = periods[n_base];
    let num = |c: &str| -> Result<Vec<Option<f64>>, DetectError> {
        Ok(t.column(c)?
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .map(|v| v.filter(|x| x.is_finite()))
            .collect())
    };
    // z per row and signal.
    let mut z: Vec<Vec<Option<f64>>> = Vec::new();
    for s in &cfg.signals {
        let mut x = num(&s.column)?;
        if s.log {
            x = x.into_iter().map(|v| v.map(|v| v.max(1.0).ln())).collect();
        }
        let vol = num(&s.volume)?;
        // Baseline mean and variance per facility.
        let mut acc: HashMap<&str, (f64, f64, usize)> = HashMap::new();
        for i in 0..n {
            if period[i] < base_end {
                if let Some(v) = x[i] {
                    let e = acc.entry(fac[i].as_str()).or_default();
                    e.0 += v;
                    e.1 += v * v;
                    e.2 += 1;
                }
            }
        }
        let zs: Vec<Option<f64>> = (0..n)
            .map(|i| {
                let (s1, s2, k) = acc.get(fac[i].as_str()).copied()?;
                if k < 2 || period[i] < base_end {
                    return None;
                }
                let mean = s1 / k as f64;
                let var = ((s2 - s1 * s1 / k as f64) / (k as f64 - 1.0)).max(0.0);
                let v = x[i]?;
                let volume = vol[i].unwrap_or(0.0);
                if volume < s.min_volume {
                    return None;
                }
                let volume = volume.max(1.0);
                let sd = (var + s.dispersion.powi(2) / volume + s.floor.powi(2)).sqrt();
                Some((v - mean) / sd)
            })
            .collect();
        z.push(zs);
    }
    // Net of the peer group's median z in the same period.
    for zs in z.iter_mut() {
        let mut by: HashMap<(&str, i32), Vec<f64>> = HashMap::new();
        for i in 0..n {
            if let Some(v) = zs[i] {
                by.entry((group[i].as_str(), period[i]))
                    .or_default()
                    .push(v);
            }
        }
        let med: HashMap<(&str, i32), f64> = by
            .into_iter()
            .filter(|(_, v)| v.len() >= cfg.min_peers)
            .map(|(k, mut v)| {
                v.sort_by(f64::total_cmp);
                let m = if v.len() % 2 == 1 {
                    v[v.len() / 2]
                } else {
                    (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
                };
                (k, m)
            })
            .collect();
        for i in 0..n {
            if let (Some(v), Some(m)) = (zs[i], med.get(&(group[i].as_str(), period[i]))) {
                zs[i] = Some(v - m);
            }
        }
    }
    // CUSUM per facility and signal (rows are sorted by facility, period).
    let mut out: Vec<FacilityScore> = Vec::new();
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && fac[j] == fac[i] {
            j += 1;
        }
        let mut best = FacilityScore {
            facility_code: fac[i].clone(),
            score: 0.0,
            signal: String::new(),
            peak_period: None,
        };
        for (si, zs) in z.iter().enumerate() {
            let mut c = 0.0f64;
            for r in i..j {
                if let Some(v) = zs[r] {
                    c = (c + v - cfg.cusum_k).max(0.0);
                    if c > best.score {
                        best.score = c;
                        best.signal = cfg.signals[si].column.clone();
                        best.peak_period = Some(period[r]);
                    }
                }
            }
        }
        out.push(best);
        i = j;
    }
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.facility_code.cmp(&b.facility_code))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[(&str, i32, f64, f64)]) -> DataFrame {
        df!(
            "facility_code" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "period_start" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "oe_cost" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            "visits" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    fn cfg() -> ChangeConfig {
        ChangeConfig {
            signals: vec![signal("oe_cost", 1.0, 0.05, "visits")],
            min_peers: 3,
            ..Default::default()
        }
    }

    /// A large facility whose cost rises by 30 % for good outranks a small
    /// one with the same relative noise swings, and a rise shared by every
    /// facility (peers) scores nothing.
    #[test]
    fn sustained_rise_at_volume_outranks_noise_and_common_shocks() {
        let mut rows = Vec::new();
        for p in 0..10 {
            let common = if p >= 6 { 0.2 } else { 0.0 };
            let wiggle = if p % 2 == 0 { 0.02 } else { -0.02 };
            rows.push((
                "BIG",
                p,
                1.0 + wiggle + if p >= 5 { 0.3 } else { 0.0 } + common,
                3000.0,
            ));
            rows.push((
                "SMALL",
                p,
                1.0 + if p % 2 == 0 { 0.3 } else { -0.3 } + common,
                20.0,
            ));
            rows.push(("P1", p, 1.0 - wiggle + common, 3000.0));
            rows.push(("P2", p, 1.0 + wiggle + common, 3000.0));
        }
        let refs: Vec<(&str, i32, f64, f64)> = rows.iter().map(|r| (r.0, r.1, r.2, r.3)).collect();
        let s = score_facilities(&table(&refs), &cfg()).unwrap();
        assert_eq!(s[0].facility_code, "BIG");
        assert!(s[0].score > 10.0, "{s:?}");
        let small = s.iter().find(|f| f.facility_code == "SMALL").unwrap();
        assert!(small.score < 2.0, "{s:?}");
        for p in ["P1", "P2"] {
            assert!(
                s.iter().find(|f| f.facility_code == p).unwrap().score < 2.0,
                "{s:?}"
            );
        }
    }

    #[test]
    fn too_few_periods_is_an_error() {
        let t = table(&[("A", 0, 1.0, 10.0), ("A", 1, 1.0, 10.0)]);
        assert!(matches!(
            score_facilities(&t, &cfg()),
            Err(DetectError::Input(_))
        ));
    }
}
