//! Synthetic province claims, written as facilities submit them (Decision
//! 130 envelopes), with a facility registry and yearly budgets.
//!
//! Calibrated to the seed province (Hậu Giang, 2023): 4 provincial
//! hospitals, 7 district health centres, 75 commune stations, 2 private
//! hospitals, 3 private clinics, 1 company clinic; ≈ 1.53 M visits and
//! ≈ 780 billion VND a year at scale 1, about 1 in 8 visits inpatient.
//! Deterministic from the seed: each facility-week has its own RNG stream, so
//! the output does not depend on thread scheduling.
//!
//! This is test and demo data. The engine must not rely on anything here
//! (codes, numbering, profiles): it is judged on claims written by others.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, NaiveDate};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Poisson};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::qd130::{write_envelope, Hoso, Record, Style};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config: {0}")]
    Config(String),
}

/// Generator configuration (TOML under `datasets/generator/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenConfig {
    pub seed: u64,
    /// Number of provinces (taken in order from `province_codes`).
    pub provinces: usize,
    /// Pre-2025 codes of the provinces to generate; their current provinces differ.
    pub province_codes: Vec<String>,
    /// Volume multiplier: 1.0 ≈ 1.53 M visits per province-year.
    pub scale: f64,
    /// First day (yyyy-mm-dd).
    pub start: NaiveDate,
    /// Number of days.
    pub days: u32,
    /// Yearly growth of volume.
    pub volume_growth: f64,
    /// Yearly growth of prices.
    pub price_growth: f64,
    /// Inject the labelled anomalies and benign look-alikes.
    pub anomalies: bool,
    /// Write the envelopes gzip-compressed (`.xml.gz`, which `ingest` reads):
    /// generated envelopes shrink about tenfold (the bundled sample).
    pub compress: bool,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 130,
            provinces: 1,
            province_codes: ["93", "86", "82", "89", "79"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            scale: 1.0,
            start: NaiveDate::from_ymd_opt(2023, 1, 1).expect("valid date"),
            days: 365,
            volume_growth: 0.04,
            price_growth: 0.05,
            anomalies: true,
            compress: false,
        }
    }
}

/// Kind of facility in the seed network, with its volume and case profile.
#[derive(Debug, Clone, Copy)]
struct Profile {
    level: &'static str,
    grade: &'static str,
    ownership: &'static str,
    kind: &'static str,
    name: &'static str,
    /// Mean visits per day at scale 1.
    daily: f64,
    /// Share of visits that are inpatient.
    inpatient: f64,
    /// Share of patients with another province's card.
    out_of_province: f64,
}

fn network() -> Vec<(u32, Profile)> {
    let p = |level, grade, ownership, kind, name, daily, inpatient, oop| Profile {
        level,
        grade,
        ownership,
        kind,
        name,
        daily,
        inpatient,
        out_of_province: oop,
    };
    let mut v = vec![
        (
            1,
            p(
                "provincial",
                "I",
                "public",
                "general",
                "Bệnh viện Đa khoa tỉnh",
                900.0,
                0.15,
                0.08,
            ),
        ),
        (
            2,
            p(
                "provincial",
                "II",
                "public",
                "general",
                "Bệnh viện Đa khoa khu vực",
                600.0,
                0.15,
                0.06,
            ),
        ),
        (
            3,
            p(
                "provincial",
                "II",
                "public",
                "specialist",
                "Bệnh viện Sản Nhi",
                250.0,
                0.17,
                0.07,
            ),
        ),
        (
            4,
            p(
                "provincial",
                "II",
                "public",
                "specialist",
                "Bệnh viện Lao và Bệnh phổi",
                250.0,
                0.16,
                0.05,
            ),
        ),
    ];
    for i in 0..7 {
        v.push((
            11 + i,
            p(
                "district",
                "III",
                "public",
                "general",
                "Trung tâm Y tế huyện",
                220.0,
                0.10,
                0.03,
            ),
        ));
    }
    for i in 0..75 {
        v.push((
            101 + i,
            p(
                "commune",
                "IV",
                "public",
                "general",
                "Trạm Y tế xã",
                6.0,
                0.02,
                0.01,
            ),
        ));
    }
    for i in 0..2 {
        v.push((
            201 + i,
            p(
                "provincial",
                "III",
                "private",
                "general",
                "Bệnh viện tư nhân",
                60.0,
                0.12,
                0.10,
            ),
        ));
    }
    for i in 0..3 {
        v.push((
            301 + i,
            p(
                "district",
                "unranked",
                "private",
                "clinic",
                "Phòng khám đa khoa tư nhân",
                25.0,
                0.0,
                0.05,
            ),
        ));
    }
    v.push((
        401,
        p(
            "commune",
            "unranked",
            "private",
            "clinic",
            "Phòng khám công ty",
            10.0,
            0.0,
            0.02,
        ),
    ));
    v
}

/// A diagnosis with its own cost, length-of-stay and admission profile.
#[derive(Debug, Clone, Copy)]
struct Dx {
    code: &'static str,
    weight: f64,
    admit: f64,
    cost: f64,
    los: f64,
    season: Season,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Season {
    None,
    Respiratory,
    Dengue,
}

const DIAGNOSES: &[Dx] = &[
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
fn season_factor(s: Season, day_of_year: u32) -> f64 {
    let t = day_of_year as f64 / 365.25 * std::f64::consts::TAU;
    match s {
        Season::None => 1.0,
        // Peaks around mid-January.
        Season::Respiratory => 1.0 + 0.45 * (t - 0.25).cos(),
        // Rainy-season dengue: peaks in August.
        Season::Dengue => (1.0 + 1.6 * (t - 3.85).cos()).max(0.15),
    }
}

/// Diagnosis a visit is upcoded to: a costlier code of the same complaint.
fn upcode(code: &str) -> &'static str {
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

fn dx_by_code(code: &str) -> &'static Dx {
    DIAGNOSES
        .iter()
        .find(|d| d.code == code)
        .unwrap_or(&DIAGNOSES[0])
}

/// Overall price level, calibrated so that one province-year at scale 1
/// costs ≈ 780 billion VND (checked by a test).
const PRICE_LEVEL: f64 = 0.746;
/// Overall volume level, calibrated to ≈ 1.53 M visits per province-year.
const VOLUME_LEVEL: f64 = 1.03;

/// The price list: one price per item code, the same for every facility of
/// a grade (services) or of the province (drugs and supplies, by tender).
struct PriceList {
    labs: Vec<(String, f64)>,
    imaging: Vec<(String, f64)>,
    ct: Vec<(String, f64)>,
    drugs: Vec<(String, f64)>,
    supplies: Vec<(String, f64)>,
    procedures: Vec<(String, f64)>,
}

const EXAM: (&str, f64) = ("02.1896", 38_700.0);
/// Specialist examination: the upcoding target of a plain examination.
const EXAM_SPECIALIST: (&str, f64) = ("02.1900", 69_700.0);
const BED: (&str, f64) = ("K03.1930", 240_000.0);

impl PriceList {
    fn new(seed: u64) -> Self {
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
fn grade_factor(grade: &str) -> f64 {
    match grade {
        "special" => 1.15,
        "I" => 1.08,
        "II" => 1.0,
        "III" => 0.93,
        "IV" => 0.85,
        _ => 1.0,
    }
}

/// A generated facility.
#[derive(Debug, Clone)]
pub struct Facility {
    pub code: String,
    pub province_code: String,
    profile: Profile,
}

fn facilities(cfg: &GenConfig) -> Vec<Facility> {
    let mut out = Vec::new();
    for prov in cfg.province_codes.iter().take(cfg.provinces.max(1)) {
        for (n, p) in network() {
            out.push(Facility {
                code: format!("{prov}{n:03}"),
                province_code: prov.clone(),
                profile: p,
            });
        }
    }
    out
}

/// Kinds of injected anomalies, and the benign look-alikes a good engine
/// must not flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    UnjustifiedAdmission,
    ProlongedStay,
    LabImagingOveruse,
    Upcoding,
    PriceInflation,
    PhantomOutOfProvince,
    DuplicateClaims,
    BudgetOverrun,
    /// Benign: a new intensive-care unit makes the case mix heavier.
    CaseMixShift,
    /// Benign: a price change for every facility of a grade on one date.
    GradePriceChange,
    /// Benign: a seasonal epidemic across the province.
    SeasonalEpidemic,
}

impl AnomalyKind {
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::UnjustifiedAdmission => "unjustified_admission",
            AnomalyKind::ProlongedStay => "prolonged_stay",
            AnomalyKind::LabImagingOveruse => "lab_imaging_overuse",
            AnomalyKind::Upcoding => "upcoding",
            AnomalyKind::PriceInflation => "price_inflation",
            AnomalyKind::PhantomOutOfProvince => "phantom_out_of_province",
            AnomalyKind::DuplicateClaims => "duplicate_claims",
            AnomalyKind::BudgetOverrun => "budget_overrun",
            AnomalyKind::CaseMixShift => "case_mix_shift",
            AnomalyKind::GradePriceChange => "grade_price_change",
            AnomalyKind::SeasonalEpidemic => "seasonal_epidemic",
        }
    }

    pub fn benign(self) -> bool {
        matches!(
            self,
            AnomalyKind::CaseMixShift
                | AnomalyKind::GradePriceChange
                | AnomalyKind::SeasonalEpidemic
        )
    }

    const FRAUD: [AnomalyKind; 8] = [
        AnomalyKind::UnjustifiedAdmission,
        AnomalyKind::ProlongedStay,
        AnomalyKind::LabImagingOveruse,
        AnomalyKind::Upcoding,
        AnomalyKind::PriceInflation,
        AnomalyKind::PhantomOutOfProvince,
        AnomalyKind::DuplicateClaims,
        AnomalyKind::BudgetOverrun,
    ];
}

/// One injected anomaly at one facility over a date range.
#[derive(Debug, Clone)]
struct Planned {
    facility: usize,
    kind: AnomalyKind,
    start: NaiveDate,
    /// Exclusive end.
    end: NaiveDate,
}

impl Planned {
    fn active(&self, day: NaiveDate) -> bool {
        day >= self.start && day < self.end
    }
}

/// Chooses the anomalies of a run: per province, each fraud type at a
/// different hospital or clinic, a heavier case mix at another, a price
/// change for one grade, and an epidemic across the province. Windows open
/// after the first third of the run, so every facility has a baseline.
fn plan(cfg: &GenConfig, facs: &[Facility]) -> Vec<Planned> {
    if !cfg.anomalies {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(cfg.seed, "plan", 0));
    let len = cfg.days as i64;
    let window = |rng: &mut ChaCha8Rng, min_len: i64| -> (NaiveDate, NaiveDate) {
        let start = cfg.start + Duration::days((len as f64 * rng.gen_range(0.35..0.6)) as i64);
        let dur = ((len as f64 * rng.gen_range(0.3..0.45)) as i64).max(min_len);
        (
            start,
            (start + Duration::days(dur)).min(cfg.start + Duration::days(len)),
        )
    };
    let mut out = Vec::new();
    for prov in cfg.province_codes.iter().take(cfg.provinces.max(1)) {
        let idx: Vec<usize> = (0..facs.len())
            .filter(|&i| &facs[i].province_code == prov)
            .collect();
        let mut hospitals: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| facs[i].profile.inpatient > 0.05)
            .collect();
        hospitals.shuffle(&mut rng);
        let mut clinics: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| facs[i].profile.kind == "clinic")
            .collect();
        clinics.shuffle(&mut rng);
        for kind in AnomalyKind::FRAUD {
            // Clinics have no beds: they take the outpatient frauds first.
            let needs_beds = matches!(
                kind,
                AnomalyKind::UnjustifiedAdmission | AnomalyKind::ProlongedStay
            );
            let f = if !needs_beds
                && matches!(
                    kind,
                    AnomalyKind::PhantomOutOfProvince | AnomalyKind::DuplicateClaims
                ) {
                clinics.pop().or_else(|| hospitals.pop())
            } else {
                hospitals.pop()
            };
            if let Some(f) = f {
                let (start, end) = window(&mut rng, 21);
                out.push(Planned {
                    facility: f,
                    kind,
                    start,
                    end,
                });
            }
        }
        if let Some(f) = hospitals.pop() {
            let (start, _) = window(&mut rng, 21);
            out.push(Planned {
                facility: f,
                kind: AnomalyKind::CaseMixShift,
                start,
                end: cfg.start + Duration::days(len),
            });
        }
        let (start, _) = window(&mut rng, 21);
        for &i in idx.iter().filter(|&&i| facs[i].profile.grade == "III") {
            out.push(Planned {
                facility: i,
                kind: AnomalyKind::GradePriceChange,
                start,
                end: cfg.start + Duration::days(len),
            });
        }
        let (start, end) = window(&mut rng, 28);
        let end = end.min(start + Duration::days(75));
        for &i in &idx {
            out.push(Planned {
                facility: i,
                kind: AnomalyKind::SeasonalEpidemic,
                start,
                end,
            });
        }
    }
    out
}

/// What a run wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GenSummary {
    pub facilities: usize,
    pub visits: u64,
    pub inpatient: u64,
    pub lines: u64,
    pub total_cost_vnd: f64,
    pub files: usize,
    pub bytes: u64,
    /// Labelled anomalies (one row per facility), fraud and benign.
    pub labels: Vec<Label>,
    pub true_excess_vnd: f64,
}

/// One row of `labels.csv`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Label {
    pub facility_code: String,
    pub start: NaiveDate,
    /// Last day (inclusive).
    pub end: NaiveDate,
    pub kind: AnomalyKind,
    /// A look-alike that a good engine must not flag.
    pub benign: bool,
    /// Excess cost the anomaly added to the claims, VND (0 for benign ones).
    pub true_excess_vnd: f64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GenerateError + '_ {
    move |source| GenerateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn stream_seed(seed: u64, a: &str, b: u64) -> u64 {
    // FNV-1a over the parts: a stable per-stream seed.
    let mut h: u64 = 0xcbf29ce484222325 ^ seed;
    for byte in a.bytes().chain(b.to_le_bytes()) {
        h ^= byte as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Writes registry, budgets, labels and claims under `out`:
/// `facilities.csv`, `budgets.csv`, `labels.csv`,
/// `claims/<province>/<year>/<facility>-<isoweek>-<mmdd>.xml`.
pub fn generate(cfg: &GenConfig, out: &Path, progress: bool) -> Result<GenSummary, GenerateError> {
    run(cfg, Some(out), progress)
}

/// Computes what [`generate`] would write, without writing claims files
/// (for calibration checks).
pub fn simulate(cfg: &GenConfig) -> Result<GenSummary, GenerateError> {
    run(cfg, None, false)
}

fn run(cfg: &GenConfig, out: Option<&Path>, progress: bool) -> Result<GenSummary, GenerateError> {
    if cfg.days == 0 || cfg.scale <= 0.0 {
        return Err(GenerateError::Config(
            "days and scale must be positive".into(),
        ));
    }
    if let Some(out) = out {
        std::fs::create_dir_all(out).map_err(io(out))?;
    }
    let facs = facilities(cfg);
    let prices = PriceList::new(cfg.seed);
    let planned = plan(cfg, &facs);
    if let Some(out) = out {
        let reg_path = out.join("facilities.csv");
        let mut reg = String::from("facility_code,name,province_code,level,grade,ownership,kind\n");
        for f in &facs {
            let p = f.profile;
            reg.push_str(&format!(
                "{},{} {},{},{},{},{},{}\n",
                f.code,
                p.name,
                &f.code[2..],
                f.province_code,
                p.level,
                p.grade,
                p.ownership,
                p.kind
            ));
        }
        std::fs::write(&reg_path, reg).map_err(io(&reg_path))?;
    }

    // Work units: facility × ISO week (cut at the run's ends).
    let mut weeks: Vec<(NaiveDate, u32)> = Vec::new();
    let mut d = cfg.start;
    let end = cfg.start + Duration::days(cfg.days as i64);
    while d < end {
        let next = (d + Duration::days(7 - d.weekday().num_days_from_monday() as i64)).min(end);
        weeks.push((d, (next - d).num_days() as u32));
        d = next;
    }
    let jobs: Vec<(usize, usize)> = (0..facs.len())
        .flat_map(|f| (0..weeks.len()).map(move |w| (f, w)))
        .collect();
    let pb = if progress {
        let pb = indicatif::ProgressBar::new(jobs.len() as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} generate [{bar:40}] {pos}/{len} facility-weeks eta {eta}",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let ctx = Ctx {
        cfg,
        facs: &facs,
        prices: &prices,
        planned: &planned,
    };
    let results: Vec<Result<WeekOut, GenerateError>> = jobs
        .par_iter()
        .map(|&(fi, wi)| {
            let r = gen_week(&ctx, fi, weeks[wi].0, weeks[wi].1, out);
            pb.inc(1);
            r
        })
        .collect();
    pb.finish_and_clear();
    let mut s = GenSummary {
        facilities: facs.len(),
        ..Default::default()
    };
    // Spending without the fraud, per facility-year: what a planner would
    // have budgeted for.
    let mut planned_spend: std::collections::BTreeMap<(String, i32), (f64, u32)> =
        Default::default();
    let mut excess = vec![0.0f64; planned.len()];
    for r in results {
        let w = r?;
        s.visits += w.visits;
        s.inpatient += w.inpatient;
        s.lines += w.lines;
        s.total_cost_vnd += w.cost;
        if w.bytes > 0 {
            s.files += 1;
        }
        s.bytes += w.bytes;
        let e = planned_spend.entry((w.facility, w.year)).or_default();
        e.0 += w.cost - w.excess.iter().map(|(_, x)| x).sum::<f64>();
        e.1 += w.days;
        for (i, x) in w.excess {
            excess[i] += x;
        }
    }
    s.labels = planned
        .iter()
        .zip(&excess)
        .map(|(p, x)| Label {
            facility_code: facs[p.facility].code.clone(),
            start: p.start,
            end: p.end - Duration::days(1),
            kind: p.kind,
            benign: p.kind.benign(),
            true_excess_vnd: x.round(),
        })
        .collect();
    s.true_excess_vnd = excess.iter().sum();
    let Some(out) = out else {
        return Ok(s);
    };
    // Budgets: the fraud-free spending of the year (annualised), with the
    // planning error the seed province shows (a few percent either way).
    let bud_path = out.join("budgets.csv");
    let mut bud = String::from("facility_code,year,budget_vnd\n");
    let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(cfg.seed, "budget", 0));
    for ((code, year), (cost, days)) in &planned_spend {
        let annual = cost * 365.0 / (*days).max(1) as f64;
        let budget = annual * rng.gen_range(0.95..1.06);
        bud.push_str(&format!("{code},{year},{:.0}\n", budget.round()));
    }
    std::fs::write(&bud_path, bud).map_err(io(&bud_path))?;
    let lab_path = out.join("labels.csv");
    let mut lab = String::from("facility_code,start,end,type,benign,true_excess_vnd\n");
    for l in &s.labels {
        lab.push_str(&format!(
            "{},{},{},{},{},{:.0}\n",
            l.facility_code,
            l.start,
            l.end,
            l.kind.name(),
            l.benign,
            l.true_excess_vnd
        ));
    }
    std::fs::write(&lab_path, lab).map_err(io(&lab_path))?;
    Ok(s)
}

struct Ctx<'a> {
    cfg: &'a GenConfig,
    facs: &'a [Facility],
    prices: &'a PriceList,
    planned: &'a [Planned],
}

struct WeekOut {
    facility: String,
    year: i32,
    days: u32,
    visits: u64,
    inpatient: u64,
    lines: u64,
    cost: f64,
    bytes: u64,
    /// (planned anomaly index, excess VND)
    excess: Vec<(usize, f64)>,
}

fn pick_dx(
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

const GROUPS: &[(&str, f64, char)] = &[
    ("DN", 0.22, '4'),
    ("HC", 0.05, '4'),
    ("HT", 0.08, '2'),
    ("GD", 0.30, '4'),
    ("TE", 0.12, '1'),
    ("HN", 0.10, '3'),
    ("HS", 0.08, '4'),
    ("CN", 0.05, '2'),
];

/// A card of a person from the facility's catchment (so people come back),
/// or from another province.
fn card_for(rng: &mut ChaCha8Rng, ctx: &Ctx, f: &Facility, oop: bool) -> String {
    let provinces: Vec<&String> = ctx
        .cfg
        .province_codes
        .iter()
        .take(ctx.cfg.provinces.max(1))
        .collect();
    let (province, pool_key) = if oop {
        let others: Vec<&str> = if provinces.len() > 1 {
            provinces
                .iter()
                .map(|s| s.as_str())
                .filter(|p| *p != f.province_code)
                .collect()
        } else {
            vec!["86", "82", "89", "79", "01"]
        };
        let p = others[rng.gen_range(0..others.len())].to_string();
        let key = format!("oop{p}");
        (p, key)
    } else {
        (f.province_code.clone(), f.code.clone())
    };
    let pool = ((f.profile.daily * ctx.cfg.scale * 365.0 / 2.5) as u64).max(60);
    let person = stream_seed(ctx.cfg.seed, &pool_key, rng.gen_range(0..pool));
    let mut x = (person % 10_000) as f64 / 10_000.0;
    let (mut group, mut level) = ("GD", '4');
    for (g, w, l) in GROUPS {
        x -= w;
        if x <= 0.0 {
            group = g;
            level = *l;
            break;
        }
    }
    format!(
        "{group}{level}{province}{province}{:08}",
        (person >> 16) % 100_000_000
    )
}

/// How a visit departs from the normal one.
#[derive(Debug, Clone, Copy)]
struct Mods {
    los_factor: f64,
    force_inpatient_los: Option<i64>,
    extra_labs: u32,
    extra_imaging: u32,
    upcode: bool,
    drug_supply_price: f64,
    service_price: f64,
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
        }
    }
}

fn total_of(h: &Hoso) -> f64 {
    h.xml1
        .get("T_TONGCHI_BV")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn gen_week(
    ctx: &Ctx,
    fi: usize,
    start: NaiveDate,
    ndays: u32,
    out: Option<&Path>,
) -> Result<WeekOut, GenerateError> {
    let cfg = ctx.cfg;
    let f = &ctx.facs[fi];
    let p = f.profile;
    let iso = start.iso_week();
    let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(
        cfg.seed,
        &f.code,
        (iso.year() as u64) * 100 + iso.week() as u64,
    ));
    let mine: Vec<(usize, &Planned)> = ctx
        .planned
        .iter()
        .enumerate()
        .filter(|(_, a)| a.facility == fi)
        .collect();
    let mut hosos = Vec::new();
    let mut w = WeekOut {
        facility: f.code.clone(),
        year: start.year(),
        days: ndays,
        visits: 0,
        inpatient: 0,
        lines: 0,
        cost: 0.0,
        bytes: 0,
        excess: Vec::new(),
    };
    let mut excess: std::collections::BTreeMap<usize, f64> = Default::default();
    let noise = LogNormal::new(0.0, 0.35).expect("valid");
    for di in 0..ndays {
        let day = start + Duration::days(di as i64);
        let active = |k: AnomalyKind| {
            mine.iter()
                .find(|(_, a)| a.kind == k && a.active(day))
                .map(|(i, _)| *i)
        };
        let years_in = (day.year() - cfg.start.year()) as f64;
        let vol_growth =
            (1.0 + cfg.volume_growth).powf((day - cfg.start).num_days() as f64 / 365.25);
        // Prices change on 1 January, as price decisions do.
        let price_growth = (1.0 + cfg.price_growth).powf(years_in);
        let doy = day.ordinal();
        let weekday = match day.weekday().num_days_from_monday() {
            5 => 0.55,
            6 => 0.35,
            _ => 1.12,
        };
        let seasonal = 0.9 + 0.1 * season_factor(Season::Respiratory, doy);
        let lambda = p.daily * VOLUME_LEVEL * cfg.scale * weekday * seasonal * vol_growth;
        let epidemic = active(AnomalyKind::SeasonalEpidemic).is_some();
        let heavy = active(AnomalyKind::CaseMixShift).is_some();
        let mut base = Mods {
            service_price: if active(AnomalyKind::GradePriceChange).is_some() {
                1.12
            } else {
                1.0
            },
            ..Default::default()
        };
        if let Some(a) = active(AnomalyKind::PriceInflation) {
            base.drug_supply_price = 1.35;
            let _ = a;
        }
        let poisson = |rng: &mut ChaCha8Rng, l: f64| {
            if l > 0.0 {
                Poisson::new(l).expect("positive").sample(rng) as u64
            } else {
                0
            }
        };
        let mut n = poisson(&mut rng, lambda * if epidemic { 1.08 } else { 1.0 });
        let surge =
            active(AnomalyKind::BudgetOverrun).map(|a| (a, poisson(&mut rng, lambda * 0.3)));
        let phantom = active(AnomalyKind::PhantomOutOfProvince)
            .map(|a| (a, poisson(&mut rng, lambda * 0.15)));
        let n_normal = n;
        n += surge.map_or(0, |s| s.1) + phantom.map_or(0, |s| s.1);
        let inpatient_share = if heavy {
            (p.inpatient * 1.5).min(0.5)
        } else {
            p.inpatient
        };
        for k in 0..n {
            let is_surge = k >= n_normal && surge.is_some_and(|s| k < n_normal + s.1);
            let is_phantom = k >= n_normal && !is_surge;
            let inpatient = !is_phantom && rng.gen::<f64>() < inpatient_share;
            let dx = pick_dx(&mut rng, doy, inpatient, epidemic, heavy);
            let ma_lk = format!("{}{}{:05}", f.code, day.format("%y%m%d"), k);
            let oop = is_phantom || rng.gen::<f64>() < p.out_of_province;
            let card = card_for(&mut rng, ctx, f, oop);
            let price = price_growth * PRICE_LEVEL;
            let twin = rng.clone();
            let mut h = make_visit(
                &mut rng, ctx, &ma_lk, f, day, inpatient, dx, &card, price, &noise, &base,
            );
            let normal_cost = total_of(&h);
            // Fraud that changes the claim of a real visit: the excess is
            // the difference with its honest twin (same random draws).
            let mut fraud: Option<(usize, Mods, bool, &'static Dx)> = None;
            if let Some(a) = active(AnomalyKind::UnjustifiedAdmission) {
                if !inpatient && dx.admit < 0.1 && rng.gen::<f64>() < 0.12 {
                    fraud = Some((
                        a,
                        Mods {
                            force_inpatient_los: Some(rng.gen_range(2..5)),
                            ..base
                        },
                        true,
                        dx,
                    ));
                }
            }
            if let Some(a) = active(AnomalyKind::ProlongedStay) {
                if inpatient {
                    fraud = Some((
                        a,
                        Mods {
                            los_factor: 1.7,
                            ..base
                        },
                        true,
                        dx,
                    ));
                }
            }
            if let Some(a) = active(AnomalyKind::LabImagingOveruse) {
                if rng.gen::<f64>() < 0.6 {
                    fraud = Some((
                        a,
                        Mods {
                            extra_labs: 4,
                            extra_imaging: 1,
                            ..base
                        },
                        inpatient,
                        dx,
                    ));
                }
            }
            if let Some(a) = active(AnomalyKind::Upcoding) {
                if rng.gen::<f64>() < 0.3 {
                    fraud = Some((
                        a,
                        Mods {
                            upcode: true,
                            ..base
                        },
                        inpatient,
                        dx_by_code(upcode(dx.code)),
                    ));
                }
            }
            if let Some((a, mods, inp, dx2)) = fraud {
                let mut r2 = twin.clone();
                let h2 = make_visit(
                    &mut r2, ctx, &ma_lk, f, day, inp, dx2, &card, price, &noise, &mods,
                );
                *excess.entry(a).or_default() += total_of(&h2) - normal_cost;
                h = h2;
            }
            if base.drug_supply_price != 1.0 {
                // Price inflation: the same visit at honest prices.
                let mut r2 = twin.clone();
                let honest = Mods {
                    drug_supply_price: 1.0,
                    ..base
                };
                let h0 = make_visit(
                    &mut r2, ctx, &ma_lk, f, day, inpatient, dx, &card, price, &noise, &honest,
                );
                if let Some(a) = active(AnomalyKind::PriceInflation) {
                    *excess.entry(a).or_default() += normal_cost - total_of(&h0);
                }
            }
            if is_surge || is_phantom {
                let a = if is_surge {
                    surge.map(|s| s.0)
                } else {
                    phantom.map(|s| s.0)
                };
                if let Some(a) = a {
                    *excess.entry(a).or_default() += total_of(&h);
                }
            }
            let dup = active(AnomalyKind::DuplicateClaims).filter(|_| rng.gen::<f64>() < 0.06);
            if let Some(a) = dup {
                // The same stay claimed again under another MA_LK.
                let mut d = h.clone();
                if rng.gen::<f64>() < 0.5 {
                    // Overlapping rather than identical: shifted by a day.
                    for field in ["NGAY_VAO", "NGAY_RA"] {
                        if let Some(v) = d.xml1.get(field).map(str::to_string) {
                            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(&v, "%Y%m%d%H%M") {
                                d.xml1.set(
                                    field,
                                    (t + Duration::days(1)).format("%Y%m%d%H%M").to_string(),
                                );
                            }
                        }
                    }
                }
                let dup_lk = format!("{}{}{:05}", f.code, day.format("%y%m%d"), n + k);
                d.xml1.set("MA_LK", dup_lk.clone());
                for l in d.xml2.iter_mut().chain(d.xml3.iter_mut()) {
                    l.set("MA_LK", dup_lk.clone());
                }
                *excess.entry(a).or_default() += total_of(&d);
                push(&mut w, &mut hosos, d);
            }
            push(&mut w, &mut hosos, h);
        }
    }
    w.excess = excess.into_iter().collect();
    if hosos.is_empty() {
        return Ok(w);
    }
    let Some(out) = out else {
        return Ok(w);
    };
    let dir = out
        .join("claims")
        .join(&f.province_code)
        .join(start.year().to_string());
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let path = dir.join(format!(
        "{}-{}{:02}-{}.xml{}",
        f.code,
        iso.year(),
        iso.week(),
        start.format("%m%d"),
        if cfg.compress { ".gz" } else { "" }
    ));
    let file = std::fs::File::create(&path).map_err(io(&path))?;
    let bw = BufWriter::with_capacity(1 << 20, file);
    let created = (start + Duration::days(ndays as i64 - 1))
        .format("%Y%m%d")
        .to_string();
    if cfg.compress {
        let mut gz = flate2::write::GzEncoder::new(bw, flate2::Compression::best());
        write_envelope(&mut gz, &f.code, &created, &hosos, &Style::default()).map_err(io(&path))?;
        gz.finish().and_then(|mut w| w.flush()).map_err(io(&path))?;
    } else {
        let mut bw = bw;
        write_envelope(&mut bw, &f.code, &created, &hosos, &Style::default()).map_err(io(&path))?;
        bw.flush().map_err(io(&path))?;
    }
    w.bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(w)
}

fn push(w: &mut WeekOut, hosos: &mut Vec<Hoso>, h: Hoso) {
    w.visits += 1;
    w.inpatient += matches!(h.xml1.get("MA_LOAI_KCB"), Some("03" | "06")) as u64;
    w.lines += (h.xml2.len() + h.xml3.len()) as u64;
    w.cost += total_of(&h);
    hosos.push(h);
}

/// Drug names: a few of the list are the classes reviewers watch.
fn drug_name(idx: usize) -> String {
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

fn vnd(x: f64) -> String {
    format!("{}", x.round() as i64)
}

#[allow(clippy::too_many_arguments)]
fn make_visit(
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
    let dept = if inpatient { "K03" } else { "K01" };
    let doctor = format!("BS{}{:03}", &f.code, rng.gen_range(0..40));
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
    let goods = price * mods.drug_supply_price;
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
    } + mods.extra_labs;
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
    } + mods.extra_imaging;
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
                (unit * goods).round(),
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
        let unit = (unit * goods).round();
        let qty = (days_of_drugs * rng.gen_range(1..3) as f64 * dx.cost.sqrt())
            .round()
            .max(1.0);
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
