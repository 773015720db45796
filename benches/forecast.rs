//! Forecasting one monthly series (48 months of seasonal growth with
//! noise, 12 months ahead, three interval levels) and the self-check that
//! calibrates the intervals: what `bhyt forecast` does per facility.
//! Reports series/s; it does not assert.

use bhyt::forecast::model::{forecast, self_check};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};

fn bench(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(130);
    let y: Vec<f64> = (0..48)
        .map(|t| {
            let season = 1.0 + 0.12 * ((t % 12) as f64 / 12.0 * std::f64::consts::TAU).cos();
            5.0e7 * 1.09f64.powf(t as f64 / 12.0) * season * rng.gen_range(0.92..1.08)
        })
        .collect();
    let mut g = c.benchmark_group("forecast");
    g.throughput(Throughput::Elements(1));
    g.bench_function("one series, 48 months → 12, MSTL+ETS", |b| {
        b.iter(|| forecast(&y, 12, 1.0, None))
    });
    g.bench_function("self-check of one series (4 refits)", |b| {
        b.iter(|| self_check(&y, None))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
