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
mod week;

pub use anomalies::AnomalyKind;
use anomalies::*;
use clinical::*;
use growth::*;
pub use growth::{GrowthBreak, Lockdown};
pub use network::Facility;
use network::*;
use week::*;

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
