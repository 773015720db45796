//! Diagnoses, prices and one visit's claim: what a visit of a given
//! diagnosis costs, with its lines (Decision 130 XML1/2/3 records).

use super::*;
/// A diagnosis with its own cost, length-of-stay and admission profile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dx {
    pub(crate) code: &'static str,
    pub(crate) weight: f64,
    pub(crate) admit: f64,
    pub(crate) cost: f64,
    pub(crate) los: f64,
    pub(crate) season: Season,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Season {
    None,
    Respiratory,
    Dengue,
}

pub(crate) const DIAGNOSES: &[Dx] = &[
    Dx {
        code: "J06",
        weight: 14.0,
        admit: 0.03,
        cost: 0.6,
        los: 3.0,
        season: Season::Respiratory,
    },
    Dx {
        code: "J18",
        weight: 3.0,
        admit: 0.45,
        cost: 1.4,
        los: 6.0,
        season: Season::Respiratory,
    },
    Dx {
        code: "J44",
        weight: 2.5,
        admit: 0.25,
        cost: 1.3,
        los: 7.0,
        season: Season::Respiratory,
    },
    Dx {
        code: "J20",
        weight: 6.0,
        admit: 0.08,
        cost: 0.7,
        los: 4.0,
        season: Season::Respiratory,
    },
    Dx {
        code: "A90",
        weight: 1.5,
        admit: 0.35,
        cost: 1.0,
        los: 5.0,
        season: Season::Dengue,
    },
    Dx {
        code: "I10",
        weight: 16.0,
        admit: 0.03,
        cost: 0.9,
        los: 5.0,
        season: Season::None,
    },
    Dx {
        code: "E11",
        weight: 9.0,
        admit: 0.05,
        cost: 1.2,
        los: 7.0,
        season: Season::None,
    },
    Dx {
        code: "K29",
        weight: 8.0,
        admit: 0.05,
        cost: 0.7,
        los: 4.0,
        season: Season::None,
    },
    Dx {
        code: "M54",
        weight: 6.0,
        admit: 0.04,
        cost: 0.7,
        los: 6.0,
        season: Season::None,
    },
    Dx {
        code: "A09",
        weight: 4.0,
        admit: 0.15,
        cost: 0.7,
        los: 3.0,
        season: Season::None,
    },
    Dx {
        code: "N39",
        weight: 3.0,
        admit: 0.12,
        cost: 0.8,
        los: 4.0,
        season: Season::None,
    },
    Dx {
        code: "I63",
        weight: 1.0,
        admit: 0.85,
        cost: 3.0,
        los: 10.0,
        season: Season::None,
    },
    Dx {
        code: "I20",
        weight: 2.0,
        admit: 0.35,
        cost: 2.2,
        los: 6.0,
        season: Season::None,
    },
    Dx {
        code: "I50",
        weight: 1.2,
        admit: 0.55,
        cost: 2.0,
        los: 8.0,
        season: Season::None,
    },
    Dx {
        code: "K35",
        weight: 0.6,
        admit: 0.95,
        cost: 3.5,
        los: 5.0,
        season: Season::None,
    },
    Dx {
        code: "S52",
        weight: 1.0,
        admit: 0.40,
        cost: 2.5,
        los: 5.0,
        season: Season::None,
    },
    Dx {
        code: "O80",
        weight: 1.2,
        admit: 0.98,
        cost: 2.0,
        los: 3.0,
        season: Season::None,
    },
    Dx {
        code: "C34",
        weight: 0.4,
        admit: 0.60,
        cost: 5.0,
        los: 9.0,
        season: Season::None,
    },
    Dx {
        code: "H10",
        weight: 3.0,
        admit: 0.0,
        cost: 0.4,
        los: 1.0,
        season: Season::None,
    },
    Dx {
        code: "L03",
        weight: 1.5,
        admit: 0.15,
        cost: 0.8,
        los: 5.0,
        season: Season::None,
    },
    Dx {
        code: "Z00",
        weight: 3.0,
        admit: 0.0,
        cost: 0.3,
        los: 1.0,
        season: Season::None,
    },
];

/// Seasonal multiplier of a diagnosis on a day of the year.
pub(crate) fn season_factor(s: Season, day_of_year: u32) -> f64 {
    let t = day_of_year as f64 / 365.25 * std::f64::consts::TAU;
    match s {
        Season::None => 1.0,
        // Peaks around mid-January.
        Season::Respiratory => 1.0 + 0.45 * (t - 0.25).cos(),
        // Rainy-season dengue: peaks in August.
        Season::Dengue => (1.0 + 1.6 * (t - 3.85).cos()).max(0.15),
    }
}

/// The department (MA_KHOA, the Ministry's department list) that treats a
/// visit: outpatients at the examination department (K01), inpatients by
/// the diagnosis — internal medicine (K03), cardiology (K04), infectious
/// diseases (K11), dermatology (K13), neurology (K14), general surgery
/// (K19), orthopaedics and trauma (K24), obstetrics (K27), ophthalmology
/// (K30), oncology (K32). A commune station's beds are one ward (K03).
pub(crate) fn department(dx: &Dx, inpatient: bool, commune: bool) -> &'static str {
    if !inpatient {
        return "K01";
    }
    if commune {
        return "K03";
    }
    match dx.code {
        "I10" | "I20" | "I50" => "K04",
        "A90" | "A09" => "K11",
        "L03" => "K13",
        "I63" => "K14",
        "K35" => "K19",
        "S52" => "K24",
        "O80" => "K27",
        "H10" => "K30",
        "C34" => "K32",
        _ => "K03",
    }
}

/// Diagnosis a visit is upcoded to: a costlier code of the same complaint.
pub(crate) fn upcode(code: &str) -> &'static str {
    match code {
        "J06" | "J20" => "J18",
        "I10" => "I20",
        "K29" => "K35",
        "M54" => "S52",
        "A09" => "A90",
        "H10" | "Z00" => "L03",
        "N39" => "I50",
        "E11" => "I63",
        _ => "J44",
    }
}

pub(crate) fn dx_by_code(code: &str) -> &'static Dx {
    DIAGNOSES
        .iter()
        .find(|d| d.code == code)
        .unwrap_or(&DIAGNOSES[0])
}

/// Overall price level, calibrated so that one province-year at scale 1
/// costs ≈ 780 billion VND (checked by a test).
pub(crate) const PRICE_LEVEL: f64 = 0.746;
/// Overall volume level, calibrated to ≈ 1.53 M visits per province-year.
pub(crate) const VOLUME_LEVEL: f64 = 1.03;

/// The price list: one price per item code, the same for every facility of
/// a grade (services) or of the province (drugs and supplies, by tender).
pub(crate) struct PriceList {
    pub(crate) labs: Vec<(String, f64)>,
    pub(crate) imaging: Vec<(String, f64)>,
    pub(crate) ct: Vec<(String, f64)>,
    pub(crate) drugs: Vec<(String, f64)>,
    pub(crate) supplies: Vec<(String, f64)>,
    pub(crate) procedures: Vec<(String, f64)>,
}

pub(crate) const EXAM: (&str, f64) = ("02.1896", 38_700.0);
/// Specialist examination: the upcoding target of a plain examination.
pub(crate) const EXAM_SPECIALIST: (&str, f64) = ("02.1900", 69_700.0);
pub(crate) const BED: (&str, f64) = ("K03.1930", 240_000.0);

impl PriceList {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, "prices", 0));
        let mut list = |n: usize,
                        code: &dyn Fn(usize) -> String,
                        lo: f64,
                        hi: f64,
                        pow: i32|
         -> Vec<(String, f64)> {
            (0..n)
                .map(|i| {
                    (
                        code(i),
                        (lo + (hi - lo) * rng.gen::<f64>().powi(pow)).round(),
                    )
                })
                .collect()
        };
        PriceList {
            labs: list(40, &|i| format!("22.{:04}", 100 + i), 22_000.0, 95_000.0, 1),
            imaging: list(30, &|i| format!("18.{:04}", 1 + i), 60_000.0, 140_000.0, 1),
            ct: list(
                10,
                &|i| format!("18.{:04}", 100 + i),
                500_000.0,
                900_000.0,
                1,
            ),
            drugs: list(900, &|i| format!("40.{}", 1 + i), 900.0, 9_000.0, 2),
            supplies: list(60, &|i| format!("N03.{:02}", 1 + i), 18_000.0, 48_000.0, 1),
            procedures: list(
                200,
                &|i| format!("10.{:04}", 1 + i),
                600_000.0,
                3_000_000.0,
                2,
            ),
        }
    }
}

/// Price factor of a grade for technical services (higher grades are paid more).
pub(crate) fn grade_factor(grade: &str) -> f64 {
    match grade {
        "special" => 1.15,
        "I" => 1.08,
        "II" => 1.0,
        "III" => 0.93,
        "IV" => 0.85,
        _ => 1.0,
    }
}

pub(crate) fn pick_dx(
    rng: &mut ChaCha8Rng,
    day_of_year: u32,
    inpatient: bool,
    epidemic: bool,
    heavy: bool,
) -> &'static Dx {
    let w = |d: &Dx| {
        let mut base = d.weight * season_factor(d.season, day_of_year);
        if epidemic && d.season == Season::Dengue {
            base *= 8.0;
        }
        if heavy && d.cost >= 2.0 {
            base *= 4.0;
        }
        if inpatient {
            base * d.admit
        } else {
            base * (1.0 - d.admit)
        }
    };
    let total: f64 = DIAGNOSES.iter().map(w).sum();
    let mut x = rng.gen::<f64>() * total;
    for d in DIAGNOSES {
        x -= w(d);
        if x <= 0.0 {
            return d;
        }
    }
    &DIAGNOSES[0]
}

/// How a visit departs from the normal one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mods {
    pub(crate) los_factor: f64,
    pub(crate) force_inpatient_los: Option<i64>,
    pub(crate) extra_labs: u32,
    pub(crate) extra_imaging: u32,
    pub(crate) upcode: bool,
    pub(crate) drug_supply_price: f64,
    pub(crate) service_price: f64,
    /// The doctor (index within the facility) who over-prescribes: three
    /// more tests, one more image and twice the drug quantities on the
    /// visits they see.
    pub(crate) overprescriber: Option<u32>,
    /// The department (MA_KHOA) that over-services its own patients: the
    /// same extra tests, image and drug quantities on every visit it
    /// treats.
    pub(crate) overservicing_department: Option<&'static str>,
}

impl Default for Mods {
    fn default() -> Self {
        Mods {
            los_factor: 1.0,
            force_inpatient_los: None,
            extra_labs: 0,
            extra_imaging: 0,
            upcode: false,
            drug_supply_price: 1.0,
            service_price: 1.0,
            overprescriber: None,
            overservicing_department: None,
        }
    }
}

pub(crate) fn total_of(h: &Hoso) -> f64 {
    h.xml1
        .get("T_TONGCHI_BV")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Drug names: a few of the list are the classes reviewers watch.
pub(crate) fn drug_name(idx: usize) -> String {
    if idx.is_multiple_of(20) {
        format!("Vitamin B{} 100mg", idx % 12 + 1)
    } else if idx.is_multiple_of(35) {
        "Glutathion 600mg".to_string()
    } else if idx.is_multiple_of(45) {
        "Citicolin 500mg".to_string()
    } else if idx.is_multiple_of(50) {
        format!("Thuốc {idx} (biệt dược gốc)")
    } else {
        format!("Thuốc {idx}")
    }
}

pub(crate) fn vnd(x: f64) -> String {
    format!("{}", x.round() as i64)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn make_visit(
    rng: &mut ChaCha8Rng,
    ctx: &Ctx,
    ma_lk: &str,
    f: &Facility,
    day: NaiveDate,
    inpatient: bool,
    dx: &Dx,
    card: &str,
    price: f64,
    noise: &LogNormal<f64>,
    mods: &Mods,
) -> Hoso {
    let prices = ctx.prices;
    let inpatient = inpatient || mods.force_inpatient_los.is_some();
    let mut xml2 = Vec::new();
    let mut xml3 = Vec::new();
    let mut stt = 0u32;
    let dept = department(dx, inpatient, f.profile.level == "commune");
    let doctor_idx = rng.gen_range(0..40u32);
    let doctor = format!("BS{}{:03}", &f.code, doctor_idx);
    let over = mods.overprescriber == Some(doctor_idx)
        || mods.overservicing_department.is_some_and(|d| d == dept);
    let hour = rng.gen_range(7..17);
    let minute = rng.gen_range(0..60);
    let commune = f.profile.level == "commune";
    let los = if let Some(l) = mods.force_inpatient_los {
        l
    } else if inpatient {
        let l = (dx.los * noise.sample(rng) * if commune { 0.4 } else { 1.0 }).round();
        ((l * mods.los_factor).round() as i64).clamp(1, 60)
    } else {
        0
    };
    let admit = day - Duration::days(los);
    let ts = |d: NaiveDate| format!("{}{hour:02}{minute:02}", d.format("%Y%m%d"));
    let service = price * grade_factor(f.profile.grade) * mods.service_price;
    let goods = price * mods.drug_supply_price * f.goods_price;
    // Claim-to-claim price spread (drawn only when configured, so the
    // default world keeps its random stream).
    let sigma = ctx.cfg.unit_price_noise;
    let line_price = |rng: &mut ChaCha8Rng| {
        if sigma > 0.0 {
            LogNormal::new(-sigma * sigma / 2.0, sigma)
                .expect("valid")
                .sample(rng)
        } else {
            1.0
        }
    };
    let line3 = |stt: &mut u32, nhom: u32, code: &str, name: &str, qty: f64, unit: f64| {
        *stt += 1;
        let amount = qty * unit;
        let mut r = Record::default();
        r.set("MA_LK", ma_lk)
            .set("STT", stt.to_string())
            .set("MA_DICH_VU", code)
            .set("MA_NHOM", nhom.to_string())
            .set("TEN_DICH_VU", name)
            .set("DON_VI_TINH", "Lần")
            .set("SO_LUONG", crate::format::plain_number(qty))
            .set("DON_GIA_BV", vnd(unit))
            .set("DON_GIA_BH", vnd(unit))
            .set("TYLE_TT_DV", "100")
            .set("TYLE_TT_BH", "100")
            .set("THANH_TIEN_BV", vnd(amount))
            .set("THANH_TIEN_BH", vnd(amount))
            .set("MA_KHOA", dept)
            .set("MA_BAC_SI", &doctor)
            .set("NGAY_YL", ts(admit));
        r
    };
    let pick = |rng: &mut ChaCha8Rng, list: &[(String, f64)]| -> (String, f64) {
        let (c, p) = &list[rng.gen_range(0..list.len())];
        (c.clone(), *p)
    };
    let exam = if mods.upcode { EXAM_SPECIALIST } else { EXAM };
    xml3.push(line3(
        &mut stt,
        13,
        exam.0,
        "Khám bệnh",
        1.0,
        (exam.1 * service).round(),
    ));
    let n_lab = if inpatient {
        rng.gen_range(3..9)
    } else {
        rng.gen_range(0..3)
    } + mods.extra_labs
        + 3 * u32::from(over);
    for _ in 0..n_lab {
        let (code, unit) = pick(rng, &prices.labs);
        xml3.push(line3(
            &mut stt,
            1,
            &code,
            "Xét nghiệm",
            1.0,
            (unit * service).round(),
        ));
    }
    let n_img = if inpatient {
        rng.gen_range(1..3)
    } else {
        (rng.gen::<f64>() < 0.25 * dx.cost.min(2.0)) as u32
    } + mods.extra_imaging
        + u32::from(over);
    for _ in 0..n_img {
        let list = if mods.upcode {
            &prices.ct
        } else {
            &prices.imaging
        };
        let (code, unit) = pick(rng, list);
        xml3.push(line3(
            &mut stt,
            2,
            &code,
            "Chẩn đoán hình ảnh",
            1.0,
            (unit * service).round(),
        ));
    }
    if inpatient {
        let bed = (BED.1 * service * if commune { 0.4 } else { 1.0 }).round();
        xml3.push(line3(
            &mut stt,
            15,
            BED.0,
            "Giường bệnh nội trú",
            los as f64,
            bed,
        ));
        if dx.cost > 2.0 {
            let (code, unit) = pick(rng, &prices.procedures);
            xml3.push(line3(
                &mut stt,
                8,
                &code,
                "Phẫu thuật, thủ thuật",
                1.0,
                (unit * service * dx.cost / 2.0).round(),
            ));
        }
        let n_sup = rng.gen_range(1..4);
        for _ in 0..n_sup {
            let (code, unit) = pick(rng, &prices.supplies);
            let qty = rng.gen_range(1..6) as f64;
            xml3.push(line3(
                &mut stt,
                10,
                &code,
                "Vật tư y tế",
                qty,
                (unit * goods * line_price(rng)).round(),
            ));
        }
    }
    let n_drug = if inpatient {
        rng.gen_range(4..11)
    } else {
        rng.gen_range(1..5)
    };
    let days_of_drugs = if inpatient {
        los.max(1) as f64
    } else {
        rng.gen_range(5..31) as f64
    };
    for _ in 0..n_drug {
        stt += 1;
        let idx = rng.gen_range(0..prices.drugs.len());
        let (code, unit) = prices.drugs[idx].clone();
        // A drug has one price; heavier diagnoses use more of it.
        let unit = (unit * goods * line_price(rng)).round();
        let qty = (days_of_drugs * rng.gen_range(1..3) as f64 * dx.cost.sqrt())
            .round()
            .max(1.0)
            * if over { 2.0 } else { 1.0 };
        let amount = qty * unit;
        let mut r = Record::default();
        r.set("MA_LK", ma_lk)
            .set("STT", stt.to_string())
            .set("MA_THUOC", code)
            .set("MA_NHOM", "4")
            .set("TEN_THUOC", drug_name(idx))
            .set("DON_VI_TINH", "Viên")
            .set("SO_LUONG", crate::format::plain_number(qty))
            .set("DON_GIA", vnd(unit))
            .set("THANH_TIEN_BV", vnd(amount))
            .set("THANH_TIEN_BH", vnd(amount))
            .set("TYLE_TT_BH", "100")
            .set("MA_KHOA", dept)
            .set("MA_BAC_SI", &doctor)
            .set("NGAY_YL", ts(admit));
        xml2.push(r);
    }
    let sum = |rows: &[Record]| -> f64 {
        rows.iter()
            .filter_map(|r| r.get("THANH_TIEN_BV").and_then(|v| v.parse::<f64>().ok()))
            .sum()
    };
    let total = sum(&xml2) + sum(&xml3);
    let drugs = sum(&xml2);
    let supplies: f64 = xml3
        .iter()
        .filter(|r| r.get("MA_NHOM") == Some("10"))
        .filter_map(|r| r.get("THANH_TIEN_BV").and_then(|v| v.parse::<f64>().ok()))
        .sum();
    let benefit = match card.as_bytes().get(2) {
        Some(b'1') | Some(b'2') => 1.0,
        Some(b'3') => 0.95,
        _ => 0.8,
    };
    let fund = (total * benefit).round();
    let age_years = match dx.code {
        "O80" => rng.gen_range(18..42),
        "I63" | "I50" | "C34" | "J44" => rng.gen_range(50..92),
        _ => rng.gen_range(0..90),
    };
    let birth = NaiveDate::from_ymd_opt(
        day.year() - age_years,
        rng.gen_range(1..13),
        rng.gen_range(1..29),
    )
    .expect("valid");
    let mut x1 = Record::default();
    x1.set("MA_LK", ma_lk)
        .set("STT", "1")
        .set("MA_BN", format!("BN{}", &card[5..]))
        .set("HO_TEN", "Người bệnh tổng hợp")
        .set("SO_CCCD", format!("0{}", &card[3..]))
        .set("NGAY_SINH", format!("{}0000", birth.format("%Y%m%d")))
        .set(
            "GIOI_TINH",
            if dx.code == "O80" {
                "2".to_string()
            } else {
                rng.gen_range(1..3).to_string()
            },
        )
        .set("DIA_CHI", "Địa chỉ tổng hợp")
        .set("MA_THE_BHYT", card)
        .set("MA_DKBD", &f.code)
        .set("MA_BENH_CHINH", dx.code)
        .set("MA_BENH_KT", "")
        .set("MA_DOITUONG_KCB", "1")
        .set("NGAY_VAO", ts(admit))
        .set("NGAY_RA", ts(day))
        .set("SO_NGAY_DTRI", los.to_string())
        .set("KET_QUA_DTRI", "1")
        .set("MA_LOAI_RV", "1")
        .set("T_THUOC", vnd(drugs))
        .set("T_VTYT", vnd(supplies))
        .set("T_TONGCHI_BV", vnd(total))
        .set("T_TONGCHI_BH", vnd(total))
        .set("T_BNTT", "0")
        .set("T_BNCCT", vnd(total - fund))
        .set("T_BHTT", vnd(fund))
        .set("T_NGUONKHAC", "0")
        .set("NAM_QT", day.year().to_string())
        .set("THANG_QT", day.month().to_string())
        .set(
            "MA_LOAI_KCB",
            match (inpatient, commune) {
                (true, true) => "06",
                (true, false) => "03",
                (false, _) => "01",
            },
        )
        .set("MA_KHOA", dept)
        .set("MA_CSKCB", &f.code);
    Hoso {
        xml1: x1,
        xml2,
        xml3,
    }
}
