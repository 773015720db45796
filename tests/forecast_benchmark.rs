//! The forecasting benchmark over the family of growth shapes
//! (`bhyt forecast --benchmark`): per scenario, the engine against the
//! best naive baseline on the province's and the median facility's
//! 12-month error, and the coverage of its intervals.
//!
//! The fast test runs a small version (four scenarios at 5 % volume); the
//! full family runs with `cargo test --release -- --ignored`, which asserts
//! what issue 12 asks: per scenario the engine no worse than the best naive
//! rule on the province and the median facility, and 85–95 % coverage at
//! 90 % (facility 12-month totals per scenario; province 12-month totals
//! and province-months over the family drawn with three seeds).

use bhyt::forecast::{scenarios, Backtest, ForecastConfig};

fn check(name: &str, b: &Backtest, coverage: bool) -> Vec<String> {
    let mut failures = Vec::new();
    let (bp, bf) = b.best_baselines();
    let e = b.engine();
    if e.province_error > bp.province_error + 1e-12 {
        failures.push(format!(
            "{name}: province error {:.2} % > {} {:.2} %",
            100.0 * e.province_error,
            bp.method,
            100.0 * bp.province_error
        ));
    }
    if e.facility_error > bf.facility_error + 1e-12 {
        failures.push(format!(
            "{name}: median facility error {:.2} % > {} {:.2} %",
            100.0 * e.facility_error,
            bf.method,
            100.0 * bf.facility_error
        ));
    }
    if coverage {
        let c = b.coverage_year.rate[1];
        if !(0.85..=0.95).contains(&c) {
            failures.push(format!(
                "{name}: 90 % intervals of facility 12-month totals cover {:.1} %",
                100.0 * c
            ));
        }
    }
    failures
}

fn run(scale: f64, names: &[&str], coverage: bool) {
    let cfg = ForecastConfig::default();
    let mut failures = Vec::new();
    let mut table = Vec::new();
    // The family's worlds drawn with `seed`, those named (all without names).
    let worlds = |seed| {
        scenarios::family(scale, seed)
            .into_iter()
            .filter(|s| names.is_empty() || names.contains(&s.name))
    };
    for s in worlds(130) {
        let b = scenarios::run(&s, &cfg).unwrap();
        failures.extend(check(s.name, &b, coverage));
        table.push((s.name.to_string(), b));
    }
    let rows: Vec<(String, &Backtest)> = table.iter().map(|(n, b)| (n.clone(), b)).collect();
    println!("{}", bhyt::forecast::backtest::markdown(&rows));
    if coverage {
        // A province has one yearly total per origin (five per scenario,
        // 41 over one family: one miss moves the rate by 2.4 points) and
        // twelve months that share one level: its intervals are checked
        // over the family drawn with three seeds (130, 7, 11; 123 totals).
        for seed in [7, 11] {
            for s in worlds(seed) {
                let b = scenarios::run(&s, &cfg).unwrap();
                table.push((format!("{} (seed {seed})", s.name), b));
            }
        }
        for (what, pick) in [
            ("province 12-month totals", 0usize),
            ("province-months", 1usize),
        ] {
            let (hit, n) = table.iter().fold((0.0, 0usize), |(h, n), (_, b)| {
                let c = if pick == 0 {
                    &b.coverage_year_province
                } else {
                    &b.coverage_month_province
                };
                (h + c.rate[1] * c.n as f64, n + c.n)
            });
            let rate = hit / n.max(1) as f64;
            println!(
                "90 % intervals of {what} over the family (three seeds): {:.1} % (n = {n})",
                100.0 * rate
            );
            if !(0.85..=0.95).contains(&rate) {
                failures.push(format!(
                    "90 % intervals of {what} cover {:.1} % over the family (three seeds)",
                    100.0 * rate
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The small version (5 % volume, four shapes; the debug build): on the
/// median facility the engine beats every naive rule; the province total
/// is far better than "last year" and within 3 %; the yearly intervals of
/// facilities cover 80–97 % at 90 %. The lockdown's base months read as
/// 13 % of growth to "last year × growth" (and did to the engine before
/// `shocks.rs`).
#[test]
fn engine_beats_the_naive_rules_on_facilities_in_a_small_family() {
    let cfg = ForecastConfig::default();
    let mut rows = Vec::new();
    for s in scenarios::family(0.05, 130)
        .into_iter()
        .filter(|s| ["smooth", "steps", "open-close", "lockdown"].contains(&s.name))
    {
        let b = scenarios::run(&s, &cfg).unwrap();
        let (_, bf) = b.best_baselines();
        let e = b.engine();
        let last_year = &b.methods[1];
        assert!(
            e.facility_error <= bf.facility_error,
            "{}: {e:?} vs {bf:?}",
            s.name
        );
        assert!(
            e.province_error < 0.03 && e.province_error < last_year.province_error / 2.0,
            "{}: {e:?}",
            s.name
        );
        let c = b.coverage_year.rate[1];
        assert!((0.80..=0.97).contains(&c), "{}: coverage {c}", s.name);
        rows.push((s.name.to_string(), b));
    }
    let rows: Vec<(String, &Backtest)> = rows.iter().map(|(n, b)| (n.clone(), b)).collect();
    println!("{}", bhyt::forecast::backtest::markdown(&rows));
}

#[test]
#[ignore = "the full family at 25 % volume: cargo test --release -- --ignored"]
fn engine_is_no_worse_than_the_naive_rules_on_every_growth_shape() {
    run(0.25, &[], true);
}

#[test]
#[ignore = "smooth and step growth at full volume: cargo test --release -- --ignored"]
fn smooth_and_step_growth_at_full_volume_meet_the_planners_targets() {
    let cfg = ForecastConfig::default();
    for s in scenarios::family(1.0, 130)
        .iter()
        .filter(|s| ["smooth", "steps"].contains(&s.name))
    {
        let b = scenarios::run(s, &cfg).unwrap();
        let e = b.engine();
        println!(
            "{}: province {:.2} %, median facility {:.2} %",
            s.name,
            100.0 * e.province_error,
            100.0 * e.facility_error
        );
        assert!(
            check(s.name, &b, true).is_empty(),
            "{:?}",
            check(s.name, &b, true)
        );
        assert!(e.province_error <= 0.02, "{}", e.province_error);
        assert!(e.facility_error <= 0.06, "{}", e.facility_error);
    }
}
