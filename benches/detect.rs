//! Fitting and scoring the detector on an indicator table the size of a
//! province's two years (100 facilities × 104 weeks, every signal column),
//! built in memory with seeded noise. Reports rows/s; it does not assert.

use bhyt::detect::{fit, DetectConfig};
use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use polars::prelude::*;
use rand::{Rng, SeedableRng};

fn table(facilities: usize, weeks: usize) -> DataFrame {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(130);
    let start = NaiveDate::from_ymd_opt(2023, 1, 2).unwrap();
    let n = facilities * weeks;
    let mut cols: Vec<(&str, Vec<f64>)> = [
        "visits",
        "oe_cost",
        "oe_los",
        "oe_admission",
        "oop_visit_share",
        "bed_cost_share_inpatient",
        "drug_supply_price_index",
        "overlapping_claim_share",
        "inpatient_episodes",
        "expected_admissions",
        "total_cost",
        "expected_cost",
    ]
    .into_iter()
    .map(|c| (c, Vec::with_capacity(n)))
    .collect();
    let mut fac = Vec::with_capacity(n);
    let mut period = Vec::with_capacity(n);
    let mut group = Vec::with_capacity(n);
    for f in 0..facilities {
        let size = [20.0, 150.0, 600.0][f % 3];
        for w in 0..weeks {
            fac.push(format!("F{f:03}"));
            period.push(start + chrono::Duration::weeks(w as i64));
            group.push(["commune", "district", "provincial"][f % 3]);
            let visits = size * rng.gen_range(0.85..1.15);
            let vals = [
                visits,
                rng.gen_range(0.9..1.1),
                rng.gen_range(0.9..1.1),
                rng.gen_range(0.8..1.2),
                rng.gen_range(0.02..0.06),
                rng.gen_range(0.2..0.3),
                rng.gen_range(0.97..1.03),
                rng.gen_range(0.0..0.01),
                visits * 0.12,
                visits * 0.12,
                visits * 300_000.0,
                visits * 300_000.0,
            ];
            for (c, v) in cols.iter_mut().zip(vals) {
                c.1.push(v);
            }
        }
    }
    let mut columns = vec![
        Column::new("facility_code".into(), fac),
        Column::new("period_start".into(), period),
        Column::new("peer_group".into(), group),
        Column::new("period".into(), vec!["week"; n]),
    ];
    for (c, v) in cols {
        columns.push(Column::new(c.into(), v));
    }
    DataFrame::new_infer_height(columns).unwrap()
}

fn bench(c: &mut Criterion) {
    let t = table(100, 104);
    let cfg = DetectConfig::default();
    let mut g = c.benchmark_group("detect");
    g.throughput(Throughput::Elements(t.height() as u64));
    g.sample_size(10);
    g.bench_function("fit 100 facilities x 104 weeks", |b| {
        b.iter(|| fit(&t, None, &cfg, None).unwrap())
    });
    let model = fit(&t, None, &cfg, None).unwrap();
    g.bench_function("score 100 facilities x 104 weeks (saved model)", |b| {
        b.iter(|| model.score(&t, None).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
