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

/// Adds `<name>` = shrunk mean of `value` over the cell hierarchy `levels`
/// (coarsest first). Each step is materialised: the cell statistics are
/// computed from the frame they are joined back to, and a lazy plan would
/// otherwise repeat every earlier step in both branches.
fn shrunk(
    visits: DataFrame,
    value: Expr,
    levels: &[Vec<&str>],
    name: &str,
    k: f64,
) -> PolarsResult<DataFrame> {
    let mut lf = visits.lazy();
    let mut prior: Option<Expr> = None;
    for (i, keys) in levels.iter().enumerate() {
        let m = format!("_{name}_m{i}");
        let n = format!("_{name}_n{i}");
        let stats = lf
            .clone()
            .group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
            .agg([
                value.clone().mean().alias(&m),
                value.clone().count().cast(DataType::Float64).alias(&n),
            ]);
        let on: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
        lf = lf.join(stats, on.clone(), on, JoinArgs::new(JoinType::Left));
        let s = format!("_{name}_s{i}");
        let est = match prior.take() {
            None => col(&m),
            Some(p) => {
                (col(&n) * col(&m).fill_null(lit(0.0)) + lit(k) * p.clone()) / (col(&n) + lit(k))
            }
        };
        lf = lf.with_column(est.alias(&s)).collect()?.lazy();
        prior = Some(col(&s));
    }
    let last = format!("_{name}_s{}", levels.len() - 1);
    lf.with_column(col(&last).alias(name))
        .select([all()
            .exclude_cols(
                (0..levels.len())
                    .flat_map(|i| {
                        [
                            format!("_{name}_m{i}"),
                            format!("_{name}_n{i}"),
                            format!("_{name}_s{i}"),
                        ]
                    })
                    .collect::<Vec<_>>(),
            )
            .as_expr()])
        .collect()
}

/// Adds `expected_cost`, `expected_los` (null for non-inpatient visits) and
/// `expected_admission` to visits that carry `level`.
pub fn with_expectations(visits: LazyFrame, k: f64) -> Result<DataFrame, FeatureError> {
    let t = std::time::Instant::now();
    let v = visits.collect()?;
    tracing::info!(
        "visits with line totals: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let v = v
        .lazy()
        .with_column(chapter_expr().alias("dx_chapter"))
        .collect()?;
    tracing::info!("chapters: {:.2} s", t.elapsed().as_secs_f64());
    let by_group = vec![
        vec!["level", "visit_group"],
        vec!["level", "visit_group", "dx_chapter", "age_band"],
        vec!["level", "visit_group", "dx3", "age_band"],
    ];
    let v = shrunk(v, col("total_cost"), &by_group, "expected_cost", k)?;
    tracing::info!("expected cost: {:.2} s", t.elapsed().as_secs_f64());
    let v = shrunk(
        v,
        col("los_days").cast(DataType::Float64),
        &by_group,
        "expected_los",
        k,
    )?
    .lazy()
    .with_column(
        when(col("inpatient"))
            .then(col("expected_los"))
            .otherwise(lit(NULL).cast(DataType::Float64))
            .alias("expected_los"),
    )
    .collect()?;
    let by_dx = vec![
        vec!["level"],
        vec!["level", "dx_chapter", "age_band"],
        vec!["level", "dx3", "age_band"],
    ];
    Ok(shrunk(
        v,
        col("inpatient").cast(DataType::Float64),
        &by_dx,
        "expected_admission",
        k,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two cells under one parent: (2·10 + 2·20)/4 = 15 and (1·40 + 2·20)/3.
    #[test]
    fn rare_cells_shrink_towards_their_parent() {
        let df = df!(
            "level" => ["A", "A", "A"],
            "cell" => ["x", "x", "y"],
            "v" => [5.0, 15.0, 40.0],
        )
        .unwrap();
        let out = shrunk(
            df,
            col("v"),
            &[vec!["level"], vec!["level", "cell"]],
            "e",
            2.0,
        )
        .unwrap();
        let e = out.column("e").unwrap().f64().unwrap().clone();
        assert!((e.get(0).unwrap() - 15.0).abs() < 1e-12);
        assert!((e.get(2).unwrap() - 80.0 / 3.0).abs() < 1e-12);
        assert_eq!(out.width(), 4, "helper columns are dropped");
    }
}
