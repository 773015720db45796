//! The command line as a scheduler and a new user drive it (issue 18): a
//! project made by `bhyt init` and run by `bhyt weekly` from a subfolder,
//! `status --json` parsed, the documented exit codes, completions and the
//! man page.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bhyt::qd130::Style;

fn bhyt(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bhyt"));
    c.current_dir(cwd)
        .env_remove("BHYT_PSEUDONYM_KEY")
        .env_remove("BHYT_PSEUDONYM_KEY_FILE")
        .env_remove("BHYT_PROJECT");
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// `bhyt init`, the sample's first province dropped into `incoming/`, the
/// registry, budgets and key file named in bhyt.toml; then everything is
/// driven from a folder two levels below the project, and every output
/// lands in the project, none in the folder the commands ran from.
#[test]
fn a_project_is_run_weekly_from_a_subfolder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("province");
    let o = bhyt(tmp.path())
        .args(["init", "province"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample");
    copy_dir(&sample.join("claims/93"), &root.join("incoming/93"));
    std::fs::write(tmp.path().join("key"), "a-long-enough-test-key-0123").unwrap();
    let toml = std::fs::read_to_string(root.join("bhyt.toml"))
        .unwrap()
        .replace(
            "# registry = \"reference/facilities.csv\"",
            &format!("registry = {:?}", sample.join("facilities.csv")),
        )
        .replace(
            "# budgets = \"reference/budgets.csv\"",
            &format!("budgets = {:?}", sample.join("budgets.csv")),
        )
        .replace(
            "# key_file = \"/etc/bhyt/pseudonym.key\"",
            &format!("key_file = {:?}", tmp.path().join("key")),
        );
    std::fs::write(root.join("bhyt.toml"), toml).unwrap();
    let sub = root.join("notes/2024");
    std::fs::create_dir_all(&sub).unwrap();

    let first = bhyt(&sub).args(["weekly", "--json"]).output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let w = json(&first);
    // The sample's data end on Sunday 2024-02-04: that week is complete.
    assert_eq!(w["week"]["from"], "2024-01-29", "{w}");
    assert_eq!(w["week"]["to"], "2024-02-04", "{w}");
    assert!(
        w["ingest"]["files"]["ingested"].as_u64().unwrap() > 1000,
        "{w}"
    );
    assert!(w["detect"]["fitted"].as_bool().unwrap(), "{w}");
    for page in ["alerts.html", "audit.html", "planner.html"] {
        assert!(root.join("out/report").join(page).is_file(), "{page}");
    }
    assert!(root.join("data/models/detector.json").is_file());
    assert!(!sub.join("out").exists() && !sub.join("data").exists());

    // The same week again: nothing new to read, the same alerts.
    let again = bhyt(&sub).args(["weekly", "--json"]).output().unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let w2 = json(&again);
    assert_eq!(w2["ingest"]["files"]["ingested"], 0, "{w2}");
    assert_eq!(
        w2["ingest"]["files"]["unchanged"],
        w["ingest"]["files"]["ingested"]
    );
    assert_eq!(w2["detect"]["top"], w["detect"]["top"]);
    assert_eq!(w2["detect"]["fitted"], false, "the saved model is reused");

    // status --json from the subfolder: one JSON object, the summary.
    let o = bhyt(&sub).args(["status", "--json"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let s = json(&o);
    let visits = s["visits"].as_u64().unwrap();
    assert!(visits > 1000, "{s}");
    let provinces = s["provinces"].as_array().unwrap();
    assert_eq!(
        provinces
            .iter()
            .map(|p| p["visits"].as_u64().unwrap())
            .sum::<u64>(),
        visits
    );
    assert_eq!(provinces[0]["last_discharge"], "2024-02-04");
    let stages: Vec<&str> = s["last_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["ingest", "features", "detect", "forecast", "report", "weekly"]
    );
    assert!(
        s.get("source_files").is_none(),
        "the file list only with --sources"
    );
    let sources: u64 = s["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sources"].as_u64().unwrap())
        .sum();
    // The human summary is short whatever the number of files.
    let o = bhyt(&sub).arg("status").output().unwrap();
    let human = String::from_utf8_lossy(&o.stdout);
    assert!(human.lines().count() < 25, "{human}");
    assert!(human.contains("by province"), "{human}");
    let o = bhyt(&sub)
        .args(["status", "--sources", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        json(&o)["source_files"].as_array().unwrap().len() as u64,
        sources
    );

    // A flag overrides the project: another store, which does not exist.
    let o = bhyt(&sub)
        .args(["status", "--data-dir"])
        .arg(tmp.path().join("elsewhere"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    // detect --json from the project: the same week's alerts.
    let o = bhyt(&sub)
        .args(["detect", "--as-of", "2024-01-29", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(json(&o)["top"], w["detect"]["top"]);
}

fn envelope_with(dir: &Path, name: &str, broken: bool) -> PathBuf {
    let mut hosos = vec![common::visit("LK1", "93001", "GD4939393939393", false)];
    if broken {
        // A visit discharged before it was admitted: quarantined.
        let mut b = common::visit("LK2", "93001", "GD4939393939394", true);
        b.xml1
            .set("NGAY_VAO", "202401150800")
            .set("NGAY_RA", "202401100800");
        hosos.push(b);
    }
    let path = dir.join(name);
    common::write(&path, "93001", &hosos, &Style::default());
    path
}

/// 0 done, 1 usage or configuration, 2 part of the input turned away,
/// 3 the run failed.
#[test]
fn exit_codes_say_what_happened() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let code = |args: &[&str]| {
        let o = bhyt(d).args(args).output().unwrap();
        (o.status.code(), text(&o))
    };
    assert_eq!(code(&["--help"]).0, Some(0));
    assert_eq!(code(&["--no-such-flag"]).0, Some(1));
    assert_eq!(code(&["detect", "--as-of", "not-a-date"]).0, Some(1));
    // No project and no input named: a usage error, not a crash.
    assert_eq!(code(&["weekly"]).0, Some(1));
    // Without a key.
    std::fs::create_dir_all(d.join("in")).unwrap();
    assert_eq!(code(&["ingest", "in", "--data-dir", "data"]).0, Some(1));
    // A project file with a misspelt key names it.
    std::fs::write(d.join("bhyt.toml"), "data_dri = \"x\"\n").unwrap();
    let (c, t) = code(&["status"]);
    assert_eq!(c, Some(1), "{t}");
    assert!(t.contains("data_dri"), "{t}");
    std::fs::remove_file(d.join("bhyt.toml")).unwrap();
    // A configuration file that does not parse.
    std::fs::write(d.join("f.toml"), "period = 3\n").unwrap();
    assert_eq!(code(&["features", "--config", "f.toml"]).0, Some(1));
    // A store that is not there: the run fails.
    assert_eq!(code(&["status", "--data-dir", "nothing"]).0, Some(3));
    assert_eq!(
        code(&["detect", "--features", "missing.parquet"]).0,
        Some(3)
    );

    let reg = d.join("reg.csv");
    std::fs::write(&reg, common::REGISTRY).unwrap();
    let reg = reg.to_str().unwrap();
    let ingest = |file: &Path, data: &str| {
        let o = bhyt(d)
            .args([
                "ingest",
                "--quiet",
                "--demo-key",
                "--json",
                "--registry",
                reg,
            ])
            .args(["--data-dir", data])
            .arg(file)
            .output()
            .unwrap();
        (o.status.code(), json(&o))
    };
    let clean = envelope_with(d, "clean.xml", false);
    let (c, j) = ingest(&clean, "store-a");
    assert_eq!(c, Some(0), "{j}");
    assert_eq!(j["visits"]["accepted"], 1, "{j}");
    let broken = envelope_with(d, "broken.xml", true);
    let (c, j) = ingest(&broken, "store-b");
    assert_eq!(c, Some(2), "{j}");
    assert_eq!(j["visits"]["quarantined"], 1, "{j}");
    assert_eq!(
        j["quarantined_by_rule"][0]["rule"], "discharge_before_admission",
        "{j}"
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_definitions() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let o = bhyt(tmp.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(o.status.success(), "{shell}");
        let s = String::from_utf8_lossy(&o.stdout);
        for word in ["weekly", "status", "data-dir", "week-of"] {
            assert!(s.contains(word), "{shell} completion lacks {word}");
        }
    }
    let o = bhyt(tmp.path()).arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(
        page.contains(".TH bhyt 1") && page.contains("weekly"),
        "{page}"
    );
    let o = bhyt(tmp.path())
        .args(["man", "--out", "man1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    for f in ["bhyt.1", "bhyt-weekly.1", "bhyt-status.1", "bhyt-ingest.1"] {
        assert!(tmp.path().join("man1").join(f).is_file(), "{f}");
    }
}
