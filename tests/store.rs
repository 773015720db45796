//! The claims store's invariants where home-made table formats lose them
//! (issue 16): a run killed between writing data and committing it, two
//! runs into one data directory at once, the same bytes under two names,
//! a corrected file removing a claim with a crash in between. Real runs of
//! the `bhyt` binary (the crash is a real process exit), real Delta tables
//! read back by the engine.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bhyt::qd130::Style;
use bhyt::store::Store;
use common::*;
use polars::prelude::*;

fn bhyt(data: &Path, registry: &Path, input: &Path, crash_after: Option<usize>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bhyt"));
    c.args(["ingest", "--quiet", "--demo-key", "--registry"])
        .arg(registry)
        .arg("--data-dir")
        .arg(data)
        .arg(input);
    if let Some(n) = crash_after {
        c.env("BHYT_CRASH_AFTER_COMMITS", n.to_string());
    }
    c.output().unwrap()
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample")
}

/// The first `n` sample envelopes, copied to `dir`.
fn sample_envelopes(dir: &Path, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut all: Vec<PathBuf> = walk(&sample().join("claims"));
    all.sort();
    all.into_iter()
        .take(n)
        .map(|p| {
            let to = dir.join(p.file_name().unwrap());
            std::fs::copy(&p, &to).unwrap();
            to
        })
        .collect()
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else if p.to_string_lossy().ends_with(".xml.gz") {
            v.push(p);
        }
    }
    v
}

/// The manifest's sources of one status.
fn sources_with(data: &Path, status: &str) -> Vec<bhyt::store::SourceRecord> {
    Store::open(data)
        .unwrap()
        .manifest()
        .unwrap()
        .sources()
        .unwrap()
        .into_iter()
        .filter(|r| r.status == status)
        .collect()
}

/// (visit rows of every version, distinct claims, lines, accepted visits
/// and lines by the manifest's committed sources).
fn tally(data: &Path) -> (usize, usize, usize, i64, i64) {
    let s = Store::open(data).unwrap();
    let visits = match s.visits_all_versions() {
        Ok(v) => v.select([col("claim_key")]).collect().unwrap(),
        Err(_) => return (0, 0, 0, 0, 0),
    };
    let claims = visits
        .clone()
        .lazy()
        .select([col("claim_key").n_unique()])
        .collect()
        .unwrap()
        .column("claim_key")
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .get(0)
        .unwrap() as usize;
    let lines = count(s.lines().unwrap());
    let ok = sources_with(data, "ok");
    (
        visits.height(),
        claims,
        lines,
        ok.iter().map(|r| r.visits_accepted).sum(),
        ok.iter().map(|r| r.lines_accepted).sum(),
    )
}

#[test]
fn a_run_killed_between_data_and_commit_leaves_nothing_and_the_rerun_is_exact() {
    // After the visits' commit (1) and after the lines' (2): the snapshot
    // is not written either time.
    for crash_after in [1, 2] {
        let d = tempfile::tempdir().unwrap();
        let (data, input) = (d.path().join("data"), d.path().join("in"));
        sample_envelopes(&input, 6);
        let reg = sample().join("facilities.csv");
        let out = bhyt(&data, &reg, &input, Some(crash_after));
        assert_eq!(out.status.code(), Some(137), "{out:?}");
        assert_eq!(tally(&data).0, 0, "nothing of the killed run is visible");
        let out = bhyt(&data, &reg, &input, None);
        assert!(out.status.success(), "{out:?}");
        let (rows, claims, lines, accepted, lines_accepted) = tally(&data);
        assert!(rows > 0);
        assert_eq!(rows, claims, "one row per claim, nothing doubled");
        assert_eq!(rows as i64, accepted);
        assert_eq!(lines as i64, lines_accepted);
    }
}

#[test]
fn two_ingests_at_once_into_one_data_dir_never_duplicate() {
    let d = tempfile::tempdir().unwrap();
    let (data, input) = (d.path().join("data"), d.path().join("in"));
    let files = sample_envelopes(&input, 12);
    let reg = sample().join("facilities.csv");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_bhyt"))
            .args(["ingest", "--quiet", "--demo-key", "--registry"])
            .arg(&reg)
            .arg("--data-dir")
            .arg(&data)
            .arg(&input)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{a:?}");
    assert!(b.status.success(), "{b:?}");
    let (rows, claims, lines, accepted, lines_accepted) = tally(&data);
    assert_eq!(rows, claims, "no claim twice");
    assert_eq!(rows as i64, accepted);
    assert_eq!(lines as i64, lines_accepted);
    let ok = sources_with(&data, "ok").len();
    assert_eq!(ok, files.len(), "each file committed once");
}

#[test]
fn the_same_bytes_under_two_names_in_one_run_are_read_once() {
    let d = tempfile::tempdir().unwrap();
    let (data, input) = (d.path().join("data"), d.path().join("in"));
    let files = sample_envelopes(&input, 1);
    std::fs::copy(&files[0], input.join("copy-of-the-same.xml.gz")).unwrap();
    let reg = sample().join("facilities.csv");
    let out = bhyt(&data, &reg, &input, None);
    assert!(out.status.success(), "{out:?}");
    let (rows, claims, _, accepted, _) = tally(&data);
    assert_eq!((rows, claims as i64), (accepted as usize, accepted));
    assert_eq!(sources_with(&data, "ok").len(), 1);
    assert_eq!(sources_with(&data, "duplicate").len(), 1);
}

#[test]
fn a_claim_removed_by_a_corrected_file_stays_removed_after_a_crash() {
    let env = Env::new();
    let (data, reg) = (env.path("data"), env.path("registry.csv"));
    let mut hosos = vec![
        visit("A1", "93001", "DN4930123456789", true),
        visit("A2", "93001", "HT2010987654321", false),
    ];
    write(&env.path("in/a.xml"), "93001", &hosos, &Style::default());
    assert!(bhyt(&data, &reg, &env.path("in"), None).status.success());
    let ma_lk = |data: &Path| -> Vec<String> {
        let s = Store::open(data).unwrap();
        let df = s
            .visits()
            .unwrap()
            .select([col("ma_lk")])
            .sort(["ma_lk"], Default::default())
            .collect()
            .unwrap();
        df.column("ma_lk")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(ma_lk(&data), ["A1", "A2"]);
    // The corrected file drops A2; the run dies after its visits commit.
    hosos.pop();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write(&env.path("in/a.xml"), "93001", &hosos, &Style::default());
    let out = bhyt(&data, &reg, &env.path("in"), Some(1));
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    assert_eq!(
        ma_lk(&data),
        ["A1", "A2"],
        "readers stay on the last snapshot"
    );
    assert!(bhyt(&data, &reg, &env.path("in"), None).status.success());
    assert_eq!(ma_lk(&data), ["A1"], "A2 does not come back");
    let lines = Store::open(&data).unwrap().lines().unwrap();
    assert_eq!(
        count(lines.filter(col("ma_lk").eq(lit("A2")))),
        0,
        "nor its lines"
    );
}

/// The Python that reads the tables: `$BHYT_PYTHON`, else the notebooks'
/// environment; None (the test skips) when it has no `deltalake`, unless
/// `BHYT_REQUIRE_PYTHON` is set (CI).
fn python_with_deltalake() -> Option<PathBuf> {
    let p = std::env::var_os("BHYT_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/bhyt-notebooks-venv/bin/python"))
        })?;
    let ok = Command::new(&p)
        .args(["-c", "import deltalake, polars"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("BHYT_REQUIRE_PYTHON").is_none(),
            "{} cannot import deltalake and polars: notebooks/venv.sh",
            p.display()
        );
        eprintln!("skipped: no Python with deltalake and polars (notebooks/venv.sh makes one)");
        return None;
    }
    Some(p)
}

#[test]
fn other_engines_read_the_same_tables() {
    let Some(python) = python_with_deltalake() else {
        return;
    };
    let env = Env::new();
    let (data, reg) = (env.path("data"), env.path("registry.csv"));
    write_resubmission(&env.path("in"), "93001", "A");
    assert!(bhyt(&data, &reg, &env.path("in"), None).status.success());
    let s = Store::open(&data).unwrap();
    let sum = |lf: LazyFrame, c: &str| -> f64 {
        lf.select([col(c).sum()])
            .collect()
            .unwrap()
            .column(c)
            .unwrap()
            .f64()
            .unwrap()
            .get(0)
            .unwrap()
    };
    let engine = (
        count(s.visits_all_versions().unwrap()),
        count(s.visits().unwrap()),
        sum(s.visits().unwrap(), "total_cost"),
        count(s.lines().unwrap()),
        sum(s.lines().unwrap(), "amount"),
    );
    assert_eq!((engine.0, engine.1), (3, 2));
    let out = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks/read_store.py"))
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(py["visits_all_versions"], engine.0);
    assert_eq!(py["visits"], engine.1);
    assert!((py["total_cost"].as_f64().unwrap() - engine.2).abs() < 0.5);
    assert_eq!(py["lines"], engine.3);
    assert!((py["amount"].as_f64().unwrap() - engine.4).abs() < 0.5);
    // One typed truth for the partition columns.
    assert_eq!(
        py["partition_columns"],
        serde_json::json!(["facility_province_code", "year", "month"])
    );
    assert_eq!(py["year_dtype"], "Int32");
}

#[test]
fn optimize_compacts_without_changing_a_row_and_old_snapshots_stay_readable() {
    let env = Env::new();
    let hosos: Vec<_> = (0..12)
        .map(|i| visit(&format!("L{i}"), "93001", "DN4930123456789", i % 3 == 0))
        .collect();
    for (i, h) in hosos.chunks(2).enumerate() {
        write(
            &env.path(&format!("in/{i}.xml")),
            "93001",
            h,
            &Style::default(),
        );
    }
    // Tiny flushes: a commit, and files, every few rows.
    env.ingest_with(&["in"], |o| o.flush_rows = 3);
    let store = env.store();
    let before = store.table_stats().unwrap();
    let snap = store.snapshot().unwrap();
    let fingerprint = |s: &Store| {
        let v = s
            .visits()
            .unwrap()
            .select([len().alias("n"), col("total_cost").sum()])
            .collect()
            .unwrap();
        let l = count(s.lines().unwrap());
        (format!("{v:?}"), l)
    };
    let rows_before = fingerprint(&store);
    assert!(before[0].files > 3, "{before:?}");
    let r = store.optimize(256 << 20).unwrap();
    assert_eq!(r[0].files_after, 1, "{r:?}");
    let after = env.store();
    assert_eq!(after.table_stats().unwrap()[0].files, 1);
    assert_eq!(fingerprint(&after), rows_before, "not a row changed");
    // Time travel: the snapshot before compaction reads its own files.
    let old = after.at_snapshot(snap.id).unwrap();
    assert_eq!(old.table_stats().unwrap()[0].files, before[0].files);
    assert_eq!(fingerprint(&old), rows_before);
    // Vacuum with no retention: the replaced files go, the current stay.
    let deleted = after.vacuum(0).unwrap();
    assert!(
        deleted
            .iter()
            .any(|(t, n)| t == "visits" && *n >= before[0].files),
        "{deleted:?}"
    );
    assert_eq!(fingerprint(&env.store()), rows_before);
    // A publish after compaction still replaces a corrected file exactly.
    let mut h = hosos[0..2].to_vec();
    h.pop();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write(&env.path("in/0.xml"), "93001", &h, &Style::default());
    let r = env.ingest(&["in"]);
    assert_eq!(r.files_replaced, 1);
    assert_eq!(count(env.store().visits().unwrap()), 11);
}

/// `bhyt ingest` of the first `n` sample envelopes into the data directory
/// `name` (the sample's registry).
fn ingest_sample_into(env: &Env, name: &str, n: usize) -> (PathBuf, Output) {
    let data = env.path(name);
    sample_envelopes(&env.path("in"), n);
    let out = bhyt(
        &data,
        &sample().join("facilities.csv"),
        &env.path("in"),
        None,
    );
    (data, out)
}

/// A data directory whose name holds glob characters is a path, not a
/// pattern: before, the registry's scan expanded it, found nothing and the
/// ingest failed.
#[test]
fn a_store_whose_path_looks_like_a_glob_is_still_a_path() {
    let env = Env::new();
    let (data, out) = ingest_sample_into(&env, "data [2024] *", 3);
    assert!(out.status.success(), "{out:?}");
    let s = Store::open(&data).unwrap();
    assert!(count(s.visits().unwrap()) > 0);
    assert!(count(s.facilities().unwrap()) > 0);
}

/// A '%' in the data directory is refused up front with the reason:
/// delta-rs decodes it a second time (`%41` → `A`) and would read and write
/// another folder.
#[test]
fn a_store_path_with_a_percent_sign_is_refused_with_the_reason() {
    let env = Env::new();
    let (data, out) = ingest_sample_into(&env, "data%41", 1);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds '%'"), "{err}");
    assert!(!data.exists() && !env.path("dataA").exists());
}
