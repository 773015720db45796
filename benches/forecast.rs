//! Forecasting speed: the engine on a whole generated province (93
//! facilities, 48 months → 12, with its inner calibration), one backtest
//! origin of it beside the naive rules, and the ETS baseline on one series
//! (the previous engine's series model). Reports times; it does not assert.

use bhyt::forecast::baselines::Baseline;
use bhyt::forecast::{forecast_from, scenarios, ForecastConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let family = scenarios::family(0.05, 130);
    let smooth = family.iter().find(|s| s.name == "smooth").expect("smooth");
    let h = scenarios::history_of(smooth).expect("simulated");
    let cfg = ForecastConfig::default();
    let y: Vec<f64> = h
        .series
        .values()
        .next()
        .expect("a facility")
        .iter()
        .map(|v| v[0])
        .collect();
    let mut g = c.benchmark_group("forecast");
    g.sample_size(20);
    g.throughput(Throughput::Elements(h.series.len() as u64));
    g.bench_function("engine: province of 93 facilities, 36 months → 12", |b| {
        b.iter(|| forecast_from(&h, 36, 12, &cfg))
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("ETS baseline: one series, 36 months → 12", |b| {
        b.iter(|| Baseline::Ets.forecast(&y[..36], 12))
    });
    g.bench_function("last year × growth: one series", |b| {
        b.iter(|| Baseline::LastYearGrowth.forecast(&y[..36], 12))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
