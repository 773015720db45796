//! The heavy step of the features stage as SQL, for engines beyond one
//! machine: claims → per-visit totals → facility-month aggregates, and the
//! global norms (case-mix cells, item reference prices).
//!
//! The SQL (`heavy.sql`) is the one definition; an engine only registers the
//! store's tables at one snapshot and runs it: Apache DataFusion in-process,
//! or an Apache Ballista cluster (scheduler and executors, [`crate::cluster`])
//! when a national history no longer fits one machine. Both sit behind the
//! `cluster` cargo feature. The Polars features stage computes the same
//! figures for its indicator table; `tests/cluster.rs` holds the two equal.

#[cfg(feature = "cluster")]
mod engine;

use std::path::Path;

use crate::reference::icd10_chapters;
use crate::store::{Store, StoreError};

/// The SQL of the heavy step, as written (with placeholders).
pub const HEAVY_SQL: &str = include_str!("heavy.sql");

/// Outputs, in the order they are written: `<name>.parquet` each.
pub const OUTPUTS: [&str; 3] = ["facility_month", "item_reference_prices", "casemix_cells"];

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("aggregate: the store has no {0} yet (ingest first)")]
    Empty(&'static str),
    #[error("aggregate: heavy.sql: {0}")]
    Sql(String),
    #[error("aggregate on {engine}: {message}")]
    Engine { engine: String, message: String },
    #[error("aggregate: this binary was built without the `cluster` feature (cargo build --features cluster)")]
    NotBuilt,
}

/// Where the SQL runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// Apache DataFusion in this process (all cores).
    DataFusion,
    /// An Apache Ballista scheduler, e.g. `df://127.0.0.1:50050`.
    Ballista { scheduler: String },
}

impl Engine {
    pub fn name(&self) -> String {
        match self {
            Engine::DataFusion => "datafusion".into(),
            Engine::Ballista { scheduler } => format!("ballista ({scheduler})"),
        }
    }
}

/// What one run wrote.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Rows per output, in [`OUTPUTS`] order.
    pub rows: Vec<(String, usize)>,
    pub seconds: f64,
}

/// A section of `heavy.sql`.
#[derive(Debug, Clone, PartialEq)]
struct Section {
    name: String,
    view: bool,
    body: String,
}

fn sections(sql: &str) -> Result<Vec<Section>, AggregateError> {
    let mut out: Vec<Section> = Vec::new();
    for line in sql.lines() {
        let header = line
            .strip_prefix("-- view: ")
            .map(|n| (n, true))
            .or_else(|| line.strip_prefix("-- query: ").map(|n| (n, false)));
        if let Some((name, view)) = header {
            out.push(Section {
                name: name.trim().to_string(),
                view,
                body: String::new(),
            });
        } else if line.trim_start().starts_with("--") {
            continue;
        } else if let Some(s) = out.last_mut() {
            s.body.push_str(line);
            s.body.push('\n');
        }
    }
    if out.iter().all(|s| s.view) {
        return Err(AggregateError::Sql("no `-- query:` section".into()));
    }
    Ok(out)
}

/// `CASE` of the ICD-10 chapter of `v.dx3`, first matching chapter wins
/// (as `features::casemix::chapter_expr`), "?" outside every chapter.
fn chapter_case() -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut s = String::from("CASE");
    for ch in icd10_chapters() {
        s.push_str(&format!(
            " WHEN v.dx3 >= {} AND v.dx3 <= {} THEN {}",
            quote(&ch.first),
            quote(&ch.last),
            quote(&ch.chapter)
        ));
    }
    s.push_str(" ELSE '?' END");
    s
}

/// The queries to run, by output name: every view as a common table
/// expression, placeholders filled. `shrinkage_visits` is the case-mix
/// cells' prior weight (`FeatureConfig::shrinkage_visits`);
/// `has_superseded` whether the store has a `superseded` table.
pub fn queries(
    shrinkage_visits: f64,
    has_superseded: bool,
) -> Result<Vec<(String, String)>, AggregateError> {
    let secs = sections(HEAVY_SQL)?;
    let chapter = chapter_case();
    let fill = |body: &str| {
        body.replace("{dx_chapter}", &chapter)
            .replace("{k}", &format!("{shrinkage_visits:?}"))
            .replace(
                "{superseded}",
                if has_superseded {
                    "superseded"
                } else {
                    "(SELECT visit_key FROM visits WHERE FALSE)"
                },
            )
    };
    let ctes: Vec<String> = secs
        .iter()
        .filter(|s| s.view)
        .map(|s| format!("{} AS (\n{})", s.name, fill(&s.body).trim_end()))
        .collect();
    Ok(secs
        .iter()
        .filter(|s| !s.view)
        .map(|s| {
            let sql = format!("WITH {}\n{}", ctes.join(",\n"), fill(&s.body));
            (s.name.clone(), sql)
        })
        .collect())
}

/// Runs the heavy step on `engine` over the store's snapshot and writes
/// each output as `<out>/<name>.parquet` (atomically).
pub fn run(
    store: &Store,
    engine: &Engine,
    shrinkage_visits: f64,
    out: &Path,
) -> Result<Summary, AggregateError> {
    #[cfg(feature = "cluster")]
    {
        engine::run(store, engine, shrinkage_visits, out)
    }
    #[cfg(not(feature = "cluster"))]
    {
        let _ = (store, engine, shrinkage_visits, out);
        Err(AggregateError::NotBuilt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_output_has_a_query_and_every_placeholder_is_filled() {
        let q = queries(20.0, false).unwrap();
        let names: Vec<&str> = q.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, OUTPUTS);
        for (name, sql) in &q {
            assert!(!sql.contains('{'), "{name}: unfilled placeholder");
            assert!(sql.contains("current_visits AS ("), "{name}: views missing");
            assert!(sql.contains("WHERE FALSE"), "{name}: no empty superseded");
        }
        let q = queries(20.0, true).unwrap();
        assert!(q[0].1.contains("FROM superseded"));
        assert!(q[0].1.contains("20.0"));
    }

    #[test]
    fn sections_split_on_their_headers_and_skip_comments() {
        let s = sections("-- intro\n-- view: a\nSELECT 1\n-- note\n-- query: b\nSELECT * FROM a\n")
            .unwrap();
        assert_eq!(s.len(), 2);
        assert!(s[0].view && !s[1].view);
        assert_eq!(s[0].body, "SELECT 1\n");
        assert!(sections("-- view: a\nSELECT 1\n").is_err());
    }
}
