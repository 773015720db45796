//! Out-of-province spending seen from the province, and budget use.

use chrono::Datelike;
use polars::prelude::*;

use super::{ratio, FeatureConfig, FeatureError};
use crate::store::{Store, StoreError};

fn visits_in_range(store: &Store, cfg: &FeatureConfig) -> Result<LazyFrame, FeatureError> {
    Ok(super::in_range(store.visits()?, cfg))
}

/// What each province's card-holders cost at facilities of other provinces
/// (*chi đi ngoại tỉnh*), by destination and year, with the share of all the
/// province's card-holders' cost in the data.
pub fn province_outflow(store: &Store, cfg: &FeatureConfig) -> Result<LazyFrame, FeatureError> {
    let v = visits_in_range(store, cfg)?;
    let all = v
        .clone()
        .group_by([col("card_province"), col("year")])
        .agg([col("total_cost").sum().alias("card_holders_cost")]);
    Ok(v.filter(col("out_of_province"))
        .group_by([col("card_province"), col("facility_province"), col("year")])
        .agg([
            len().cast(DataType::Int64).alias("visits"),
            col("inpatient")
                .cast(DataType::Int64)
                .sum()
                .alias("inpatient_episodes"),
            col("total_cost").sum().alias("total_cost"),
            col("fund_paid")
                .fill_null(lit(0.0))
                .sum()
                .alias("fund_paid"),
        ])
        .join(
            all,
            [col("card_province"), col("year")],
            [col("card_province"), col("year")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(
            ratio(col("total_cost"), col("card_holders_cost")).alias("share_of_card_holders_cost"),
        )
        .rename(["facility_province"], ["destination_province"], true)
        .sort(
            ["card_province", "year", "destination_province"],
            Default::default(),
        ))
}

/// Budget use per facility and per province (rows `province:<code>`) and
/// year: spending to date (total cost at hospital prices, T_TONGCHI_BV)
/// against the yearly budget, and the projected year end.
///
/// The projection divides spending to date by the share of a year's
/// spending that usually falls before the same day of the year, learnt from
/// the facility's complete earlier years (seasonality-aware); without
/// history it extrapolates linearly by days.
pub fn budget_use(store: &Store, cfg: &FeatureConfig) -> Result<LazyFrame, FeatureError> {
    let v = visits_in_range(store, cfg)?.select([
        col("facility_code"),
        col("facility_province").alias("province"),
        col("year"),
        col("discharge_date")
            .dt()
            .ordinal_day()
            .cast(DataType::Int32)
            .alias("doy"),
        col("total_cost"),
    ]);
    let as_of = v
        .clone()
        .select([
            col("year").max().alias("y"),
            col("doy")
                .filter(col("year").eq(col("year").max()))
                .max()
                .alias("d"),
        ])
        .collect()?;
    let year = as_of.column("y")?.cast(&DataType::Int32)?.i32()?.get(0);
    let doy = as_of.column("d")?.cast(&DataType::Int32)?.i32()?.get(0);
    let (Some(year), Some(doy)) = (year, doy) else {
        return Err(FeatureError::Other(
            "no visits in the selected range".into(),
        ));
    };
    let year_len = |y: i32| {
        if chrono::NaiveDate::from_ymd_opt(y, 12, 31).map(|d| d.ordinal()) == Some(366) {
            366
        } else {
            365
        }
    };
    let per_year = |key: Expr| {
        v.clone().group_by([key.clone(), col("year")]).agg([
            col("total_cost").sum().alias("year_total"),
            col("total_cost")
                .filter(col("doy").lt_eq(lit(doy)))
                .sum()
                .alias("upto"),
            col("doy").max().alias("last_doy"),
        ])
    };
    let build = |key: &str, rows: LazyFrame, budgets: LazyFrame| -> LazyFrame {
        // Complete earlier years teach the seasonal share.
        let history = rows
            .clone()
            .filter(
                col("year")
                    .lt(lit(year))
                    .and(col("last_doy").gt_eq(lit(360))),
            )
            .group_by([col(key)])
            .agg([ratio(col("upto").sum(), col("year_total").sum()).alias("seasonal_share")]);
        let linear = doy as f64 / year_len(year) as f64;
        rows.join(
            history,
            [col(key)],
            [col(key)],
            JoinArgs::new(JoinType::Left),
        )
        .with_columns([
            when(col("year").eq(lit(year)))
                .then(col("upto"))
                .otherwise(col("year_total"))
                .alias("spent_to_date"),
            when(col("year").lt(lit(year)))
                .then(lit(1.0))
                .when(col("seasonal_share").gt(lit(0.0)))
                .then(col("seasonal_share"))
                .otherwise(lit(linear))
                .alias("share_used"),
            when(col("year").lt(lit(year)))
                .then(lit("actual"))
                .when(col("seasonal_share").gt(lit(0.0)))
                .then(lit("seasonal"))
                .otherwise(lit("linear"))
                .alias("projection_basis"),
        ])
        .with_column((col("spent_to_date") / col("share_used")).alias("projected_year_end"))
        .join(
            budgets,
            [col(key), col("year")],
            [col(key), col("year")],
            JoinArgs::new(JoinType::Left),
        )
        .with_columns([
            ratio(col("spent_to_date"), col("budget_vnd")).alias("use_rate"),
            ratio(col("projected_year_end"), col("budget_vnd")).alias("projected_use_rate"),
            (col("projected_year_end") - col("budget_vnd")).alias("projected_overrun_vnd"),
            lit(chrono::NaiveDate::from_yo_opt(year, doy as u32).expect("valid day"))
                .alias("as_of"),
        ])
    };
    let budgets = match store.budgets() {
        Ok(b) => b,
        Err(StoreError::Empty(..)) => DataFrame::new_infer_height(vec![
            Column::new("facility_code".into(), Vec::<String>::new()),
            Column::new("year".into(), Vec::<i32>::new()),
            Column::new("budget_vnd".into(), Vec::<f64>::new()),
        ])?
        .lazy(),
        Err(e) => return Err(e.into()),
    };
    let fac_prov = v
        .clone()
        .group_by([col("facility_code")])
        .agg([col("province").first()]);
    let facilities = build(
        "facility_code",
        per_year(col("facility_code")),
        budgets.clone(),
    )
    .join(
        fac_prov.clone(),
        [col("facility_code")],
        [col("facility_code")],
        JoinArgs::new(JoinType::Left),
    );
    let prov_budgets = budgets
        .join(
            fac_prov,
            [col("facility_code")],
            [col("facility_code")],
            JoinArgs::new(JoinType::Inner),
        )
        .group_by([col("province"), col("year")])
        .agg([col("budget_vnd").sum()]);
    let provinces = build("province", per_year(col("province")), prov_budgets)
        .with_column((lit("province:") + col("province")).alias("facility_code"));
    let cols = [
        col("facility_code"),
        col("province"),
        col("year"),
        col("as_of"),
        col("budget_vnd"),
        col("spent_to_date"),
        col("use_rate"),
        col("share_used").alias("seasonal_share"),
        col("projection_basis"),
        col("projected_year_end"),
        col("projected_use_rate"),
        col("projected_overrun_vnd"),
    ];
    Ok(concat(
        [facilities.select(cols.clone()), provinces.select(cols)],
        UnionArgs::default(),
    )?
    .sort(["facility_code", "year"], Default::default()))
}
