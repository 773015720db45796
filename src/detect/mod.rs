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
mod panel;
pub mod peer;
pub mod prescriber;
mod score;
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

pub(crate) use panel::{date_of, days_of, excess_spread, median, two_windows, Panel};
pub use score::{scores_frame, RowScore, SCORE_COLUMNS};

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

impl DetectorModel {
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
