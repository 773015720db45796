//! Integration tests of the ingest on real files: envelopes written to disk,
//! a real store (Parquet + SQLite) read back with Polars.

mod common;

use std::io::Write;

use bhyt::qd130::{Hoso, Style};
use common::*;
use polars::prelude::*;

const CARD_93: &str = "DN4930123456789";
const CARD_HN: &str = "HT2010987654321";
const CARD_94: &str = "GD4940111222333";

fn visits_df(env: &Env) -> DataFrame {
    env.store()
        .visits()
        .unwrap()
        .sort(["ma_lk"], Default::default())
        .collect()
        .unwrap()
}

#[test]
fn envelope_with_several_visits_is_enriched() {
    let env = Env::new();
    let hosos = vec![
        visit("LK1", "93001", CARD_93, true),
        visit("LK2", "93001", CARD_HN, false),
        visit("LK3", "93001", CARD_94, false),
    ];
    write(&env.path("in/env.xml"), "93001", &hosos, &Style::default());
    let r = env.ingest(&["in"]);
    assert_eq!(r.visits.read, 3);
    assert_eq!(r.visits.accepted, 3);
    assert_eq!(r.lines.read, 3 + 3 + 5);
    assert_eq!(r.lines.accepted, 11);
    let df = visits_df(&env);
    let col_str = |n: &str| df.column(n).unwrap().str().unwrap().clone();
    let oop = df
        .column("out_of_province")
        .unwrap()
        .bool()
        .unwrap()
        .clone();
    // Hà Nội card at a Hậu Giang facility is out of province; a Sóc Trăng
    // card is not, since 2025 both provinces belong to Cần Thơ (92).
    assert_eq!(oop.get(0), Some(false));
    assert_eq!(oop.get(1), Some(true));
    assert_eq!(oop.get(2), Some(false));
    assert_eq!(col_str("card_province").get(2), Some("92"));
    assert_eq!(col_str("facility_province").get(0), Some("92"));
    assert_eq!(col_str("visit_group").get(0), Some("inpatient"));
    assert_eq!(col_str("visit_group").get(1), Some("outpatient_exam"));
    assert_eq!(col_str("age_band").get(0), Some("65-79"));
    assert_eq!(col_str("dx3").get(0), Some("J44"));
    let los = df.column("los_days").unwrap().i32().unwrap().clone();
    assert_eq!(los.get(0), Some(5));
    assert_eq!(los.get(1), Some(0));
    let week = df.column("iso_week").unwrap().i32().unwrap().clone();
    assert_eq!(week.get(0), Some(2));
    let n_lines = df.column("n_lines").unwrap().i32().unwrap().clone();
    assert_eq!(n_lines.get(0), Some(5));
    let lines = env.store().lines().unwrap().collect().unwrap();
    assert_eq!(lines.height(), 11);
    let bed: f64 = lines
        .clone()
        .lazy()
        .filter(col("category").eq(lit("bed")))
        .select([col("amount").sum()])
        .collect()
        .unwrap()
        .column("amount")
        .unwrap()
        .f64()
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(bed, 5.0 * 254868.0);
}

/// One failing record per validation rule, in one batch.
#[test]
fn each_rule_quarantines_its_record() {
    let env = Env::new();
    let good = visit("OK1", "93001", CARD_93, false);
    let mut missing = visit("R_MISSING", "93001", CARD_93, false);
    missing.xml1.remove("MA_BENH_CHINH");
    let mut bad_date = visit("R_DATE", "93001", CARD_93, false);
    bad_date.xml1.set("NGAY_RA", "20241345");
    let mut bad_num = visit("R_NUM", "93001", CARD_93, false);
    bad_num.xml1.set("T_TONGCHI_BV", "12,5abc");
    let mut before = visit("R_BEFORE", "93001", CARD_93, false);
    before.xml1.set("NGAY_VAO", "202401110800");
    let mut negative = visit("R_NEG", "93001", CARD_93, false);
    negative.xml3.push(service("R_NEG", 9, 1, -1.0, 22756.0));
    retotal(&mut negative);
    let mut line_total = visit("R_LINE", "93001", CARD_93, false);
    line_total.xml3[0].set("THANH_TIEN_BV", "99999");
    retotal(&mut line_total);
    let mut visit_total = visit("R_TOTAL", "93001", CARD_93, false);
    visit_total.xml1.set("T_TONGCHI_BV", "1");
    let mut orphan = visit("R_ORPHAN", "93001", CARD_93, false);
    orphan.xml3.push(service("NO_SUCH_VISIT", 1, 1, 1.0, 100.0));
    let dup = visit("R_DUP", "93001", CARD_93, false);
    let unknown = visit("R_FAC", "99999", CARD_93, false);
    let card = visit("R_CARD", "93001", "XX9930123456789", false);
    let hosos = vec![
        good,
        missing,
        bad_date,
        bad_num,
        before,
        negative,
        line_total,
        visit_total,
        orphan,
        dup.clone(),
        dup,
        unknown,
        card,
    ];
    write(
        &env.path("in/rules.xml"),
        "93001",
        &hosos,
        &Style::default(),
    );
    let r = env.ingest(&["in"]);
    let rule = |t: &str, name: &str| {
        r.by_rule
            .get(&(t.to_string(), name.to_string()))
            .copied()
            .unwrap_or(0)
    };
    for name in [
        "missing_field",
        "bad_date",
        "bad_number",
        "discharge_before_admission",
        "visit_total_mismatch",
        "duplicate_visit",
        "unknown_facility",
        "invalid_card",
    ] {
        assert_eq!(rule("XML1", name), 1, "rule {name}: {:?}", r.by_rule);
    }
    assert_eq!(rule("XML3", "negative_amount"), 1, "{:?}", r.by_rule);
    assert_eq!(rule("XML3", "line_total_mismatch"), 1, "{:?}", r.by_rule);
    assert_eq!(rule("XML3", "orphan_line"), 1, "{:?}", r.by_rule);
    // Visits accepted: OK1, R_NEG, R_LINE, R_ORPHAN and the first R_DUP.
    assert_eq!(r.visits.read, 13);
    assert_eq!(r.visits.accepted, 5);
    assert_eq!(r.visits.quarantined, 8);
    assert!(r.lines.quarantined >= 3 + 8 * 3);
    // The quarantine table names file, record, field and reason.
    let q = env
        .store()
        .quarantine()
        .unwrap()
        .filter(col("rule").eq(lit("bad_date")))
        .collect()
        .unwrap();
    assert_eq!(q.height(), 1);
    assert_eq!(
        q.column("record").unwrap().str().unwrap().get(0),
        Some("R_DATE")
    );
    assert_eq!(
        q.column("field").unwrap().str().unwrap().get(0),
        Some("NGAY_RA")
    );
    assert!(q
        .column("source_file")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .ends_with("rules.xml"));
    assert!(q
        .column("reason")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .contains("NGAY_RA"));
    // Store and manifest agree with the report.
    assert_eq!(count(env.store().visits().unwrap()), 5);
    let m = env.store().manifest().unwrap().sources().unwrap();
    assert_eq!(
        m[0].visits_read,
        m[0].visits_accepted + m[0].visits_quarantined
    );
    assert_eq!(
        m[0].lines_read,
        m[0].lines_accepted + m[0].lines_quarantined
    );
    let total_q = count(
        env.store()
            .quarantine()
            .unwrap()
            .filter(col("table_name").neq(lit("facilities"))),
    );
    assert_eq!(total_q as u64, r.visits.quarantined + r.lines.quarantined);
}

#[test]
fn unreadable_files_are_reported_and_the_batch_goes_on() {
    let env = Env::new();
    let good = vec![visit("G1", "93001", CARD_93, false)];
    write(
        &env.path("in/a_good.xml"),
        "93001",
        &good,
        &Style::default(),
    );
    // Truncated envelope.
    let buf = envelope(&[visit("T1", "93001", CARD_93, false)]);
    std::fs::write(env.path("in/b_truncated.xml"), &buf[..buf.len() / 2]).unwrap();
    // Bad base64 in one HOSO of an otherwise good envelope.
    let buf = envelope(&[
        visit("B1", "93001", CARD_93, false),
        visit("B2", "93001", CARD_93, false),
    ]);
    let text = String::from_utf8(buf).unwrap();
    let i = text.find("<NOIDUNGFILE>").unwrap() + "<NOIDUNGFILE>".len();
    let broken = format!("{}!!!{}", &text[..i], &text[i + 3..]);
    std::fs::write(env.path("in/c_base64.xml"), broken).unwrap();
    // UTF-16 file.
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("<GIAMDINHHS/>".encode_utf16().flat_map(|u| u.to_le_bytes()))
        .collect();
    std::fs::write(env.path("in/d_utf16.xml"), utf16).unwrap();
    // Not XML at all.
    std::fs::write(env.path("in/e_garbage.xml"), "this is not <xml").unwrap();
    std::fs::write(env.path("in/notes.txt"), "ignored").unwrap();

    let r = env.ingest(&["in"]);
    let rejected: Vec<&str> = r.files_rejected.iter().map(|(f, _)| f.as_str()).collect();
    assert!(
        rejected.iter().any(|f| f.ends_with("b_truncated.xml")),
        "{rejected:?}"
    );
    assert!(
        rejected.iter().any(|f| f.ends_with("d_utf16.xml")),
        "{rejected:?}"
    );
    assert!(
        rejected.iter().any(|f| f.ends_with("e_garbage.xml")),
        "{rejected:?}"
    );
    for (_, e) in &r.files_rejected {
        assert!(!e.contains('\n'), "one-line error: {e}");
        assert!(e.contains("position"), "names a position: {e}");
    }
    assert_eq!(r.files_skipped.len(), 1);
    assert_eq!(r.documents_unreadable, 1);
    assert_eq!(r.errors.len(), 1);
    assert!(
        r.errors[0].contains("c_base64.xml") && r.errors[0].contains("byte"),
        "{}",
        r.errors[0]
    );
    // G1 and B2 are in; B1's readable rows are quarantined.
    let df = visits_df(&env);
    let ids: Vec<&str> = df
        .column("ma_lk")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(ids, vec!["B2", "G1"]);
    // B1's XML1 was the broken document: its lines are quarantined with the reason.
    assert_eq!(
        r.by_rule
            .get(&("document".into(), "unreadable_document".into())),
        Some(&1)
    );
    assert_eq!(
        r.by_rule
            .get(&("XML3".into(), "unreadable_document".into())),
        Some(&2)
    );
}

#[test]
fn reingest_is_idempotent_and_a_corrected_file_replaces_its_rows() {
    // Small flushes: each source has its own parts.
    reingest_case(7);
    // Default flushes: small sources share the run's parts.
    reingest_case(100_000);
}

fn reingest_case(flush_rows: usize) {
    let env = Env::new();
    let ingest = |env: &Env| env.ingest_with(&["in"], |o| o.flush_rows = flush_rows);
    let mut hosos = vec![
        visit("A1", "93001", CARD_93, true),
        visit("A2", "93001", CARD_HN, false),
    ];
    write(&env.path("in/a.xml"), "93001", &hosos, &Style::default());
    let r1 = ingest(&env);
    assert_eq!(r1.files_ingested, 1);
    let before = count(env.store().visits_all_versions().unwrap());
    let lines_before = count(env.store().lines().unwrap());
    let r2 = ingest(&env);
    assert_eq!(r2.files_ingested, 0);
    assert_eq!(r2.files_unchanged, 1);
    assert_eq!(r2.visits.read, 0);
    assert_eq!(count(env.store().visits_all_versions().unwrap()), before);
    assert_eq!(count(env.store().lines().unwrap()), lines_before);
    // The same bytes under another name add nothing either.
    std::fs::create_dir_all(env.path("copy")).unwrap();
    std::fs::copy(env.path("in/a.xml"), env.path("copy/a-again.xml")).unwrap();
    let rc = env.ingest_with(&["copy"], |o| o.flush_rows = flush_rows);
    assert_eq!((rc.files_ingested, rc.files_unchanged), (0, 1));
    assert_eq!(count(env.store().visits_all_versions().unwrap()), before);

    // Correct the file: A2 gets an extra line.
    hosos[1].xml3.push(service("A2", 7, 2, 1.0, 150000.0));
    retotal(&mut hosos[1]);
    write(&env.path("in/a.xml"), "93001", &hosos, &Style::default());
    let r3 = ingest(&env);
    assert_eq!(r3.files_replaced, 1);
    assert_eq!(
        count(env.store().visits_all_versions().unwrap()),
        2,
        "old rows are gone"
    );
    assert_eq!(count(env.store().lines().unwrap()), lines_before + 1);
    let df = visits_df(&env);
    let total = df
        .column("total_cost")
        .unwrap()
        .f64()
        .unwrap()
        .get(1)
        .unwrap();
    assert_eq!(total, 10.0 * 1976.0 + 35226.0 + 2.0 * 22756.0 + 150000.0);

    // A resubmission of A1 in another file supersedes the first version.
    let mut again = visit("A1", "93001", CARD_93, true);
    again.xml3.push(service("A1", 8, 2, 1.0, 50000.0));
    retotal(&mut again);
    write(
        &env.path("in/b_resubmitted.xml"),
        "93001",
        &[again],
        &Style::default(),
    );
    ingest(&env);
    assert_eq!(count(env.store().visits_all_versions().unwrap()), 3);
    let df = visits_df(&env);
    assert_eq!(df.height(), 2, "nothing counted twice");
    let n_lines = df.column("n_lines").unwrap().i32().unwrap().get(0);
    assert_eq!(n_lines, Some(6));
    let lines_a1 = lines_of(&env, "A1");
    assert_eq!(lines_a1, 6);
}

/// Stores written before content hashes were BLAKE3 hold SHA-256 digests:
/// an unchanged file is still skipped, and the same bytes under a new name,
/// read again, count once (their visits are versions of the same claims).
#[test]
fn a_store_with_sha256_identities_still_counts_each_visit_once() {
    use sha2::{Digest, Sha256};
    let env = Env::new();
    let hosos = vec![
        visit("A1", "93001", CARD_93, true),
        visit("A2", "93001", CARD_HN, false),
    ];
    write(&env.path("in/a.xml"), "93001", &hosos, &Style::default());
    env.ingest(&["in"]);
    let db = rusqlite::Connection::open(env.path("data/manifest.sqlite")).unwrap();
    let hash: String = db
        .query_row("SELECT content_hash FROM sources", [], |r| r.get(0))
        .unwrap();
    assert!(hash.starts_with("b3:") && hash.len() == 67, "{hash}");
    let legacy = hex::encode(Sha256::digest(std::fs::read(env.path("in/a.xml")).unwrap()));
    db.execute("UPDATE sources SET content_hash = ?1", [&legacy])
        .unwrap();
    drop(db);
    let (visits, lines) = (
        count(env.store().visits().unwrap()),
        count(env.store().lines().unwrap()),
    );
    let r = env.ingest(&["in"]);
    assert_eq!((r.files_ingested, r.files_unchanged), (0, 1));
    std::fs::create_dir_all(env.path("copy")).unwrap();
    std::fs::copy(env.path("in/a.xml"), env.path("copy/a-again.xml")).unwrap();
    let r = env.ingest(&["copy"]);
    assert_eq!(
        r.files_ingested, 1,
        "read again: the old identity is SHA-256"
    );
    assert_eq!(
        count(env.store().visits().unwrap()),
        visits,
        "nothing counted twice"
    );
    assert_eq!(count(env.store().lines().unwrap()), lines);
    // From then on the new identity is known (the copy read again is
    // unchanged at its path, the third is the same bytes).
    std::fs::copy(env.path("in/a.xml"), env.path("copy/a-third.xml")).unwrap();
    let r = env.ingest(&["copy"]);
    assert_eq!((r.files_ingested, r.files_unchanged), (0, 2));
}

#[test]
fn layouts_and_compression_that_circulate_all_ingest() {
    let env = Env::new();
    let styles = [
        ("plain", Style::default()),
        (
            "wrapped",
            Style {
                wrap_base64: true,
                ..Default::default()
            },
        ),
        (
            "inline",
            Style {
                inline: true,
                pretty_crlf: true,
                ..Default::default()
            },
        ),
        (
            "bom_crlf",
            Style {
                bom: true,
                pretty_crlf: true,
                ..Default::default()
            },
        ),
        (
            "nowrap",
            Style {
                no_wrappers: true,
                ..Default::default()
            },
        ),
    ];
    for (i, (name, style)) in styles.iter().enumerate() {
        let h = vec![visit(&format!("S{i}"), "93001", CARD_93, true)];
        write(&env.path(&format!("in/{name}.xml")), "93001", &h, style);
    }
    // Decision 4210 field names, one-digit visit type, 8-digit birth date.
    let mut old = visit("OLD", "93001", CARD_93, true);
    for (from, to) in [
        ("MA_THE_BHYT", "MA_THE"),
        ("MA_BENH_CHINH", "MA_BENH"),
        ("T_TONGCHI_BV", "T_TONGCHI"),
    ] {
        let v = old.xml1.get(from).unwrap().to_string();
        old.xml1.remove(from);
        old.xml1.set(to, v);
    }
    old.xml1
        .set("MA_LOAI_KCB", "3")
        .set("NGAY_SINH", "19500515");
    for l in old.xml3.iter_mut() {
        let v = l.get("THANH_TIEN_BV").unwrap().to_string();
        l.remove("THANH_TIEN_BV");
        l.set("THANH_TIEN", v);
    }
    write(
        &env.path("in/old4210.xml"),
        "93001",
        &[old],
        &Style::default(),
    );
    // gzip and zip.
    let raw = envelope(&[visit("GZ", "93001", CARD_93, false)]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    std::fs::write(env.path("in/packed.xml.gz"), gz.finish().unwrap()).unwrap();
    let raw = envelope(&[visit("ZIP", "93001", CARD_93, false)]);
    let mut z = ::zip::ZipWriter::new(std::fs::File::create(env.path("in/batch.zip")).unwrap());
    z.start_file(
        "inner/zipped.xml",
        ::zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    z.write_all(&raw).unwrap();
    z.finish().unwrap();
    // Bare inner documents: XML1 in one file, XML2 and XML3 in others.
    let bare = visit("BARE", "93001", CARD_93, true);
    let docs = bhyt::qd130::inner_documents(&bare, &Style::default(), true);
    std::fs::write(env.path("in/bare/xml1.xml"), &docs[0])
        .ok()
        .or_else(|| {
            std::fs::create_dir_all(env.path("in/bare")).unwrap();
            std::fs::write(env.path("in/bare/xml1.xml"), &docs[0]).ok()
        });
    std::fs::write(env.path("in/bare/xml2.xml"), &docs[1]).unwrap();
    std::fs::write(env.path("in/bare/xml3.xml"), &docs[2]).unwrap();

    let r = env.ingest(&["in"]);
    assert!(r.files_rejected.is_empty(), "{:?}", r.files_rejected);
    assert_eq!(r.visits.quarantined, 0, "{:?}", r.by_rule);
    assert_eq!(r.lines.quarantined, 0, "{:?}", r.by_rule);
    assert_eq!(r.visits.accepted, 5 + 1 + 2 + 1);
    let df = visits_df(&env);
    let old = df
        .clone()
        .lazy()
        .filter(col("ma_lk").eq(lit("OLD")))
        .collect()
        .unwrap();
    assert_eq!(
        old.column("visit_type").unwrap().str().unwrap().get(0),
        Some("03")
    );
    assert_eq!(
        old.column("age_years").unwrap().i32().unwrap().get(0),
        Some(73)
    );
    let bare_lines = lines_of(&env, "BARE");
    assert_eq!(bare_lines, 5);
}

#[test]
fn foreign_csv_extract_maps_onto_the_canonical_schema() {
    let env = Env::new();
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"));
    let r = env.ingest_with(&[], |o| {
        o.inputs = vec![root.join("datasets/foreign-extract/claims")];
        o.mapping = Some(root.join("datasets/mappings/warehouse.toml"));
        o.registry = Some(root.join("datasets/foreign-extract/registry.csv"));
    });
    assert!(r.files_rejected.is_empty(), "{:?}", r.files_rejected);
    assert_eq!(r.visits.read, 4);
    assert_eq!(r.visits.accepted, 3, "{:?}", r.by_rule);
    assert_eq!(
        r.by_rule
            .get(&("XML1".into(), "visit_total_mismatch".into())),
        Some(&1)
    );
    assert_eq!(
        r.by_rule.get(&("XML3".into(), "orphan_line".into())),
        Some(&1)
    );
    let df = visits_df(&env);
    let types: Vec<&str> = df
        .column("visit_type")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert!(types.contains(&"03") && types.contains(&"01"), "{types:?}");
    let lines = env.store().lines().unwrap().collect().unwrap();
    let tables: Vec<&str> = lines
        .column("source_table")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert!(tables.contains(&"XML2") && tables.contains(&"XML3"));
}

#[test]
fn registry_and_budget_rows_are_validated() {
    let env = Env::new();
    std::fs::write(
        env.path("registry.csv"),
        format!("{REGISTRY}93003,Trạm y tế xã,93,commune,IV,public,general\n93004,X,77,nowhere,II,public,general\n,Missing code,93,commune,IV,public,general\n"),
    )
    .unwrap();
    std::fs::write(
        env.path("budgets.csv"),
        "facility_code,year,budget_vnd\n93001,2024,120000000000\n93001,2025,-5\n99999,2024,100\n93002,20x4,100\n",
    )
    .unwrap();
    std::fs::create_dir_all(env.path("in")).unwrap();
    let r = env.ingest_with(&["in"], |o| o.budgets = Some(env.path("budgets.csv")));
    let f = r.facilities.unwrap();
    assert_eq!((f.read, f.accepted, f.quarantined), (6, 4, 2));
    let b = r.budgets.unwrap();
    assert_eq!((b.read, b.accepted, b.quarantined), (4, 1, 3));
    let reg = env.store().facilities().unwrap().collect().unwrap();
    assert_eq!(reg.height(), 4);
}

/// Raw personal values never reach any output file.
#[test]
fn no_raw_personal_value_in_any_output() {
    let env = Env::new();
    let mut hosos = vec![
        visit("P1", "93001", CARD_93, true),
        visit("P2", "93001", &format!("{CARD_HN};{CARD_94}"), false),
    ];
    // A record that will be quarantined still carries personal values.
    let mut bad = visit("P3", "93001", "DN4930555666777", false);
    bad.xml1.set("T_TONGCHI_BV", "1");
    hosos.push(bad);
    let mut bad_card = visit("P4", "93001", "ZZ9990555666777", false);
    bad_card.xml1.set("HO_TEN", "Lê Thị Riêng Tư");
    hosos.push(bad_card);
    // A malformed birth date is quarantined without quoting it.
    let mut bad_birth = visit("P5", "93001", CARD_93, false);
    bad_birth.xml1.set("NGAY_SINH", "19501399xyz");
    hosos.push(bad_birth);
    write(&env.path("in/p.xml"), "93001", &hosos, &Style::default());
    let r = env.ingest(&["in"]);
    assert!(r.visits.quarantined >= 2);
    let raw_values = [
        CARD_93,
        CARD_HN,
        CARD_94,
        "DN4930555666777",
        "ZZ9990555666777",
        "0123456789",
        "0555666777",
        "Nguyễn Văn Mẫu",
        "Lê Thị Riêng Tư",
        "093123456789",
        "Ấp Thạnh Lợi",
        "0912345678",
        "BNP1",
        "BNP3",
        "19501399xyz",
    ];
    let report_text = format!("{r:?}");
    let mut scanned = 0;
    for e in walkdir::WalkDir::new(env.path("data")) {
        let e = e.unwrap();
        if !e.file_type().is_file() {
            continue;
        }
        let p = e.path();
        let texts: Vec<String> = if p.extension().is_some_and(|x| x == "parquet") {
            // Parquet pages are compressed: scan the decoded values.
            let df = LazyFrame::scan_parquet(
                PlRefPath::new(p.to_string_lossy().as_ref()),
                Default::default(),
            )
            .unwrap()
            .collect()
            .unwrap();
            df.columns()
                .iter()
                .map(|c| {
                    let s = c.cast(&DataType::String).unwrap();
                    s.str()
                        .unwrap()
                        .iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join("\u{1}")
                })
                .collect()
        } else {
            vec![String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned()]
        };
        for t in texts.iter().chain(std::iter::once(&report_text)) {
            for v in raw_values {
                assert!(!t.contains(v), "raw value {v} found in {}", p.display());
            }
        }
        scanned += 1;
    }
    assert!(scanned >= 5, "scanned {scanned} files");
}

mod balance {
    use super::*;
    use proptest::prelude::*;

    fn corrupt(h: &mut Hoso, what: u8, field: usize) {
        let fields = [
            "MA_LK",
            "NGAY_RA",
            "T_TONGCHI_BV",
            "MA_THE_BHYT",
            "MA_CSKCB",
            "MA_LOAI_KCB",
            "NGAY_VAO",
        ];
        let f = fields[field % fields.len()];
        match what % 5 {
            0 => h.xml1.remove(f),
            1 => {
                h.xml1.set(f, "x?");
            }
            2 => {
                if let Some(l) = h.xml3.first_mut() {
                    l.set("SO_LUONG", "-3");
                }
            }
            3 => {
                if let Some(l) = h.xml2.first_mut() {
                    l.set("MA_LK", "ELSEWHERE");
                }
            }
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
        #[test]
        fn accepted_plus_quarantined_equals_read(ops in proptest::collection::vec((0u8..5, 0usize..7, any::<bool>()), 1..6)) {
            let env = Env::new();
            let mut hosos = Vec::new();
            for (i, (what, field, inpatient)) in ops.iter().enumerate() {
                let mut h = visit(&format!("V{i}"), "93001", CARD_93, *inpatient);
                corrupt(&mut h, *what, *field);
                hosos.push(h);
            }
            write(&env.path("in/p.xml"), "93001", &hosos, &Style::default());
            // Env::ingest asserts the balance of the report.
            let r = env.ingest(&["in"]);
            prop_assert_eq!(r.visits.read, ops.len() as u64);
            let stored = env.store().visits_all_versions().map(count).unwrap_or(0) as u64;
            prop_assert_eq!(stored, r.visits.accepted);
        }
    }
}

/// Hospital systems that write inner documents inline sometimes keep their
/// XML declarations; systems also reorder FILEHOSO children.
#[test]
fn inline_documents_with_declarations_and_reordered_children() {
    let env = Env::new();
    let h = visit("INL", "93001", CARD_93, true);
    let docs = bhyt::qd130::inner_documents(&h, &Style::default(), true);
    let mut x = String::from("<?xml version=\"1.0\"?>\r\n<GIAMDINHHS><THONGTINDONVI><MACSKCB>93001</MACSKCB></THONGTINDONVI><THONGTINHOSO><NGAYLAP>20240111</NGAYLAP><DANHSACHHOSO><HOSO>");
    for (kind, d) in ["XML1", "XML2", "XML3"].iter().zip(docs.iter()) {
        // NOIDUNGFILE before LOAIHOSO, inner document inline with its declaration.
        x.push_str(&format!(
            "<FILEHOSO><NOIDUNGFILE>{}</NOIDUNGFILE><LOAIHOSO>{kind}</LOAIHOSO></FILEHOSO>",
            String::from_utf8(d.clone()).unwrap()
        ));
    }
    // Extra tables are skipped whatever the order: this one is not XML.
    x.push_str(
        "<FILEHOSO><LOAIHOSO>XML5</LOAIHOSO><NOIDUNGFILE>bm90IHhtbA==</NOIDUNGFILE></FILEHOSO>",
    );
    x.push_str(
        "<FILEHOSO><NOIDUNGFILE>JVBERi0xLjQ=</NOIDUNGFILE><LOAIHOSO>XML8</LOAIHOSO></FILEHOSO>",
    );
    x.push_str("</HOSO></DANHSACHHOSO></THONGTINHOSO></GIAMDINHHS>");
    std::fs::create_dir_all(env.path("in")).unwrap();
    std::fs::write(env.path("in/inline.xml"), x).unwrap();
    let r = env.ingest(&["in"]);
    assert!(r.files_rejected.is_empty(), "{:?}", r.files_rejected);
    assert_eq!(
        (r.visits.accepted, r.lines.accepted),
        (1, 5),
        "{:?}",
        r.by_rule
    );
}

#[test]
fn the_store_and_the_order_of_sources_do_not_depend_on_the_flush_size() {
    // Flushes of 3 rows queue many batches to the run's writer thread, and
    // sources that write their own files publish between shared ones; the
    // rows and the order the sources are published in must not change.
    let ingest = |flush_rows: usize| {
        let env = Env::new();
        for f in 0..6 {
            let fac = if f % 2 == 0 { "93001" } else { "93002" };
            let hosos: Vec<Hoso> = (0..1 + f)
                .map(|i| visit(&format!("F{f}V{i}"), fac, CARD_93, i % 2 == 0))
                .collect();
            write(
                &env.path(&format!("in/{f}.xml")),
                fac,
                &hosos,
                &Style::default(),
            );
        }
        let r = env.ingest_with(&["in"], |o| o.flush_rows = flush_rows);
        assert_eq!(r.files_ingested, 6);
        let sources: Vec<(i64, String, i64, i64)> = env
            .store()
            .manifest()
            .unwrap()
            .sources()
            .unwrap()
            .into_iter()
            .map(|s| {
                let name = s.path.rsplit('/').next().unwrap_or_default().to_string();
                (s.seq, name, s.visits_accepted, s.lines_accepted)
            })
            .collect();
        let lines = env
            .store()
            .lines()
            .unwrap()
            .select([col("visit_key"), col("stt"), col("amount")])
            .sort(["visit_key", "stt"], Default::default())
            .collect()
            .unwrap();
        (sources, visits_df(&env), lines)
    };
    let (sources, visits, lines) = ingest(3);
    assert_eq!(sources.len(), 6);
    assert_eq!(visits.height(), 21);
    let (sources_d, visits_d, lines_d) = ingest(100_000);
    assert_eq!(sources, sources_d);
    assert!(visits.equals_missing(&visits_d));
    assert!(lines.equals_missing(&lines_d));
}
