//! XML → Arrow → Parquet throughput of the ingest, on generated Decision 130
//! envelopes (one week of a province at 5 % volume, base64 inner documents).
//! Reports bytes/s; it measures, it does not assert.

use std::path::Path;

use bhyt::generate::{generate, GenConfig};
use bhyt::ingest::{self, IngestOptions};
use bhyt::privacy::Pseudonymizer;
use bhyt::store::Store;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn dir_bytes(p: &Path) -> u64 {
    walkdir::WalkDir::new(p)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = GenConfig {
        scale: 0.05,
        days: 7,
        start: chrono::NaiveDate::from_ymd_opt(2024, 3, 4).unwrap(),
        ..Default::default()
    };
    let input = tmp.path().join("gen");
    generate(&cfg, &input, false).unwrap();
    let bytes = dir_bytes(&input.join("claims"));
    let pseudo = Pseudonymizer::demo();
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    let mut run = 0;
    g.bench_function("xml_envelopes_to_parquet", |b| {
        b.iter(|| {
            run += 1;
            let store = Store::open(tmp.path().join(format!("store{run}"))).unwrap();
            let opts = IngestOptions {
                inputs: vec![input.join("claims")],
                registry: Some(input.join("facilities.csv")),
                ..Default::default()
            };
            let r = ingest::run(&store, &opts, &pseudo).unwrap();
            assert!(r.visits.accepted > 0);
            std::fs::remove_dir_all(store.root()).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
