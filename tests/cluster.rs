//! The heavy step on a distributed engine (issue 16): `heavy.sql` run by
//! DataFusion in this process and by a real Ballista cluster — a scheduler
//! and two executors started from the `bhyt` binary on 127.0.0.1 — gives
//! the same facility-month table and norms, and that table agrees with the
//! Polars features stage on the same snapshot. Data: the bundled sample plus
//! one resubmitted claim (so the superseded version must be left out).

#![cfg(feature = "cluster")]

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bhyt::aggregate::{self, Engine};
use bhyt::features::{FeatureConfig, Period};
use bhyt::ingest::{self, IngestOptions};
use bhyt::store::Store;
use common::*;
use polars::prelude::*;

/// The cluster's processes, stopped when the test ends however it ends.
struct Cluster {
    children: Vec<Child>,
    logs: Vec<PathBuf>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn read(p: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(p) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

fn spawn(dir: &Path, name: &str, args: &[String]) -> (Child, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_bhyt"))
        .arg("cluster")
        .args(args)
        .env("BHYT_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

/// A scheduler and two executors; returns once both executors say they
/// are registered.
fn start_cluster(dir: &Path) -> (Cluster, String) {
    let sched = free_addr();
    let mut cluster = Cluster {
        children: Vec::new(),
        logs: Vec::new(),
    };
    let (c, l) = spawn(
        dir,
        "scheduler",
        &["scheduler".into(), "--bind".into(), sched.to_string()],
    );
    cluster.children.push(c);
    cluster.logs.push(l);
    for i in 0..2 {
        let work = dir.join(format!("work{i}"));
        std::fs::create_dir_all(&work).unwrap();
        let (flight, grpc) = (free_addr(), free_addr());
        let (c, l) = spawn(
            dir,
            &format!("executor{i}"),
            &[
                "executor".into(),
                "--scheduler".into(),
                sched.to_string(),
                "--bind".into(),
                flight.to_string(),
                "--grpc-port".into(),
                grpc.port().to_string(),
                "--work-dir".into(),
                work.to_string_lossy().into_owned(),
                "--concurrent-tasks".into(),
                "2".into(),
            ],
        );
        cluster.children.push(c);
        cluster.logs.push(l);
    }
    let t = Instant::now();
    loop {
        let ready = cluster.logs[1..]
            .iter()
            .all(|l| read(l).contains("registration succeed"));
        if ready {
            break;
        }
        for c in &mut cluster.children {
            if let Some(status) = c.try_wait().unwrap() {
                panic!(
                    "a cluster process ended ({status}):\n{}",
                    cluster.logs.iter().map(|l| read(l)).collect::<String>()
                );
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "executors not registered within 60 s:\n{}",
            cluster.logs.iter().map(|l| read(l)).collect::<String>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (cluster, format!("df://{sched}"))
}

/// The store's folder: glob and URL characters in the path must not
/// change what the engines read.
const DATA: &str = "store [1] *";

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample")
}

/// The bundled sample, then a claim of facility 86001 and its
/// resubmission with one more service.
fn sample_store(dir: &Path) -> Store {
    let store = Store::open(dir.join(DATA)).unwrap();
    let ingest_from = |inputs: Vec<PathBuf>| {
        let opts = IngestOptions {
            inputs,
            registry: Some(sample().join("facilities.csv")),
            budgets: Some(sample().join("budgets.csv")),
            ..Default::default()
        };
        let r = ingest::run(&store, &opts, &key()).unwrap();
        assert!(r.visits.balanced() && r.lines.balanced());
    };
    ingest_from(vec![sample().join("claims")]);
    write_resubmission(&dir.join("in"), "86001", "ZZ");
    ingest_from(vec![dir.join("in")]);
    let store = Store::open(dir.join(DATA)).unwrap();
    assert_eq!(
        count(store.visits_all_versions().unwrap()) - count(store.visits().unwrap()),
        1,
        "one superseded version"
    );
    store
}

fn frame(dir: &Path, name: &str) -> DataFrame {
    LazyFrame::scan_parquet(
        PlRefPath::new(
            dir.join(format!("{name}.parquet"))
                .to_string_lossy()
                .as_ref(),
        ),
        Default::default(),
    )
    .unwrap()
    .collect()
    .unwrap()
}

/// Same shape, same keys in the same order, numbers equal up to the
/// summation order of floats (relative 1e-9).
fn assert_same(a: &DataFrame, b: &DataFrame, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shape");
    assert_eq!(
        a.get_column_names(),
        b.get_column_names(),
        "{what}: columns"
    );
    for c in a.columns() {
        let name = c.name().as_str();
        let d = b.column(name).unwrap();
        if c.dtype().is_float() {
            let (x, y) = (c.f64().unwrap(), d.f64().unwrap());
            for (i, (p, q)) in x.iter().zip(y.iter()).enumerate() {
                match (p, q) {
                    (Some(p), Some(q)) => assert!(
                        (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0),
                        "{what}: {name} row {i}: {p} vs {q}"
                    ),
                    (p, q) => assert_eq!(p.is_some(), q.is_some(), "{what}: {name} row {i}"),
                }
            }
        } else {
            assert!(c.equals_missing(d), "{what}: column {name} differs");
        }
    }
}

#[test]
fn ballista_and_datafusion_give_the_same_tables_and_agree_with_polars() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = sample_store(dir);
    let k = FeatureConfig::default().shrinkage_visits;

    let local = dir.join("datafusion");
    let s = aggregate::run(&store, &Engine::DataFusion, k, &local).unwrap();
    assert!(s.rows.iter().all(|(_, n)| *n > 0), "{:?}", s.rows);

    let (cluster, url) = start_cluster(dir);
    let remote = dir.join("ballista");
    let engine = Engine::Ballista { scheduler: url };
    aggregate::run(&store, &engine, k, &remote).unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            cluster.logs.iter().map(|l| read(l)).collect::<String>()
        )
    });
    let tasks: Vec<usize> = cluster.logs[1..]
        .iter()
        .map(|l| read(l).matches("Finished task").count())
        .collect();
    eprintln!("tasks finished per executor: {tasks:?}");
    assert!(
        tasks.iter().all(|n| *n > 0),
        "each executor runs part of the job: {tasks:?}"
    );
    drop(cluster);

    let dictionary = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/aggregate-dictionary.md"),
    )
    .unwrap();
    for name in aggregate::OUTPUTS {
        let (a, b) = (frame(&local, name), frame(&remote, name));
        assert_same(&a, &b, name);
        assert!(
            dictionary.contains(&format!("## {name}.parquet")),
            "{name} not in the dictionary"
        );
        for c in a.get_column_names() {
            assert!(
                dictionary.contains(&format!("| `{c}` |")),
                "{name}.{c} not in datasets/aggregate-dictionary.md"
            );
        }
    }

    // The Polars features stage, monthly, on the same snapshot.
    let cfg = FeatureConfig {
        period: Period::Month,
        ..Default::default()
    };
    let features = bhyt::features::compute(&store, &cfg)
        .unwrap()
        .facility_period;
    let fm = frame(&local, "facility_month")
        .lazy()
        .with_column(
            concat_str(
                [
                    col("year").cast(DataType::String),
                    lit("-"),
                    col("month").cast(DataType::String),
                    lit("-1"),
                ],
                "",
                false,
            )
            .str()
            .to_date(StrptimeOptions {
                format: Some("%Y-%m-%d".into()),
                ..Default::default()
            })
            .alias("period_start"),
        )
        .join(
            features.lazy(),
            [col("facility_code"), col("period_start")],
            [col("facility_code"), col("period_start")],
            JoinArgs::new(JoinType::Full),
        )
        .collect()
        .unwrap();
    assert_eq!(fm.height(), frame(&local, "facility_month").height());
    let get = |c: &str| -> Vec<Option<f64>> {
        fm.column(c)
            .unwrap()
            .cast(&DataType::Float64)
            .unwrap()
            .f64()
            .unwrap()
            .to_vec()
    };
    let close = |sql: Vec<Option<f64>>, pl: Vec<Option<f64>>, what: &str| {
        for (i, (a, b)) in sql.into_iter().zip(pl).enumerate() {
            let (a, b) = (a.unwrap_or(f64::NAN), b.unwrap_or(f64::NAN));
            let same = (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-6 * a.abs().max(1.0);
            assert!(same, "{what} row {i}: SQL {a} vs Polars {b}");
        }
    };
    for c in [
        "visits",
        "outpatient_visits",
        "inpatient_episodes",
        "patients",
        "total_cost",
        "fund_paid",
        "bed_days",
        "oop_visits",
        "oop_cost",
        "expected_cost",
        "drug_supply_price_index",
    ] {
        // Columns of both sides: the full join suffixes the features'.
        let pl = format!("{c}_right");
        close(get(c), get(&pl), c);
    }
    let share = |num: &str, den: &str| -> Vec<Option<f64>> {
        get(num)
            .into_iter()
            .zip(get(den))
            .map(|(n, d)| Some(n? / d.filter(|d| *d > 0.0)?))
            .collect()
    };
    close(
        share("drug_amount", "total_cost"),
        get("drug_share"),
        "drug share",
    );
    close(
        share("inpatient_bed_amount", "inpatient_cost"),
        get("bed_cost_share_inpatient"),
        "bed-day cost share",
    );
}
