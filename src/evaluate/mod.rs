//! Evaluation of a facility ranking against a labels file (facility, start,
//! end, type, benign, true excess): the measures the `evaluate` stage
//! reports. The labels are read only here: detection never sees them.

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
