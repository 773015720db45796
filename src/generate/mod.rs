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

mod anomalies;
mod clinical;
mod growth;
mod network;

pub use anomalies::AnomalyKind;
use anomalies::*;
use clinical::*;
use growth::*;
pub use growth::{GrowthBreak, Lockdown};
pub use network::Facility;
use network::*;

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
    /// Prices change in one step each 1 January, as price decisions do
    /// (default), or continuously through the year (`false`).
    pub price_steps: bool,
    /// Growth rates that change from a day on (a trend break).
    pub growth_break: Option<GrowthBreak>,
    /// Visits fall to a share of their usual number for a season (a
    /// lockdown) and come back over the two months after it.
    pub lockdown: Option<Lockdown>,
    /// A new private hospital opens on this day (first province) and ramps
    /// up over six months.
    pub opens: Option<NaiveDate>,
    /// The first province's second private hospital closes on this day.
    pub closes: Option<NaiveDate>,
    /// Provinces merge on this day: each facility of a province whose
    /// current province differs (`datasets/reference/provinces.csv`) claims
    /// under a new code of the current province from then on; the registry
    /// lists the old code of each (`previous_code`).
    pub merger: Option<NaiveDate>,
    /// Inject the labelled anomalies and benign look-alikes.
    pub anomalies: bool,
    /// Spread of a drug's or supply's unit price from claim to claim
    /// (lognormal σ; 0, the default, bills one price per item code): a
    /// hospital billing stock bought at different prices.
    pub unit_price_noise: f64,
    /// Spread of the facilities' own price level for drugs and supplies
    /// (lognormal σ across facilities, fixed in time; 0, the default, is one
    /// province-wide price list): each hospital's own tender results.
    pub bid_spread: f64,
    /// Mean visits a day at every commune station whatever the scale
    /// (unset: the network's 6 a day × `scale`); 1.5 is about ten a week.
    pub station_daily: Option<f64>,
    /// One district health centre's claims of four weeks (from 60 % of the
    /// run) arrive late: they are written under `claims-late/` instead of
    /// `claims/`, to be ingested in a later run.
    pub late_batch: bool,
    /// One hospital's cardiology department over-services its inpatients
    /// (`department_overservicing`, drawn after every other anomaly so they
    /// stay where they are). Off by default; the evaluation family's
    /// `department` world turns it on.
    pub department_fraud: bool,
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
            price_steps: true,
            growth_break: None,
            lockdown: None,
            opens: None,
            closes: None,
            merger: None,
            anomalies: true,
            unit_price_noise: 0.0,
            bid_spread: 0.0,
            station_daily: None,
            late_batch: false,
            department_fraud: false,
            compress: false,
        }
    }
}

/// The registry rows of the generated facilities (`facilities.csv`):
/// code, name, province code, level, grade, ownership, kind, previous code
/// (after a merger, each new code with the old one it replaces).
pub fn registry_rows(cfg: &GenConfig) -> Vec<[String; 8]> {
    registry(&facilities(cfg))
}

fn registry(facs: &[Facility]) -> Vec<[String; 8]> {
    let mut out = Vec::new();
    for f in facs {
        let p = f.profile;
        let row = |code: &str, province: &str, previous: &str| {
            [
                code.to_string(),
                format!("{} {}", p.name, &f.code[2..]),
                province.to_string(),
                p.level.to_string(),
                p.grade.to_string(),
                p.ownership.to_string(),
                p.kind.to_string(),
                previous.to_string(),
            ]
        };
        out.push(row(&f.code, &f.province_code, ""));
        if let Some((_, code, province)) = &f.renamed {
            out.push(row(code, province, &f.code));
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
    /// Spending and visits per (facility code, discharge month): what the
    /// claims add up to (the forecasting benchmark reads it instead of
    /// writing and ingesting years of envelopes).
    #[serde(skip)]
    pub monthly: std::collections::BTreeMap<(String, NaiveDate), (f64, u64)>,
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
        let mut reg = String::from(
            "facility_code,name,province_code,level,grade,ownership,kind,previous_code\n",
        );
        for r in registry(&facs) {
            reg.push_str(&r.join(","));
            reg.push('\n');
        }
        std::fs::write(&reg_path, reg).map_err(io(&reg_path))?;
    }

    // Work units: facility × ISO week (cut at the run's ends).
    let mut weeks: Vec<(NaiveDate, u32)> = Vec::new();
    let mut d = cfg.start;
    let end = cfg.start + Duration::days(cfg.days as i64);
    while d < end {
        let mut next = (d + Duration::days(7 - d.weekday().num_days_from_monday() as i64)).min(end);
        // A merger day starts a new unit: the codes change that day.
        if let Some(m) = cfg.merger.filter(|m| d < *m && *m < next) {
            next = m;
        }
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
        late: late_batch(cfg, &facs, &planned, &weeks),
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
        for (m, c, v) in &w.months {
            let e = s.monthly.entry((w.facility.clone(), *m)).or_default();
            e.0 += c;
            e.1 += v;
        }
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
    /// The late batch: facility index and the days [from, to) whose weeks
    /// go under `claims-late/`.
    late: Option<(usize, NaiveDate, NaiveDate)>,
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
    /// (month, spending, visits) of the week's days.
    months: Vec<(NaiveDate, f64, u64)>,
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

fn gen_week(
    ctx: &Ctx,
    fi: usize,
    start: NaiveDate,
    ndays: u32,
    out: Option<&Path>,
) -> Result<WeekOut, GenerateError> {
    let cfg = ctx.cfg;
    let fac = &ctx.facs[fi];
    // After a merger the facility claims under its new code.
    let f = &*as_of(fac, start);
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
        months: Vec::new(),
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
        let vol_growth = volume_factor(cfg, day) * activity(fac, day);
        let price_growth = price_factor(cfg, day);
        let (cost_before, visits_before) = (w.cost, w.visits);
        let doy = day.ordinal();
        let weekday = match day.weekday().num_days_from_monday() {
            5 => 0.55,
            6 => 0.35,
            _ => 1.12,
        };
        let seasonal = 0.9 + 0.1 * season_factor(Season::Respiratory, doy);
        let daily = match cfg.station_daily {
            Some(d) if p.level == "commune" && p.kind == "general" => d / VOLUME_LEVEL,
            _ => p.daily * cfg.scale,
        };
        let lambda = daily * VOLUME_LEVEL * weekday * seasonal * vol_growth;
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
            if let Some(a) = active(AnomalyKind::PrescriberOverprescribing) {
                fraud = Some((
                    a,
                    Mods {
                        overprescriber: Some(7),
                        ..base
                    },
                    inpatient,
                    dx,
                ));
            }
            if let Some(a) = active(AnomalyKind::DepartmentOverservicing) {
                if clinical::department(dx, inpatient, f.profile.level == "commune") == "K04" {
                    fraud = Some((
                        a,
                        Mods {
                            overservicing_department: Some("K04"),
                            // And keeps its patients longer.
                            los_factor: 1.3,
                            ..base
                        },
                        inpatient,
                        dx,
                    ));
                }
            }
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
        // Spending by discharge month (every visit is discharged on `day`).
        let month = NaiveDate::from_ymd_opt(day.year(), day.month(), 1).expect("valid date");
        let (dc, dv) = (w.cost - cost_before, w.visits - visits_before);
        match w.months.last_mut() {
            Some(m) if m.0 == month => {
                m.1 += dc;
                m.2 += dv;
            }
            _ => w.months.push((month, dc, dv)),
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
        .join(
            if ctx
                .late
                .is_some_and(|(lf, from, to)| lf == fi && start >= from && start < to)
            {
                "claims-late"
            } else {
                "claims"
            },
        )
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

/// The late batch of `GenConfig::late_batch`: the last district health
/// centre of the first province without a planned anomaly, four whole
/// weeks from 60 % of the run.
fn late_batch(
    cfg: &GenConfig,
    facs: &[Facility],
    planned: &[Planned],
    weeks: &[(NaiveDate, u32)],
) -> Option<(usize, NaiveDate, NaiveDate)> {
    if !cfg.late_batch {
        return None;
    }
    let first = cfg.province_codes.first()?;
    let fi = (0..facs.len()).rev().find(|&i| {
        let p = facs[i].profile;
        &facs[i].province_code == first
            && p.level == "district"
            && p.kind == "general"
            && p.ownership == "public"
            && !planned.iter().any(|a| a.facility == i)
    })?;
    let from_day = cfg.start + Duration::days((cfg.days as f64 * 0.6) as i64);
    let k = weeks.iter().position(|w| w.0 >= from_day && w.1 == 7)?;
    let to = weeks
        .get(k + 4)
        .map_or(from_day + Duration::days(28), |w| w.0);
    Some((fi, weeks[k].0, to))
}

fn push(w: &mut WeekOut, hosos: &mut Vec<Hoso>, h: Hoso) {
    w.visits += 1;
    w.inpatient += matches!(h.xml1.get("MA_LOAI_KCB"), Some("03" | "06")) as u64;
    w.lines += (h.xml2.len() + h.xml3.len()) as u64;
    w.cost += total_of(&h);
    hosos.push(h);
}
