//! Alert lifecycle in SQLite: which alerts are new, continuing or resolved
//! week by week, and what reviewers decided.
//!
//! An alert is a facility and a **cause** (the indicator, claim check or
//! "multivariate") over consecutive weekly runs; its id is
//! `facility:cause:first-week`. A run for week W is compared with the latest
//! earlier run: an alert present in both continues, one only in W is new,
//! one only in the earlier run is resolved. Rerunning W replaces W's rows,
//! so reruns are idempotent. A decision `explained` or `dismissed` on a
//! facility and cause suppresses later alerts for that cause unless they
//! worsen: the indicator's relative excess (observed / expected − 1) grows
//! by the configured share over its value when the decision was taken.
//! (Not the severity: a CUSUM keeps growing while a steady, explained rise
//! lasts, and that is not a worsening.)

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::detect::AlertConfig;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("alerts database {path}: {source}")]
    Sql {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{0}")]
    Input(String),
}

/// Reviewer decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Confirmed,
    Explained,
    Dismissed,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Confirmed => "confirmed",
            Decision::Explained => "explained",
            Decision::Dismissed => "dismissed",
        }
    }

    /// Parses English or Vietnamese words (as reviewers type them in the sheet).
    pub fn parse(s: &str) -> Option<Decision> {
        let t = s.trim().to_lowercase();
        match t.as_str() {
            "confirmed" | "confirm" | "xác nhận" | "xac nhan" | "đúng" | "vi phạm" => {
                Some(Decision::Confirmed)
            }
            "explained" | "explain" | "giải trình" | "đã giải trình" | "giai trinh" | "hợp lý" => {
                Some(Decision::Explained)
            }
            "dismissed" | "dismiss" | "bác bỏ" | "loại" | "bac bo" | "không vi phạm" => {
                Some(Decision::Dismissed)
            }
            _ => None,
        }
    }
}

/// An alert the detector raises this week.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub facility_code: String,
    pub cause: String,
    pub severity: f64,
    pub excess_vnd: f64,
    /// How far the indicator is above what is expected, relative
    /// (observed / expected − 1): what "worsens" compares.
    pub intensity: f64,
    pub reason_vi: String,
    pub reason_en: String,
}

/// What the lifecycle made of a candidate (or of an alert that went away).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub alert_id: String,
    pub facility_code: String,
    pub cause: String,
    /// new, continuing or resolved.
    pub state: String,
    /// Held back by an earlier `explained`/`dismissed` decision.
    pub suppressed: bool,
    /// Latest decision on the facility and cause, if any.
    pub decision: Option<String>,
}

/// One alert of a recorded week.
#[derive(Debug, Clone, PartialEq)]
pub struct WeekRow {
    pub alert_id: String,
    pub facility_code: String,
    pub cause: String,
    pub state: String,
    pub suppressed: bool,
    pub severity: f64,
    pub decision: Option<String>,
}

pub struct AlertDb {
    conn: Connection,
    path: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    as_of TEXT PRIMARY KEY,
    model_version TEXT NOT NULL,
    alerts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_weeks (
    alert_id TEXT NOT NULL,
    as_of TEXT NOT NULL,
    facility_code TEXT NOT NULL,
    cause TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('new', 'continuing', 'resolved')),
    suppressed INTEGER NOT NULL,
    severity REAL NOT NULL,
    excess_vnd REAL NOT NULL,
    intensity REAL NOT NULL,
    reason_vi TEXT NOT NULL,
    reason_en TEXT NOT NULL,
    PRIMARY KEY (alert_id, as_of)
);
CREATE INDEX IF NOT EXISTS alert_weeks_as_of ON alert_weeks (as_of);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL,
    facility_code TEXT NOT NULL,
    cause TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('confirmed', 'explained', 'dismissed')),
    comment TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    as_of TEXT NOT NULL,
    severity REAL NOT NULL,
    intensity REAL NOT NULL,
    UNIQUE (alert_id, decision, comment, reviewer)
);
";

impl AlertDb {
    pub fn open(path: &Path) -> Result<AlertDb, LifecycleError> {
        let p = path.display().to_string();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| LifecycleError::Input(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|source| LifecycleError::Sql {
            path: p.clone(),
            source,
        })?;
        let db = AlertDb { conn, path: p };
        db.conn.execute_batch(SCHEMA).map_err(|e| db.err(e))?;
        Ok(db)
    }

    fn err(&self, source: rusqlite::Error) -> LifecycleError {
        LifecycleError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// Records the run of week `as_of` (yyyy-mm-dd) and returns the outcome
    /// of every candidate and every alert that resolved.
    pub fn apply(
        &mut self,
        as_of: &str,
        model_version: &str,
        candidates: &[Candidate],
        cfg: &AlertConfig,
    ) -> Result<Vec<Outcome>, LifecycleError> {
        let path = self.path.clone();
        let e = |source| LifecycleError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        tx.execute("DELETE FROM alert_weeks WHERE as_of = ?1", [as_of])
            .map_err(e)?;
        let prev: Option<String> = tx
            .query_row(
                "SELECT max(as_of) FROM runs WHERE as_of < ?1",
                [as_of],
                |r| r.get(0),
            )
            .map_err(e)?;
        // Alerts open in the previous run: (facility, cause) → id.
        let mut open: std::collections::BTreeMap<(String, String), String> = Default::default();
        if let Some(p) = &prev {
            let mut st = tx
                .prepare(
                    "SELECT facility_code, cause, alert_id FROM alert_weeks
                     WHERE as_of = ?1 AND state != 'resolved'",
                )
                .map_err(e)?;
            let rows = st
                .query_map([p], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(e)?;
            for row in rows {
                let (f, c, id): (String, String, String) = row.map_err(e)?;
                open.insert((f, c), id);
            }
        }
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for c in candidates {
            let key = (c.facility_code.clone(), c.cause.clone());
            if !seen.insert(key.clone()) {
                continue;
            }
            let (alert_id, state) = match open.get(&key) {
                Some(id) => (id.clone(), "continuing"),
                None => (format!("{}:{}:{}", c.facility_code, c.cause, as_of), "new"),
            };
            let last: Option<(String, f64)> = tx
                .query_row(
                    "SELECT decision, intensity FROM decisions
                     WHERE facility_code = ?1 AND cause = ?2 AND as_of <= ?3
                     ORDER BY as_of DESC, id DESC LIMIT 1",
                    params![c.facility_code, c.cause, as_of],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(e)?;
            let suppressed = match &last {
                Some((d, at)) if d != "confirmed" => {
                    c.intensity <= at.max(0.0) * (1.0 + cfg.worsen_share)
                }
                _ => false,
            };
            tx.execute(
                "INSERT INTO alert_weeks VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    alert_id,
                    as_of,
                    c.facility_code,
                    c.cause,
                    state,
                    suppressed as i32,
                    c.severity,
                    c.excess_vnd,
                    c.intensity,
                    c.reason_vi,
                    c.reason_en
                ],
            )
            .map_err(e)?;
            out.push(Outcome {
                alert_id,
                facility_code: c.facility_code.clone(),
                cause: c.cause.clone(),
                state: state.into(),
                suppressed,
                decision: last.map(|l| l.0),
            });
        }
        for ((f, c), id) in &open {
            if seen.contains(&(f.clone(), c.clone())) {
                continue;
            }
            tx.execute(
                "INSERT INTO alert_weeks VALUES (?1, ?2, ?3, ?4, 'resolved', 0, 0, 0, 0, '', '')",
                params![id, as_of, f, c],
            )
            .map_err(e)?;
            out.push(Outcome {
                alert_id: id.clone(),
                facility_code: f.clone(),
                cause: c.clone(),
                state: "resolved".into(),
                suppressed: false,
                decision: None,
            });
        }
        let n = out
            .iter()
            .filter(|o| o.state != "resolved" && !o.suppressed)
            .count();
        tx.execute(
            "INSERT OR REPLACE INTO runs VALUES (?1, ?2, ?3)",
            params![as_of, model_version, n as i64],
        )
        .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(out)
    }

    /// Records a reviewer's decision on an alert (its latest week gives the
    /// intensity later alerts must exceed to come back). Recording the same
    /// decision twice changes nothing.
    pub fn decide(
        &self,
        alert_id: &str,
        decision: Decision,
        comment: &str,
        reviewer: &str,
    ) -> Result<bool, LifecycleError> {
        let row: Option<(String, String, String, f64, f64)> = self
            .conn
            .query_row(
                "SELECT facility_code, cause, as_of, severity, intensity FROM alert_weeks
                 WHERE alert_id = ?1 AND state != 'resolved' ORDER BY as_of DESC LIMIT 1",
                [alert_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((f, cause, as_of, sev, ex)) = row else {
            return Err(LifecycleError::Input(format!(
                "no alert `{alert_id}` in {}",
                self.path
            )));
        };
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO decisions
                 (alert_id, facility_code, cause, decision, comment, reviewer, as_of, severity, intensity)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![alert_id, f, cause, decision.as_str(), comment, reviewer, as_of, sev, ex],
            )
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// Records the decisions of a reviewed sheet: all or nothing. Every row
    /// is checked first — its alert must exist, and an alert given two
    /// different decisions (or comments) in the sheet is a conflict, not
    /// "last row wins" — then all are written in one transaction. Returns
    /// (new, already recorded); identical repeated rows count once.
    pub fn import(&self, rows: &[ReviewRow], file: &str) -> Result<(usize, usize), LifecycleError> {
        use std::collections::HashMap;
        // Latest open week of every alert: what `decide` would look up.
        let mut known: HashMap<String, (String, String, String, f64, f64)> = HashMap::new();
        {
            let mut st = self
                .conn
                .prepare(
                    "SELECT alert_id, facility_code, cause, as_of, severity, intensity
                     FROM alert_weeks WHERE state != 'resolved' ORDER BY as_of",
                )
                .map_err(|e| self.err(e))?;
            let it = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
                    ))
                })
                .map_err(|e| self.err(e))?;
            for row in it {
                let (id, v) = row.map_err(|e| self.err(e))?;
                known.insert(id, v);
            }
        }
        let mut problems = Vec::new();
        let mut first: HashMap<&str, &ReviewRow> = HashMap::new();
        let mut unique = Vec::new();
        for r in rows {
            if !known.contains_key(&r.alert_id) {
                problems.push(format!(
                    "row {}: field alert_id: no alert `{}` in {}",
                    r.row, r.alert_id, self.path
                ));
                continue;
            }
            match first.get(r.alert_id.as_str()) {
                None => {
                    first.insert(&r.alert_id, r);
                    unique.push(r);
                }
                Some(f) if f.decision == r.decision && f.comment == r.comment => {}
                Some(f) => problems.push(format!(
                    "rows {} and {}: alert `{}` is given `{}` and `{}` — keep one",
                    f.row,
                    r.row,
                    r.alert_id,
                    f.decision.as_str(),
                    r.decision.as_str()
                )),
            }
        }
        if !problems.is_empty() {
            let n = problems.len();
            problems.truncate(10);
            return Err(LifecycleError::Input(format!(
                "{file}: nothing imported, {n} problem{}: {}{}",
                if n == 1 { "" } else { "s" },
                problems.join("; "),
                if n > 10 { "; …" } else { "" }
            )));
        }
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let mut added = 0;
        {
            let mut st = tx
                .prepare(
                    "INSERT OR IGNORE INTO decisions
                     (alert_id, facility_code, cause, decision, comment, reviewer, as_of, severity, intensity)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(|e| self.err(e))?;
            for r in &unique {
                let (f, cause, as_of, sev, ex) = &known[&r.alert_id];
                added += st
                    .execute(params![
                        r.alert_id,
                        f,
                        cause,
                        r.decision.as_str(),
                        r.comment,
                        r.reviewer,
                        as_of,
                        sev,
                        ex
                    ])
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok((added, rows.len() - added))
    }

    /// Alerts of a week with their latest decision, most severe first.
    pub fn week(&self, as_of: &str) -> Result<Vec<WeekRow>, LifecycleError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT w.alert_id, w.facility_code, w.cause, w.state, w.suppressed, w.severity,
                        (SELECT d.decision FROM decisions d WHERE d.alert_id = w.alert_id
                         ORDER BY d.id DESC LIMIT 1)
                 FROM alert_weeks w WHERE w.as_of = ?1 ORDER BY w.severity DESC, w.alert_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([as_of], |r| {
                Ok(WeekRow {
                    alert_id: r.get(0)?,
                    facility_code: r.get(1)?,
                    cause: r.get(2)?,
                    state: r.get(3)?,
                    suppressed: r.get::<_, i32>(4)? != 0,
                    severity: r.get(5)?,
                    decision: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The latest run's week.
    pub fn latest_run(&self) -> Result<Option<String>, LifecycleError> {
        self.conn
            .query_row("SELECT max(as_of) FROM runs", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }
}

/// The reviewers' verdict on one week's alerts: a confirmed alert is a
/// true positive, a dismissed or explained one a false alarm for the
/// question "was this cost unreasonable".
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WeekPrecision {
    pub as_of: String,
    pub alerts: usize,
    pub decided: usize,
    pub confirmed: usize,
    /// confirmed / decided; None before any decision.
    pub precision: Option<f64>,
}

impl AlertDb {
    /// Precision of each past week's alerts by the reviewers' latest
    /// decision on each (suppressed alerts left out: they were not listed).
    pub fn precision_by_week(&self) -> Result<Vec<WeekPrecision>, LifecycleError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT w.as_of, count(*),
                        sum(CASE WHEN d.decision IS NOT NULL THEN 1 ELSE 0 END),
                        sum(CASE WHEN d.decision = 'confirmed' THEN 1 ELSE 0 END)
                 FROM alert_weeks w
                 LEFT JOIN (SELECT alert_id, decision FROM decisions
                            WHERE id IN (SELECT max(id) FROM decisions GROUP BY alert_id)) d
                   ON d.alert_id = w.alert_id
                 WHERE w.state != 'resolved' AND w.suppressed = 0
                 GROUP BY w.as_of ORDER BY w.as_of",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                let (alerts, decided, confirmed): (i64, i64, i64) =
                    (r.get(1)?, r.get(2)?, r.get(3)?);
                Ok(WeekPrecision {
                    as_of: r.get(0)?,
                    alerts: alerts as usize,
                    decided: decided as usize,
                    confirmed: confirmed as usize,
                    precision: (decided > 0).then(|| confirmed as f64 / decided as f64),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}

/// One row of a reviewed sheet.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRow {
    /// Row number in the sheet (1 = the header).
    pub row: usize,
    pub alert_id: String,
    pub decision: Decision,
    pub comment: String,
    pub reviewer: String,
}

/// Reads decisions from a reviewed CSV or XLSX (the `alerts.csv` /
/// `alerts.xlsx` the engine wrote, with the `decision` and `comment` columns
/// filled in). Rows without a decision are skipped; an unknown decision is
/// an error naming the file, row and field.
pub fn read_reviews(path: &Path) -> Result<Vec<ReviewRow>, LifecycleError> {
    let name = path.display().to_string();
    let table: Vec<Vec<String>> = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("xlsx") => {
            use calamine::{open_workbook, Reader, Xlsx};
            let mut wb: Xlsx<_> =
                open_workbook(path).map_err(|e| LifecycleError::Input(format!("{name}: {e}")))?;
            let sheet = wb
                .sheet_names()
                .first()
                .cloned()
                .ok_or_else(|| LifecycleError::Input(format!("{name}: no sheet")))?;
            let range = wb
                .worksheet_range(&sheet)
                .map_err(|e| LifecycleError::Input(format!("{name}: {e}")))?;
            range
                .rows()
                .map(|r| r.iter().map(|c| c.to_string()).collect())
                .collect()
        }
        _ => {
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_path(path)
                .map_err(|e| LifecycleError::Input(format!("{name}: {e}")))?;
            let mut rows = Vec::new();
            for r in rdr.records() {
                let r = r.map_err(|e| LifecycleError::Input(format!("{name}: {e}")))?;
                rows.push(
                    r.iter()
                        .map(|s| s.trim_start_matches('\u{feff}').to_string())
                        .collect(),
                );
            }
            rows
        }
    };
    let Some(header) = table.first() else {
        return Ok(Vec::new());
    };
    let find = |n: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(n));
    let id = find("alert_id")
        .ok_or_else(|| LifecycleError::Input(format!("{name}: no `alert_id` column")))?;
    let dec = find("decision")
        .ok_or_else(|| LifecycleError::Input(format!("{name}: no `decision` column")))?;
    let com = find("comment");
    let rev = find("reviewer");
    let mut out = Vec::new();
    for (i, row) in table.iter().enumerate().skip(1) {
        let get = |j: Option<usize>| {
            j.and_then(|j| row.get(j))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let d = get(Some(dec));
        if d.is_empty() {
            continue;
        }
        let decision = Decision::parse(&d).ok_or_else(|| {
            LifecycleError::Input(format!(
                "{name}: row {}: field decision: `{d}` is not confirmed, explained or dismissed",
                i + 1
            ))
        })?;
        out.push(ReviewRow {
            row: i + 1,
            alert_id: get(Some(id)),
            decision,
            comment: get(com),
            reviewer: get(rev),
        });
    }
    Ok(out)
}
