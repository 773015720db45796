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
//!   falls. Read among the visits coded with a diagnosis admitted at least
//!   30 % of the time (`expected_admissions_severe`), when the facility has
//!   ten such expected admissions in training: an upcoded visit lands there
//!   and is not admitted, while its other admissions (births, surgery)
//!   dilute the whole O/E — on an independently written province the
//!   whole O/E fell 19 %, the heavy codes' 26 % (peers' rose 3–14 %).
//!
//! Over the peer window (13 weeks) and a third of it (an onset shows
//! sooner), Šidák over the two. Both as relative changes net of the peer
//! group's median change in the
//! period (a province-wide recoding moves everyone), each a z with its
//! sampling variance and a 5 % floor for real-world drift. The coded
//! rate's variance is the spread of the visits' probabilities (Σp²: codes
//! that all imply about the same rate barely move it), the admissions'
//! binomial given the codes, Σ q(1 − q) with q the facility's rate × p: a
//! visit coded as usually admitted is admitted more often than not, far
//! less variable than the Poisson count this read before (at a district
//! centre of ≈ 75 visits a week the care test's z went from ≈ 4.0 to ≈ 5
//! and upcoding became visible there; Poisson and Bernoulli remain the
//! fallback for a features table without Σp²). The tail probability is the
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
    /// The same among visits coded with a diagnosis usually admitted.
    exp_adm_sev: f64,
    adm_sev: f64,
    /// Σ p² of the visits' expected admission probabilities (0: a features
    /// table without it), all and among the usually admitted codes.
    exp_adm_sq: f64,
    exp_adm_sev_sq: f64,
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
            exp_adm_sev: g("expected_admissions_severe"),
            adm_sev: g("inpatient_episodes_severe"),
            exp_adm_sq: g("expected_admissions_sq"),
            exp_adm_sev_sq: g("expected_admissions_severe_sq"),
        }
    }
    fn add(&mut self, o: Sums) {
        self.visits += o.visits;
        self.exp_adm += o.exp_adm;
        self.adm += o.adm;
        self.exp_cost += o.exp_cost;
        self.exp_adm_sev += o.exp_adm_sev;
        self.adm_sev += o.adm_sev;
        self.exp_adm_sq += o.exp_adm_sq;
        self.exp_adm_sev_sq += o.exp_adm_sev_sq;
    }
    /// Expected and actual admissions the care test reads: those of the
    /// visits coded with diagnoses usually admitted when there are enough
    /// of them (an upcoded visit lands there and is not admitted, while
    /// the facility's other admissions dilute the whole O/E), else all.
    fn care(&self, severe: bool) -> (f64, f64) {
        if severe {
            (self.exp_adm_sev, self.adm_sev)
        } else {
            (self.exp_adm, self.adm)
        }
    }

    /// Relative variance of O/E admission among the care test's visits when
    /// the facility admits at its rate `o` × each visit's probability:
    /// binomial, Σ q(1 − q) / (Σ q)² with q = o·p, i.e. 1/(o·Σp) − Σp²/(Σp)².
    /// A visit coded as usually admitted is admitted more often than not,
    /// and its variance is far below the Poisson 1/(o·Σp) — which is what
    /// this falls back to without Σp², and never goes below a quarter of.
    fn care_var(&self, severe: bool, o: f64) -> f64 {
        let (e, sq) = if severe {
            (self.exp_adm_sev, self.exp_adm_sev_sq)
        } else {
            (self.exp_adm, self.exp_adm_sq)
        };
        let poisson = 1.0 / (o * e);
        if sq > 0.0 {
            (poisson - sq / (e * e)).max(0.25 * poisson)
        } else {
            poisson
        }
    }

    /// Variance of one visit's expected admission probability around the
    /// coded rate (the codes' spread), relative to the rate squared; the
    /// Bernoulli (1 − r)/r without Σp².
    fn coded_var(&self) -> f64 {
        let r = self.exp_adm / self.visits;
        let bernoulli = (1.0 - r).max(0.0) / r;
        if self.exp_adm_sq > 0.0 {
            ((self.exp_adm_sq / self.visits - r * r) / (r * r)).clamp(0.0, bernoulli)
        } else {
            bernoulli
        }
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
        let severe = base.exp_adm_sev >= min_expected && base.adm_sev > 0.0;
        let (be, ba) = base.care(severe);
        let r0 = base.exp_adm / base.visits;
        let o0 = ba / be;
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
            let (we, wa) = w.care(severe);
            if we <= 0.0 {
                continue;
            }
            let r1 = w.exp_adm / w.visits;
            let o1 = wa / we;
            rise[i] = Some(r1 / r0 - 1.0);
            fall[i] = Some(1.0 - o1 / o0);
            cmi[i] = Some(w.exp_cost / w.visits / c0 - 1.0);
            // Relative variances: the coded rate's (the spread of the
            // codes' probabilities), admissions' (binomial given the codes).
            let vr = base.coded_var() * (1.0 / w.visits + 1.0 / base.visits);
            let vo = w.care_var(severe, o0) + base.care_var(severe, o0);
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
    /// and 100 actual admissions (30 of each among diagnoses usually
    /// admitted); from week 20 one codes heavier without admitting more
    /// (upcoding), one is truly sicker (codes and admissions rise
    /// together), one merely admits less, and one codes heavier on a
    /// smaller scale (+30 expected, all among the usually-admitted codes).
    fn panel() -> Panel {
        let (mut fac, mut per, mut v, mut ea, mut ad, mut ec) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut es, mut ads) = (vec![], vec![]);
        for f in 0..10 {
            for w in 0..30i32 {
                // Small deterministic noise.
                let e = 1.0 + 0.02 * (((f * 31 + w * 17) % 7) as f64 - 3.0) / 3.0;
                let late = w >= 20;
                let (coded, admitted, cost) = match (f, late) {
                    (0, true) => (150.0, 100.0, 1.3e8),
                    (1, true) => (150.0, 150.0, 1.3e8),
                    (2, true) => (100.0, 60.0, 1.0e8),
                    (4, true) => (130.0, 100.0, 1.2e8),
                    _ => (100.0, 100.0, 1.0e8),
                };
                // The extra codes and admissions fall among the usually
                // admitted diagnoses; admitting less, everywhere.
                let (sev_coded, sev_admitted) = match (f, late) {
                    (2, true) => (30.0, 18.0),
                    _ => (coded - 70.0, admitted - 70.0),
                };
                es.push(sev_coded * e);
                ads.push((sev_admitted * e).round());
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
            Column::new("expected_admissions_severe".into(), es),
            Column::new("inpatient_episodes_severe".into(), ads),
        ])
        .unwrap();
        let cols: Vec<String> = [
            "visits",
            "expected_admissions",
            "inpatient_episodes",
            "expected_cost",
            "expected_admissions_severe",
            "inpatient_episodes_severe",
        ]
        .map(String::from)
        .to_vec();
        Panel::from_df(&df, &cols).unwrap()
    }

    /// A hundred visits coded with diagnoses admitted half the time: the
    /// admissions they imply vary binomially — half the Poisson variance
    /// — and the coded rate does not vary at all when every code implies
    /// the same; without Σp² the variances are Poisson's and Bernoulli's.
    #[test]
    fn variances_are_binomial_given_the_codes() {
        let mut s = Sums {
            visits: 100.0,
            exp_adm: 50.0,
            adm: 50.0,
            exp_adm_sev: 50.0,
            adm_sev: 50.0,
            exp_adm_sq: 25.0,
            exp_adm_sev_sq: 25.0,
            ..Default::default()
        };
        assert!((s.care_var(true, 1.0) - 0.01).abs() < 1e-12);
        assert!(s.coded_var().abs() < 1e-12);
        // Half the codes imply 0.9, half 0.1: the rate's spread is 0.16 / 0.25.
        s.exp_adm_sq = 50.0 * 0.81 + 50.0 * 0.01;
        assert!((s.coded_var() - 0.16 / 0.25).abs() < 1e-12);
        // A facility admitting at 1.9 × the codes' rate: never below a
        // quarter of Poisson's.
        assert!((s.care_var(true, 1.9) - 0.25 / (1.9 * 50.0)).abs() < 1e-12);
        s.exp_adm_sq = 0.0;
        s.exp_adm_sev_sq = 0.0;
        assert!((s.care_var(true, 1.0) - 0.02).abs() < 1e-12);
        assert!((s.coded_var() - 1.0).abs() < 1e-12);
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
        // Severity ≥ 4 ⇔ p ≤ 3.2e-5. F4: the whole O/E falls 23 % (z ≈ 3.8),
        // the heavy codes' 50 %.
        assert!(worst("F0") < 3.2e-5, "{}", worst("F0"));
        assert!(worst("F4") < 3.2e-5, "{}", worst("F4"));
        for f in ["F1", "F2", "F3"] {
            assert!(worst(f) > 1e-3, "{f}: {}", worst(f));
        }
        // The excess: the extra expected cost the codes claim.
        let last = (0..p.len()).rfind(|&i| p.fac[i] == "F0").unwrap();
        assert!(s[last].excess > 0.0 && s[last].coded_rise > 0.3);
    }
}
