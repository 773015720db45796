//! Change over time: each facility's series against its own baseline, net
//! of what its peers did in the same period, accumulated by a CUSUM.
//!
//! A period's value is compared with the facility's baseline (the training
//! periods of the model) in units of a standard deviation that adds the
//! sampling noise of the period (dispersion² / volume): a commune station
//! with 20 visits a week needs a much larger move than a provincial hospital
//! to count — the credibility weighting small facilities need. The peer
//! group's median z of the same period is subtracted, so a price change for
//! a whole grade or a province-wide epidemic moves no one. The CUSUM
//! `S = max(0, S + z − k)` accumulates the excess over `k`, so a sustained
//! shift stands out from single noisy periods and is caught within a few
//! periods of its start.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::signals::{excess_signed, row_getter, RowValues};
use super::{median, Panel};

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
    /// Largest CUSUM kept: once an anomaly stops, its alert fades within
    /// about `cusum_cap − 6` periods instead of lingering for months. Default 12.
    pub cusum_cap: f64,
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
            cusum_cap: 12.0,
            min_peers: 3,
            signals: vec![
                signal("oe_cost", 1.0, 0.05, "visits"),
                signal("oe_los", 0.6, 0.05, "inpatient_episodes"),
                // Poisson noise of admissions: sd of O/E ≈ 1 / sqrt(expected admissions).
                signal("oe_admission", 1.0, 0.05, "expected_admissions"),
                signal("oop_new_patient_share", 0.3, 0.01, "new_patients"),
                signal("bed_cost_share_inpatient", 0.3, 0.01, "inpatient_episodes"),
                signal("drug_supply_price_index", 0.3, 0.02, "visits"),
                signal("overlapping_claim_share", 0.2, 0.005, "visits"),
                visits,
            ],
        }
    }
}

/// Baseline of one facility and signal over the training periods: a
/// robust centre and spread (median, 1.4826 · MAD), so a partial first week
/// or one odd week does not widen it, and the typical volume.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Baseline {
    pub mean: f64,
    /// Week-to-week variance beyond sampling noise: (1.4826 · MAD)² less
    /// dispersion² / typical volume (the noise already in the spread).
    pub var: f64,
    pub volume: f64,
    pub n: u32,
}

/// Baselines per facility (in signal order), from rows before `train_end`
/// with at least the signal's minimum volume.
pub(crate) fn baselines(
    p: &Panel,
    cfg: &ChangeConfig,
    train_end: i32,
) -> BTreeMap<String, Vec<Option<Baseline>>> {
    let mut out = BTreeMap::new();
    for &(a, b) in &p.ranges {
        let mut per_signal = Vec::with_capacity(cfg.signals.len());
        for s in &cfg.signals {
            let vol = p.col(&s.volume);
            let mut xs = Vec::new();
            let mut vs = Vec::new();
            for i in a..b {
                if p.period[i] >= train_end {
                    continue;
                }
                if let (Some(v), Some(w)) = (p.value(s, i), vol[i]) {
                    if w >= s.min_volume.max(1.0) {
                        xs.push(v);
                        vs.push(w);
                    }
                }
            }
            per_signal.push((xs.len() >= 3).then(|| {
                let m = median(&mut xs.clone());
                let volume = median(&mut vs);
                let mut dev: Vec<f64> = xs.iter().map(|x| (x - m).abs()).collect();
                let spread = 1.4826 * median(&mut dev);
                Baseline {
                    mean: m,
                    var: (spread * spread - s.dispersion.powi(2) / volume).max(0.0),
                    volume,
                    n: xs.len() as u32,
                }
            }));
        }
        out.insert(p.fac[a].clone(), per_signal);
    }
    moderate(p, &mut out);
    out
}

/// Weight, in training periods, of the peer group's typical variance in a
/// facility's baseline variance.
const PRIOR_PERIODS: f64 = 20.0;

/// Moderates each baseline variance toward the median of its peer group
/// (empirical Bayes, as limma does for gene-wise variances): a spread
/// measured on twenty-odd training weeks is itself uncertain by half, and
/// an underestimate turns ordinary ups and downs — a commune station's
/// visits in a busy autumn — into alerts. var = (n · own + 20 · group) /
/// (n + 20); groups of fewer than 3 facilities keep their own.
fn moderate(p: &Panel, out: &mut BTreeMap<String, Vec<Option<Baseline>>>) {
    let group_of: BTreeMap<&str, &str> = p
        .ranges
        .iter()
        .map(|&(a, _)| (p.fac[a].as_str(), p.group[a].as_str()))
        .collect();
    let mut pooled: BTreeMap<(&str, usize), Vec<f64>> = BTreeMap::new();
    for (f, per_signal) in out.iter() {
        for (si, b) in per_signal.iter().enumerate() {
            if let Some(b) = b {
                pooled
                    .entry((group_of[f.as_str()], si))
                    .or_default()
                    .push(b.var);
            }
        }
    }
    let typical: BTreeMap<(&str, usize), f64> = pooled
        .into_iter()
        .filter(|(_, v)| v.len() >= 3)
        .map(|(k, mut v)| (k, median(&mut v)))
        .collect();
    for (f, per_signal) in out.iter_mut() {
        for (si, b) in per_signal.iter_mut().enumerate() {
            if let (Some(b), Some(g)) = (b.as_mut(), typical.get(&(group_of[f.as_str()], si))) {
                let n = b.n as f64;
                b.var = (n * b.var + PRIOR_PERIODS * g) / (n + PRIOR_PERIODS);
            }
        }
    }
}

/// Per signal and row: peer-adjusted z, expected value, CUSUM, start of the
/// current CUSUM run, and the run's estimated excess in VND.
pub(crate) struct ChangeOut {
    pub z: Vec<Vec<Option<f64>>>,
    pub expected: Vec<Vec<Option<f64>>>,
    pub cusum: Vec<Vec<f64>>,
    pub onset: Vec<Vec<Option<i32>>>,
    pub run_excess: Vec<Vec<f64>>,
    /// Mean observed and expected value over the current run.
    pub run_observed: Vec<Vec<Option<f64>>>,
    pub run_expected: Vec<Vec<Option<f64>>>,
}

pub(crate) fn run(
    p: &Panel,
    cfg: &ChangeConfig,
    base: &BTreeMap<String, Vec<Option<Baseline>>>,
    train_end: i32,
) -> ChangeOut {
    let n = p.len();
    let ns = cfg.signals.len();
    let mut z = vec![vec![None; n]; ns];
    let mut sd = vec![vec![None; n]; ns];
    for (si, s) in cfg.signals.iter().enumerate() {
        let vol = p.col(&s.volume);
        // A count measured by itself (log visits): its sampling noise
        // under "nothing changed" is that of the baseline's count, not of
        // this period's — a busy week at a station of eleven visits is not
        // more precise because it had seventeen.
        let self_count = s.column == s.volume;
        for i in 0..n {
            let Some(Some(b)) = base.get(&p.fac[i]).map(|v| v[si]) else {
                continue;
            };
            let (Some(v), Some(volume)) = (p.value(s, i), vol[i]) else {
                continue;
            };
            if volume < s.min_volume {
                continue;
            }
            let noise_volume = if self_count { b.volume } else { volume };
            let d = (b.var + s.dispersion.powi(2) / noise_volume.max(1.0) + s.floor.powi(2)).sqrt();
            debug_assert!(b.volume > 0.0);
            z[si][i] = Some((v - b.mean) / d);
            sd[si][i] = Some(d);
        }
    }
    // Net of the peer group's median z in the same period.
    let mut expected = vec![vec![None; n]; ns];
    for (si, s) in cfg.signals.iter().enumerate() {
        let med = p.group_median(&z[si], cfg.min_peers);
        let self_count = s.column == s.volume && s.log;
        for i in 0..n {
            let m = med
                .get(&(p.group[i].as_str(), p.period[i]))
                .copied()
                .unwrap_or(0.0);
            if let (Some(v), Some(d)) = (z[si][i], sd[si][i]) {
                let b = base[&p.fac[i]][si].expect("z implies a baseline");
                let e = b.mean + m * d;
                expected[si][i] = Some(e);
                z[si][i] = Some(if self_count {
                    // A count's noise under "nothing changed but what the
                    // peers did" is that of the count the peers imply: in a
                    // week where every hospital has a trickle (after the
                    // extract's last day, a holiday), five visits against
                    // an implied two is noise, not a rise of 140 %.
                    let implied = e.exp().max(1.0);
                    let d0 = (b.var + s.dispersion.powi(2) / implied + s.floor.powi(2)).sqrt();
                    (v - m) * d / d0
                } else {
                    v - m
                });
            }
        }
    }
    let mut cusum = vec![vec![0.0; n]; ns];
    let mut onset = vec![vec![None; n]; ns];
    let mut run_excess = vec![vec![0.0; n]; ns];
    let mut run_observed = vec![vec![None; n]; ns];
    let mut run_expected = vec![vec![None; n]; ns];
    for &(a, b) in &p.ranges {
        for (si, s) in cfg.signals.iter().enumerate() {
            let (mut c, mut start, mut ex) = (0.0f64, None, 0.0);
            let (mut so, mut se, mut k) = (0.0, 0.0, 0.0);
            for i in a..b {
                if p.period[i] >= train_end {
                    if let Some(v) = z[si][i] {
                        let next = (c + v - cfg.cusum_k).clamp(0.0, cfg.cusum_cap);
                        if next > 0.0 {
                            if c == 0.0 {
                                start = Some(p.period[i]);
                                ex = 0.0;
                                (so, se, k) = (0.0, 0.0, 0.0);
                            }
                            if let (Some(x), Some(e)) = (p.value(s, i), expected[si][i]) {
                                so += x;
                                se += e;
                                k += 1.0;
                            }
                            let get = row_getter(&p.cols, i);
                            let r = RowValues { get: &get };
                            ex += excess_signed(
                                &s.column,
                                p.value(s, i).unwrap_or(f64::NAN),
                                expected[si][i].unwrap_or(f64::NAN),
                                &r,
                            );
                        } else {
                            start = None;
                            ex = 0.0;
                        }
                        c = next;
                    }
                }
                cusum[si][i] = c;
                onset[si][i] = start;
                run_excess[si][i] = ex.max(0.0);
                if start.is_some() && k > 0.0 {
                    run_observed[si][i] = Some(so / k);
                    run_expected[si][i] = Some(se / k);
                }
            }
        }
    }
    ChangeOut {
        z,
        expected,
        cusum,
        onset,
        run_excess,
        run_observed,
        run_expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{fit, DetectConfig, PeerConfig};
    use polars::prelude::*;

    fn table(rows: &[(String, i32, f64, f64)]) -> DataFrame {
        let n = rows.len();
        df!(
            "facility_code" => rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            "period_start" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "oe_cost" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            "visits" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            "total_cost" => rows.iter().map(|r| r.3 * 1.0e5 * r.2).collect::<Vec<_>>(),
            "expected_cost" => rows.iter().map(|r| r.3 * 1.0e5).collect::<Vec<_>>(),
            "peer_group" => vec!["g"; n],
        )
        .unwrap()
    }

    fn cfg() -> DetectConfig {
        DetectConfig {
            change: ChangeConfig {
                signals: vec![signal("oe_cost", 1.0, 0.05, "visits")],
                min_peers: 3,
                ..Default::default()
            },
            peer: PeerConfig {
                signals: vec!["oe_cost".into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// A large facility whose cost rises by 30 % for good is flagged within
    /// two periods and outranks a small one with wide noise swings, and a
    /// rise shared by every facility (peers) scores nothing.
    #[test]
    fn sustained_rise_at_volume_outranks_noise_and_common_shocks() {
        let mut rows = Vec::new();
        for p in 0..20 {
            let common = if p >= 12 { 0.2 } else { 0.0 };
            let wiggle = if p % 2 == 0 { 0.02 } else { -0.02 };
            let big = 1.0 + wiggle + if p >= 10 { 0.3 } else { 0.0 } + common;
            rows.push(("BIG".to_string(), p, big, 3000.0));
            let small = 1.0 + if p % 2 == 0 { 0.3 } else { -0.3 } + common;
            rows.push(("SMALL".to_string(), p, small, 20.0));
            for k in 0..4 {
                let w = if (p + k) % 2 == 0 { 0.02 } else { -0.02 };
                rows.push((format!("P{k}"), p, 1.0 + w + common, 3000.0));
            }
        }
        let t = table(&rows);
        let m = fit(&t, None, &cfg(), None).unwrap();
        let s = m.score(&t, None).unwrap();
        let max = |f: &str| {
            s.iter()
                .filter(|r| r.facility_code == f)
                .map(|r| r.sev_change)
                .fold(0.0, f64::max)
        };
        assert!(max("BIG") > 6.0, "{}", max("BIG"));
        assert!(max("SMALL") < 2.0, "{}", max("SMALL"));
        for k in 0..4 {
            assert!(max(&format!("P{k}")) < 2.0);
        }
        let first = s
            .iter()
            .filter(|r| r.facility_code == "BIG" && r.sev_change >= 4.0)
            .map(|r| r.period_start)
            .min()
            .unwrap();
        let onset = s
            .iter()
            .find(|r| r.facility_code == "BIG")
            .unwrap()
            .period_start
            + chrono::Duration::days(10);
        assert!(
            first <= onset + chrono::Duration::days(1),
            "{first} vs {onset}"
        );
    }

    /// Log visits of four facilities over 16 periods (training: the first
    /// 12), `visits(k, p)` for facility k in period p: the panel, the
    /// baselines, the change statistics and the row of (facility 0, `at`).
    fn log_visits(
        visits: impl Fn(usize, i32) -> f64,
        at: i32,
    ) -> (BTreeMap<String, Vec<Option<Baseline>>>, ChangeOut, usize) {
        let (mut f, mut per, mut v) = (Vec::new(), Vec::new(), Vec::new());
        for p in 0..16 {
            for k in 0..4 {
                f.push(format!("F{k}"));
                per.push(p);
                v.push(visits(k, p));
            }
        }
        let n = f.len();
        let t = df!(
            "facility_code" => f,
            "period_start" => per,
            "visits" => v,
            "peer_group" => vec!["g"; n],
        )
        .unwrap();
        let cfg = ChangeConfig {
            signals: vec![Signal {
                log: true,
                ..signal("visits", 1.0, 0.05, "visits")
            }],
            min_peers: 3,
            ..Default::default()
        };
        let p = super::super::Panel::from_df(&t, &["visits".to_string()]).unwrap();
        let base = baselines(&p, &cfg, 12);
        let out = run(&p, &cfg, &base, 12);
        let i = (0..p.len())
            .find(|&i| p.fac[i] == "F0" && p.period[i] == at)
            .unwrap();
        (base, out, i)
    }

    /// Log visits of a station of eleven a week: a busy week is judged by
    /// the sampling noise of eleven visits (the null), not of its own count
    /// — otherwise the busier the week, the surer the rise looks.
    #[test]
    fn a_count_is_judged_by_the_noise_of_its_baseline_count() {
        // The station wiggles by one visit; its peers hold still. Week 12:
        // 18 visits against a baseline of 10–12.
        let (base, out, i) = log_visits(
            |k, p| match (k, p) {
                (0, 12..) => 18.0,
                (0, _) => 11.0 + if p % 2 == 0 { 1.0 } else { -1.0 },
                _ => 11.0,
            },
            12,
        );
        let b = base["F0"][0].unwrap();
        assert!((b.volume - 11.0).abs() < 1.01, "{}", b.volume);
        // The peers held still, so the count expected is the baseline's.
        let null_sd = (b.var + 1.0 / b.mean.exp() + 0.05f64.powi(2)).sqrt();
        let want = (18f64.ln() - b.mean) / null_sd;
        let got = out.z[0][i].unwrap();
        // Net of the peers' median z (0 here: they did not move).
        assert!((got - want).abs() < 1e-9, "z {got} against {want}");
    }

    /// After the extract's last day every hospital has a trickle of late
    /// discharges: ten visits where the peers' five or six imply as many is
    /// noise, not a rise (it alerted at a district hospital of 230 visits a
    /// week, on an independently generated province).
    #[test]
    fn a_trickle_week_is_judged_by_the_count_the_peers_imply() {
        let (_, out, i) = log_visits(
            |k, p| match (k, p) {
                (0, 15) => 10.0,
                (2, 15) => 6.0,
                (_, 15) => 5.0,
                _ => 222.0 + 16.0 * ((p as usize + k) % 2) as f64,
            },
            15,
        );
        let z = out.z[0][i].unwrap();
        // ln(10 / 5.5) over the noise of five and a half visits: about 1.4,
        // not the 7 the noise of 230 visits would make of it.
        assert!(z < 2.0, "z {z}");
        assert!(out.cusum[0][i] < 2.0, "cusum {}", out.cusum[0][i]);
    }

    #[test]
    fn too_few_periods_is_an_error() {
        let t = table(&[("A".into(), 0, 1.0, 10.0), ("A".into(), 1, 1.0, 10.0)]);
        assert!(fit(&t, None, &cfg(), None).is_err());
    }
}
