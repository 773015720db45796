//! Scoring with a fitted model: every detector's tail probability per
//! facility-period, the ensemble severity, the driving detector and signal,
//! the episode's excess in VND, and the `scores.parquet` table.

use std::collections::HashMap;

use polars::prelude::*;

use super::{
    calibrate, claims, date_of, days_of, multivariate_raw, needed_columns, prescriber, shift,
    statistics, units_of, upcoding, with_claims, AlertConfig, DetectConfig, DetectError,
    DetectorModel, Panel,
};
use calibrate::{cusum_p, empirical_p, p_of_severity, poisson_tail, severity_of_p, sidak};

/// The scores of one facility-period.
#[derive(Debug, Clone, PartialEq)]
pub struct RowScore {
    pub facility_code: String,
    pub period_start: chrono::NaiveDate,
    pub peer_group: String,
    pub visits: f64,
    /// Ensemble severity.
    pub severity: f64,
    pub alert: bool,
    /// Detector and indicator that drive the severity.
    pub detector: String,
    pub signal: String,
    /// The signal's value in the period, its peer median and the
    /// facility's expected value (own baseline moved as its peers moved).
    pub observed: Option<f64>,
    pub peer_value: Option<f64>,
    pub expected: Option<f64>,
    /// First period of the episode behind the severity.
    pub onset: Option<chrono::NaiveDate>,
    /// Periods in the trailing window of the peer and claim detectors
    /// (fewer than the configured window at the start of the data).
    pub window_periods: u32,
    /// Estimated excess cost of the episode, VND.
    pub excess_vnd: f64,
    pub sev_change: f64,
    pub sev_peer: f64,
    pub sev_forest: f64,
    pub sev_mixture: f64,
    pub sev_claims: f64,
    pub sev_prescriber: f64,
    pub sev_upcoding: f64,
    pub sev_shift: f64,
    pub sev_department: f64,
    /// The doctor (MA_BAC_SI) of the prescriber comparison in the period.
    pub prescriber: Option<String>,
    /// The department (MA_KHOA) of the department comparison in the period.
    pub department: Option<String>,
    /// Flagged claims of the driving claim check in the window, and the number expected.
    pub claims_flagged: Option<f64>,
    pub claims_expected: Option<f64>,
}

impl DetectorModel {
    /// Scores every facility-period of `table`.
    pub fn score(
        &self,
        table: &DataFrame,
        claim_counts: Option<&DataFrame>,
    ) -> Result<Vec<RowScore>, DetectError> {
        let cfg = &self.config;
        let table = with_claims(table, claim_counts)?;
        let mut needed = needed_columns(cfg);
        let has_claims = table.column("claims").is_ok();
        if has_claims {
            needed.push("claims".into());
            for k in claims::KINDS {
                needed.push(format!("{k}_n"));
                needed.push(format!("{k}_cost"));
            }
        }
        let has_prescriber = table.column("prescriber_p").is_ok();
        if has_prescriber {
            needed.extend(prescriber::COLUMNS.iter().map(|c| c.to_string()));
            needed.extend(shift::COLUMNS.iter().map(|c| c.to_string()));
        }
        let has_department = table.column("department_p").is_ok();
        if has_department {
            needed.extend(prescriber::DEPARTMENT_COLUMNS.iter().map(|c| c.to_string()));
        }
        // With a claims store: the claim checks, the prescriber comparison
        // and the claim-level cost shift (same residuals), the departments.
        let detectors = 5
            + usize::from(has_claims)
            + 2 * usize::from(has_prescriber)
            + usize::from(has_department);
        let doctors = units_of(&table, "prescriber_code")?;
        let departments = units_of(&table, "department_code")?;
        let p = Panel::from_df(&table, &needed)?;
        let known = p
            .ranges
            .iter()
            .filter(|r| self.baselines.contains_key(&p.fac[r.0]))
            .count();
        if known * 2 < p.ranges.len() {
            return Err(DetectError::Input(format!(
                "the model knows {known} of the table's {} facilities: it was fitted on other data; fit it on this province's history (--fit)",
                p.ranges.len()
            )));
        }
        let train_end = days_of(self.meta.training_to) + 1;
        let st = statistics(&p, cfg, &self.baselines, train_end)?;
        if st.x.ncols() != self.forest.n_features() {
            return Err(DetectError::Input(format!(
                "the model was fitted on {} features, the configuration gives {}",
                self.forest.n_features(),
                st.x.ncols()
            )));
        }
        let (fs, ms) = multivariate_raw(
            &p,
            &st.x,
            &self.forest,
            self.mixture.as_ref(),
            cfg.multivariate_window,
        );
        let claim_sev = if has_claims {
            Some(claim_severity(&p, cfg))
        } else {
            None
        };
        let up = upcoding::two_windows(&p, train_end, cfg.peer.window, 10.0);
        let sh = if has_prescriber {
            shift::two_windows(&p, train_end, cfg.peer.window, &cfg.shift)
        } else {
            vec![shift::ShiftStat::default(); p.len()]
        };
        let ns = cfg.change.signals.len();
        let k = cfg.change.cusum_k;
        let mut out = Vec::with_capacity(p.len());
        for i in 0..p.len() {
            let lo = p.ranges[p.ranges.partition_point(|r| r.1 <= i)].0;
            // First row of the trailing window (the peer and claim windows).
            let first = i.saturating_sub(cfg.peer.window.max(1) - 1).max(lo);
            let window_periods = (i - first + 1) as u32;
            // Change: the signal with the largest CUSUM.
            let (mut c_best, mut c_sig) = (0.0, 0usize);
            for si in 0..ns {
                if st.change.cusum[si][i] > c_best {
                    c_best = st.change.cusum[si][i];
                    c_sig = si;
                }
            }
            let p_change = sidak(cusum_p(c_best, k), ns);
            // Peer: the largest z.
            let (mut z_best, mut z_sig) = (f64::NEG_INFINITY, 0usize);
            for (pi, zs) in st.peer.z.iter().enumerate() {
                if let Some(z) = zs[i] {
                    if z > z_best {
                        z_best = z;
                        z_sig = pi;
                    }
                }
            }
            let p_peer = if z_best.is_finite() {
                sidak(p_of_severity(z_best), st.peer.z.len())
            } else {
                1.0
            };
            let p_forest = empirical_p(&self.forest_null, fs[i]);
            let p_mixture = if self.mixture.is_some() {
                empirical_p(&self.mixture_null, ms[i])
            } else {
                1.0
            };
            let (p_claims, c_kind, c_obs, c_exp, c_excess) = claim_sev
                .as_ref()
                .map(|c| c[i])
                .unwrap_or((1.0, 0, None, None, 0.0));
            let p_presc = if has_prescriber {
                p.col("prescriber_p")[i].unwrap_or(1.0)
            } else {
                1.0
            };
            let p_dept = if has_department {
                p.col("department_p")[i].unwrap_or(1.0)
            } else {
                1.0
            };
            let key = (p.fac[i].clone(), p.period[i]);
            let ps = [
                p_change, p_peer, p_forest, p_mixture, p_claims, p_presc, up[i].p, sh[i].p, p_dept,
            ];
            let (arg, pmin) = ps
                .iter()
                .copied()
                .enumerate()
                .fold((0, 1.0), |acc, (j, v)| if v < acc.1 { (j, v) } else { acc });
            let severity = severity_of_p(sidak(pmin, detectors));
            // The multivariate models point at the signal that moved most.
            let top_change = (0..ns)
                .filter_map(|si| st.change.z[si][i].map(|z| (si, z)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|x| x.0)
                .unwrap_or(0);
            let (detector, sig_idx) = match arg {
                0 => ("change", Some(c_sig)),
                1 => ("peer", Some(st.peer_signals[z_sig])),
                2 => ("forest", Some(top_change)),
                3 => ("mixture", Some(top_change)),
                4 => ("claims", None),
                5 => ("prescriber", None),
                6 => ("upcoding", None),
                7 => ("cost_shift", None),
                _ => ("department", None),
            };
            let (signal, observed, peer_value, expected, onset, excess) = match sig_idx {
                Some(si) => {
                    let s = &cfg.change.signals[si];
                    let pi = st.peer_signals.iter().position(|&x| x == si);
                    let peer_median = pi.and_then(|pi| st.peer.median[pi][i]);
                    // The episode: the change detector's run when there is
                    // one (it spans the whole rise), else the peer window;
                    // the excess is the larger of the two estimates.
                    let peer_excess = pi.map(|pi| st.peer.excess[pi][i]).unwrap_or(0.0);
                    let run_excess = st.change.run_excess[si][i];
                    let onset = match (st.change.onset[si][i], detector) {
                        (Some(d), _) => Some(date_of(d)),
                        (None, "peer") => Some(date_of(p.period[first])),
                        (None, _) => None,
                    };
                    // Peer excess is priced only while the facility is above its peers.
                    let excess = run_excess.max(peer_excess);
                    let (observed, expected) = match detector {
                        "change" => (st.change.run_observed[si][i], st.change.run_expected[si][i]),
                        "peer" => (
                            pi.and_then(|pi| st.peer.window_mean[pi][i]),
                            st.change.expected[si][i],
                        ),
                        _ => (p.value(s, i), st.change.expected[si][i]),
                    };
                    (
                        s.column.clone(),
                        observed,
                        peer_median,
                        expected,
                        onset,
                        excess,
                    )
                }
                None if detector == "upcoding" => (
                    "upcoding".to_string(),
                    Some(1.0 + up[i].coded_rise),
                    None,
                    Some(1.0 - up[i].care_fall),
                    Some(date_of(p.period[first])),
                    up[i].excess,
                ),
                None if detector == "cost_shift" => (
                    "claim_cost".to_string(),
                    Some(sh[i].d.exp()),
                    None,
                    Some(1.0),
                    Some(date_of(p.period[first])),
                    sh[i].excess,
                ),
                None if detector == "prescriber" || detector == "department" => (
                    detector.to_string(),
                    p.col(&format!("{detector}_ratio"))[i],
                    None,
                    Some(1.0),
                    Some(date_of(p.period[first])),
                    p.col(&format!("{detector}_excess"))[i].unwrap_or(0.0),
                ),
                None => (
                    claims::KINDS[c_kind].to_string(),
                    c_obs,
                    None,
                    c_exp,
                    Some(date_of(p.period[first])),
                    c_excess,
                ),
            };
            out.push(RowScore {
                facility_code: p.fac[i].clone(),
                period_start: date_of(p.period[i]),
                peer_group: p.group[i].clone(),
                visits: p.col("visits")[i].unwrap_or(0.0),
                severity,
                alert: severity >= cfg.alert.alert_severity && excess >= cfg.alert.min_excess_vnd,
                detector: detector.into(),
                signal,
                observed,
                peer_value,
                expected,
                onset,
                window_periods,
                excess_vnd: excess,
                sev_change: severity_of_p(p_change),
                sev_peer: severity_of_p(p_peer),
                sev_forest: severity_of_p(p_forest),
                sev_mixture: severity_of_p(p_mixture),
                sev_claims: severity_of_p(p_claims),
                sev_prescriber: severity_of_p(p_presc),
                sev_upcoding: severity_of_p(up[i].p),
                sev_shift: severity_of_p(sh[i].p),
                sev_department: severity_of_p(p_dept),
                prescriber: if detector == "prescriber" {
                    doctors.get(&key).cloned()
                } else {
                    None
                },
                department: if detector == "department" {
                    departments.get(&key).cloned()
                } else {
                    None
                },
                claims_flagged: if detector == "claims" { c_obs } else { None },
                claims_expected: if detector == "claims" { c_exp } else { None },
            });
        }
        Ok(out)
    }
}

/// Claim checks of one row: (p, kind, flagged in window, expected, excess VND).
type ClaimSeverity = (f64, usize, Option<f64>, Option<f64>, f64);

/// Claim checks per row.
/// The expected count is the window's claims × the province rate of the
/// same window (all facilities).
fn claim_severity(p: &Panel, cfg: &DetectConfig) -> Vec<ClaimSeverity> {
    let w = cfg.peer.window.max(1);
    let n = p.len();
    let claims = p.col("claims");
    // Window sums per row.
    let win = |v: &[Option<f64>]| -> Vec<f64> {
        let mut out = vec![0.0; n];
        for &(a, b) in &p.ranges {
            for i in a..b {
                let lo = i.saturating_sub(w - 1).max(a);
                out[i] = (lo..=i).map(|j| v[j].unwrap_or(0.0)).sum();
            }
        }
        out
    };
    let wc = win(claims);
    let mut res = vec![(1.0, 0usize, None, None, 0.0); n];
    for (ki, kind) in claims::KINDS.iter().enumerate() {
        let wk = win(p.col(&format!("{kind}_n")));
        let wcost = win(p.col(&format!("{kind}_cost")));
        // Province rate per period (window sums over every facility).
        let mut tot: HashMap<i32, (f64, f64)> = HashMap::new();
        for i in 0..n {
            let e = tot.entry(p.period[i]).or_default();
            e.0 += wk[i];
            e.1 += wc[i];
        }
        for i in 0..n {
            let (k_all, n_all) = tot[&p.period[i]];
            if wk[i] < cfg.claims.min_flagged || n_all <= 0.0 {
                continue;
            }
            // The facility's own claims are left out of the rate it is held to.
            let rate = ((k_all - wk[i]) / (n_all - wc[i]).max(1.0)).max(0.5 / n_all);
            let lambda = wc[i] * rate;
            let pv = sidak(poisson_tail(wk[i], lambda), claims::KINDS.len());
            if pv < res[i].0 {
                let excess = if wk[i] > 0.0 {
                    wcost[i] * ((wk[i] - lambda) / wk[i]).max(0.0)
                } else {
                    0.0
                };
                res[i] = (pv, ki, Some(wk[i]), Some(lambda), excess);
            }
        }
    }
    res
}

/// Scores as a table (`scores.parquet`): one row per facility-period.
pub fn scores_frame(scores: &[RowScore], cfg: &AlertConfig) -> Result<DataFrame, DetectError> {
    let s = |f: fn(&RowScore) -> &str| scores.iter().map(f).collect::<Vec<_>>();
    let num = |f: fn(&RowScore) -> f64| scores.iter().map(f).collect::<Vec<_>>();
    let opt = |f: fn(&RowScore) -> Option<f64>| scores.iter().map(f).collect::<Vec<_>>();
    let date = |f: fn(&RowScore) -> Option<chrono::NaiveDate>| -> Result<Column, PolarsError> {
        Column::new(
            "x".into(),
            scores.iter().map(|r| f(r).map(days_of)).collect::<Vec<_>>(),
        )
        .cast(&DataType::Date)
    };
    let level: Vec<&str> = scores
        .iter()
        .map(|r| {
            if r.alert && r.severity >= cfg.high_severity {
                "high"
            } else if r.alert {
                "alert"
            } else if r.severity >= cfg.alert_severity - 1.0 {
                "watch"
            } else {
                "normal"
            }
        })
        .collect();
    let cols = vec![
        Column::new("facility_code".into(), s(|r| &r.facility_code)),
        date(|r| Some(r.period_start))?.with_name("period_start".into()),
        Column::new("peer_group".into(), s(|r| &r.peer_group)),
        Column::new("visits".into(), num(|r| r.visits)),
        Column::new("severity".into(), num(|r| r.severity)),
        Column::new("level".into(), level),
        Column::new(
            "alert".into(),
            scores.iter().map(|r| r.alert).collect::<Vec<_>>(),
        ),
        Column::new("detector".into(), s(|r| &r.detector)),
        Column::new("signal".into(), s(|r| &r.signal)),
        Column::new("observed".into(), opt(|r| r.observed)),
        Column::new("peer_value".into(), opt(|r| r.peer_value)),
        Column::new("expected".into(), opt(|r| r.expected)),
        date(|r| r.onset)?.with_name("onset".into()),
        Column::new("excess_vnd".into(), num(|r| r.excess_vnd)),
        Column::new("sev_change".into(), num(|r| r.sev_change)),
        Column::new("sev_peer".into(), num(|r| r.sev_peer)),
        Column::new("sev_forest".into(), num(|r| r.sev_forest)),
        Column::new("sev_mixture".into(), num(|r| r.sev_mixture)),
        Column::new("sev_claims".into(), num(|r| r.sev_claims)),
        Column::new("sev_prescriber".into(), num(|r| r.sev_prescriber)),
        Column::new("sev_upcoding".into(), num(|r| r.sev_upcoding)),
        Column::new("sev_shift".into(), num(|r| r.sev_shift)),
        Column::new("sev_department".into(), num(|r| r.sev_department)),
        Column::new(
            "prescriber".into(),
            scores
                .iter()
                .map(|r| r.prescriber.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "department".into(),
            scores
                .iter()
                .map(|r| r.department.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new("claims_flagged".into(), opt(|r| r.claims_flagged)),
        Column::new("claims_expected".into(), opt(|r| r.claims_expected)),
    ];
    Ok(DataFrame::new_infer_height(cols)?)
}

/// Columns of `scores.parquet`, documented for the model card.
pub const SCORE_COLUMNS: &[(&str, &str)] = &[
    ("facility_code", "MA_CSKCB"),
    ("period_start", "first day of the period"),
    ("peer_group", "peer group of the facility"),
    ("visits", "visits in the period"),
    (
        "severity",
        "ensemble severity: Φ⁻¹(1 − p) of the Šidák-combined smallest detector tail probability",
    ),
    (
        "level",
        "normal, watch (≥ alert − 1, or an alert below the minimum excess), alert (≥ alert_severity and ≥ min_excess_vnd), high (an alert ≥ high_severity)",
    ),
    ("alert", "severity ≥ alert_severity and excess ≥ min_excess_vnd"),
    (
        "detector",
        "detector with the smallest tail probability: change, peer, forest, mixture, claims, prescriber, upcoding, cost_shift, department",
    ),
    (
        "signal",
        "indicator behind it (for claims: duplicate, los_outlier, mismatch; prescriber; department; claim_cost for the cost shift)",
    ),
    (
        "observed",
        "value of the signal in the period (claims: flagged claims in the window; prescriber: the doctor's cost ratio to colleagues; department: its change of cost per claim against its colleagues' change; upcoding: the coded admission rate against the baseline's; cost shift: cost per claim against the facility's own earlier level)",
    ),
    (
        "peer_value",
        "peer-group median of the signal's window mean",
    ),
    (
        "expected",
        "the facility's baseline moved as its peers moved (claims: expected flagged claims; upcoding: O/E admission against the baseline's)",
    ),
    ("onset", "first period of the episode (CUSUM run or window)"),
    ("excess_vnd", "estimated excess cost of the episode, VND"),
    ("sev_change", "severity of the change detector"),
    ("sev_peer", "severity of the peer comparison"),
    ("sev_forest", "severity of the isolation forest"),
    ("sev_mixture", "severity of the Gaussian mixture"),
    ("sev_claims", "severity of the claim checks"),
    (
        "sev_prescriber",
        "severity of the prescriber comparison (the most extreme doctor)",
    ),
    (
        "prescriber",
        "doctor (MA_BAC_SI) behind a prescriber alert",
    ),
    (
        "sev_upcoding",
        "severity of the upcoding check (coded severity up, admissions not following)",
    ),
    (
        "sev_shift",
        "severity of the claim-level cost shift (claims dearer than their diagnoses cost there before, net of peers)",
    ),
    (
        "sev_department",
        "severity of the department comparison (the department whose cost per claim rose most against its colleagues')",
    ),
    (
        "department",
        "department (MA_KHOA) behind a department alert",
    ),
    (
        "claims_flagged",
        "flagged claims in the window when the claim checks drive",
    ),
    (
        "claims_expected",
        "flagged claims expected at the province rate",
    ),
];
