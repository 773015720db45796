//! Case-mix standardisation (indirect): what each visit would be expected to
//! cost, how long an inpatient would be expected to stay, and how likely an
//! admission is, given the diagnosis, visit type and age band, learnt across
//! all facilities of the same level.
//!
//! Cells are shrunk towards their parent so that a diagnosis seen a handful
//! of times does not set its own norm: level+visit group → + ICD-10 chapter
//! and age band → + 3-character diagnosis and age band, each step
//! `(n·mean + k·parent) / (n + k)` with `k` pseudo-visits (empirical Bayes
//! with a fixed prior weight).
//!
//! The norms are learnt in one streaming pass into a small table of cells
//! (sums and counts per level, visit group, diagnosis and age band, a few
//! thousand rows whatever the store's size); the shrinkage runs on that
//! table, and visits get their expectations by a join with it. So the
//! features stage never holds every visit to learn the norms.

use polars::prelude::*;

use super::FeatureError;
use crate::reference::icd10_chapters;

/// ICD-10 chapter of the `dx3` column ("?" when outside every chapter).
pub fn chapter_expr() -> Expr {
    let mut e = lit("?");
    for ch in icd10_chapters().into_iter().rev() {
        let cond = col("dx3")
            .gt_eq(lit(ch.first.clone()))
            .and(col("dx3").lt_eq(lit(ch.last.clone())));
        e = when(cond).then(lit(ch.chapter.clone())).otherwise(e);
    }
    e
}

/// Keys of the finest cost and length-of-stay cell.
const COST_CELL: [&str; 4] = ["level", "visit_group", "dx3", "age_band"];
/// Keys of the finest admission cell (admission is what the visit group tells).
const ADMISSION_CELL: [&str; 3] = ["level", "dx3", "age_band"];

/// The learnt norms: expected cost and length of stay per cost cell,
/// expected admission probability per admission cell.
#[derive(Debug, Clone)]
pub struct CaseMixNorms {
    /// level, visit_group, dx3, age_band → expected_cost, expected_los.
    pub cost: DataFrame,
    /// level, dx3, age_band → expected_admission.
    pub admission: DataFrame,
}

/// Sums and counts per cost cell of visits that carry `level`: the one pass
/// over the visits (a streaming group-by).
pub fn cells(visits: LazyFrame) -> LazyFrame {
    let los = || col("los_days").cast(DataType::Float64);
    let adm = || col("inpatient").cast(DataType::Float64);
    visits.group_by(COST_CELL.map(col)).agg([
        col("total_cost").sum().alias("cost_sum"),
        col("total_cost").count().alias("cost_n"),
        los().sum().alias("los_sum"),
        los().count().alias("los_n"),
        adm().sum().alias("adm_sum"),
        adm().count().alias("adm_n"),
    ])
}

/// Shrinks the cells: `k` pseudo-visits towards the parent cell.
pub fn norms(cells: DataFrame, k: f64) -> Result<CaseMixNorms, FeatureError> {
    let cells = cells
        .lazy()
        .with_column(chapter_expr().alias("dx_chapter"))
        .collect()?;
    let by_group = vec![
        vec!["level", "visit_group"],
        vec!["level", "visit_group", "dx_chapter", "age_band"],
        COST_CELL.to_vec(),
    ];
    let cost = shrunk(
        cells.clone(),
        "cost_sum",
        "cost_n",
        &by_group,
        "expected_cost",
        k,
    )?;
    let cost = shrunk(cost, "los_sum", "los_n", &by_group, "expected_los", k)?
        .lazy()
        .select(
            COST_CELL
                .map(col)
                .into_iter()
                .chain([col("expected_cost"), col("expected_los")])
                .collect::<Vec<_>>(),
        )
        .collect()?;
    let adm_cells = cells
        .lazy()
        .group_by(ADMISSION_CELL.map(col))
        .agg([
            col("adm_sum").sum(),
            col("adm_n").sum(),
            col("dx_chapter").first(),
        ])
        .collect()?;
    let by_dx = vec![
        vec!["level"],
        vec!["level", "dx_chapter", "age_band"],
        ADMISSION_CELL.to_vec(),
    ];
    let admission = shrunk(
        adm_cells,
        "adm_sum",
        "adm_n",
        &by_dx,
        "expected_admission",
        k,
    )?
    .lazy()
    .select(
        ADMISSION_CELL
            .map(col)
            .into_iter()
            .chain([col("expected_admission")])
            .collect::<Vec<_>>(),
    )
    .collect()?;
    Ok(CaseMixNorms { cost, admission })
}

/// Adds `<name>` = shrunk mean over the cell hierarchy `levels` (coarsest
/// first) to a table of cells carrying a sum and a count of the value.
///
/// Each level's cells are joined back with the default join (null keys
/// never match), so a visit with an unknown diagnosis or age band gets no
/// expectation, as when the means were taken over the visits themselves.
fn shrunk(
    cells: DataFrame,
    sum: &str,
    n: &str,
    levels: &[Vec<&str>],
    name: &str,
    k: f64,
) -> PolarsResult<DataFrame> {
    let mut lf = cells.lazy();
    let mut prior: Option<Expr> = None;
    let mut helpers = Vec::new();
    for (i, keys) in levels.iter().enumerate() {
        let m = format!("_{name}_m{i}");
        let c = format!("_{name}_n{i}");
        let s = format!("_{name}_s{i}");
        let on: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
        let stats = lf
            .clone()
            .group_by(on.clone())
            .agg([
                col(sum).sum().alias("_sum"),
                col(n).sum().cast(DataType::Float64).alias(&c),
            ])
            .with_column(
                when(col(&c).gt(lit(0.0)))
                    .then(col("_sum") / col(&c))
                    .otherwise(lit(NULL).cast(DataType::Float64))
                    .alias(&m),
            )
            .select([all().exclude_cols(["_sum"]).as_expr()]);
        lf = lf.join(stats, on.clone(), on, JoinArgs::new(JoinType::Left));
        let est = match prior.take() {
            None => col(&m),
            Some(p) => {
                (col(&c) * col(&m).fill_null(lit(0.0)) + lit(k) * p.clone()) / (col(&c) + lit(k))
            }
        };
        lf = lf.with_column(est.alias(&s)).collect()?.lazy();
        prior = Some(col(&s));
        helpers.extend([m, c, s.clone()]);
    }
    let last = format!("_{name}_s{}", levels.len() - 1);
    lf.with_column(col(&last).alias(name))
        .select([all().exclude_cols(helpers).as_expr()])
        .collect()
}

/// Adds `expected_cost`, `expected_los` (null for non-inpatient visits) and
/// `expected_admission` to visits that carry `level`.
pub fn with_expectations(visits: LazyFrame, norms: &CaseMixNorms) -> LazyFrame {
    let cost_on = COST_CELL.map(col);
    let adm_on = ADMISSION_CELL.map(col);
    visits
        .join(
            norms.cost.clone().lazy(),
            cost_on.clone(),
            cost_on,
            JoinArgs::new(JoinType::Left),
        )
        .join(
            norms.admission.clone().lazy(),
            adm_on.clone(),
            adm_on,
            JoinArgs::new(JoinType::Left),
        )
        .with_column(
            when(col("inpatient"))
                .then(col("expected_los"))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias("expected_los"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two cells of level A shrunk with `k` pseudo-visits: their estimates.
    fn two_cells(cell: [Option<&str>; 2], sum: [f64; 2], n: [u32; 2], k: f64) -> Vec<Option<f64>> {
        let df = df!(
            "level" => ["A", "A"],
            "cell" => cell,
            "v_sum" => sum,
            "v_n" => n,
        )
        .unwrap();
        let levels = [vec!["level"], vec!["level", "cell"]];
        let out = shrunk(df, "v_sum", "v_n", &levels, "e", k).unwrap();
        assert_eq!(out.width(), 5, "helper columns are dropped");
        out.column("e").unwrap().f64().unwrap().iter().collect()
    }

    /// Two cells under one parent: (2·10 + 2·20)/4 = 15 and (1·40 + 2·20)/3.
    #[test]
    fn rare_cells_shrink_towards_their_parent() {
        let e = two_cells([Some("x"), Some("y")], [20.0, 40.0], [2, 1], 2.0);
        assert!((e[0].unwrap() - 15.0).abs() < 1e-12);
        assert!((e[1].unwrap() - 80.0 / 3.0).abs() < 1e-12);
    }

    /// A cell with a null key keeps no expectation (as a visit with an
    /// unknown diagnosis had none), its parent still counts its visits.
    #[test]
    fn a_cell_with_an_unknown_key_gets_no_expectation() {
        let e = two_cells([Some("x"), None], [10.0, 30.0], [1, 1], 1.0);
        assert!((e[0].unwrap() - 15.0).abs() < 1e-12, "(10 + 20)/2");
        assert_eq!(e[1], None);
    }
}
