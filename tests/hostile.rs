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
