//! Fair peer groups and the comparison within them.
//!
//! A facility is compared with facilities of the same level, grade and kind
//! (optionally the same province). A group smaller than `min_peer_size` is
//! widened step by step (level+kind, then level, then everyone), so that a
//! median and a MAD always rest on enough facilities. Facilities whose
//! registry attributes are missing get the peer group most common among the
//! facilities with a similar service profile (k-means with `linfa`).

use std::collections::HashMap;

use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::Array2;
use polars::prelude::*;
use rand::SeedableRng;

use super::{FeatureConfig, FeatureError};
use crate::store::Store;

/// Service-profile columns used by the fallback clustering.
const PROFILE: &[&str] = &[
    "admission_rate",
    "drug_share",
    "lab_share",
    "imaging_share",
    "procedure_share",
    "bed_cost_share_inpatient",
    "avg_cost_outpatient",
    "visits",
];

fn strs(df: &DataFrame, c: &str) -> Result<Vec<Option<String>>, FeatureError> {
    let s = df.column(c)?.cast(&DataType::String)?;
    Ok(s.str()?.iter().map(|v| v.map(str::to_string)).collect())
}

/// Assigns each facility of `indicators` a peer group:
/// `facility_code, peer_group, peer_basis, peer_size`.
pub fn assign(
    store: &Store,
    indicators: &DataFrame,
    cfg: &FeatureConfig,
) -> Result<DataFrame, FeatureError> {
    let reg = store.facilities()?.collect()?;
    let codes = strs(&reg, "facility_code")?;
    let level = strs(&reg, "level")?;
    let grade = strs(&reg, "grade")?;
    let kind = strs(&reg, "kind")?;
    let prov = strs(&reg, "province")?;
    let active: std::collections::HashSet<String> = strs(indicators, "facility_code")?
        .into_iter()
        .flatten()
        .collect();
    struct Attrs {
        level: Option<String>,
        grade: Option<String>,
        kind: Option<String>,
        province: String,
    }
    let mut attrs: Vec<(String, Attrs)> = Vec::new();
    for i in 0..reg.height() {
        if let Some(c) = &codes[i] {
            if active.contains(c) {
                attrs.push((
                    c.clone(),
                    Attrs {
                        level: level[i].clone(),
                        grade: grade[i].clone(),
                        kind: kind[i].clone(),
                        province: prov[i].clone().unwrap_or_default(),
                    },
                ));
            }
        }
    }
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    // Candidate keys, most specific first.
    let keys = |a: &Attrs| -> Vec<String> {
        let p = if cfg.peers_within_province {
            format!("|{}", a.province)
        } else {
            String::new()
        };
        let l = a.level.clone().unwrap_or_default();
        vec![
            format!(
                "{l}|{}|{}{p}",
                a.grade.clone().unwrap_or_default(),
                a.kind.clone().unwrap_or_default()
            ),
            format!("{l}|*|{}{p}", a.kind.clone().unwrap_or_default()),
            format!("{l}|*|*{p}"),
            "all".to_string(),
        ]
    };
    let known = |a: &Attrs| a.level.is_some() && a.grade.is_some() && a.kind.is_some();
    let mut sizes: HashMap<String, usize> = HashMap::new();
    for (_, a) in attrs.iter().filter(|(_, a)| known(a)) {
        for k in keys(a) {
            *sizes.entry(k).or_default() += 1;
        }
    }
    let pick = |a: &Attrs| -> (String, &'static str) {
        for (i, k) in keys(a).into_iter().enumerate() {
            if sizes.get(&k).copied().unwrap_or(0) >= cfg.min_peer_size || k == "all" {
                return (k, if i == 0 { "registry" } else { "widened" });
            }
        }
        ("all".into(), "widened")
    };
    let mut group: HashMap<String, (String, &'static str)> = HashMap::new();
    for (c, a) in attrs.iter().filter(|(_, a)| known(a)) {
        group.insert(c.clone(), pick(a));
    }
    // Fallback: facilities without registry attributes.
    let unknown: Vec<&String> = attrs
        .iter()
        .filter(|(_, a)| !known(a))
        .map(|(c, _)| c)
        .collect();
    if !unknown.is_empty() {
        let labels = cluster_profiles(indicators, cfg.fallback_clusters)?;
        for c in unknown {
            let Some(&cl) = labels.get(c) else { continue };
            let mut votes: HashMap<&String, usize> = HashMap::new();
            for (other, l) in &labels {
                if *l == cl {
                    if let Some((g, _)) = group.get(other) {
                        *votes.entry(g).or_default() += 1;
                    }
                }
            }
            let g = votes
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
                .map(|(g, _)| g.clone())
                .unwrap_or_else(|| "all".into());
            group.insert(c.clone(), (g, "cluster"));
        }
    }
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for (g, _) in group.values() {
        *counts.entry(g).or_default() += 1;
    }
    let mut rows: Vec<(&String, &String, &str, usize)> = group
        .iter()
        .map(|(c, (g, b))| (c, g, *b, counts[g]))
        .collect();
    rows.sort();
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            "facility_code".into(),
            rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "peer_group".into(),
            rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "peer_basis".into(),
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        ),
        Column::new(
            "peer_size".into(),
            rows.iter().map(|r| r.3 as i64).collect::<Vec<_>>(),
        ),
    ])?)
}

/// k-means on each facility's mean service profile (standardised); returns
/// facility → cluster.
fn cluster_profiles(
    indicators: &DataFrame,
    k: usize,
) -> Result<HashMap<String, usize>, FeatureError> {
    let prof = indicators
        .clone()
        .lazy()
        .group_by([col("facility_code")])
        .agg(
            PROFILE
                .iter()
                .map(|c| {
                    col(*c)
                        .cast(DataType::Float64)
                        .mean()
                        .fill_null(lit(0.0))
                        .alias(*c)
                })
                .collect::<Vec<_>>(),
        )
        .with_columns([
            (col("avg_cost_outpatient") + lit(1.0))
                .log(lit(std::f64::consts::E))
                .alias("avg_cost_outpatient"),
            (col("visits") + lit(1.0))
                .log(lit(std::f64::consts::E))
                .alias("visits"),
        ])
        .sort(["facility_code"], Default::default())
        .collect()?;
    let n = prof.height();
    let codes: Vec<String> = strs(&prof, "facility_code")?
        .into_iter()
        .map(|c| c.unwrap_or_default())
        .collect();
    let mut x = Array2::<f64>::zeros((n, PROFILE.len()));
    for (j, c) in PROFILE.iter().enumerate() {
        let s = prof.column(c)?.f64()?.clone();
        let vals: Vec<f64> = s.iter().map(|v| v.unwrap_or(0.0)).collect();
        let mean = vals.iter().sum::<f64>() / n.max(1) as f64;
        let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n.max(1) as f64).sqrt();
        for (i, v) in vals.iter().enumerate() {
            x[[i, j]] = if sd > 0.0 { (v - mean) / sd } else { 0.0 };
        }
    }
    let k = k.clamp(1, n.max(1));
    if n <= k {
        return Ok(codes.into_iter().enumerate().map(|(i, c)| (c, i)).collect());
    }
    let rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(42);
    let ds = DatasetBase::from(x.clone());
    let model = KMeans::params_with_rng(k, rng)
        .max_n_iterations(200)
        .tolerance(1e-6)
        .fit(&ds)
        .map_err(|e| FeatureError::Other(format!("peer clustering: {e}")))?;
    let labels = model.predict(&x);
    Ok(codes.into_iter().zip(labels.iter().copied()).collect())
}

/// Adds, for every indicator of the table (every numeric column but the
/// keys), its ratio to the peer
/// median (`_peer_ratio`) and its robust z-score (`_peer_z` = (x − median) /
/// (1.4826 · MAD), null when the MAD is 0) within peer group and period.
pub fn compare(indicators: LazyFrame, groups: LazyFrame) -> Result<LazyFrame, FeatureError> {
    let schema = indicators.clone().collect_schema()?;
    let columns: Vec<String> = schema
        .iter()
        .filter(|(name, dt)| dt.is_primitive_numeric() && !name.starts_with("peer_"))
        .map(|(name, _)| name.to_string())
        .collect();
    let by = [col("peer_group"), col("period_start")];
    let mut exprs = vec![len()
        .over(by.clone())?
        .cast(DataType::Int64)
        .alias("peer_n")];
    for c in &columns {
        let x = col(c.as_str()).cast(DataType::Float64);
        let med = x.clone().median().over(by.clone())?;
        let mad = (x.clone() - med.clone()).abs().median().over(by.clone())?;
        exprs.push(super::ratio(x.clone(), med.clone()).alias(format!("{c}_peer_ratio")));
        exprs.push(
            when(mad.clone().gt(lit(0.0)))
                .then((x - med) / (lit(1.4826) * mad))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias(format!("{c}_peer_z")),
        );
    }
    Ok(indicators
        .join(
            groups,
            [col("facility_code")],
            [col("facility_code")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(col("peer_group").fill_null(lit("all")))
        .with_columns(exprs)
        .sort(["facility_code", "period_start"], Default::default()))
}
