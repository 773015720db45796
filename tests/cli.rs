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
    assert!(text.contains("Exit codes"), "{text}");
    for sub in [
        "init",
        "weekly",
        "ingest",
        "generate",
        "features",
        "detect",
        "evaluate",
        "forecast",
        "report",
        "review",
        "status",
        "demo",
        "completions",
        "man",
    ] {
        assert!(text.contains(sub), "{sub} missing from --help");
        let o = bhyt().args([sub, "--help"]).output().unwrap();
        assert!(o.status.success(), "{sub} --help failed");
        let help = String::from_utf8_lossy(&o.stdout);
        assert!(help.contains("Usage"), "{help}");
        // Each subcommand shows how it is called.
        assert!(help.contains("Example"), "{sub} --help has no example");
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
    // It names the flag that exists.
    assert!(err.contains("--demo-key"), "{err}");
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

/// Bombs under a memory limit (issue 14): with the address space capped at
/// 1 GB beyond the executable, `bhyt ingest` reads a folder holding a gzip file that inflates to
/// 8 GiB of zeros, an envelope with 1 GiB inside one NOIDUNGFILE and the
/// bundled sample's first claims file; the two bombs are rejected with one
/// line each, the claims are ingested, the run ends normally.
#[cfg(unix)]
#[test]
fn bombs_are_rejected_in_bounded_memory() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("in")).unwrap();
    // 8 GiB of zeros: one gzip member of 1 MiB, repeated 8192 times (the
    // decoder reads concatenated members), about 8 MB on disk.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![0u8; 1 << 20]).unwrap();
    let member = e.finish().unwrap();
    let mut f = std::fs::File::create(d.join("in/bomb.xml.gz")).unwrap();
    for _ in 0..8192 {
        f.write_all(&member).unwrap();
    }
    drop(f);
    // A valid prefix, then 1 GiB inside NOIDUNGFILE (written, not held).
    let mut f = std::fs::File::create(d.join("in/field.xml")).unwrap();
    f.write_all(b"<?xml version=\"1.0\" encoding=\"utf-8\"?><GIAMDINHHS><THONGTINDONVI><MACSKCB>93001</MACSKCB></THONGTINDONVI><THONGTINHOSO><DANHSACHHOSO><HOSO><FILEHOSO><LOAIHOSO>XML1</LOAIHOSO><NOIDUNGFILE>").unwrap();
    let chunk = vec![b'A'; 1 << 20];
    for _ in 0..1024 {
        f.write_all(&chunk).unwrap();
    }
    drop(f);
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample");
    let year = sample.join("claims/93/2023");
    let first = std::fs::read_dir(&year)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "gz"))
        .min()
        .unwrap();
    std::fs::copy(&first, d.join("in").join(first.file_name().unwrap())).unwrap();
    // 1 GB of address space beyond the program's own mapping (a debug
    // build's executable alone maps 1.5 GB).
    let exe = env!("CARGO_BIN_EXE_bhyt");
    let limit_kb = std::fs::metadata(exe).unwrap().len() / 1024 + 1_000_000;
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {limit_kb} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args(["ingest", "--quiet", "--demo-key", "--registry"])
        .arg(sample.join("facilities.csv"))
        .arg("--data-dir")
        .arg(d.join("data"))
        .arg(d.join("in"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Done, with part of the input rejected: exit code 2.
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let rejected: Vec<&str> = stdout.lines().filter(|l| l.contains("rejected:")).collect();
    assert_eq!(rejected.len(), 2, "{stdout}");
    // Zeros hold no tag: the field limit stops them before the 16 GiB one.
    assert!(
        rejected
            .iter()
            .any(|l| l.contains("bomb.xml.gz") && l.contains("max_")),
        "{stdout}"
    );
    assert!(
        rejected
            .iter()
            .any(|l| l.contains("field.xml") && l.contains("max_text_bytes")),
        "{stdout}"
    );
    assert!(stdout.contains("files: 1 ingested"), "{stdout}");
}

/// Transparent huge pages are off for the whole process (`prctl` at the
/// start of `main`: 14–25 % of the wall time of ingest, features and detect
/// on a machine that has run a while; benches/README.md), and
/// `BHYT_ALLOW_THP` keeps them. Read from the kernel's view of a running
/// `bhyt` (`/proc/PID/status`) while it waits for a password on stdin.
#[cfg(target_os = "linux")]
#[test]
fn transparent_huge_pages_are_off_unless_allowed() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let thp_of = |allow: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut c = bhyt();
        let db = format!("sqlite://{}", dir.path().join("w.sqlite").display());
        c.args(["users", "add", "thp-check", "--role", "planner"])
            .args(["--database", &db])
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if allow {
            c.env("BHYT_ALLOW_THP", "1");
        } else {
            c.env_remove("BHYT_ALLOW_THP");
        }
        let mut child = c.spawn().unwrap();
        // The prompt means main has run past the prctl.
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        assert!(line.contains("password"), "{line}");
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:"))
            .map(|v| v.trim().to_string())
    };
    match thp_of(false) {
        // Kernels before 5.0 do not report it.
        None => eprintln!("no THP_enabled in /proc/PID/status: not checked"),
        Some(v) => {
            assert_eq!(v, "0", "THP on in bhyt");
            assert_eq!(thp_of(true).as_deref(), Some("1"), "BHYT_ALLOW_THP ignored");
        }
    }
}
