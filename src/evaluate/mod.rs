//! Evaluation of a facility ranking against a labels file (facility, start,
//! end, type, benign, true excess): the measures the `evaluate` stage
//! reports. The labels are read only here: detection never sees them.

pub mod family;

use std::path::Path;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error("labels {path}: {source}")]
    Csv {
        path: String,
        #[source]
        source: csv::Error,
    },
    #[error("world {world}, {stage}: {source}")]
    Stage {
        world: String,
        stage: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("scores {path}: {source}")]
    Scores {
        path: String,
        #[source]
        source: polars::prelude::PolarsError,
    },
}

/// One row of a labels file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Label {
    pub facility_code: String,
    pub start: chrono::NaiveDate,
    pub end: chrono::NaiveDate,
    #[serde(rename = "type")]
    pub kind: String,
    pub benign: bool,
    pub true_excess_vnd: f64,
}

/// Reads `labels.csv` (facility codes stay text: leading zeros matter).
pub fn read_labels(path: &Path) -> Result<Vec<Label>, EvaluateError> {
    let err = |source| EvaluateError::Csv {
        path: path.display().to_string(),
        source,
    };
    csv::Reader::from_path(path)
        .map_err(err)?
        .deserialize()
        .collect::<Result<Vec<Label>, _>>()
        .map_err(err)
}

/// Area under the ROC curve of `scores` (score, is positive): the
/// probability that a random positive outranks a random negative, ties
/// counting half (Mann–Whitney). `None` without both classes.
pub fn roc_auc(scores: &[(f64, bool)]) -> Option<f64> {
    let pos: Vec<f64> = scores.iter().filter(|s| s.1).map(|s| s.0).collect();
    let neg: Vec<f64> = scores.iter().filter(|s| !s.1).map(|s| s.0).collect();
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    // Rank-sum with average ranks for ties: O(n log n).
    let mut all: Vec<(f64, bool)> = scores.to_vec();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += avg_rank * all[i..=j].iter().filter(|s| s.1).count() as f64;
        i = j + 1;
    }
    let (np, nn) = (pos.len() as f64, neg.len() as f64);
    Some((rank_sum_pos - np * (np + 1.0) / 2.0) / (np * nn))
}

/// Average precision (area under the precision–recall curve, step-wise):
/// mean of the precision at the rank of each positive. `None` without
/// positives.
pub fn average_precision(scores: &[(f64, bool)]) -> Option<f64> {
    let n_pos = scores.iter().filter(|s| s.1).count();
    if n_pos == 0 {
        return None;
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut hits, mut sum) = (0usize, 0.0);
    let mut i = 0;
    while i < sorted.len() {
        // Tied scores form one threshold.
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1].0 == sorted[i].0 {
            j += 1;
        }
        let new_hits = sorted[i..=j].iter().filter(|s| s.1).count();
        hits += new_hits;
        sum += new_hits as f64 * hits as f64 / (j + 1) as f64;
        i = j + 1;
    }
    Some(sum / n_pos as f64)
}

/// Share of positives among the `k` highest scores.
pub fn precision_at_k(scores: &[(f64, bool)], k: usize) -> Option<f64> {
    if k == 0 || scores.is_empty() {
        return None;
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let k = k.min(sorted.len());
    Some(sorted[..k].iter().filter(|s| s.1).count() as f64 / k as f64)
}

/// One scored facility-period, as `evaluate` reads it from `scores.parquet`.
#[derive(Debug, Clone)]
pub struct ScoredPeriod {
    pub facility_code: String,
    pub period_start: chrono::NaiveDate,
    pub severity: f64,
    pub alert: bool,
    pub excess_vnd: f64,
}

/// Outcome of one labelled anomaly.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LabelOutcome {
    pub facility_code: String,
    pub kind: String,
    pub benign: bool,
    pub start: chrono::NaiveDate,
    /// First alert between the start and `end + grace`.
    pub first_alert: Option<chrono::NaiveDate>,
    /// Weeks from the start to the first alert (0 when the alert's period
    /// contains the start).
    pub weeks_to_alert: Option<f64>,
    pub true_excess_vnd: f64,
    /// Largest episode excess of the facility's alerts in the window.
    pub estimated_excess_vnd: Option<f64>,
    pub max_severity: f64,
}

/// The measures of `bhyt evaluate`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evaluation {
    pub facilities: usize,
    pub positives: usize,
    pub roc_auc: Option<f64>,
    pub average_precision: Option<f64>,
    pub precision_at_k: Option<f64>,
    /// Facilities without an injected fraud that raised at least one alert.
    pub false_alert_facilities: Vec<String>,
    /// Of those, facilities carrying a benign look-alike label that alerted
    /// during it (or within the grace period after).
    pub benign_alert_facilities: Vec<String>,
    pub labels: Vec<LabelOutcome>,
}

/// Compares scored facility-periods with labels: the facility ranking (its
/// largest severity), alerts per label within [start, end + grace], and
/// alerts where nothing was injected. A facility counts as a benign
/// look-alike only if none of its labels is a fraud.
pub fn evaluate(scores: &[ScoredPeriod], labels: &[Label], grace_days: i64) -> Evaluation {
    use std::collections::{BTreeMap, BTreeSet};
    let fraud: BTreeSet<&str> = labels
        .iter()
        .filter(|l| !l.benign)
        .map(|l| l.facility_code.as_str())
        .collect();
    let mut best: BTreeMap<&str, f64> = BTreeMap::new();
    for s in scores {
        let e = best.entry(s.facility_code.as_str()).or_insert(0.0);
        *e = e.max(s.severity);
    }
    let pairs: Vec<(f64, bool)> = best.iter().map(|(f, v)| (*v, fraud.contains(f))).collect();
    let k = fraud.len();
    let mut outcomes = Vec::new();
    for l in labels {
        let end = l.end + chrono::Duration::days(grace_days);
        // A period whose start is up to 6 days before the label start contains it.
        let lo = l.start - chrono::Duration::days(6);
        let rows: Vec<&ScoredPeriod> = scores
            .iter()
            .filter(|s| {
                s.facility_code == l.facility_code && s.period_start >= lo && s.period_start <= end
            })
            .collect();
        let first = rows
            .iter()
            .filter(|s| s.alert)
            .map(|s| s.period_start)
            .min();
        outcomes.push(LabelOutcome {
            facility_code: l.facility_code.clone(),
            kind: l.kind.clone(),
            benign: l.benign,
            start: l.start,
            first_alert: first,
            weeks_to_alert: first.map(|d| ((d - l.start).num_days().max(0) as f64) / 7.0),
            true_excess_vnd: l.true_excess_vnd,
            estimated_excess_vnd: first.map(|_| {
                rows.iter()
                    .filter(|s| s.alert)
                    .map(|s| s.excess_vnd)
                    .fold(0.0, f64::max)
            }),
            max_severity: rows.iter().map(|s| s.severity).fold(0.0, f64::max),
        });
    }
    let false_alert: BTreeSet<String> = scores
        .iter()
        .filter(|s| s.alert && !fraud.contains(s.facility_code.as_str()))
        .map(|s| s.facility_code.clone())
        .collect();
    let benign: BTreeSet<String> = outcomes
        .iter()
        .filter(|o| {
            o.benign && o.first_alert.is_some() && !fraud.contains(o.facility_code.as_str())
        })
        .map(|o| o.facility_code.clone())
        .collect();
    Evaluation {
        facilities: pairs.len(),
        positives: k,
        roc_auc: roc_auc(&pairs),
        average_precision: average_precision(&pairs),
        precision_at_k: precision_at_k(&pairs, k),
        false_alert_facilities: false_alert.into_iter().collect(),
        benign_alert_facilities: benign.into_iter().collect(),
        labels: outcomes,
    }
}

/// Reads `scores.parquet` (from `bhyt detect`).
pub fn read_scores(path: &Path) -> Result<Vec<ScoredPeriod>, EvaluateError> {
    use polars::prelude::*;
    let err = |e: PolarsError| EvaluateError::Scores {
        path: path.display().to_string(),
        source: e,
    };
    let df = crate::store::scan_file(path)
        .and_then(|l| {
            l.select([
                col("facility_code"),
                col("period_start").cast(DataType::Int32),
                col("severity"),
                col("alert"),
                col("excess_vnd"),
            ])
            .collect()
        })
        .map_err(err)?;
    let f = df
        .column("facility_code")
        .and_then(|c| Ok(c.str()?.clone()))
        .map_err(err)?;
    let p = df
        .column("period_start")
        .and_then(|c| Ok(c.i32()?.clone()))
        .map_err(err)?;
    let s = df
        .column("severity")
        .and_then(|c| Ok(c.f64()?.clone()))
        .map_err(err)?;
    let a = df
        .column("alert")
        .and_then(|c| Ok(c.bool()?.clone()))
        .map_err(err)?;
    let x = df
        .column("excess_vnd")
        .and_then(|c| Ok(c.f64()?.clone()))
        .map_err(err)?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    Ok((0..df.height())
        .map(|i| ScoredPeriod {
            facility_code: f.get(i).unwrap_or("").to_string(),
            period_start: epoch + chrono::Duration::days(p.get(i).unwrap_or(0) as i64),
            severity: s.get(i).unwrap_or(0.0),
            alert: a.get(i).unwrap_or(false),
            excess_vnd: x.get(i).unwrap_or(0.0),
        })
        .collect())
}

/// The evaluation as a text report (Markdown tables).
pub fn render(e: &Evaluation) -> String {
    use std::fmt::Write;
    let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into());
    let mut o = String::new();
    let _ = writeln!(
        o,
        "facilities: {} ({} with injected fraud)",
        e.facilities, e.positives
    );
    let _ = writeln!(
        o,
        "ROC-AUC {}   PR-AUC (average precision) {}   precision@{} {}",
        f(e.roc_auc),
        f(e.average_precision),
        e.positives,
        f(e.precision_at_k)
    );
    let frauds: Vec<&LabelOutcome> = e.labels.iter().filter(|l| !l.benign).collect();
    let found = frauds.iter().filter(|l| l.first_alert.is_some()).count();
    let _ = writeln!(
        o,
        "recall: {found}/{} injected frauds alerted",
        frauds.len()
    );
    let _ = writeln!(
        o,
        "alerts on benign look-alikes: {} facilities {:?}; facilities without fraud that alerted: {} {:?}",
        e.benign_alert_facilities.len(),
        e.benign_alert_facilities,
        e.false_alert_facilities.len(),
        e.false_alert_facilities
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "| facility | type | start | first alert | weeks | max severity | true excess VND | estimated VND | est/true |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    let fraud: std::collections::BTreeSet<&str> = e
        .labels
        .iter()
        .filter(|l| !l.benign)
        .map(|l| l.facility_code.as_str())
        .collect();
    let mut by_kind: std::collections::BTreeMap<(bool, &str), (usize, usize)> = Default::default();
    for l in &e.labels {
        // Benign look-alikes count only where no fraud was injected.
        if !(l.benign && fraud.contains(l.facility_code.as_str())) {
            let k = by_kind.entry((l.benign, l.kind.as_str())).or_default();
            k.0 += 1;
            k.1 += l.first_alert.is_some() as usize;
        }
        if l.benign {
            continue;
        }
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {:.1} | {} | {} | {} |",
            l.facility_code,
            l.kind,
            l.start,
            l.first_alert
                .map(|d| d.to_string())
                .unwrap_or_else(|| "–".into()),
            l.weeks_to_alert
                .map(|w| format!("{w:.0}"))
                .unwrap_or_else(|| "–".into()),
            l.max_severity,
            crate::format::group_vi(l.true_excess_vnd.round() as i64),
            l.estimated_excess_vnd
                .map(|v| crate::format::group_vi(v.round() as i64))
                .unwrap_or_else(|| "–".into()),
            l.estimated_excess_vnd
                .filter(|_| l.true_excess_vnd > 0.0)
                .map(|v| format!("{:.2}", v / l.true_excess_vnd))
                .unwrap_or_else(|| "–".into()),
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "| type | kind | labels | alerted within [start, end + grace] |"
    );
    let _ = writeln!(o, "|---|---|---|---|");
    for ((benign, k), (n, a)) in by_kind {
        let kind = if benign {
            "benign (facilities without fraud)"
        } else {
            "fraud"
        };
        let _ = writeln!(o, "| {k} | {kind} | {n} | {a} |");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook example (scikit-learn's documentation): y = 0 0 1 1,
    /// scores 0.1 0.4 0.35 0.8 → ROC-AUC 0.75, average precision 0.8333.
    #[test]
    fn known_values() {
        let s = [(0.1, false), (0.4, false), (0.35, true), (0.8, true)];
        assert!((roc_auc(&s).unwrap() - 0.75).abs() < 1e-12);
        assert!((average_precision(&s).unwrap() - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(precision_at_k(&s, 1), Some(1.0));
        assert_eq!(precision_at_k(&s, 2), Some(0.5));
    }

    #[test]
    fn ties_count_half_and_degenerate_cases() {
        let s = [(1.0, true), (1.0, false)];
        assert_eq!(roc_auc(&s), Some(0.5));
        assert_eq!(roc_auc(&[(1.0, true)]), None);
        assert_eq!(average_precision(&[(1.0, false)]), None);
        let perfect = [(3.0, true), (2.0, true), (1.0, false)];
        assert_eq!(roc_auc(&perfect), Some(1.0));
        assert_eq!(average_precision(&perfect), Some(1.0));
    }

    #[test]
    fn labels_keep_leading_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.csv");
        std::fs::write(
            &p,
            "facility_code,start,end,type,benign,true_excess_vnd\n01001,2024-01-01,2024-02-01,upcoding,false,1200\n",
        )
        .unwrap();
        let l = read_labels(&p).unwrap();
        assert_eq!(l[0].facility_code, "01001");
        assert_eq!(l[0].kind, "upcoding");
        assert!(!l[0].benign);
    }
}
