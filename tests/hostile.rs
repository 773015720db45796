//! Hostile inputs (issue 14): each costs one line in the report, never the
//! batch or the machine's memory. The bombs are made here, small on disk
//! and large inflated, and the limits set low so the test stays fast.

mod common;

use std::io::Write;

use bhyt::ingest::source::Limits;
use bhyt::qd130::Style;
use common::*;

const CARD: &str = "DN4930123456789";

fn good(env: &Env) {
    write(
        &env.path("in/a_good.xml"),
        "93001",
        &[visit("G1", "93001", CARD, false)],
        &Style::default(),
    );
}

fn small_limits(o: &mut bhyt::ingest::IngestOptions) {
    o.limits = Limits {
        max_decompressed_bytes: 1 << 20,
        max_text_bytes: 1 << 20,
    };
}

/// 64 MiB of zeros, deflated to about 64 KB.
fn zeros_gz() -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..64 {
        e.write_all(&chunk).unwrap();
    }
    e.finish().unwrap()
}

fn rejected_for<'a>(r: &'a bhyt::ingest::IngestReport, file: &str) -> &'a str {
    r.files_rejected
        .iter()
        .find(|(f, _)| f.ends_with(file))
        .map(|(_, e)| e.as_str())
        .unwrap_or_else(|| panic!("{file} not rejected: {:?}", r.files_rejected))
}

#[test]
fn a_gzip_bomb_is_rejected_and_the_batch_goes_on() {
    let env = Env::new();
    good(&env);
    let bomb = zeros_gz();
    assert!(bomb.len() < 1 << 20, "{} bytes on disk", bomb.len());
    std::fs::write(env.path("in/b_bomb.xml.gz"), &bomb).unwrap();
    let r = env.ingest_with(&["in"], small_limits);
    let e = rejected_for(&r, "b_bomb.xml.gz");
    assert!(
        e.contains("max_decompressed_bytes") && !e.contains('\n'),
        "{e}"
    );
    assert_eq!(r.visits.accepted, 1);
}

#[test]
fn a_zip_member_that_inflates_past_the_limit_is_rejected() {
    let env = Env::new();
    good(&env);
    let f = std::fs::File::create(env.path("in/c_archive.zip")).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    z.start_file("bomb.xml", opts).unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..64 {
        z.write_all(&chunk).unwrap();
    }
    z.start_file("ok.xml", opts).unwrap();
    z.write_all(&envelope(&[visit("Z1", "93001", CARD, false)]))
        .unwrap();
    z.finish().unwrap();
    let r = env.ingest_with(&["in"], small_limits);
    let e = rejected_for(&r, "c_archive.zip!bomb.xml");
    assert!(e.contains("max_decompressed_bytes"), "{e}");
    // The archive's other member and the folder's other file are in.
    assert_eq!(r.visits.accepted, 2);
}

#[test]
fn a_field_of_megabytes_is_rejected_not_buffered() {
    let env = Env::new();
    good(&env);
    // A valid envelope whose inline document grows without end.
    let text = String::from_utf8(envelope(&[visit("H1", "93001", CARD, false)])).unwrap();
    let i = text.find("<NOIDUNGFILE>").unwrap() + "<NOIDUNGFILE>".len();
    let mut huge = text.as_bytes()[..i].to_vec();
    huge.extend(std::iter::repeat_n(b'A', 3 << 20));
    huge.extend_from_slice(&text.as_bytes()[i..]);
    std::fs::write(env.path("in/d_field.xml"), huge).unwrap();
    let r = env.ingest_with(&["in"], small_limits);
    let e = rejected_for(&r, "d_field.xml");
    assert!(e.contains("max_text_bytes"), "{e}");
    assert_eq!(r.visits.accepted, 1);
}

#[cfg(unix)]
#[test]
fn dangling_links_and_link_loops_are_reported_and_the_rest_is_read() {
    let env = Env::new();
    good(&env);
    std::os::unix::fs::symlink(env.path("in/nowhere.xml"), env.path("in/e_dangling.xml")).unwrap();
    std::fs::create_dir_all(env.path("in/sub")).unwrap();
    std::os::unix::fs::symlink(env.path("in"), env.path("in/sub/loop")).unwrap();
    let r = env.ingest(&["in"]);
    assert_eq!(r.visits.accepted, 1);
    let skipped: Vec<String> = r
        .files_skipped
        .iter()
        .map(|(f, why)| format!("{f}: {why}"))
        .collect();
    assert!(
        skipped
            .iter()
            .any(|s| s.contains("e_dangling.xml") && s.contains("dangling")),
        "{skipped:?}"
    );
    assert!(skipped.iter().any(|s| s.contains("loop")), "{skipped:?}");
}

#[test]
fn utf16_without_a_byte_order_mark_is_named() {
    let env = Env::new();
    good(&env);
    let text = String::from_utf8(envelope(&[visit("U1", "93001", CARD, false)])).unwrap();
    let le: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    std::fs::write(env.path("in/f_le.xml"), le).unwrap();
    std::fs::write(env.path("in/g_be.xml"), be).unwrap();
    let r = env.ingest(&["in"]);
    assert!(rejected_for(&r, "f_le.xml").contains("UTF-16LE"));
    assert!(rejected_for(&r, "g_be.xml").contains("UTF-16BE"));
    assert_eq!(r.visits.accepted, 1);
}

#[test]
fn a_batch_with_another_key_is_refused() {
    use bhyt::privacy::{KeySource, Pseudonymizer};
    let env = Env::new();
    good(&env);
    env.ingest(&["in"]);
    write(
        &env.path("more/b.xml"),
        "93001",
        &[visit("G2", "93001", CARD, false)],
        &Style::default(),
    );
    let other = Pseudonymizer::new(b"another-key-9876543210fedcba", KeySource::Env).unwrap();
    let opts = bhyt::ingest::IngestOptions {
        inputs: vec![env.path("more")],
        ..Default::default()
    };
    let e = bhyt::ingest::run(&env.store(), &opts, &other)
        .unwrap_err()
        .to_string();
    assert!(e.contains("another pseudonymisation key"), "{e}");
    // Nothing of the refused batch is in; the right key goes on.
    assert_eq!(count(env.store().visits().unwrap()), 1);
    assert_eq!(env.ingest(&["more"]).visits.accepted, 1);
    assert_eq!(count(env.store().visits().unwrap()), 2);
}

#[test]
fn a_field_longer_than_any_claims_system_writes_is_quarantined() {
    let env = Env::new();
    let mut h = visit("L1", "93001", CARD, false);
    h.xml1.set("MA_KHOA", "K".repeat(3 << 20));
    write(
        &env.path("in/a.xml"),
        "93001",
        &[h, visit("L2", "93001", CARD, false)],
        &Style::default(),
    );
    let r = env.ingest(&["in"]);
    assert_eq!(r.visits.accepted, 1);
    assert_eq!(
        r.by_rule.get(&("XML1".into(), "too_long".into())),
        Some(&1),
        "{:?}",
        r.by_rule
    );
    // The reason names the field and the length, not the value.
    let q = env.store().quarantine().unwrap().collect().unwrap();
    let reasons: Vec<String> = q
        .column("reason")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .map(String::from)
        .collect();
    let reason = reasons.iter().find(|r| r.contains("MA_KHOA")).unwrap();
    assert!(reason.contains("3145728") && reason.len() < 200, "{reason}");
}

#[test]
fn registries_and_budgets_with_vietnamese_headers_are_read_and_unknown_columns_named() {
    let env = Env::new();
    good(&env);
    std::fs::write(
        env.path("dm.csv"),
        "ma_cskcb,ten_co_so,ma_tinh,tuyen,hang,loai_hinh,ghi_chu\n\
         93001,Bệnh viện Đa khoa tỉnh,93,tỉnh,I,đa khoa,mới\n",
    )
    .unwrap();
    std::fs::write(
        env.path("dt.csv"),
        "ma_cskcb,nam,du_toan_vnd\n93001,2024,1500000000\n",
    )
    .unwrap();
    let r = env.ingest_with(&["in"], |o| {
        o.registry = Some(env.path("dm.csv"));
        o.budgets = Some(env.path("dt.csv"));
    });
    assert_eq!(r.budgets.as_ref().unwrap().accepted, 1, "{r:?}");
    assert!(
        r.warnings.len() == 1 && r.warnings[0].contains("`ghi_chu`"),
        "{:?}",
        r.warnings
    );
    let f = env.store().facilities().unwrap().collect().unwrap();
    let get = |c: &str| f.column(c).unwrap().str().unwrap().get(0).map(String::from);
    assert_eq!(get("name").as_deref(), Some("Bệnh viện Đa khoa tỉnh"));
    assert_eq!(get("kind").as_deref(), Some("general"));
    assert_eq!(get("level").as_deref(), Some("provincial"));
    let b = env.store().budgets().unwrap().collect().unwrap();
    assert_eq!(
        b.column("budget_vnd").unwrap().f64().unwrap().get(0),
        Some(1.5e9)
    );
}

/// Damage part-way: the complete HOSO records before it are ingested, the
/// rest recorded as lost with the reason; `--damaged reject` refuses the file.
fn damaged_case(n: usize, cut_in: usize, garbage: bool) {
    let hosos: Vec<_> = (0..n)
        .map(|i| visit(&format!("D{i:05}"), "93001", CARD, i % 2 == 0))
        .collect();
    let bytes = envelope(&hosos);
    let text = String::from_utf8(bytes).unwrap();
    if n > 1000 {
        assert!(
            text.len() > 8 << 20,
            "{} bytes: not a large envelope",
            text.len()
        );
    }
    // Start of HOSO number `cut_in` (0-based).
    let at = text.match_indices("<HOSO>").nth(cut_in).unwrap().0 + 200;
    let damaged: Vec<u8> = if garbage {
        let mut b = text.as_bytes().to_vec();
        b.splice(at..at, b"<<<&&&".iter().copied());
        b
    } else {
        text.as_bytes()[..at].to_vec()
    };
    for salvage in [true, false] {
        let env = Env::new();
        good(&env);
        std::fs::write(env.path("in/b_damaged.xml"), &damaged).unwrap();
        let r = env.ingest_with(&["in"], |o| {
            o.flush_rows = 100_000;
            if !salvage {
                o.damaged = bhyt::ingest::Damaged::Reject;
            }
        });
        if salvage {
            assert_eq!(r.visits.accepted as usize, 1 + cut_in, "{r:?}");
            assert!(r.files_rejected.is_empty(), "{:?}", r.files_rejected);
            assert_eq!(
                r.by_rule.get(&("document".into(), "damaged_file".into())),
                Some(&1)
            );
            let e = r.errors.iter().find(|e| e.contains("damaged")).unwrap();
            assert!(
                e.contains("b_damaged.xml") && e.contains(&format!("{cut_in} complete HOSO")),
                "{e}"
            );
        } else {
            assert_eq!(r.visits.accepted, 1);
            rejected_for(&r, "b_damaged.xml");
        }
    }
}

#[test]
fn a_truncated_envelope_keeps_its_complete_records() {
    damaged_case(5, 3, false);
}

#[test]
fn garbage_inside_one_record_keeps_the_records_before_it() {
    damaged_case(5, 2, true);
}

#[test]
fn a_large_damaged_envelope_streams_and_keeps_its_complete_records() {
    // Past the 8 MiB of "small" envelopes: the streaming reader.
    damaged_case(4000, 3500, false);
}

#[test]
fn a_zip_member_declaring_exabytes_is_not_trusted() {
    let env = Env::new();
    good(&env);
    let body = envelope(&[visit("Z9", "93001", CARD, false)]);
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        z.start_file("claims.xml", opts).unwrap();
        z.write_all(&body).unwrap();
        z.finish().unwrap();
    }
    let mut bytes = buf.into_inner();
    // Every zip64 extra field (0x0001) whose first size is the real one now
    // declares 2^62 bytes uncompressed.
    let real = (body.len() as u64).to_le_bytes();
    let mut patched = 0;
    for i in 0..bytes.len().saturating_sub(12) {
        if bytes[i..i + 2] == [1, 0] && bytes[i + 4..i + 12] == real {
            bytes[i + 4..i + 12].copy_from_slice(&(1u64 << 62).to_le_bytes());
            patched += 1;
        }
    }
    assert!(patched >= 1, "no zip64 size field found");
    std::fs::write(env.path("in/z.zip"), &bytes).unwrap();
    let mut a = zip::ZipArchive::new(std::fs::File::open(env.path("in/z.zip")).unwrap()).unwrap();
    assert_eq!(a.by_name("claims.xml").unwrap().size(), 1 << 62);
    drop(a);
    // Before: "memory allocation of 4611686018427387904 bytes failed", the
    // whole batch lost. Now the member is read for what it holds (or
    // rejected with one line) and the batch goes on.
    let r = env.ingest(&["in"]);
    assert!(r.visits.accepted >= 1, "{r:?}");
    for (_, e) in &r.files_rejected {
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn a_mapping_file_names_the_registry_and_budget_columns() {
    let env = Env::new();
    good(&env);
    std::fs::write(
        env.path("reg.csv"),
        "CSKCB,TinhTP,TenDonVi\n93001,93,Trung tâm Y tế\n",
    )
    .unwrap();
    std::fs::write(
        env.path("bud.csv"),
        "CSKCB,Nam,KinhPhi\n93001,2024,900000000\n",
    )
    .unwrap();
    std::fs::write(
        env.path("map.toml"),
        "[registry.columns]\nfacility_code = \"CSKCB\"\nprovince_code = \"TinhTP\"\nname = \"TenDonVi\"\n\
         [budgets.columns]\nfacility_code = \"CSKCB\"\nbudget_vnd = \"KinhPhi\"\n",
    )
    .unwrap();
    let r = env.ingest_with(&["in"], |o| {
        o.registry = Some(env.path("reg.csv"));
        o.budgets = Some(env.path("bud.csv"));
        o.mapping = Some(env.path("map.toml"));
    });
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.facilities.as_ref().unwrap().accepted, 1);
    assert_eq!(r.budgets.as_ref().unwrap().accepted, 1);
    let f = env.store().facilities().unwrap().collect().unwrap();
    assert_eq!(
        f.column("name").unwrap().str().unwrap().get(0),
        Some("Trung tâm Y tế")
    );
}
