//! Prescribers (MA_BAC_SI) whose claims cost far more than their
//! colleagues' at the same facility for the same diagnosis and visit type.
//!
//! A facility-level indicator cannot see one doctor among forty: doubling
//! one doctor's prescriptions moves the facility's cost per visit by a few
//! percent, inside its noise. Here each claim is attributed to its main
//! prescriber (the doctor with the largest amount on its lines) and priced
//! against its cell — the mean log cost of the same facility, diagnosis
//! category (ICD-10, 3 characters) and visit type over the training range.
//! Over two trailing windows (the peer window, 13 weeks, and a third of it,
//! which sees an onset within weeks), a doctor's mean residual is compared
//! with the colleagues' in the same window (shared changes — prices, an
//! epidemic, the season — cancel):
//!
//! d = mean residual of the doctor − mean residual of the colleagues,
//! var = s² (1/n + 1/n_colleagues) + τ²,
//!
//! s² the within-facility spread of residuals, τ² the spread of true
//! differences between doctors (specialists see the harder cases of a
//! diagnosis), estimated on the training windows of the whole province
//! (empirical Bayes, as for peers). z = d / √var, p = 1 − Φ(z), Šidák over
//! the comparisons made at the facility in that period (doctors × windows). The excess is the
//! doctor's cost in the window above the colleagues' level:
//! cost × (1 − e^(−d)). Causal: a period's statistic uses its window only
//! (and the training cells).
//!
//! **Departments** (MA_KHOA of the claim) go through the same machinery
//! with one difference: a department's cell includes the department
//! (facility × department × diagnosis × visit type), so its residual is its
//! change against its own training level. Departments differ by design —
//! intensive care costs more than the general ward for the same pneumonia —
//! so their levels are not comparable; a department whose cost per claim
//! rises while its colleagues' does not is.

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::features::Period;
use crate::store::chunks::{plan_chunks, visits_per_chunk, Chunk};
use crate::store::Store;

use super::calibrate::{p_of_severity, sidak};
use super::{date_of, days_of, DetectError};

/// Settings of the prescriber comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PrescriberConfig {
    /// Fewest claims of a doctor in the window for a comparison. Default 10.
    pub min_claims: f64,
    /// Fewest claims of the colleagues in the window. Default 60.
    pub min_colleague_claims: f64,
    /// Fewest training claims of a facility × diagnosis × visit-type cell
    /// for its claims to be priced. Default 5.
    pub min_cell: u32,
}

impl Default for PrescriberConfig {
    fn default() -> Self {
        PrescriberConfig {
            min_claims: 10.0,
            min_colleague_claims: 60.0,
            min_cell: 5,
        }
    }
}

/// Columns of [`prescriber_stats`] joined to the features table.
pub const COLUMNS: [&str; 5] = [
    "prescriber_p",
    "prescriber_ratio",
    "prescriber_claims",
    "prescriber_excess",
    "prescriber_tested",
];

/// Columns of [`department_stats`] joined to the features table.
pub const DEPARTMENT_COLUMNS: [&str; 5] = [
    "department_p",
    "department_ratio",
    "department_claims",
    "department_excess",
    "department_tested",
];

/// The file of `bhyt detect`'s output folder holding [`units_table`].
pub const UNITS_FILE: &str = "units.parquet";

/// Columns of [`UnitStats::units`] and what they mean.
pub const UNIT_COLUMNS: [(&str, &str); 9] = [
    ("facility_code", "MA_CSKCB"),
    ("period_start", "last period of the comparison's window"),
    ("unit_code", "the doctor (MA_BAC_SI, the claim's main prescriber) or department (MA_KHOA)"),
    ("unit_group", "whom the colleagues are: a department's visit type; empty for a doctor (the whole facility)"),
    ("window", "periods of the window (the peer window, or a third of it)"),
    ("ratio", "the unit's cost per claim over its colleagues' for the same diagnoses and visit types (a department: its change against its own training level over the colleagues' change)"),
    ("claims", "the unit's priced claims in the window"),
    ("z", "the difference in log cost over its standard error (between-unit spread included)"),
    ("scored", "the facility-period's most extreme comparison, the one its severity comes from"),
];

/// What a comparison within facilities gives.
#[derive(Debug, Clone)]
pub struct UnitStats {
    /// Per facility and period, the most extreme unit ([`COLUMNS`] or
    /// [`DEPARTMENT_COLUMNS`]), joined to the features table for scoring.
    pub by_facility: DataFrame,
    /// Every unit's comparison ([`UNIT_COLUMNS`]): `ratio` = e^d, the
    /// unit's cost per claim over its colleagues' (same diagnoses; for
    /// departments, change over change); `z` = d / √var; `scored`: the
    /// facility-period's most extreme comparison, the one scored;
    /// `unit_group`: whom the colleagues are (a department's visit type;
    /// empty: the whole facility); `window`: periods.
    pub units: DataFrame,
}

/// Separates a unit from the group its colleagues come from
/// (`department␟visit_group`); a unit without it has the whole facility
/// as colleagues.
const GROUP_SEP: &str = "\u{1f}";

/// The group of a unit key (empty: the whole facility).
fn group_of(k: &str) -> &str {
    k.split_once(GROUP_SEP).map_or("", |x| x.1)
}

/// Whom a facility's claims are compared by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// The claim's main doctor (largest amount on its lines); levels compared.
    Prescriber,
    /// The claim's department (MA_KHOA of the visit); changes compared.
    Department,
}

/// Per doctor and period: claims, sum and sum of squares of residuals, cost.
#[derive(Default, Clone, Copy)]
struct Acc {
    n: f64,
    s: f64,
    s2: f64,
    cost: f64,
}

impl Acc {
    fn add(&mut self, o: &Acc) {
        self.n += o.n;
        self.s += o.s;
        self.s2 += o.s2;
        self.cost += o.cost;
    }
}

/// The prescriber comparison of every facility and period of the store:
/// facility_code, period_start (date), prescriber_code, and [`COLUMNS`]
/// (the most extreme doctor's facility-level tail probability, cost ratio
/// to colleagues, claims, excess VND; the number of doctors tested; null
/// where no doctor was compared), and the facility's own residual sums of
/// the period ([`super::shift::COLUMNS`]).
/// `train_to`: last day of the training range; `window`: periods.
pub fn prescriber_stats(
    store: &Store,
    period: Period,
    train_to: chrono::NaiveDate,
    window: usize,
    cfg: &PrescriberConfig,
    memory_mb: u64,
) -> Result<UnitStats, DetectError> {
    unit_stats(
        store,
        Unit::Prescriber,
        period,
        train_to,
        window,
        cfg,
        memory_mb,
    )
}

/// The department comparison of every facility and period of the store:
/// facility_code, period_start (date), department_code and
/// [`DEPARTMENT_COLUMNS`], as [`prescriber_stats`] for doctors (each
/// department's change against its own training level, against its
/// colleagues' change).
pub fn department_stats(
    store: &Store,
    period: Period,
    train_to: chrono::NaiveDate,
    window: usize,
    cfg: &PrescriberConfig,
    memory_mb: u64,
) -> Result<UnitStats, DetectError> {
    unit_stats(
        store,
        Unit::Department,
        period,
        train_to,
        window,
        cfg,
        memory_mb,
    )
}

/// Bytes the unit query holds per visit of a chunk, rounded up.
const BYTES_PER_VISIT: u64 = 1536;

fn unit_stats(
    store: &Store,
    unit: Unit,
    period: Period,
    train_to: chrono::NaiveDate,
    window: usize,
    cfg: &PrescriberConfig,
    memory_mb: u64,
) -> Result<UnitStats, DetectError> {
    let input = |e: crate::store::StoreError| DetectError::Input(e.to_string());
    // Every norm is a facility's own (its cells), so facility groups are
    // computed apart.
    let chunks = plan_chunks(
        store.visits().map_err(input)?,
        visits_per_chunk(memory_mb, BYTES_PER_VISIT),
    )?;
    let mut parts = Vec::with_capacity(chunks.len());
    for chunk in &chunks {
        parts.push(unit_sums(store, chunk, unit, period, train_to, cfg)?.lazy());
    }
    // In key order: the table adds floats in the order of the rows and of
    // its maps, and a rerun must give the same bits (a group-by's output
    // order is its threads').
    let by = concat(parts, UnionArgs::default())?
        .sort(
            ["facility_code", "_unit", "period_start", "_ck"],
            Default::default(),
        )
        .collect()?;
    unit_table(&by, unit, train_to, window, cfg)
}

/// An inner join that keeps the claims' order: the sums below are of
/// floats, and the order a join's threads leave the rows in would move
/// their last bits from one run to the next.
fn in_claims_order() -> JoinArgs {
    JoinArgs {
        maintain_order: MaintainOrderJoin::Left,
        ..JoinArgs::new(JoinType::Inner)
    }
}

/// Per facility, unit, period and diagnosis cell of a chunk: claims, sums
/// of log-cost residuals against the unit's training means, cost.
fn unit_sums(
    store: &Store,
    chunk: &Chunk,
    unit: Unit,
    period: Period,
    train_to: chrono::NaiveDate,
    cfg: &PrescriberConfig,
) -> Result<DataFrame, DetectError> {
    let input = |e: crate::store::StoreError| DetectError::Input(e.to_string());
    let claims = chunk
        .filter(store.visits().map_err(input)?)
        .select([
            col("facility_code"),
            col("visit_key"),
            col("discharge_date"),
            col("dx3"),
            col("visit_group"),
            col("total_cost"),
            col("department"),
        ])
        .filter(col("total_cost").gt(lit(0.0)))
        .with_column(super::claims::period_start(period));
    let claims = match unit {
        Unit::Prescriber => {
            // The main prescriber of each claim: the largest amount on its lines.
            let main = chunk
                .filter(store.lines().map_err(input)?)
                .select([col("visit_key"), col("prescriber"), col("amount")])
                .filter(col("prescriber").is_not_null())
                .group_by([col("visit_key"), col("prescriber")])
                .agg([col("amount").sum().alias("_a")])
                .group_by([col("visit_key")])
                .agg([col("prescriber")
                    .get(col("_a").arg_max(), true)
                    .alias("_unit")]);
            claims.join(
                main,
                [col("visit_key")],
                [col("visit_key")],
                in_claims_order(),
            )
        }
        // A department is compared within its visit type (its inpatients
        // with the other wards' inpatients): outpatient and inpatient costs
        // move differently under a price change.
        Unit::Department => claims.filter(col("department").is_not_null()).with_column(
            concat_str([col("department"), col("visit_group")], GROUP_SEP, false).alias("_unit"),
        ),
    }
    .with_column(col("total_cost").log(lit(std::f64::consts::E)).alias("_lc"));
    let mut cell = vec![col("facility_code"), col("dx3"), col("visit_group")];
    if unit == Unit::Department {
        cell.push(col("_unit"));
    }
    let train_end = lit(train_to);
    let norms = claims
        .clone()
        .filter(col("discharge_date").lt_eq(train_end))
        .group_by(cell.clone())
        .agg([len().alias("_cell"), col("_lc").mean().alias("_mu")])
        .filter(col("_cell").gt_eq(lit(cfg.min_cell)));
    // Per unit, period and diagnosis cell: a department's residuals are
    // against its own training means, whose error does not cancel against
    // colleagues' (the variance needs each cell's share and training count).
    let ck = match unit {
        Unit::Prescriber => lit(""),
        Unit::Department => col("dx3"),
    };
    let by = claims
        .join(norms, cell.clone(), cell, in_claims_order())
        .with_column((col("_lc") - col("_mu")).alias("_r"))
        .with_column(ck.alias("_ck"))
        .group_by([
            col("facility_code"),
            col("_unit"),
            col("period_start"),
            col("_ck"),
        ])
        .agg([
            len().cast(DataType::Float64).alias("n"),
            col("_r").sum().alias("s"),
            (col("_r") * col("_r")).sum().alias("s2"),
            col("total_cost").sum().alias("cost"),
            col("_cell").first().cast(DataType::Float64).alias("m"),
        ])
        .with_column(col("period_start").cast(DataType::Int32))
        .collect()?;
    Ok(by)
}

/// The unit comparison from the sums of [`unit_sums`].
fn unit_table(
    by: &DataFrame,
    unit: Unit,
    train_to: chrono::NaiveDate,
    window: usize,
    cfg: &PrescriberConfig,
) -> Result<UnitStats, DetectError> {
    // facility → period → unit → sums (and, for departments, its cells).
    let mut acc: Sums = BTreeMap::new();
    let mut cells: CellSums = BTreeMap::new();
    let mut periods: Vec<i32> = Vec::new();
    {
        let f = by.column("facility_code")?.str()?;
        let d = by.column("_unit")?.str()?;
        let p = by.column("period_start")?.i32()?;
        let c = by.column("_ck")?.str()?;
        let [n, s, s2, cost, m] =
            ["n", "s", "s2", "cost", "m"].map(|c| by.column(c).and_then(|c| c.f64().cloned()));
        let (n, s, s2, cost, m) = (n?, s?, s2?, cost?, m?);
        for i in 0..by.height() {
            let (Some(f), Some(d), Some(p)) = (f.get(i), d.get(i), p.get(i)) else {
                continue;
            };
            periods.push(p);
            let a = Acc {
                n: n.get(i).unwrap_or(0.0),
                s: s.get(i).unwrap_or(0.0),
                s2: s2.get(i).unwrap_or(0.0),
                cost: cost.get(i).unwrap_or(0.0),
            };
            acc.entry(f.to_string())
                .or_default()
                .entry(p)
                .or_default()
                .entry(d.to_string())
                .or_default()
                .add(&a);
            if unit == Unit::Department {
                cells
                    .entry(f.to_string())
                    .or_default()
                    .entry(p)
                    .or_default()
                    .entry(d.to_string())
                    .or_default()
                    .push((
                        c.get(i).unwrap_or("").to_string(),
                        a.n,
                        m.get(i).unwrap_or(1.0),
                    ));
            }
        }
    }
    periods.sort_unstable();
    periods.dedup();
    // Two windows: the short one (a third of the peer window) sees an
    // onset within weeks, the long one a smaller rise.
    let long = window.max(1);
    let short = long.div_ceil(3).max(1);
    let facs: Vec<&String> = acc.keys().collect();
    let train_t = periods.partition_point(|&p| p <= days_of(train_to));
    let mut cmps: Vec<Cmp> = Vec::new();
    for w in if short < long {
        vec![short, long]
    } else {
        vec![long]
    } {
        let mut c = compare(&acc, &cells, &facs, &periods, w, cfg);
        let tau2 = between_doctors(&c, train_t);
        for x in &mut c {
            x.var += tau2;
        }
        cmps.extend(c);
    }
    // The most extreme doctor per facility and period.
    let mut best: BTreeMap<(usize, usize), (f64, usize, &Cmp)> = BTreeMap::new();
    for c in &cmps {
        let z = c.d / c.var.sqrt();
        let p = p_of_severity(z);
        let e = best.entry((c.fac, c.t)).or_insert((p, 0, c));
        e.1 += 1;
        if p < e.0 {
            e.0 = p;
            e.2 = c;
        }
    }
    // Every facility-period with priced claims: the facility's residual
    // sums (for the claim-level cost shift, `super::shift`) and, where a
    // doctor was compared, the most extreme one.
    let mut fac_col = Vec::new();
    let mut per_col = Vec::new();
    let mut doc_col: Vec<Option<String>> = Vec::new();
    let mut cols: [Vec<Option<f64>>; 5] = Default::default();
    let mut sums: [Vec<f64>; 4] = Default::default();
    let fac_index: HashMap<&str, usize> = facs
        .iter()
        .enumerate()
        .map(|(i, f)| (f.as_str(), i))
        .collect();
    for (fac, per) in &acc {
        let fi = fac_index[fac.as_str()];
        for (pt, docs) in per {
            let mut all = Acc::default();
            for a in docs.values() {
                all.add(a);
            }
            let t = periods.partition_point(|p| p < pt);
            fac_col.push(fac.clone());
            per_col.push(date_of(*pt));
            for (v, x) in sums.iter_mut().zip([all.n, all.s, all.s2, all.cost]) {
                v.push(x);
            }
            match best.get(&(fi, t)) {
                Some((p, m, c)) => {
                    doc_col.push(Some(c.unit.clone()));
                    cols[0].push(Some(sidak(*p, *m)));
                    cols[1].push(Some(c.d.exp()));
                    cols[2].push(Some(c.n));
                    cols[3].push(Some((c.cost * (1.0 - (-c.d).exp())).max(0.0)));
                    cols[4].push(Some(*m as f64));
                }
                None => {
                    doc_col.push(None);
                    for c in cols.iter_mut() {
                        c.push(None);
                    }
                }
            }
        }
    }
    let (code, names) = match unit {
        Unit::Prescriber => ("prescriber_code", COLUMNS),
        Unit::Department => ("department_code", DEPARTMENT_COLUMNS),
    };
    let mut columns = vec![
        Column::new("facility_code".into(), fac_col),
        Column::new("period_start".into(), per_col),
        Column::new(code.into(), doc_col),
    ];
    for (name, v) in names.iter().zip(cols) {
        columns.push(Column::new((*name).into(), v));
    }
    // The facility's own residual sums (the cost shift) come with the
    // prescribers' (cells without the department: the facility's change).
    if unit == Unit::Prescriber {
        for (name, v) in super::shift::COLUMNS.iter().zip(sums) {
            columns.push(Column::new((*name).into(), v));
        }
    }
    Ok(UnitStats {
        by_facility: DataFrame::new_infer_height(columns)?,
        units: units_frame(&cmps, &best, &facs, &periods)?,
    })
}

/// The prescriber and department comparisons' units in one table, with
/// `kind` ("prescriber", "department") first: `units.parquet` of
/// `bhyt detect`.
pub fn units_table(
    prescribers: &UnitStats,
    departments: &UnitStats,
) -> Result<DataFrame, DetectError> {
    let with_kind = |u: &UnitStats, kind: &str| -> Result<LazyFrame, DetectError> {
        let mut df = u.units.clone();
        df.insert_column(0, Column::new("kind".into(), vec![kind; df.height()]))?;
        Ok(df.lazy())
    };
    Ok(concat(
        [
            with_kind(prescribers, "prescriber")?,
            with_kind(departments, "department")?,
        ],
        UnionArgs::default(),
    )?
    .collect()?)
}

/// Every comparison as rows of [`UNIT_COLUMNS`], in the order they were
/// made (window, facility, period, unit: the same every run).
fn units_frame(
    cmps: &[Cmp],
    best: &BTreeMap<(usize, usize), (f64, usize, &Cmp)>,
    facs: &[&String],
    periods: &[i32],
) -> Result<DataFrame, DetectError> {
    let scored = |c: &Cmp| {
        best.get(&(c.fac, c.t))
            .is_some_and(|b| std::ptr::eq(b.2, c))
    };
    let columns = vec![
        Column::new(
            "facility_code".into(),
            cmps.iter()
                .map(|c| facs[c.fac].as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "period_start".into(),
            cmps.iter()
                .map(|c| date_of(periods[c.t]))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "unit_code".into(),
            cmps.iter().map(|c| c.unit.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "unit_group".into(),
            cmps.iter().map(|c| c.group.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "window".into(),
            cmps.iter().map(|c| c.window as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "ratio".into(),
            cmps.iter().map(|c| c.d.exp()).collect::<Vec<_>>(),
        ),
        Column::new(
            "claims".into(),
            cmps.iter().map(|c| c.n).collect::<Vec<_>>(),
        ),
        Column::new(
            "z".into(),
            cmps.iter().map(|c| c.d / c.var.sqrt()).collect::<Vec<_>>(),
        ),
        Column::new("scored".into(), cmps.iter().map(scored).collect::<Vec<_>>()),
    ];
    Ok(DataFrame::new_infer_height(columns)?)
}

/// One doctor's (department's) comparison with colleagues in one window.
struct Cmp {
    fac: usize,
    t: usize,
    /// Periods of the window.
    window: usize,
    unit: String,
    /// Whom the colleagues are ([`group_of`] the unit's key).
    group: String,
    /// Mean residual of the doctor minus the colleagues'.
    d: f64,
    /// Variance of `d` under "no difference".
    var: f64,
    n: f64,
    cost: f64,
}

type Sums = BTreeMap<String, BTreeMap<i32, BTreeMap<String, Acc>>>;

/// facility → period → unit → (diagnosis cell, claims, training claims of
/// the cell): departments only.
type CellSums = BTreeMap<String, BTreeMap<i32, BTreeMap<String, Vec<(String, f64, f64)>>>>;

/// Every doctor's comparison over windows of `w` periods ending at each
/// period.
fn compare(
    acc: &Sums,
    cells: &CellSums,
    facs: &[&String],
    periods: &[i32],
    w: usize,
    cfg: &PrescriberConfig,
) -> Vec<Cmp> {
    let mut cmps = Vec::new();
    for (fi, fac) in facs.iter().enumerate() {
        let per = &acc[*fac];
        let fac_cells = cells.get(*fac);
        for (t, pt) in periods.iter().enumerate() {
            if !per.contains_key(pt) {
                continue;
            }
            let lo = t.saturating_sub(w - 1);
            // Ordered: ties between units resolve the same way every run.
            let mut docs: BTreeMap<&str, Acc> = BTreeMap::new();
            // Per unit: its claims per cell in the window, with the cell's
            // training count.
            let mut unit_cells: BTreeMap<&str, BTreeMap<&str, (f64, f64)>> = BTreeMap::new();
            for q in &periods[lo..=t] {
                if let Some(m) = per.get(q) {
                    for (doc, a) in m {
                        docs.entry(doc.as_str()).or_default().add(a);
                    }
                }
                if let Some(m) = fac_cells.and_then(|c| c.get(q)) {
                    for (doc, cs) in m {
                        let u = unit_cells.entry(doc.as_str()).or_default();
                        for (c, n, train) in cs {
                            let e = u.entry(c.as_str()).or_insert((0.0, *train));
                            e.0 += n;
                        }
                    }
                }
            }
            // Error of a unit's training means in its window mean, over s²:
            // Σ_cells n_c² / m_c (divided by n² below).
            let q: BTreeMap<&str, f64> = unit_cells
                .iter()
                .map(|(doc, cs)| (*doc, cs.values().map(|(n, m)| n * n / m.max(1.0)).sum()))
                .collect();
            let q_of = |doc: &str| q.get(doc).copied().unwrap_or(0.0);
            // Colleagues: the units of the same group.
            let mut groups: BTreeMap<&str, (Acc, f64)> = BTreeMap::new();
            for (doc, a) in &docs {
                let g = groups.entry(group_of(doc)).or_default();
                g.0.add(a);
                g.1 += q_of(doc);
            }
            for (doc, a) in &docs {
                let (all, q_all) = groups[group_of(doc)];
                let rest = all.n - a.n;
                if all.n < 3.0 || a.n < cfg.min_claims || rest < cfg.min_colleague_claims {
                    continue;
                }
                let s2 = ((all.s2 - all.s * all.s / all.n) / (all.n - 1.0)).max(1e-6);
                let q = q_of(doc);
                cmps.push(Cmp {
                    fac: fi,
                    t,
                    window: w,
                    unit: doc.split(GROUP_SEP).next().unwrap_or(doc).to_string(),
                    group: group_of(doc).to_string(),
                    d: a.s / a.n - (all.s - a.s) / rest,
                    var: s2
                        * (1.0 / a.n + 1.0 / rest + q / (a.n * a.n) + (q_all - q) / (rest * rest)),
                    n: a.n,
                    cost: a.cost,
                });
            }
        }
    }
    cmps
}

/// τ²: the spread of true differences between doctors, from the windows
/// that end in the training range; 0 with fewer than 10 comparisons.
fn between_doctors(c: &[Cmp], train_t: usize) -> f64 {
    let train = || c.iter().filter(|c| c.t < train_t);
    super::excess_spread(
        train().map(|c| c.d).collect(),
        train().map(|c| c.var).collect(),
    )
}
