//! Charts of the comparisons within facilities: a doctor's (department's)
//! cost per claim over its colleagues', week by week, against the spread of
//! the colleagues' own ratios — from `units.parquet` of `bhyt detect`.
//!
//! A prescriber or department alert has no facility series to draw: the
//! facility's cost per visit barely moves when one doctor of forty doubles
//! his prescriptions. What the reviewer needs to see is the doctor's line
//! leaving the band of his colleagues at the same facility.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::NaiveDate;
use polars::prelude::*;

use super::chart::{quartile_band, ChartData, ChartRequest};
use super::{nums, periods, read_error, strs, ReportError};
use crate::detect::signals::label;
use crate::detect::Lang;

/// One comparison of a unit with its colleagues.
#[derive(Debug, Clone)]
struct UnitRow {
    period: NaiveDate,
    code: String,
    group: String,
    window: u32,
    ratio: f64,
    scored: bool,
}

/// The comparisons of the alerted facilities, by (kind, facility).
#[derive(Debug, Default)]
pub struct UnitCharts {
    rows: HashMap<(String, String), Vec<UnitRow>>,
}

impl UnitCharts {
    /// The rows of `path` at these facilities (the table holds every
    /// doctor of the province; a report needs the alerted ones' only).
    pub fn open(path: &Path, facilities: &[String]) -> Result<UnitCharts, ReportError> {
        let err = read_error(path);
        let codes = Series::new("f".into(), facilities);
        let df = crate::store::scan_file(path)
            .map_err(err)?
            .filter(col("facility_code").is_in(lit(codes).implode(false), false))
            .collect()
            .map_err(err)?;
        UnitCharts::new(&df)
    }

    /// [`UnitCharts::open`] on `detect_dir`'s units table, for these
    /// facilities; None without any, without the file, or when it does not
    /// read (a warning names it).
    pub fn read(detect_dir: &Path, facilities: &[String]) -> Option<UnitCharts> {
        let path = detect_dir.join(crate::detect::prescriber::UNITS_FILE);
        if facilities.is_empty() || !path.exists() {
            return None;
        }
        UnitCharts::open(&path, facilities)
            .map_err(|e| tracing::warn!("doctors' and departments' charts left out: {e}"))
            .ok()
    }

    /// From rows of `units.parquet` (`kind` and
    /// [`crate::detect::prescriber::UNIT_COLUMNS`]); rows without a window
    /// or a finite ratio are skipped.
    pub fn new(df: &DataFrame) -> Result<UnitCharts, ReportError> {
        let period = periods(df)?;
        let (kind, fac, code, group) = (
            strs(df, "kind"),
            strs(df, "facility_code"),
            strs(df, "unit_code"),
            strs(df, "unit_group"),
        );
        let (window, ratio) = (nums(df, "window"), nums(df, "ratio"));
        let scored: Vec<bool> = df
            .column("scored")
            .ok()
            .and_then(|c| {
                c.bool()
                    .ok()
                    .map(|b| b.iter().map(|v| v == Some(true)).collect())
            })
            .unwrap_or_else(|| vec![false; df.height()]);
        let mut rows: HashMap<(String, String), Vec<UnitRow>> = HashMap::new();
        for i in 0..df.height() {
            let (Some(w), Some(r)) = (window[i], ratio[i]) else {
                continue;
            };
            if !r.is_finite() {
                continue;
            }
            rows.entry((kind[i].clone(), fac[i].clone()))
                .or_default()
                .push(UnitRow {
                    period: period[i],
                    code: code[i].clone(),
                    group: group[i].clone(),
                    window: w as u32,
                    ratio: r,
                    scored: scored[i],
                });
        }
        Ok(UnitCharts { rows })
    }

    /// The chart of a `prescriber` or `department` alert: the unit the
    /// alert's week scored (its most extreme comparison), its ratio in that
    /// window up to the week (last 78 periods), and per period the median
    /// and quartiles of its colleagues' ratios (three or more). Empty when
    /// no comparison of that unit was scored up to that week.
    pub fn data(&self, r: &ChartRequest, lang: Lang) -> ChartData {
        let empty = ChartData::default();
        let Some((kind, code)) = unit_of(r.cause) else {
            return empty;
        };
        let Some(rows) = self
            .rows
            .get(&(kind.to_string(), r.facility_code.to_string()))
        else {
            return empty;
        };
        let upto = |d: NaiveDate| r.week.is_none_or(|w| d <= w);
        // The unit's comparison the alert's week scored (the latest scored
        // one up to it: its window).
        let Some(hit) = rows
            .iter()
            .filter(|x| x.scored && upto(x.period) && code.is_none_or(|c| c == x.code))
            .max_by_key(|x| x.period)
        else {
            return empty;
        };
        let same_window = |x: &&UnitRow| x.window == hit.window && x.group == hit.group;
        let mut series: Vec<(NaiveDate, f64)> = rows
            .iter()
            .filter(same_window)
            .filter(|x| x.code == hit.code && upto(x.period))
            .map(|x| (x.period, x.ratio))
            .collect();
        series.sort_by_key(|s| s.0);
        let series = series[series.len().saturating_sub(78)..].to_vec();
        let from = series.first().map(|s| s.0);
        let mut by_p: BTreeMap<NaiveDate, Vec<f64>> = BTreeMap::new();
        for x in rows.iter().filter(same_window) {
            if x.code != hit.code && from.is_some_and(|d| x.period >= d) && upto(x.period) {
                by_p.entry(x.period).or_default().push(x.ratio);
            }
        }
        let band = quartile_band(by_p);
        ChartData {
            title: format!("{} {}: {}", r.facility_code, hit.code, label(kind, lang)),
            signal: kind.to_string(),
            series,
            band,
            control: None,
            onset: r.onset,
        }
    }
}

/// The kind and the unit of an alert's cause charted from the units table:
/// `prescriber:BS001` → ("prescriber", Some("BS001")); a bare
/// `prescriber` (a score's signal) → the facility-period's scored doctor.
fn unit_of(cause: &str) -> Option<(&str, Option<&str>)> {
    let (kind, code) = match cause.split_once(':') {
        Some((k, c)) => (k, Some(c).filter(|c| !c.is_empty())),
        None => (cause, None),
    };
    matches!(kind, "prescriber" | "department").then_some((kind, code))
}

/// Whether an alert's cause is charted from the units table.
pub fn is_unit_cause(cause: &str) -> bool {
    unit_of(cause).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A units table that does not read leaves the charts out, not the
    /// report; without the file or without a doctor's alert, nothing is read.
    #[test]
    fn an_unreadable_units_table_only_drops_the_charts() {
        let dir = tempfile::tempdir().unwrap();
        let fac = ["93001".to_string()];
        assert!(UnitCharts::read(dir.path(), &fac).is_none());
        let path = dir.path().join(crate::detect::prescriber::UNITS_FILE);
        std::fs::write(&path, b"PAR1 not a parquet file").unwrap();
        assert!(UnitCharts::read(dir.path(), &fac).is_none());
        assert!(UnitCharts::read(dir.path(), &[]).is_none());
    }

    /// A doctor whose ratio leaves his colleagues' band is drawn with the
    /// window his alert was scored on, up to the alert's week only, and the
    /// band holds the other doctors of the same facility.
    #[test]
    fn a_prescriber_alert_charts_the_doctor_against_colleagues() {
        let d0 = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let (mut kind, mut fac, mut per, mut code, mut grp, mut win, mut ratio, mut scored) = (
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
        );
        for w in 0..12i64 {
            for (doc, r) in [("BS1", 1.0), ("BS2", 0.9), ("BS3", 1.1), ("BS9", 0.0)] {
                for window in [5u32, 13] {
                    let r = if doc == "BS9" {
                        if w >= 6 {
                            2.0
                        } else {
                            1.0
                        }
                    } else {
                        r
                    };
                    kind.push("prescriber");
                    fac.push("93001");
                    per.push(d0 + chrono::Duration::weeks(w));
                    code.push(doc);
                    grp.push("");
                    win.push(window);
                    ratio.push(if window == 13 { r * 0.9 } else { r });
                    scored.push(doc == "BS9" && window == 5 && w >= 6);
                }
            }
        }
        let df = df!(
            "kind" => kind, "facility_code" => fac, "period_start" => per,
            "unit_code" => code, "unit_group" => grp, "window" => win,
            "ratio" => ratio, "scored" => scored,
        )
        .unwrap();
        let u = UnitCharts::new(&df).unwrap();
        let req = ChartRequest {
            facility_code: "93001",
            peer_group: "",
            cause: "prescriber:BS9",
            week: Some(d0 + chrono::Duration::weeks(9)),
            onset: Some(d0 + chrono::Duration::weeks(6)),
        };
        let data = u.data(&req, Lang::Vi);
        assert_eq!(data.series.len(), 10, "weeks 0–9 of the short window");
        assert_eq!(data.series[0].1, 1.0);
        assert_eq!(data.series[9].1, 2.0);
        assert_eq!(data.band.len(), 10);
        assert!(data
            .band
            .iter()
            .all(|b| b.1 == 1.0 && b.2 >= 0.9 && b.3 <= 1.1));
        assert!(data.title.contains("BS9"));
        assert!(data.chart(Lang::Vi).svg().unwrap().contains("đồng nghiệp"));
        // The bare kind (a score's signal) finds the week's scored doctor.
        let bare = ChartRequest {
            cause: "prescriber",
            ..req
        };
        assert_eq!(u.data(&bare, Lang::Vi).series, data.series);
        // Another doctor, or a department alert at the same facility: no
        // comparison of theirs was scored, nothing to draw.
        for cause in ["prescriber:BS1", "department:K01"] {
            let other = ChartRequest { cause, ..req };
            assert!(u.data(&other, Lang::Vi).series.is_empty(), "{cause}");
        }
        // Before the doctor's first scored week there is no unit to draw.
        let early = ChartRequest {
            week: Some(d0 + chrono::Duration::weeks(3)),
            ..req
        };
        assert!(u.data(&early, Lang::Vi).series.is_empty());
    }
}
