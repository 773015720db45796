//! What lies behind an alert: the claims, services, departments and
//! prescribers that contribute most to the rise.
//!
//! A service (department, prescriber) contributes its cost in the alert's
//! window minus what it would have cost at the facility's baseline rate per
//! visit, moved as the rest of the province's rate per visit moved:
//! `cost_window − cost_baseline × visits_window / visits_baseline × r`, with
//! `r` the other facilities' cost per visit of that service (department)
//! in the window over theirs in the baseline (1 for a doctor, whose code is
//! the facility's own). Without `r` a dengue season put every hospital's
//! infectious-disease ward at the top of an unrelated alert. An alert on
//! the number of visits is explained per day instead (`Span::volume`):
//! `cost_window − cost_baseline × days_window / days_baseline × r`, `r` the
//! others' cost of it per day, window over baseline.
//! A claim contributes its cost above the median of claims with the same
//! diagnosis category and visit type in the province in the same window
//! (claims flagged by a claim check come first when that check drives the
//! alert). Claims are named by MA_LK, the hospital's own record key; no
//! personal field is read.

use std::collections::HashMap;

use chrono::NaiveDate;
use polars::prelude::*;

use crate::store::chunks::{plan_chunks, streamed, visits_per_chunk};
use crate::store::Store;

/// One alert's window and baseline.
#[derive(Debug, Clone)]
pub struct Span {
    pub facility_code: String,
    pub window: (NaiveDate, NaiveDate),
    pub baseline: (NaiveDate, NaiveDate),
    /// The alert is about how many visits there were, not what each cost:
    /// contributors are measured in cost per day instead of per visit
    /// (per visit, twice the visits at the same cost each shows nothing).
    pub volume: bool,
}

impl Span {
    /// Days of the window over days of the baseline.
    fn days_ratio(&self) -> f64 {
        let days = |(a, b): (NaiveDate, NaiveDate)| ((b - a).num_days() + 1).max(1) as f64;
        days(self.window) / days(self.baseline)
    }
}

/// Top contributors of one alert, largest first, with their excess in VND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contributors {
    pub claims: Vec<(String, f64)>,
    pub services: Vec<(String, f64)>,
    pub departments: Vec<(String, f64)>,
    pub prescribers: Vec<(String, f64)>,
}

fn lit_date(d: NaiveDate) -> Expr {
    lit(d)
}

/// First and last day any span reads.
fn range_of(spans: &[Span]) -> (NaiveDate, NaiveDate) {
    let lo = spans.iter().map(|s| s.baseline.0.min(s.window.0)).min();
    let hi = spans.iter().map(|s| s.window.1.max(s.baseline.1)).max();
    let d = NaiveDate::default();
    (lo.unwrap_or(d), hi.unwrap_or(d))
}

/// Rows of the spans' facilities in the days the spans read.
fn in_spans(lf: LazyFrame, spans: &[Span]) -> LazyFrame {
    let (lo, hi) = range_of(spans);
    let codes: Vec<&str> = spans.iter().map(|s| s.facility_code.as_str()).collect();
    let codes = Series::new("c".into(), codes);
    lf.filter(
        col("facility_code")
            .is_in(lit(codes).implode(false), false)
            .and(col("discharge_date").is_between(
                lit_date(lo),
                lit_date(hi),
                ClosedInterval::Both,
            )),
    )
}

/// Sums by day, for sums over any range of days in two binary searches.
#[derive(Debug, Default)]
struct Daily {
    days: Vec<i32>,
    /// `cum[i]`: total of the days before `days[i]`; one more entry.
    cum: Vec<f64>,
}

impl Daily {
    fn from_pairs(mut pairs: Vec<(i32, f64)>) -> Daily {
        pairs.sort_by_key(|p| p.0);
        let mut cum = Vec::with_capacity(pairs.len() + 1);
        cum.push(0.0);
        for p in &pairs {
            cum.push(cum.last().copied().unwrap_or(0.0) + p.1);
        }
        Daily {
            days: pairs.into_iter().map(|p| p.0).collect(),
            cum,
        }
    }

    /// Total from `lo` to `hi`, both included.
    fn sum(&self, (lo, hi): (i32, i32)) -> f64 {
        let a = self.days.partition_point(|&d| d < lo);
        let b = self.days.partition_point(|&d| d <= hi);
        if b > a {
            self.cum[b] - self.cum[a]
        } else {
            0.0
        }
    }
}

/// The province's cost per day of each department and service (every
/// facility in the store), and its visits per day: what a contributor's
/// rise is judged against, so a province-wide epidemic raises no one's
/// infectious-disease ward in the list.
#[derive(Debug, Default)]
struct Reference {
    visits: Daily,
    /// Keyed by dimension (services, departments) and item or department code.
    cost: HashMap<(&'static str, String), Daily>,
}

/// Days since 1970-01-01, as Polars stores a date.
fn day_number(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date")).num_days() as i32
}

impl Reference {
    fn read(store: &Store, (lo, hi): (NaiveDate, NaiveDate)) -> Result<Reference, PolarsError> {
        let map_err = |e: crate::store::StoreError| PolarsError::ComputeError(e.to_string().into());
        let range =
            col("discharge_date").is_between(lit_date(lo), lit_date(hi), ClosedInterval::Both);
        let days = |df: &DataFrame, value: &str| -> Result<Vec<(i32, f64)>, PolarsError> {
            let d = df.column("discharge_date")?.date()?;
            let v = df.column(value)?.cast(&DataType::Float64)?;
            let v = v.f64()?;
            Ok((0..df.height())
                .filter_map(|i| Some((d.phys.get(i)?, v.get(i)?)))
                .collect())
        };
        let visits = streamed(
            store
                .visits()
                .map_err(map_err)?
                .filter(range.clone())
                .group_by([col("discharge_date")])
                .agg([len().alias("n")]),
        )?;
        let mut out = Reference {
            visits: Daily::from_pairs(days(&visits, "n")?),
            cost: HashMap::new(),
        };
        // Two scans, one per key: faster than one grouped by both (an
        // item is billed by several departments), measured at scale 1.
        for (dim, key) in [
            ("services", col("item_code")),
            ("departments", col("department").fill_null(lit("?"))),
        ] {
            let g = streamed(
                store
                    .lines()
                    .map_err(map_err)?
                    .filter(range.clone())
                    .group_by([key.alias("key"), col("discharge_date")])
                    .agg([col("amount").sum().alias("cost")]),
            )?;
            let keys = g.column("key")?.str()?;
            let d = g.column("discharge_date")?.date()?;
            let c = g.column("cost")?.f64()?;
            let mut per_key: HashMap<String, Vec<(i32, f64)>> = HashMap::new();
            for i in 0..g.height() {
                if let (Some(k), Some(d), Some(c)) = (keys.get(i), d.phys.get(i), c.get(i)) {
                    per_key.entry(k.to_string()).or_default().push((d, c));
                }
            }
            for (k, v) in per_key {
                out.cost.insert((dim, k), Daily::from_pairs(v));
            }
        }
        Ok(out)
    }

    /// How much the rest of the province's cost per visit (per day for a
    /// volume span) of `key` moved from the span's baseline to its window:
    /// the facility's own `own` (window, baseline) cost and `visits` taken
    /// out. 1 when the rest of the province has none of it in either.
    fn ratio(
        &self,
        dim: &'static str,
        key: &str,
        span: &Span,
        own: (f64, f64),
        visits: (f64, f64),
    ) -> f64 {
        let Some(cost) = self.cost.get(&(dim, key.to_string())) else {
            return 1.0;
        };
        let w = (day_number(span.window.0), day_number(span.window.1));
        let b = (day_number(span.baseline.0), day_number(span.baseline.1));
        let (cw, cb) = (cost.sum(w) - own.0, cost.sum(b) - own.1);
        let (vw, vb) = (self.visits.sum(w) - visits.0, self.visits.sum(b) - visits.1);
        if !(cw > 0.0 && cb > 0.0 && vw > 0.0 && vb > 0.0) {
            1.0
        } else if span.volume {
            cw / cb / span.days_ratio()
        } else {
            (cw / vw) / (cb / vb)
        }
    }
}

/// The services, departments, prescribers and claims of a group of spans,
/// into `out`.
fn contributors_of(
    store: &Store,
    spans: &[Span],
    norm: &DataFrame,
    reference: &Reference,
    top: usize,
    out: &mut HashMap<String, Contributors>,
) -> Result<(), PolarsError> {
    let map_err = |e: crate::store::StoreError| PolarsError::ComputeError(e.to_string().into());
    let span_df = df!(
        "facility_code" => spans.iter().map(|s| s.facility_code.as_str()).collect::<Vec<_>>(),
        "w0" => spans.iter().map(|s| s.window.0).collect::<Vec<_>>(),
        "w1" => spans.iter().map(|s| s.window.1).collect::<Vec<_>>(),
        "b0" => spans.iter().map(|s| s.baseline.0).collect::<Vec<_>>(),
        "b1" => spans.iter().map(|s| s.baseline.1).collect::<Vec<_>>(),
    )?;
    let phase = when(col("discharge_date").is_between(col("w0"), col("w1"), ClosedInterval::Both))
        .then(lit("w"))
        .when(col("discharge_date").is_between(col("b0"), col("b1"), ClosedInterval::Both))
        .then(lit("b"))
        .otherwise(lit(NULL).cast(DataType::String))
        .alias("phase");
    let in_range = |lf: LazyFrame| {
        in_spans(lf, spans)
            .join(
                span_df.clone().lazy(),
                [col("facility_code")],
                [col("facility_code")],
                JoinArgs::new(JoinType::Inner),
            )
            .with_column(phase.clone())
            .filter(col("phase").is_not_null())
    };
    let visits = in_range(store.visits().map_err(map_err)?.select([
        col("facility_code"),
        col("ma_lk"),
        col("discharge_date"),
        col("total_cost"),
        col("dx3"),
        col("visit_group"),
    ]))
    .collect()?;
    // Visits per facility and phase.
    let counts = visits
        .clone()
        .lazy()
        .group_by([col("facility_code"), col("phase")])
        .agg([len().cast(DataType::Float64).alias("n")])
        .collect()?;
    let mut n_visits: HashMap<(String, String), f64> = HashMap::new();
    {
        let f = counts.column("facility_code")?.str()?;
        let p = counts.column("phase")?.str()?;
        let n = counts.column("n")?.f64()?;
        for i in 0..counts.height() {
            n_visits.insert(
                (f.get(i).unwrap_or("").into(), p.get(i).unwrap_or("").into()),
                n.get(i).unwrap_or(0.0),
            );
        }
    }
    let lines = in_range(store.lines().map_err(map_err)?.select([
        col("facility_code"),
        col("discharge_date"),
        col("item_code"),
        col("item_name"),
        col("amount"),
        col("department"),
        col("prescriber"),
    ]))
    .collect()?;
    // Each key's reference in the rest of the province: the item code of
    // a service (its name may vary), the department; none for a doctor.
    let dims: [(&'static str, Expr, Option<Expr>); 3] = [
        (
            "services",
            when(col("item_name").is_not_null())
                .then(concat_str([col("item_code"), col("item_name")], " ", true))
                .otherwise(col("item_code")),
            Some(col("item_code")),
        ),
        (
            "departments",
            col("department").fill_null(lit("?")),
            Some(col("department").fill_null(lit("?"))),
        ),
        ("prescribers", col("prescriber").fill_null(lit("?")), None),
    ];
    let span_of: HashMap<&str, &Span> = spans
        .iter()
        .map(|s| (s.facility_code.as_str(), s))
        .collect();
    for (dim, key, reference_key) in dims {
        let g = lines
            .clone()
            .lazy()
            .with_columns([
                key.alias("key"),
                reference_key
                    .unwrap_or(lit(NULL).cast(DataType::String))
                    .alias("ref"),
            ])
            .group_by([col("facility_code"), col("key"), col("ref"), col("phase")])
            .agg([col("amount").sum().alias("cost")])
            .collect()?;
        let f = g.column("facility_code")?.str()?;
        let k = g.column("key")?.str()?;
        let r = g.column("ref")?.str()?;
        let p = g.column("phase")?.str()?;
        let c = g.column("cost")?.f64()?;
        // (window, baseline) cost per facility and key, and per facility
        // and reference key (a code's names together).
        let mut acc: HashMap<(String, String), (Option<String>, f64, f64)> = HashMap::new();
        let mut own: HashMap<(String, String), (f64, f64)> = HashMap::new();
        for i in 0..g.height() {
            let fac = f.get(i).unwrap_or("");
            let e = acc
                .entry((fac.into(), k.get(i).unwrap_or("").into()))
                .or_insert((r.get(i).map(String::from), 0.0, 0.0));
            let o = r
                .get(i)
                .map(|r| own.entry((fac.into(), r.into())).or_default());
            let x = c.get(i).unwrap_or(0.0);
            if p.get(i) == Some("w") {
                e.1 += x;
                if let Some(o) = o {
                    o.0 += x;
                }
            } else {
                e.2 += x;
                if let Some(o) = o {
                    o.1 += x;
                }
            }
        }
        for ((fac, key), (r, w, b)) in acc {
            let nw = n_visits
                .get(&(fac.clone(), "w".into()))
                .copied()
                .unwrap_or(0.0);
            let nb = n_visits
                .get(&(fac.clone(), "b".into()))
                .copied()
                .unwrap_or(0.0);
            let Some(span) = span_of.get(fac.as_str()) else {
                continue;
            };
            let moved = match r {
                Some(r) => {
                    let o = own
                        .get(&(fac.clone(), r.clone()))
                        .copied()
                        .unwrap_or_default();
                    reference.ratio(dim, &r, span, o, (nw, nb))
                }
                None => 1.0,
            };
            let expected = if nb <= 0.0 {
                0.0
            } else if span.volume {
                b * span.days_ratio() * moved
            } else {
                b * nw / nb * moved
            };
            let x = w - expected;
            if x > 0.0 {
                let entry = out.entry(fac).or_default();
                let list = match dim {
                    "services" => &mut entry.services,
                    "departments" => &mut entry.departments,
                    _ => &mut entry.prescribers,
                };
                list.push((key, x));
            }
        }
    }
    let claims = visits
        .lazy()
        .filter(col("phase").eq(lit("w")))
        .join(
            norm.clone().lazy(),
            [col("dx3"), col("visit_group")],
            [col("dx3"), col("visit_group")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column((col("total_cost") - col("norm").fill_null(lit(0.0))).alias("x"))
        .filter(col("x").gt(lit(0.0)))
        .sort_by_exprs(
            [col("x")],
            SortMultipleOptions::default().with_order_descending(true),
        )
        .group_by_stable([col("facility_code")])
        .agg([col("ma_lk").head(Some(top)), col("x").head(Some(top))])
        .explode(
            by_name(["ma_lk", "x"], true, false),
            ExplodeOptions {
                empty_as_null: false,
                keep_nulls: false,
            },
        )
        .collect()?;
    {
        let f = claims.column("facility_code")?.str()?;
        let m = claims.column("ma_lk")?.str()?;
        let x = claims.column("x")?.f64()?;
        for i in 0..claims.height() {
            if let (Some(f), Some(m), Some(x)) = (f.get(i), m.get(i), x.get(i)) {
                out.entry(f.into()).or_default().claims.push((m.into(), x));
            }
        }
    }
    Ok(())
}

/// Puts `key` first in `list` with `excess` (the detector's estimate for
/// the unit it names), dropping its other entry and keeping `top` entries.
pub fn lead_with(list: &mut Vec<(String, f64)>, key: &str, excess: f64, top: usize) {
    list.retain(|x| x.0 != key);
    list.insert(0, (key.to_string(), excess.max(0.0)));
    list.truncate(top);
}

/// Bytes the contributor queries hold per visit of a chunk (the visit and
/// its lines' item, department and prescriber), rounded up.
const BYTES_PER_VISIT: u64 = 2048;

/// Computes the contributors of every span in a few scans of the store:
/// the claim norms once, then the spans' facilities in groups that fit in
/// `memory_mb` (every other figure is a facility's own).
pub fn contributors(
    store: &Store,
    spans: &[Span],
    flagged: Option<(&DataFrame, &HashMap<String, String>)>,
    top: usize,
    memory_mb: u64,
) -> Result<HashMap<String, Contributors>, PolarsError> {
    let mut out: HashMap<String, Contributors> = HashMap::new();
    if spans.is_empty() {
        return Ok(out);
    }
    let map_err = |e: crate::store::StoreError| PolarsError::ComputeError(e.to_string().into());
    let (lo, hi) = range_of(spans);
    // Claims: cost above the median of claims of the same diagnosis
    // category and visit type (all facilities) in the windows.
    let norm = streamed(
        store
            .visits()
            .map_err(map_err)?
            .filter(col("discharge_date").is_between(
                lit_date(spans.iter().map(|s| s.window.0).min().unwrap_or(lo)),
                lit_date(hi),
                ClosedInterval::Both,
            ))
            .group_by([col("dx3"), col("visit_group")])
            .agg([col("total_cost").median().alias("norm")]),
    )?;
    let reference = Reference::read(store, (lo, hi))?;
    let chunks = plan_chunks(
        in_spans(store.visits().map_err(map_err)?, spans),
        visits_per_chunk(memory_mb, BYTES_PER_VISIT),
    )?;
    for chunk in &chunks {
        let part: Vec<Span> = spans
            .iter()
            .filter(|s| chunk.facilities.is_empty() || chunk.facilities.contains(&s.facility_code))
            .cloned()
            .collect();
        if !part.is_empty() {
            contributors_of(store, &part, &norm, &reference, top, &mut out)?;
        }
    }
    // Flagged claims first where a claim check drives the alert.
    if let Some((flags, kinds)) = flagged {
        let f = flags.column("facility_code")?.str()?;
        let m = flags.column("ma_lk")?.str()?;
        let k = flags.column("kind")?.str()?;
        let x = flags.column("excess_vnd")?.f64()?;
        let pd = flags.column("period_start")?.date()?;
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let mut first: HashMap<String, Vec<(String, f64)>> = HashMap::new();
        for i in 0..flags.height() {
            let fac = f.get(i).unwrap_or("");
            let Some(kind) = kinds.get(fac) else { continue };
            if k.get(i) != Some(kind.as_str()) {
                continue;
            }
            let d = epoch + chrono::Duration::days(pd.phys.get(i).unwrap_or(0) as i64);
            let span = spans.iter().find(|s| s.facility_code == fac).unwrap();
            if d < span.window.0 - chrono::Duration::days(31) || d > span.window.1 {
                continue;
            }
            first
                .entry(fac.into())
                .or_default()
                .push((m.get(i).unwrap_or("").into(), x.get(i).unwrap_or(0.0)));
        }
        for (fac, mut v) in first {
            v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let e = out.entry(fac).or_default();
            v.append(&mut e.claims);
            e.claims = v;
        }
    }
    for c in out.values_mut() {
        for list in [&mut c.services, &mut c.departments, &mut c.prescribers] {
            list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        }
        // Claims keep their order: flagged claims first, then by excess.
        for list in [
            &mut c.claims,
            &mut c.services,
            &mut c.departments,
            &mut c.prescribers,
        ] {
            let mut seen = std::collections::HashSet::new();
            list.retain(|x| seen.insert(x.0.clone()));
            list.truncate(top);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_sums_include_both_ends_and_skip_missing_days() {
        let d = Daily::from_pairs(vec![(10, 1.0), (3, 2.0), (7, 4.0)]);
        assert_eq!(d.sum((3, 10)), 7.0);
        assert_eq!(d.sum((4, 9)), 4.0);
        assert_eq!(d.sum((8, 9)), 0.0);
        assert_eq!(d.sum((11, 20)), 0.0);
        assert_eq!(d.sum((10, 3)), 0.0);
        assert_eq!(Daily::default().sum((0, 5)), 0.0);
    }

    #[test]
    fn the_named_unit_leads_once() {
        let mut l = vec![("K11".to_string(), 9.0), ("K04".to_string(), 1.0)];
        lead_with(&mut l, "K04", 72.0, 5);
        assert_eq!(l, vec![("K04".to_string(), 72.0), ("K11".to_string(), 9.0)]);
        lead_with(&mut l, "K07", -3.0, 2);
        assert_eq!(l[0], ("K07".to_string(), 0.0));
        assert_eq!(l.len(), 2);
    }
}
