//! Detection: from the indicator table to scored facility-periods.
//!
//! Nine detectors, each turned into a **severity** on one calibrated scale
//! ([`calibrate`]) and combined by an ensemble:
//!
//! | detector | what it sees | module |
//! |---|---|---|
//! | change | a sustained rise against the facility's own baseline, net of peers (CUSUM) | [`change`] |
//! | peer | a trailing window far above the peer group, with credibility | [`peer`] |
//! | forest | an unusual combination of indicators (isolation forest) | [`forest`] |
//! | mixture | a low density under a Gaussian mixture of typical periods (linfa) | [`mixture`] |
//! | claims | more duplicate, over-long or mismatched claims than the province rate | [`claims`] |
//! | prescriber | one doctor's claims far dearer than colleagues' for the same diagnoses | [`prescriber`] |
//! | upcoding | diagnoses coded heavier while admissions do not follow | `upcoding` |
//! | cost shift | claims dearer than the same diagnoses cost there before, net of peers, counted claim by claim | [`shift`] |
//! | department | one ward's cost per claim rising against its own past while the other wards' does not | [`prescriber`] |
//!
//! [`fit`] learns what must be learnt (baselines, forest, mixture and their
//! null distributions) from a training range and returns a
//! [`DetectorModel`], saved as JSON with its metadata; [`DetectorModel::score`]
//! scores any table with it, without refitting. Scores are causal: a
//! period's score uses that period and earlier ones only (and its peers in
//! the same period), so the scores of past periods are what a weekly run at
//! the time would have said — the evaluation relies on that.

// The detectors work on parallel column vectors of the panel indexed by
// row; index loops say that more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

pub mod calibrate;
pub mod change;
pub mod claims;
pub mod forest;
pub mod mixture;
pub mod peer;
pub mod prescriber;
pub mod shift;
pub mod signals;
mod upcoding;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use linfa::traits::Fit;
use linfa::DatasetBase;
use ndarray::Array2;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

pub use change::{ChangeConfig, Signal};
pub use claims::ClaimConfig;
pub use forest::{IsolationForest, IsolationForestParams};
pub use mixture::{Mixture, MixtureConfig};
pub use peer::PeerConfig;
pub use prescriber::PrescriberConfig;
pub use shift::ShiftConfig;
pub use signals::Lang;

use calibrate::{cusum_p, empirical_p, p_of_severity, poisson_tail, severity_of_p, sidak};

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("detect: {0}")]
    Polars(#[from] PolarsError),
    #[error("detect: {0}")]
    Input(String),
    #[error("detect: {0}")]
    Forest(#[from] forest::ForestError),
    #[error("detect: {0}")]
    Mixture(#[from] mixture::MixtureError),
    #[error("detect: model {path}: {reason}")]
    Model { path: String, reason: String },
}

/// Alert thresholds on the severity scale.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertConfig {
    /// A facility-period at or above this severity is an alert. Default 4.0
    /// (tail probability 3·10⁻⁵ under "nothing unusual": with ~100 facilities
    /// a province sees about one chance alert a year).
    pub alert_severity: f64,
    /// Severity of a "high" alert. Default 6.0.
    pub high_severity: f64,
    /// Materiality: a facility-period alerts only when the episode's
    /// estimated excess reaches this many VND, so a tiny facility's
    /// statistically clear but cheap deviation stays off the weekly list
    /// (its severity is still recorded). Default 2,000,000 VND.
    pub min_excess_vnd: f64,
    /// An alert dismissed or explained by a reviewer is raised again for the
    /// same cause only if the indicator's relative excess (observed /
    /// expected − 1) grows by this share over its value at the decision
    /// (0.5: a 20 % excess must pass 30 %). Default 0.5.
    pub worsen_share: f64,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            alert_severity: 4.0,
            high_severity: 6.0,
            min_excess_vnd: 2.0e6,
            worsen_share: 0.5,
        }
    }
}

/// Configuration of detection (`models/detector.toml`); every field has a
/// documented default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectConfig {
    pub change: ChangeConfig,
    pub peer: PeerConfig,
    pub forest: IsolationForestParams,
    pub mixture: MixtureConfig,
    /// Periods averaged before the multivariate scores are calibrated
    /// (one odd week is not a finding). Default 4.
    pub multivariate_window: usize,
    pub claims: ClaimConfig,
    pub prescriber: PrescriberConfig,
    /// The department comparison (same settings as the doctors', for
    /// departments: `[department]`).
    pub department: PrescriberConfig,
    pub shift: ShiftConfig,
    pub alert: AlertConfig,
    /// Memory budget of the claim-level steps, MiB: the store is read in
    /// groups of facilities that fit in it. Default 4096.
    pub memory_mb: u64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            change: ChangeConfig::default(),
            peer: PeerConfig::default(),
            forest: IsolationForestParams::default(),
            mixture: MixtureConfig::default(),
            multivariate_window: 4,
            claims: ClaimConfig::default(),
            prescriber: PrescriberConfig::default(),
            department: PrescriberConfig::default(),
            shift: ShiftConfig::default(),
            alert: AlertConfig::default(),
            memory_mb: crate::store::chunks::DEFAULT_MEMORY_MB,
        }
    }
}

/// What a saved model was fitted on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelMeta {
    /// Format and engine version.
    pub version: String,
    /// Period length of the table it was fitted on.
    pub period: String,
    pub training_from: chrono::NaiveDate,
    /// Last period start of the training range.
    pub training_to: chrono::NaiveDate,
    pub facilities: usize,
    pub rows: usize,
    /// Inputs of the multivariate models, in order.
    pub features: Vec<String>,
}

/// A fitted detector: everything `score` needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DetectorModel {
    pub meta: ModelMeta,
    pub config: DetectConfig,
    baselines: BTreeMap<String, Vec<Option<change::Baseline>>>,
    forest: IsolationForest,
    mixture: Option<Mixture>,
    /// Sorted training values of the windowed forest score and mixture
    /// negative log-density: their calibration.
    forest_null: Vec<f64>,
    mixture_null: Vec<f64>,
}

pub const MODEL_VERSION: &str = concat!("bhyt-detector/1 (engine ", env!("CARGO_PKG_VERSION"), ")");

/// The indicator table as columns, rows sorted by facility and period.
pub(crate) struct Panel {
    pub fac: Vec<String>,
    pub group: Vec<String>,
    pub period: Vec<i32>,
    pub cols: HashMap<String, Vec<Option<f64>>>,
    /// Row range of each facility.
    pub ranges: Vec<(usize, usize)>,
    pub period_name: String,
}

impl Panel {
    fn from_df(df: &DataFrame, needed: &[String]) -> Result<Panel, DetectError> {
        let t = df.sort(["facility_code", "period_start"], Default::default())?;
        let fac: Vec<String> = t
            .column("facility_code")?
            .str()?
            .iter()
            .map(|v| v.unwrap_or("").to_string())
            .collect();
        let group: Vec<String> = match t.column("peer_group") {
            Ok(c) => c
                .str()?
                .iter()
                .map(|v| v.unwrap_or("all").to_string())
                .collect(),
            Err(_) => vec!["all".to_string(); fac.len()],
        };
        let period: Vec<i32> = t
            .column("period_start")?
            .cast(&DataType::Int32)?
            .i32()?
            .iter()
            .map(|v| v.unwrap_or(0))
            .collect();
        let period_name = t
            .column("period")
            .ok()
            .and_then(|c| c.str().ok().and_then(|s| s.get(0).map(String::from)))
            .unwrap_or_else(|| "week".into());
        let mut cols = HashMap::new();
        for c in needed {
            if cols.contains_key(c) {
                continue;
            }
            let v: Vec<Option<f64>> = match t.column(c) {
                Ok(col) => col
                    .cast(&DataType::Float64)?
                    .f64()?
                    .iter()
                    .map(|v| v.filter(|x| x.is_finite()))
                    .collect(),
                Err(_) if signals::PRICING_COLUMNS.contains(&c.as_str()) => vec![None; fac.len()],
                Err(_) => {
                    return Err(DetectError::Input(format!(
                        "the features table has no column `{c}` (run `bhyt features`)"
                    )))
                }
            };
            cols.insert(c.clone(), v);
        }
        let mut ranges = Vec::new();
        let mut i = 0;
        while i < fac.len() {
            let mut j = i;
            while j < fac.len() && fac[j] == fac[i] {
                j += 1;
            }
            ranges.push((i, j));
            i = j;
        }
        Ok(Panel {
            fac,
            group,
            period,
            cols,
            ranges,
            period_name,
        })
    }

    pub fn len(&self) -> usize {
        self.fac.len()
    }

    pub fn col(&self, c: &str) -> &[Option<f64>] {
        &self.cols[c]
    }

    /// Value of a signal (log taken for volumes).
    pub fn value(&self, s: &Signal, i: usize) -> Option<f64> {
        let v = self.cols[&s.column][i]?;
        Some(if s.log { v.max(1.0).ln() } else { v })
    }

    /// Median of `v` per (peer group, period), for groups of ≥ `min` values.
    pub fn group_median(&self, v: &[Option<f64>], min: usize) -> HashMap<(&str, i32), f64> {
        let mut by: HashMap<(&str, i32), Vec<f64>> = HashMap::new();
        for i in 0..self.len() {
            if let Some(x) = v[i] {
                by.entry((self.group[i].as_str(), self.period[i]))
                    .or_default()
                    .push(x);
            }
        }
        by.into_iter()
            .filter(|(_, v)| v.len() >= min)
            .map(|(k, mut v)| (k, median(&mut v)))
            .collect()
    }
}

/// τ² of empirical Bayes: the spread of true effects among estimates `d`
/// with sampling variances `v` — the robust spread of `d` (1.4826 · MAD)
/// squared less the median sampling variance; 0 with fewer than 10.
pub(crate) fn excess_spread(mut d: Vec<f64>, mut v: Vec<f64>) -> f64 {
    if d.len() < 10 {
        return 0.0;
    }
    let med = median(&mut d);
    let mut dev: Vec<f64> = d.iter().map(|x| (x - med).abs()).collect();
    let mad = 1.4826 * median(&mut dev);
    (mad * mad - median(&mut v)).max(0.0)
}

/// A per-row statistic over the trailing window and a third of it: per
/// row the one with the smaller tail probability, which becomes the Šidák
/// probability of two looks. `run(w)` computes the statistic for windows
/// of `w` periods; `p` reads and `with_p` sets its tail probability.
pub(crate) fn two_windows<T>(
    window: usize,
    run: impl Fn(usize) -> Vec<T>,
    p: impl Fn(&T) -> f64,
    with_p: impl Fn(T, f64) -> T,
) -> Vec<T> {
    let long = run(window);
    let short_w = window.div_ceil(3).max(1);
    if short_w >= window {
        return long;
    }
    long.into_iter()
        .zip(run(short_w))
        .map(|(l, s)| {
            let best = if p(&s) < p(&l) { s } else { l };
            let q = calibrate::sidak(p(&best), 2);
            with_p(best, q)
        })
        .collect()
}

/// Median of a non-empty slice (sorted in place).
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn needed_columns(cfg: &DetectConfig) -> Vec<String> {
    let mut c: Vec<String> = signals::PRICING_COLUMNS
        .iter()
        .map(|s| s.to_string())
        .collect();
    for s in &cfg.change.signals {
        c.push(s.column.clone());
        c.push(s.volume.clone());
    }
    c
}

/// Multivariate inputs: the change z and peer z of every signal.
fn feature_names(cfg: &DetectConfig) -> Vec<String> {
    let mut f: Vec<String> = cfg
        .change
        .signals
        .iter()
        .map(|s| format!("change_z:{}", s.column))
        .collect();
    f.extend(cfg.peer.signals.iter().map(|s| format!("peer_z:{s}")));
    f
}

struct Stats {
    change: change::ChangeOut,
    peer: peer::PeerOut,
    peer_signals: Vec<usize>,
    x: Array2<f64>,
}

fn statistics(
    p: &Panel,
    cfg: &DetectConfig,
    base: &BTreeMap<String, Vec<Option<change::Baseline>>>,
    train_end: i32,
) -> Result<Stats, DetectError> {
    let ch = change::run(p, &cfg.change, base, train_end);
    let mut peer_signals = Vec::new();
    for name in &cfg.peer.signals {
        let idx = cfg
            .change
            .signals
            .iter()
            .position(|s| &s.column == name)
            .ok_or_else(|| {
                DetectError::Input(format!(
                    "peer signal `{name}` is not among the change signals"
                ))
            })?;
        peer_signals.push(idx);
    }
    let refs: Vec<&Signal> = peer_signals
        .iter()
        .map(|&i| &cfg.change.signals[i])
        .collect();
    let pe = peer::run(p, &cfg.peer, &refs);
    let nf = ch.z.len() + pe.z.len();
    let mut x = Array2::<f64>::zeros((p.len(), nf));
    for i in 0..p.len() {
        for (k, zs) in ch.z.iter().chain(pe.z.iter()).enumerate() {
            x[[i, k]] = zs[i].unwrap_or(0.0).clamp(-8.0, 8.0);
        }
    }
    Ok(Stats {
        change: ch,
        peer: pe,
        peer_signals,
        x,
    })
}

/// Trailing mean over the last `w` rows of each facility.
fn rolling(p: &Panel, v: &[f64], w: usize) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for &(a, b) in &p.ranges {
        for i in a..b {
            let lo = i.saturating_sub(w.max(1) - 1).max(a);
            out[i] = v[lo..=i].iter().sum::<f64>() / (i - lo + 1) as f64;
        }
    }
    out
}

/// The doctor (`prescriber_code`) or department (`department_code`) of a
/// comparison per facility and period (days since 1970), when the table
/// carries it.
fn units_of(
    table: &DataFrame,
    column: &str,
) -> Result<HashMap<(String, i32), String>, DetectError> {
    let Ok(code) = table.column(column) else {
        return Ok(HashMap::new());
    };
    let code = code.str()?;
    let fac = table.column("facility_code")?.str()?;
    let per = table.column("period_start")?.cast(&DataType::Int32)?;
    let per = per.i32()?;
    Ok((0..table.height())
        .filter_map(|i| {
            Some((
                (fac.get(i)?.to_string(), per.get(i)?),
                code.get(i)?.to_string(),
            ))
        })
        .collect())
}

pub(crate) fn date_of(days: i32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days as i64)
}

pub(crate) fn days_of(d: chrono::NaiveDate) -> i32 {
    (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

/// Fits the detector on the periods of `table` up to `train_to` (default:
/// the first `change.baseline_share` of the periods, at least 3).
/// `claim_counts` (from [`claims::flag_claims`]) is joined when given.
pub fn fit(
    table: &DataFrame,
    claim_counts: Option<&DataFrame>,
    cfg: &DetectConfig,
    train_to: Option<chrono::NaiveDate>,
) -> Result<DetectorModel, DetectError> {
    let table = with_claims(table, claim_counts)?;
    let p = Panel::from_df(&table, &needed_columns(cfg))?;
    let mut periods = p.period.clone();
    periods.sort_unstable();
    periods.dedup();
    if periods.len() < 4 {
        return Err(DetectError::Input(format!(
            "{} periods: detection needs at least 4 (3 to learn from)",
            periods.len()
        )));
    }
    let train_end = match train_to {
        Some(d) => days_of(d) + 1,
        None => {
            let n = ((periods.len() as f64 * cfg.change.baseline_share).round() as usize)
                .clamp(3, periods.len() - 1);
            periods[n]
        }
    };
    let base = change::baselines(&p, &cfg.change, train_end);
    let st = statistics(&p, cfg, &base, train_end)?;
    let train: Vec<usize> = (0..p.len()).filter(|&i| p.period[i] < train_end).collect();
    if train.len() < 10 {
        return Err(DetectError::Input(format!(
            "{} training rows: too few to fit the multivariate models",
            train.len()
        )));
    }
    let xt = st.x.select(ndarray::Axis(0), &train);
    let forest = cfg.forest.fit(&DatasetBase::from(xt.clone()))?;
    let mixture = Mixture::fit(&xt, &cfg.mixture).ok();
    let (fs, ms) = multivariate_raw(
        &p,
        &st.x,
        &forest,
        mixture.as_ref(),
        cfg.multivariate_window,
    );
    let mut forest_null: Vec<f64> = train.iter().map(|&i| fs[i]).collect();
    forest_null.sort_by(f64::total_cmp);
    let mut mixture_null: Vec<f64> = train.iter().map(|&i| ms[i]).collect();
    mixture_null.sort_by(f64::total_cmp);
    let last_train = periods
        .iter()
        .copied()
        .filter(|&d| d < train_end)
        .max()
        .unwrap_or(periods[0]);
    Ok(DetectorModel {
        meta: ModelMeta {
            version: MODEL_VERSION.into(),
            period: p.period_name.clone(),
            training_from: date_of(periods[0]),
            training_to: date_of(last_train),
            facilities: p.ranges.len(),
            rows: train.len(),
            features: feature_names(cfg),
        },
        config: cfg.clone(),
        baselines: base,
        forest,
        mixture,
        forest_null,
        mixture_null,
    })
}

/// Windowed forest score and mixture negative log-density per row.
fn multivariate_raw(
    p: &Panel,
    x: &Array2<f64>,
    forest: &IsolationForest,
    mixture: Option<&Mixture>,
    w: usize,
) -> (Vec<f64>, Vec<f64>) {
    use rayon::prelude::*;
    let rows: Vec<Vec<f64>> = x.rows().into_iter().map(|r| r.to_vec()).collect();
    let fs: Vec<f64> = rows.par_iter().map(|r| forest.score_row(r)).collect();
    let ms: Vec<f64> = rows
        .par_iter()
        .map(|r| mixture.map(|m| -m.log_density(r)).unwrap_or(0.0))
        .collect();
    (rolling(p, &fs, w), rolling(p, &ms, w))
}

/// The features table with a comparison within facilities
/// ([`prescriber::prescriber_stats`], [`prescriber::department_stats`])
/// joined, for [`DetectorModel::score`].
pub fn with_unit_stats(table: &DataFrame, stats: &DataFrame) -> Result<DataFrame, DetectError> {
    with_claims(table, Some(stats))
}

fn with_claims(table: &DataFrame, claims: Option<&DataFrame>) -> Result<DataFrame, DetectError> {
    let Some(c) = claims else {
        return Ok(table.clone());
    };
    let mut c = c.clone();
    if c.column("period_start")?.dtype() != table.column("period_start")?.dtype() {
        let dt = table.column("period_start")?.dtype().clone();
        c = c
            .lazy()
            .with_column(col("period_start").cast(dt))
            .collect()?;
    }
    Ok(table
        .clone()
        .lazy()
        .join(
            c.lazy(),
            [col("facility_code"), col("period_start")],
            [col("facility_code"), col("period_start")],
            JoinArgs::new(JoinType::Left),
        )
        .collect()?)
}

/// The scores of one facility-period.
#[derive(Debug, Clone, PartialEq)]
pub struct RowScore {
    pub facility_code: String,
    pub period_start: chrono::NaiveDate,
    pub peer_group: String,
    pub visits: f64,
    /// Ensemble severity.
    pub severity: f64,
    pub alert: bool,
    /// Detector and indicator that drive the severity.
    pub detector: String,
    pub signal: String,
    /// The signal's value in the period, its peer median and the
    /// facility's expected value (own baseline moved as its peers moved).
    pub observed: Option<f64>,
    pub peer_value: Option<f64>,
    pub expected: Option<f64>,
    /// First period of the episode behind the severity.
    pub onset: Option<chrono::NaiveDate>,
    /// Periods in the trailing window of the peer and claim detectors
    /// (fewer than the configured window at the start of the data).
    pub window_periods: u32,
    /// Estimated excess cost of the episode, VND.
    pub excess_vnd: f64,
    pub sev_change: f64,
    pub sev_peer: f64,
    pub sev_forest: f64,
    pub sev_mixture: f64,
    pub sev_claims: f64,
    pub sev_prescriber: f64,
    pub sev_upcoding: f64,
    pub sev_shift: f64,
    pub sev_department: f64,
    /// The doctor (MA_BAC_SI) of the prescriber comparison in the period.
    pub prescriber: Option<String>,
    /// The department (MA_KHOA) of the department comparison in the period.
    pub department: Option<String>,
    /// Flagged claims of the driving claim check in the window, and the number expected.
    pub claims_flagged: Option<f64>,
    pub claims_expected: Option<f64>,
}

impl DetectorModel {
    /// Scores every facility-period of `table`.
    pub fn score(
        &self,
        table: &DataFrame,
        claim_counts: Option<&DataFrame>,
    ) -> Result<Vec<RowScore>, DetectError> {
        let cfg = &self.config;
        let table = with_claims(table, claim_counts)?;
        let mut needed = needed_columns(cfg);
        let has_claims = table.column("claims").is_ok();
        if has_claims {
            needed.push("claims".into());
            for k in claims::KINDS {
                needed.push(format!("{k}_n"));
                needed.push(format!("{k}_cost"));
            }
        }
        let has_prescriber = table.column("prescriber_p").is_ok();
        if has_prescriber {
            needed.extend(prescriber::COLUMNS.iter().map(|c| c.to_string()));
            needed.extend(shift::COLUMNS.iter().map(|c| c.to_string()));
        }
        let has_department = table.column("department_p").is_ok();
        if has_department {
            needed.extend(prescriber::DEPARTMENT_COLUMNS.iter().map(|c| c.to_string()));
        }
        // With a claims store: the claim checks, the prescriber comparison
        // and the claim-level cost shift (same residuals), the departments.
        let detectors = 5
            + usize::from(has_claims)
            + 2 * usize::from(has_prescriber)
            + usize::from(has_department);
        let doctors = units_of(&table, "prescriber_code")?;
        let departments = units_of(&table, "department_code")?;
        let p = Panel::from_df(&table, &needed)?;
        let known = p
            .ranges
            .iter()
            .filter(|r| self.baselines.contains_key(&p.fac[r.0]))
            .count();
        if known * 2 < p.ranges.len() {
            return Err(DetectError::Input(format!(
                "the model knows {known} of the table's {} facilities: it was fitted on other data; fit it on this province's history (--fit)",
                p.ranges.len()
            )));
        }
        let train_end = days_of(self.meta.training_to) + 1;
        let st = statistics(&p, cfg, &self.baselines, train_end)?;
        if st.x.ncols() != self.forest.n_features() {
            return Err(DetectError::Input(format!(
                "the model was fitted on {} features, the configuration gives {}",
                self.forest.n_features(),
                st.x.ncols()
            )));
        }
        let (fs, ms) = multivariate_raw(
            &p,
            &st.x,
            &self.forest,
            self.mixture.as_ref(),
            cfg.multivariate_window,
        );
        let claim_sev = if has_claims {
            Some(claim_severity(&p, cfg))
        } else {
            None
        };
        let up = upcoding::two_windows(&p, train_end, cfg.peer.window, 10.0);
        let sh = if has_prescriber {
            shift::two_windows(&p, train_end, cfg.peer.window, &cfg.shift)
        } else {
            vec![shift::ShiftStat::default(); p.len()]
        };
        let ns = cfg.change.signals.len();
        let k = cfg.change.cusum_k;
        let mut out = Vec::with_capacity(p.len());
        for i in 0..p.len() {
            let lo = p.ranges[p.ranges.partition_point(|r| r.1 <= i)].0;
            // First row of the trailing window (the peer and claim windows).
            let first = i.saturating_sub(cfg.peer.window.max(1) - 1).max(lo);
            let window_periods = (i - first + 1) as u32;
            // Change: the signal with the largest CUSUM.
            let (mut c_best, mut c_sig) = (0.0, 0usize);
            for si in 0..ns {
                if st.change.cusum[si][i] > c_best {
                    c_best = st.change.cusum[si][i];
                    c_sig = si;
                }
            }
            let p_change = sidak(cusum_p(c_best, k), ns);
            // Peer: the largest z.
            let (mut z_best, mut z_sig) = (f64::NEG_INFINITY, 0usize);
            for (pi, zs) in st.peer.z.iter().enumerate() {
                if let Some(z) = zs[i] {
                    if z > z_best {
                        z_best = z;
                        z_sig = pi;
                    }
                }
            }
            let p_peer = if z_best.is_finite() {
                sidak(p_of_severity(z_best), st.peer.z.len())
            } else {
                1.0
            };
            let p_forest = empirical_p(&self.forest_null, fs[i]);
            let p_mixture = if self.mixture.is_some() {
                empirical_p(&self.mixture_null, ms[i])
            } else {
                1.0
            };
            let (p_claims, c_kind, c_obs, c_exp, c_excess) = claim_sev
                .as_ref()
                .map(|c| c[i])
                .unwrap_or((1.0, 0, None, None, 0.0));
            let p_presc = if has_prescriber {
                p.col("prescriber_p")[i].unwrap_or(1.0)
            } else {
                1.0
            };
            let p_dept = if has_department {
                p.col("department_p")[i].unwrap_or(1.0)
            } else {
                1.0
            };
            let key = (p.fac[i].clone(), p.period[i]);
            let ps = [
                p_change, p_peer, p_forest, p_mixture, p_claims, p_presc, up[i].p, sh[i].p, p_dept,
            ];
            let (arg, pmin) = ps
                .iter()
                .copied()
                .enumerate()
                .fold((0, 1.0), |acc, (j, v)| if v < acc.1 { (j, v) } else { acc });
            let severity = severity_of_p(sidak(pmin, detectors));
            // The multivariate models point at the signal that moved most.
            let top_change = (0..ns)
                .filter_map(|si| st.change.z[si][i].map(|z| (si, z)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|x| x.0)
                .unwrap_or(0);
            let (detector, sig_idx) = match arg {
                0 => ("change", Some(c_sig)),
                1 => ("peer", Some(st.peer_signals[z_sig])),
                2 => ("forest", Some(top_change)),
                3 => ("mixture", Some(top_change)),
                4 => ("claims", None),
                5 => ("prescriber", None),
                6 => ("upcoding", None),
                7 => ("cost_shift", None),
                _ => ("department", None),
            };
            let (signal, observed, peer_value, expected, onset, excess) = match sig_idx {
                Some(si) => {
                    let s = &cfg.change.signals[si];
                    let pi = st.peer_signals.iter().position(|&x| x == si);
                    let peer_median = pi.and_then(|pi| st.peer.median[pi][i]);
                    // The episode: the change detector's run when there is
                    // one (it spans the whole rise), else the peer window;
                    // the excess is the larger of the two estimates.
                    let peer_excess = pi.map(|pi| st.peer.excess[pi][i]).unwrap_or(0.0);
                    let run_excess = st.change.run_excess[si][i];
                    let onset = match (st.change.onset[si][i], detector) {
                        (Some(d), _) => Some(date_of(d)),
                        (None, "peer") => Some(date_of(p.period[first])),
                        (None, _) => None,
                    };
                    // Peer excess is priced only while the facility is above its peers.
                    let excess = run_excess.max(peer_excess);
                    let (observed, expected) = match detector {
                        "change" => (st.change.run_observed[si][i], st.change.run_expected[si][i]),
                        "peer" => (
                            pi.and_then(|pi| st.peer.window_mean[pi][i]),
                            st.change.expected[si][i],
                        ),
                        _ => (p.value(s, i), st.change.expected[si][i]),
                    };
                    (
                        s.column.clone(),
                        observed,
                        peer_median,
                        expected,
                        onset,
                        excess,
                    )
                }
                None if detector == "upcoding" => (
                    "upcoding".to_string(),
                    Some(1.0 + up[i].coded_rise),
                    None,
                    Some(1.0 - up[i].care_fall),
                    Some(date_of(p.period[first])),
                    up[i].excess,
                ),
                None if detector == "cost_shift" => (
                    "claim_cost".to_string(),
                    Some(sh[i].d.exp()),
                    None,
                    Some(1.0),
                    Some(date_of(p.period[first])),
                    sh[i].excess,
                ),
                None if detector == "prescriber" || detector == "department" => (
                    detector.to_string(),
                    p.col(&format!("{detector}_ratio"))[i],
                    None,
                    Some(1.0),
                    Some(date_of(p.period[first])),
                    p.col(&format!("{detector}_excess"))[i].unwrap_or(0.0),
                ),
                None => (
                    claims::KINDS[c_kind].to_string(),
                    c_obs,
                    None,
                    c_exp,
                    Some(date_of(p.period[first])),
                    c_excess,
                ),
            };
            out.push(RowScore {
                facility_code: p.fac[i].clone(),
                period_start: date_of(p.period[i]),
                peer_group: p.group[i].clone(),
                visits: p.col("visits")[i].unwrap_or(0.0),
                severity,
                alert: severity >= cfg.alert.alert_severity && excess >= cfg.alert.min_excess_vnd,
                detector: detector.into(),
                signal,
                observed,
                peer_value,
                expected,
                onset,
                window_periods,
                excess_vnd: excess,
                sev_change: severity_of_p(p_change),
                sev_peer: severity_of_p(p_peer),
                sev_forest: severity_of_p(p_forest),
                sev_mixture: severity_of_p(p_mixture),
                sev_claims: severity_of_p(p_claims),
                sev_prescriber: severity_of_p(p_presc),
                sev_upcoding: severity_of_p(up[i].p),
                sev_shift: severity_of_p(sh[i].p),
                sev_department: severity_of_p(p_dept),
                prescriber: if detector == "prescriber" {
                    doctors.get(&key).cloned()
                } else {
                    None
                },
                department: if detector == "department" {
                    departments.get(&key).cloned()
                } else {
                    None
                },
                claims_flagged: if detector == "claims" { c_obs } else { None },
                claims_expected: if detector == "claims" { c_exp } else { None },
            });
        }
        Ok(out)
    }

    /// The inputs of the multivariate models per facility-period, with the
    /// raw forest score and mixture negative log-density (unwindowed): for
    /// analysts and for the scikit-learn comparison in `benches/`.
    pub fn multivariate_inputs(
        &self,
        table: &DataFrame,
        claim_counts: Option<&DataFrame>,
    ) -> Result<DataFrame, DetectError> {
        let table = with_claims(table, claim_counts)?;
        let p = Panel::from_df(&table, &needed_columns(&self.config))?;
        let train_end = days_of(self.meta.training_to) + 1;
        let st = statistics(&p, &self.config, &self.baselines, train_end)?;
        let (fs, ms) = multivariate_raw(&p, &st.x, &self.forest, self.mixture.as_ref(), 1);
        let mut cols = vec![
            Column::new("facility_code".into(), p.fac.clone()),
            Column::new("period_start".into(), p.period.clone()).cast(&DataType::Date)?,
            Column::new(
                "training".into(),
                p.period.iter().map(|d| *d < train_end).collect::<Vec<_>>(),
            ),
        ];
        for (k, name) in self.meta.features.iter().enumerate() {
            cols.push(Column::new(name.as_str().into(), st.x.column(k).to_vec()));
        }
        cols.push(Column::new("forest_score".into(), fs));
        cols.push(Column::new("mixture_nll".into(), ms));
        Ok(DataFrame::new_infer_height(cols)?)
    }

    /// The facility's baseline of a signal and the standard deviation of a
    /// period of the given volume: what control limits are drawn from.
    pub fn control(&self, facility: &str, signal: &str, volume: f64) -> Option<(f64, f64)> {
        let si = self
            .config
            .change
            .signals
            .iter()
            .position(|s| s.column == signal)?;
        let s = &self.config.change.signals[si];
        let b = self.baselines.get(facility)?.get(si).copied().flatten()?;
        let sd = (b.var + s.dispersion.powi(2) / volume.max(1.0) + s.floor.powi(2)).sqrt();
        Some((b.mean, sd))
    }

    /// Writes the model as pretty JSON (atomically).
    pub fn save(&self, path: &Path) -> Result<(), DetectError> {
        let err = |reason: String| DetectError::Model {
            path: path.display().to_string(),
            reason,
        };
        let json = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        crate::store::write_atomic(path, json.as_bytes()).map_err(|e| err(e.to_string()))
    }

    pub fn load(path: &Path) -> Result<DetectorModel, DetectError> {
        let err = |reason: String| DetectError::Model {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let m: DetectorModel = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        if !m.meta.version.starts_with("bhyt-detector/1") {
            return Err(err(format!("unknown model version {}", m.meta.version)));
        }
        Ok(m)
    }
}

/// Claim checks of one row: (p, kind, flagged in window, expected, excess VND).
type ClaimSeverity = (f64, usize, Option<f64>, Option<f64>, f64);

/// Claim checks per row.
/// The expected count is the window's claims × the province rate of the
/// same window (all facilities).
fn claim_severity(p: &Panel, cfg: &DetectConfig) -> Vec<ClaimSeverity> {
    let w = cfg.peer.window.max(1);
    let n = p.len();
    let claims = p.col("claims");
    // Window sums per row.
    let win = |v: &[Option<f64>]| -> Vec<f64> {
        let mut out = vec![0.0; n];
        for &(a, b) in &p.ranges {
            for i in a..b {
                let lo = i.saturating_sub(w - 1).max(a);
                out[i] = (lo..=i).map(|j| v[j].unwrap_or(0.0)).sum();
            }
        }
        out
    };
    let wc = win(claims);
    let mut res = vec![(1.0, 0usize, None, None, 0.0); n];
    for (ki, kind) in claims::KINDS.iter().enumerate() {
        let wk = win(p.col(&format!("{kind}_n")));
        let wcost = win(p.col(&format!("{kind}_cost")));
        // Province rate per period (window sums over every facility).
        let mut tot: HashMap<i32, (f64, f64)> = HashMap::new();
        for i in 0..n {
            let e = tot.entry(p.period[i]).or_default();
            e.0 += wk[i];
            e.1 += wc[i];
        }
        for i in 0..n {
            let (k_all, n_all) = tot[&p.period[i]];
            if wk[i] < cfg.claims.min_flagged || n_all <= 0.0 {
                continue;
            }
            // The facility's own claims are left out of the rate it is held to.
            let rate = ((k_all - wk[i]) / (n_all - wc[i]).max(1.0)).max(0.5 / n_all);
            let lambda = wc[i] * rate;
            let pv = sidak(poisson_tail(wk[i], lambda), claims::KINDS.len());
            if pv < res[i].0 {
                let excess = if wk[i] > 0.0 {
                    wcost[i] * ((wk[i] - lambda) / wk[i]).max(0.0)
                } else {
                    0.0
                };
                res[i] = (pv, ki, Some(wk[i]), Some(lambda), excess);
            }
        }
    }
    res
}

/// Scores as a table (`scores.parquet`): one row per facility-period.
pub fn scores_frame(scores: &[RowScore], cfg: &AlertConfig) -> Result<DataFrame, DetectError> {
    let s = |f: fn(&RowScore) -> &str| scores.iter().map(f).collect::<Vec<_>>();
    let num = |f: fn(&RowScore) -> f64| scores.iter().map(f).collect::<Vec<_>>();
    let opt = |f: fn(&RowScore) -> Option<f64>| scores.iter().map(f).collect::<Vec<_>>();
    let date = |f: fn(&RowScore) -> Option<chrono::NaiveDate>| -> Result<Column, PolarsError> {
        Column::new(
            "x".into(),
            scores.iter().map(|r| f(r).map(days_of)).collect::<Vec<_>>(),
        )
        .cast(&DataType::Date)
    };
    let level: Vec<&str> = scores
        .iter()
        .map(|r| {
            if r.alert && r.severity >= cfg.high_severity {
                "high"
            } else if r.alert {
                "alert"
            } else if r.severity >= cfg.alert_severity - 1.0 {
                "watch"
            } else {
                "normal"
            }
        })
        .collect();
    let cols = vec![
        Column::new("facility_code".into(), s(|r| &r.facility_code)),
        date(|r| Some(r.period_start))?.with_name("period_start".into()),
        Column::new("peer_group".into(), s(|r| &r.peer_group)),
        Column::new("visits".into(), num(|r| r.visits)),
        Column::new("severity".into(), num(|r| r.severity)),
        Column::new("level".into(), level),
        Column::new(
            "alert".into(),
            scores.iter().map(|r| r.alert).collect::<Vec<_>>(),
        ),
        Column::new("detector".into(), s(|r| &r.detector)),
        Column::new("signal".into(), s(|r| &r.signal)),
        Column::new("observed".into(), opt(|r| r.observed)),
        Column::new("peer_value".into(), opt(|r| r.peer_value)),
        Column::new("expected".into(), opt(|r| r.expected)),
        date(|r| r.onset)?.with_name("onset".into()),
        Column::new("excess_vnd".into(), num(|r| r.excess_vnd)),
        Column::new("sev_change".into(), num(|r| r.sev_change)),
        Column::new("sev_peer".into(), num(|r| r.sev_peer)),
        Column::new("sev_forest".into(), num(|r| r.sev_forest)),
        Column::new("sev_mixture".into(), num(|r| r.sev_mixture)),
        Column::new("sev_claims".into(), num(|r| r.sev_claims)),
        Column::new("sev_prescriber".into(), num(|r| r.sev_prescriber)),
        Column::new("sev_upcoding".into(), num(|r| r.sev_upcoding)),
        Column::new("sev_shift".into(), num(|r| r.sev_shift)),
        Column::new("sev_department".into(), num(|r| r.sev_department)),
        Column::new(
            "prescriber".into(),
            scores
                .iter()
                .map(|r| r.prescriber.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "department".into(),
            scores
                .iter()
                .map(|r| r.department.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new("claims_flagged".into(), opt(|r| r.claims_flagged)),
        Column::new("claims_expected".into(), opt(|r| r.claims_expected)),
    ];
    Ok(DataFrame::new_infer_height(cols)?)
}

/// Columns of `scores.parquet`, documented for the model card.
pub const SCORE_COLUMNS: &[(&str, &str)] = &[
    ("facility_code", "MA_CSKCB"),
    ("period_start", "first day of the period"),
    ("peer_group", "peer group of the facility"),
    ("visits", "visits in the period"),
    (
        "severity",
        "ensemble severity: Φ⁻¹(1 − p) of the Šidák-combined smallest detector tail probability",
    ),
    (
        "level",
        "normal, watch (≥ alert − 1, or an alert below the minimum excess), alert (≥ alert_severity and ≥ min_excess_vnd), high (an alert ≥ high_severity)",
    ),
    ("alert", "severity ≥ alert_severity and excess ≥ min_excess_vnd"),
    (
        "detector",
        "detector with the smallest tail probability: change, peer, forest, mixture, claims, prescriber, upcoding, cost_shift, department",
    ),
    (
        "signal",
        "indicator behind it (for claims: duplicate, los_outlier, mismatch; prescriber; department; claim_cost for the cost shift)",
    ),
    (
        "observed",
        "value of the signal in the period (claims: flagged claims in the window; prescriber: the doctor's cost ratio to colleagues; department: its change of cost per claim against its colleagues' change; upcoding: the coded admission rate against the baseline's; cost shift: cost per claim against the facility's own earlier level)",
    ),
    (
        "peer_value",
        "peer-group median of the signal's window mean",
    ),
    (
        "expected",
        "the facility's baseline moved as its peers moved (claims: expected flagged claims; upcoding: O/E admission against the baseline's)",
    ),
    ("onset", "first period of the episode (CUSUM run or window)"),
    ("excess_vnd", "estimated excess cost of the episode, VND"),
    ("sev_change", "severity of the change detector"),
    ("sev_peer", "severity of the peer comparison"),
    ("sev_forest", "severity of the isolation forest"),
    ("sev_mixture", "severity of the Gaussian mixture"),
    ("sev_claims", "severity of the claim checks"),
    (
        "sev_prescriber",
        "severity of the prescriber comparison (the most extreme doctor)",
    ),
    (
        "prescriber",
        "doctor (MA_BAC_SI) behind a prescriber alert",
    ),
    (
        "sev_upcoding",
        "severity of the upcoding check (coded severity up, admissions not following)",
    ),
    (
        "sev_shift",
        "severity of the claim-level cost shift (claims dearer than their diagnoses cost there before, net of peers)",
    ),
    (
        "sev_department",
        "severity of the department comparison (the department whose cost per claim rose most against its colleagues')",
    ),
    (
        "department",
        "department (MA_KHOA) behind a department alert",
    ),
    (
        "claims_flagged",
        "flagged claims in the window when the claim checks drive",
    ),
    (
        "claims_expected",
        "flagged claims expected at the province rate",
    ),
];
