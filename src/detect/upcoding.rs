//! Upcoding: diagnoses coded heavier while the care does not follow.
//!
//! A claim coded with a heavier diagnosis is billed that diagnosis's drugs
//! and procedures, and it raises the facility's *expected* cost too, so the
//! observed / expected cost hides most of it. What gives it away is care
//! that stays that of the milder condition: the diagnoses coded imply
//! more admissions (and longer stays) than the facility gives.
//!
//! Per facility, over the trailing window against its training periods:
//! - **coded severity**: the admission rate the codes imply
//!   (expected admissions / visits) — rises;
//! - **care**: admissions given against that expectation (O/E admission) —
//!   falls.
//!
//! Over the peer window (13 weeks) and a third of it (an onset shows
//! sooner), Šidák over the two. Both as relative changes net of the peer
//! group's median change in the
//! period (a province-wide recoding moves everyone), each a z with its
//! sampling variance (binomial for the coded rate, Poisson for admissions)
//! and a 5 % floor for real-world drift. The tail probability is the
//! larger of the two (an intersection–union test: both must hold, so a
//! truly sicker case mix — codes and admissions rising together — stays
//! silent, and so does a facility that merely admits less). The excess is
//! the extra expected cost the codes claim: (case-mix cost per visit in the
//! window − the baseline's, moved as peers moved) × visits.

use super::calibrate::p_of_severity;
use super::Panel;

/// Floor of the relative change's standard deviation (real-world drift of
/// coding and admission habits).
const FLOOR: f64 = 0.05;

/// Per row: tail probability, relative rise of the coded admission rate,
/// relative fall of O/E admission, excess VND.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpcodingStat {
    pub p: f64,
    pub coded_rise: f64,
    pub care_fall: f64,
    pub excess: f64,
}

impl Default for UpcodingStat {
    fn default() -> Self {
        UpcodingStat {
            p: 1.0,
            coded_rise: 0.0,
            care_fall: 0.0,
            excess: 0.0,
        }
    }
}

/// Sums of a facility over some periods.
#[derive(Default, Clone, Copy)]
struct Sums {
    visits: f64,
    exp_adm: f64,
    adm: f64,
    exp_cost: f64,
}

impl Sums {
    /// The row's sums (columns among `signals::PRICING_COLUMNS`).
    fn of(p: &Panel, i: usize) -> Sums {
        let g = |c: &str| p.cols.get(c).and_then(|v| v[i]).unwrap_or(0.0);
        Sums {
            visits: g("visits"),
            exp_adm: g("expected_admissions"),
            adm: g("inpatient_episodes"),
            exp_cost: g("expected_cost"),
        }
    }
    fn add(&mut self, o: Sums) {
        self.visits += o.visits;
        self.exp_adm += o.exp_adm;
        self.adm += o.adm;
        self.exp_cost += o.exp_cost;
    }
}

/// The upcoding statistic of every row of the panel; `train_end`: first
/// period after training; `window`: trailing periods; `min_expected`:
/// fewest expected admissions in the window and in training.
pub(crate) fn upcoding(
    p: &Panel,
    train_end: i32,
    window: usize,
    min_expected: f64,
) -> Vec<UpcodingStat> {
    let n = p.len();
    // Relative changes per row, before peers: coded rate, O/E admission,
    // case-mix cost per visit; with their sampling variances.
    let mut rise = vec![None; n];
    let mut fall = vec![None; n];
    let mut cmi = vec![None; n];
    let mut var = vec![(0.0, 0.0); n];
    let mut window_sums = vec![Sums::default(); n];
    let mut base_cmi = vec![0.0; n];
    let row: Vec<Sums> = (0..n).map(|i| Sums::of(p, i)).collect();
    for &(a, b) in &p.ranges {
        let mut base = Sums::default();
        for i in a..b {
            if p.period[i] < train_end {
                base.add(row[i]);
            }
        }
        if base.visits <= 0.0 || base.exp_adm < min_expected || base.adm <= 0.0 {
            continue;
        }
        let r0 = base.exp_adm / base.visits;
        let o0 = base.adm / base.exp_adm;
        let c0 = base.exp_cost / base.visits;
        for i in a..b {
            let lo = i.saturating_sub(window.max(1) - 1).max(a);
            let mut w = Sums::default();
            for j in lo..=i {
                w.add(row[j]);
            }
            if w.visits <= 0.0 || w.exp_adm < min_expected {
                continue;
            }
            let r1 = w.exp_adm / w.visits;
            let o1 = w.adm / w.exp_adm;
            rise[i] = Some(r1 / r0 - 1.0);
            fall[i] = Some(1.0 - o1 / o0);
            cmi[i] = Some(w.exp_cost / w.visits / c0 - 1.0);
            // Relative variances: binomial coded rate, Poisson admissions.
            let vr = (1.0 - r0).max(0.0) / r0 * (1.0 / w.visits + 1.0 / base.visits);
            let vo = 1.0 / (o0 * w.exp_adm) + 1.0 / (o0 * base.exp_adm);
            var[i] = (vr, vo);
            window_sums[i] = w;
            base_cmi[i] = c0;
        }
    }
    // Net of the peer group's median change in the period.
    let m_rise = p.group_median(&rise, 3);
    let m_fall = p.group_median(&fall, 3);
    let m_cmi = p.group_median(&cmi, 3);
    let key = |i: usize| (p.group[i].as_str(), p.period[i]);
    (0..n)
        .map(|i| {
            let (Some(r), Some(f), Some(c)) = (rise[i], fall[i], cmi[i]) else {
                return UpcodingStat::default();
            };
            let r = r - m_rise.get(&key(i)).copied().unwrap_or(0.0);
            let f = f - m_fall.get(&key(i)).copied().unwrap_or(0.0);
            let drift = m_cmi.get(&key(i)).copied().unwrap_or(0.0);
            let z1 = r / (var[i].0 + FLOOR * FLOOR).sqrt();
            let z2 = f / (var[i].1 + FLOOR * FLOOR).sqrt();
            let w = window_sums[i];
            let excess = (w.exp_cost / w.visits - base_cmi[i] * (1.0 + drift)).max(0.0) * w.visits;
            UpcodingStat {
                p: p_of_severity(z1).max(p_of_severity(z2)),
                coded_rise: r,
                care_fall: f,
                excess: if c > drift { excess } else { 0.0 },
            }
        })
        .collect()
}

/// [`upcoding`] over the window and a third of it: per row the smaller
/// tail probability (Šidák over the two) and its statistics.
pub(crate) fn two_windows(
    p: &Panel,
    train_end: i32,
    window: usize,
    min_expected: f64,
) -> Vec<UpcodingStat> {
    super::two_windows(
        window,
        |w| upcoding(p, train_end, w, min_expected),
        |s| s.p,
        |s, p| UpcodingStat { p, ..s },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    /// Ten facilities of one group, 30 weeks of 1,000 visits, 100 expected
    /// and 100 actual admissions; from week 20 one codes heavier without
    /// admitting more (upcoding), one is truly sicker (codes and
    /// admissions rise together), one merely admits less.
    fn panel() -> Panel {
        let (mut fac, mut per, mut v, mut ea, mut ad, mut ec) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for f in 0..10 {
            for w in 0..30i32 {
                // Small deterministic noise.
                let e = 1.0 + 0.02 * (((f * 31 + w * 17) % 7) as f64 - 3.0) / 3.0;
                let late = w >= 20;
                let (coded, admitted, cost) = match (f, late) {
                    (0, true) => (150.0, 100.0, 1.3e8),
                    (1, true) => (150.0, 150.0, 1.3e8),
                    (2, true) => (100.0, 60.0, 1.0e8),
                    _ => (100.0, 100.0, 1.0e8),
                };
                fac.push(format!("F{f}"));
                per.push(19_000 + 7 * w);
                v.push(1000.0);
                ea.push(coded * e);
                ad.push((admitted * e).round());
                ec.push(cost * e);
            }
        }
        let df = DataFrame::new_infer_height(vec![
            Column::new("facility_code".into(), fac),
            Column::new("period_start".into(), per),
            Column::new("visits".into(), v),
            Column::new("expected_admissions".into(), ea),
            Column::new("inpatient_episodes".into(), ad),
            Column::new("expected_cost".into(), ec),
        ])
        .unwrap();
        let cols: Vec<String> = [
            "visits",
            "expected_admissions",
            "inpatient_episodes",
            "expected_cost",
        ]
        .map(String::from)
        .to_vec();
        Panel::from_df(&df, &cols).unwrap()
    }

    #[test]
    fn heavier_codes_without_the_care_stand_out_and_sicker_patients_do_not() {
        let p = panel();
        let s = two_windows(&p, 19_000 + 7 * 15, 13, 10.0);
        let worst = |f: &str| {
            (0..p.len())
                .filter(|&i| p.fac[i] == f)
                .map(|i| s[i].p)
                .fold(1.0, f64::min)
        };
        // Severity ≥ 4 ⇔ p ≤ 3.2e-5.
        assert!(worst("F0") < 3.2e-5, "{}", worst("F0"));
        for f in ["F1", "F2", "F3"] {
            assert!(worst(f) > 1e-3, "{f}: {}", worst(f));
        }
        // The excess: the extra expected cost the codes claim.
        let last = (0..p.len()).rfind(|&i| p.fac[i] == "F0").unwrap();
        assert!(s[last].excess > 0.0 && s[last].coded_rise > 0.3);
    }
}
