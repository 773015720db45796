//! The `bhyt` binary: subcommands with help, and the refusal to run without
//! a pseudonymisation key.

use std::process::Command;

fn bhyt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bhyt"));
    c.env_remove("BHYT_PSEUDONYM_KEY")
        .env_remove("BHYT_PSEUDONYM_KEY_FILE");
    c
}

#[test]
fn every_subcommand_has_help() {
    let out = bhyt().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in [
        "ingest", "generate", "features", "detect", "evaluate", "forecast", "report", "review",
        "status", "demo",
    ] {
        assert!(text.contains(sub), "{sub} missing from --help");
        let o = bhyt().args([sub, "--help"]).output().unwrap();
        assert!(o.status.success(), "{sub} --help failed");
        assert!(String::from_utf8_lossy(&o.stdout).contains("Usage"));
    }
}

#[test]
fn ingest_refuses_to_run_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    let out = bhyt()
        .args(["ingest", "--quiet", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg(dir.path().join("in"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BHYT_PSEUDONYM_KEY"), "{err}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing written without a key"
    );
    // With a key from a file (never from the repository) it runs.
    std::fs::write(dir.path().join("k"), "a-long-enough-test-key-0123").unwrap();
    std::fs::write(
        dir.path().join("reg.csv"),
        "facility_code,province_code\n93001,93\n",
    )
    .unwrap();
    let ok = bhyt()
        .args(["ingest", "--quiet", "--key-file"])
        .arg(dir.path().join("k"))
        .arg("--registry")
        .arg(dir.path().join("reg.csv"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg(dir.path().join("in"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
