//! Builders of small, consistent claims for the integration tests: every
//! visit's total equals the sum of its lines unless a test breaks it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bhyt::ingest::{self, IngestOptions, IngestReport};
use bhyt::privacy::{KeySource, Pseudonymizer};
use bhyt::qd130::{write_envelope, Hoso, Record, Style};
use bhyt::store::Store;

pub const REGISTRY: &str = "facility_code,name,province_code,level,grade,ownership,kind
93001,Bệnh viện Đa khoa tỉnh,93,provincial,II,public,general
93002,Trung tâm Y tế huyện A,93,district,III,public,general
01001,Bệnh viện Hà Nội,01,central,I,public,general
";

pub fn key() -> Pseudonymizer {
    Pseudonymizer::new(b"test-key-0123456789abcdef", KeySource::Env).unwrap()
}

/// A drug line.
pub fn drug(ma_lk: &str, stt: u32, qty: f64, price: f64) -> Record {
    let mut r = Record::default();
    r.set("MA_LK", ma_lk)
        .set("STT", stt.to_string())
        .set("MA_THUOC", "40.218")
        .set("MA_NHOM", "4")
        .set("TEN_THUOC", "Paracetamol 500mg")
        .set("DON_VI_TINH", "Viên")
        .set("SO_LUONG", fmt(qty))
        .set("DON_GIA", fmt(price))
        .set("THANH_TIEN_BV", fmt(qty * price))
        .set("THANH_TIEN_BH", fmt(qty * price))
        .set("MA_KHOA", "K01")
        .set("MA_BAC_SI", "BS0001")
        .set("NGAY_YL", "202401100800");
    r
}

/// A service line of MA_NHOM `nhom`.
pub fn service(ma_lk: &str, stt: u32, nhom: u32, qty: f64, price: f64) -> Record {
    let mut r = Record::default();
    r.set("MA_LK", ma_lk)
        .set("STT", stt.to_string())
        .set("MA_DICH_VU", format!("DV.{nhom:02}"))
        .set("MA_NHOM", nhom.to_string())
        .set("TEN_DICH_VU", "Dịch vụ")
        .set("SO_LUONG", fmt(qty))
        .set("DON_GIA_BV", fmt(price))
        .set("DON_GIA_BH", fmt(price))
        .set("TYLE_TT_DV", "100")
        .set("THANH_TIEN_BV", fmt(qty * price))
        .set("THANH_TIEN_BH", fmt(qty * price))
        .set("MA_KHOA", "K01")
        .set("MA_BAC_SI", "BS0002");
    r
}

pub fn fmt(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// An outpatient visit (or inpatient with `inpatient`) with a drug line, an
/// exam line, and a bed-day line when inpatient.
pub fn visit(ma_lk: &str, facility: &str, card: &str, inpatient: bool) -> Hoso {
    let mut lines2 = vec![drug(ma_lk, 1, 10.0, 1976.0)];
    let mut lines3 = vec![
        service(ma_lk, 2, 13, 1.0, 35226.0),
        service(ma_lk, 3, 1, 2.0, 22756.0),
    ];
    if inpatient {
        lines3.push(service(ma_lk, 4, 15, 5.0, 254868.0));
        lines2.push(drug(ma_lk, 5, 3.0, 4353.0));
    }
    let mut x1 = Record::default();
    x1.set("MA_LK", ma_lk)
        .set("STT", "1")
        .set("MA_BN", format!("BN{ma_lk}"))
        .set("HO_TEN", "Nguyễn Văn Mẫu")
        .set("SO_CCCD", "093123456789")
        .set("NGAY_SINH", "195005150000")
        .set("GIOI_TINH", "1")
        .set("DIA_CHI", "Ấp Thạnh Lợi, xã Vị Thanh")
        .set("DIEN_THOAI", "0912345678")
        .set("MA_THE_BHYT", card)
        .set("MA_DKBD", "93001")
        .set("MA_BENH_CHINH", "J44")
        .set("MA_BENH_KT", "I10;E11")
        .set("MA_DOITUONG_KCB", "1")
        .set(
            "NGAY_VAO",
            if inpatient {
                "202401050734"
            } else {
                "202401100734"
            },
        )
        .set("NGAY_RA", "202401100930")
        .set("MA_LOAI_KCB", if inpatient { "03" } else { "01" })
        .set("MA_KHOA", "K01")
        .set("MA_CSKCB", facility)
        .set("NAM_QT", "2024")
        .set("THANG_QT", "1");
    if inpatient {
        x1.set("SO_NGAY_DTRI", "5");
    }
    let mut h = Hoso {
        xml1: x1,
        xml2: lines2,
        xml3: lines3,
    };
    retotal(&mut h);
    h
}

/// Sets the visit totals to the sum of its lines.
pub fn retotal(h: &mut Hoso) {
    let sum: f64 = h
        .xml2
        .iter()
        .chain(h.xml3.iter())
        .filter_map(|l| l.get("THANH_TIEN_BV").and_then(|v| v.parse::<f64>().ok()))
        .sum();
    let drugs: f64 = h
        .xml2
        .iter()
        .filter_map(|l| l.get("THANH_TIEN_BV").and_then(|v| v.parse::<f64>().ok()))
        .sum();
    h.xml1
        .set("T_TONGCHI_BV", fmt(sum))
        .set("T_TONGCHI_BH", fmt(sum))
        .set("T_THUOC", fmt(drugs))
        .set("T_BHTT", fmt((sum * 0.8).round()))
        .set("T_BNCCT", fmt(sum - (sum * 0.8).round()))
        .set("T_BNTT", "0");
}

pub fn write(path: &Path, facility: &str, hosos: &[Hoso], style: &Style) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(path).unwrap();
    write_envelope(&mut f, facility, "20240111", hosos, style).unwrap();
}

/// An envelope of facility 93001 in memory.
/// Writes `dir/a.xml` (claims `<p>1` and `<p>2` of `facility`) and
/// `dir/b.xml` (`<p>1` resubmitted with one more service): two versions of
/// one claim, the newer current.
pub fn write_resubmission(dir: &Path, facility: &str, p: &str) {
    let (one, two) = (format!("{p}1"), format!("{p}2"));
    let first = vec![
        visit(&one, facility, "DN4930123456789", true),
        visit(&two, facility, "HT2010987654321", false),
    ];
    write(&dir.join("a.xml"), facility, &first, &Style::default());
    let mut again = visit(&one, facility, "DN4930123456789", true);
    again.xml3.push(service(&one, 8, 2, 1.0, 50000.0));
    retotal(&mut again);
    write(&dir.join("b.xml"), facility, &[again], &Style::default());
}

pub fn envelope(hosos: &[Hoso]) -> Vec<u8> {
    let mut buf = Vec::new();
    write_envelope(&mut buf, "93001", "20240111", hosos, &Style::default()).unwrap();
    buf
}

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("registry.csv"), REGISTRY).unwrap();
        Env { dir }
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn store(&self) -> Store {
        Store::open(self.path("data")).unwrap()
    }
    pub fn ingest(&self, inputs: &[&str]) -> IngestReport {
        self.ingest_with(inputs, |_| {})
    }
    pub fn ingest_with(&self, inputs: &[&str], f: impl FnOnce(&mut IngestOptions)) -> IngestReport {
        let mut opts = IngestOptions {
            inputs: inputs.iter().map(|i| self.path(i)).collect(),
            registry: Some(self.path("registry.csv")),
            flush_rows: 7,
            ..Default::default()
        };
        f(&mut opts);
        let r = ingest::run(&self.store(), &opts, &key()).unwrap();
        assert!(r.visits.balanced(), "visits unbalanced: {:?}", r.visits);
        assert!(r.lines.balanced(), "lines unbalanced: {:?}", r.lines);
        r
    }
}

pub fn count(lf: polars::prelude::LazyFrame) -> usize {
    lf.collect().unwrap().height()
}

/// Stored lines (current versions) of one visit.
pub fn lines_of(env: &Env, ma_lk: &str) -> usize {
    use polars::prelude::*;
    count(
        env.store()
            .lines()
            .unwrap()
            .filter(col("ma_lk").eq(lit(ma_lk))),
    )
}

/// Generates claims with `cfg` under `dir/gen` and ingests them into a
/// store at `dir/data` (registry and budgets included).
pub fn generate_and_ingest(dir: &Path, cfg: &bhyt::generate::GenConfig) -> Store {
    bhyt::generate::generate(cfg, &dir.join("gen"), false).unwrap();
    let store = Store::open(dir.join("data")).unwrap();
    let opts = IngestOptions {
        inputs: vec![dir.join("gen/claims")],
        registry: Some(dir.join("gen/facilities.csv")),
        budgets: Some(dir.join("gen/budgets.csv")),
        ..Default::default()
    };
    let r = ingest::run(&store, &opts, &key()).unwrap();
    assert!(r.visits.balanced() && r.lines.balanced());
    store
}

/// Detection of a generated world under `dir` (store in `dir/data`,
/// weekly features from [`weekly_features`] in `dir/features`): fits a model
/// at `dir/model.json`, writes to `dir/out` and `dir/alerts.sqlite`.
pub fn detect_options(dir: &Path, config: bhyt::detect::DetectConfig) -> bhyt::alerts::RunOptions {
    bhyt::alerts::RunOptions {
        features: dir.join("features/facility_period.parquet"),
        data_dir: Some(dir.join("data")),
        store_snapshot: None,
        model: dir.join("model.json"),
        fit: true,
        train_to: None,
        config,
        as_of: None,
        alerts_db: dir.join("alerts.sqlite"),
        out: dir.join("out"),
        lang: bhyt::detect::Lang::Vi,
        progress: false,
    }
}

/// Writes the weekly features table of a store under `dir`.
pub fn weekly_features(store: &Store, dir: &Path) {
    let cfg = bhyt::features::FeatureConfig {
        period: bhyt::features::Period::Week,
        ..Default::default()
    };
    let mut t = bhyt::features::compute(store, &cfg).unwrap();
    bhyt::features::write(&mut t, dir).unwrap();
}
