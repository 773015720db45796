//! Per facility and period: the indicators, their case-mix ratios and
//! growth, computed chunk by chunk of facilities against global norms.

use polars::prelude::*;

use super::casemix;
use super::norms::{self, goods, visits_with_level, Norms};
use super::{
    agg, in_range, new_patient, overlaps, period_start, ratio, FeatureConfig, FeatureError, Period,
    NEW_PATIENT_LAPSE_DAYS,
};
use super::{GROWTH_INDICATORS, VISIT_GROUPS};
use crate::reference::drug_classes;
use crate::store::chunks::Chunk;
use crate::store::Store;

/// Line amounts of each visit by category and drug class.
fn line_totals(lines: LazyFrame, drug_classes: &DataFrame) -> LazyFrame {
    let cat = |c: &str| {
        col("amount")
            .filter(col("category").eq(lit(c)))
            .sum()
            .alias(format!("{c}_amount"))
    };
    let class = |c: &str| {
        col("amount")
            .filter(col("drug_class").eq(lit(c)))
            .sum()
            .alias(format!("{c}_amount"))
    };
    let count = |c: &str| {
        col("quantity")
            .filter(col("category").eq(lit(c)))
            .sum()
            .alias(format!("{c}_count"))
    };
    let keys = [col("visit_key")];
    // Drug classes touch few lines: they are summed apart (an inner join of
    // the drug lines with the small class table) and joined per visit, so
    // the ten million lines are grouped once, on their own columns.
    let classes = lines
        .clone()
        .filter(col("category").eq(lit("drug")))
        .select([
            col("visit_key"),
            col("item_code"),
            col("item_name"),
            col("amount"),
        ])
        .join(
            drug_classes.clone().lazy(),
            [col("item_code"), col("item_name")],
            [col("item_code"), col("item_name")],
            JoinArgs::new(JoinType::Inner),
        )
        .group_by(keys.clone())
        .agg([
            class("originator"),
            class("adjuvant"),
            class("vitamin_mineral"),
        ]);
    lines
        .select([
            col("visit_key"),
            col("category"),
            col("amount"),
            col("quantity"),
        ])
        .group_by(keys.clone())
        .agg([
            cat("bed"),
            cat("drug"),
            cat("supply"),
            cat("lab"),
            cat("imaging"),
            cat("procedure"),
            count("lab"),
            count("imaging"),
        ])
        .join(classes, keys.clone(), keys, JoinArgs::new(JoinType::Left))
}

/// Drug and supply price index per facility and period: what the facility
/// billed for drugs and supplies over what the same quantities cost at the
/// reference price of each item code in the year (median over facilities,
/// [`Norms::reference_prices`]). Unit-price inflation moves it; case mix
/// and volume do not.
fn price_index(lines: LazyFrame, cfg: &FeatureConfig, reference: &DataFrame) -> LazyFrame {
    goods(lines, cfg)
        .with_column(period_start(cfg))
        .group_by([
            col("facility_code"),
            col("period_start"),
            col("item_code"),
            col("year"),
        ])
        .agg([
            col("amount").sum().alias("amount"),
            col("quantity").sum().alias("quantity"),
        ])
        .join(
            reference.clone().lazy(),
            [col("item_code"), col("year")],
            [col("item_code"), col("year")],
            JoinArgs::new(JoinType::Left),
        )
        .group_by([col("facility_code"), col("period_start")])
        .agg([ratio(
            col("amount").sum(),
            (col("quantity") * col("median_price")).sum(),
        )
        .alias("drug_supply_price_index")])
}

/// Expected admission probability from which a diagnosis counts as one
/// usually admitted (at the facility's level and age band): the upcoding
/// check's care is read among these visits.
const SEVERE_ADMISSION: f64 = 0.3;
/// Below this expected admission probability a diagnosis is one usually
/// treated without admission: an admission beyond expectation is priced at
/// these stays.
const MILD_ADMISSION: f64 = 0.5;

/// A chunk's visits within the configured date range, with their line
/// totals, case-mix expectations and period.
fn enriched_visits(
    store: &Store,
    cfg: &FeatureConfig,
    norms: &Norms,
    chunk: &Chunk,
) -> Result<LazyFrame, FeatureError> {
    let keys = [col("visit_key")];
    let visits = chunk.filter(visits_with_level(store, cfg)?);
    // A claim overlapping an earlier claim of the same card at the same
    // facility (same or overlapping dates): duplicate and overlapping claims.
    // Visits admitted at the same minute are ordered by discharge, then by
    // key: "the earlier claim" must not depend on the order rows were read
    // in (it did, and a rerun could count another visit as the overlap).
    let by_card = [col("facility_code"), col("card_key")];
    let visits = visits
        .sort(
            [
                "facility_code",
                "card_key",
                "admit_time",
                "discharge_time",
                "visit_key",
            ],
            Default::default(),
        )
        .with_column(
            col("discharge_time")
                .shift(lit(1))
                .over(by_card)?
                .alias("_prev_discharge"),
        )
        .with_columns([
            overlaps(col("_prev_discharge")).alias("overlaps_previous"),
            // A card the facility had not billed in the 13 weeks before: a
            // patient new to it (or back after a long while). Out-of-province
            // patients are then counted as persons, not visits — a border
            // resident coming back every week is one patient, while phantom
            // patients are each new.
            new_patient(col("_prev_discharge")).alias("new_patient"),
        ]);
    // Only what the indicators need.
    let visits = visits.select([
        col("facility_code"),
        col("visit_key"),
        col("overlaps_previous"),
        col("new_patient"),
        col("patient_key"),
        col("total_cost"),
        col("fund_paid"),
        col("inpatient"),
        col("los_days"),
        col("visit_group"),
        col("dx3"),
        col("age_band"),
        col("out_of_province"),
        col("discharge_date"),
        col("level"),
    ]);
    let lines = chunk.filter(store.lines()?);
    let visits = visits.join(
        line_totals(lines, &norms.drug_classes),
        keys.clone(),
        keys,
        JoinArgs::new(JoinType::Left),
    );
    Ok(casemix::with_expectations(visits, &norms.casemix).with_column(period_start(cfg)))
}

/// Raw and case-mix indicators per facility and period, growth included.
///
/// The norms are learnt in one streaming pass; then the facilities are read
/// in chunks sized by `cfg.memory_mb`, each chunk's indicators computed from
/// its own claims and the norms. The result is the same whatever the
/// chunks (tested in `tests/bounded.rs`).
pub fn facility_indicators(store: &Store, cfg: &FeatureConfig) -> Result<LazyFrame, FeatureError> {
    let rules = drug_classes(cfg.reference_dir.as_deref())?;
    let norms = Norms::learn(store, cfg, &rules)?;
    let chunks = norms::plan(store, cfg)?;
    let t = std::time::Instant::now();
    let bar = indicatif::ProgressBar::new(chunks.len() as u64);
    if chunks.len() < 2 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_message("facility indicators");
    let mut tables = Vec::with_capacity(chunks.len());
    for chunk in &chunks {
        tables.push(
            chunk_indicators(store, cfg, &norms, chunk)?
                .collect()?
                .lazy(),
        );
        bar.inc(1);
    }
    bar.finish_and_clear();
    tracing::info!(
        "indicators of {} facilities in {} chunks: {:.2} s",
        chunks.iter().map(|c| c.facilities.len()).sum::<usize>(),
        chunks.len(),
        t.elapsed().as_secs_f64()
    );
    let table = concat(
        tables,
        UnionArgs {
            to_supertypes: true,
            ..Default::default()
        },
    )?;
    with_growth(table, cfg.period)
}

/// The indicators of one chunk's facilities, before growth.
fn chunk_indicators(
    store: &Store,
    cfg: &FeatureConfig,
    norms: &Norms,
    chunk: &Chunk,
) -> Result<LazyFrame, FeatureError> {
    let visits = enriched_visits(store, cfg, norms, chunk)?;
    let fill = |c: &str| col(c).fill_null(lit(0.0));
    let ip = || col("inpatient");
    let severe = || col("expected_admission").gt_eq(lit(SEVERE_ADMISSION));
    let op = || col("inpatient").not();
    let mut aggs = vec![
        agg::visits(),
        op().cast(DataType::Int64).sum().alias("outpatient_visits"),
        ip().cast(DataType::Int64).sum().alias("inpatient_episodes"),
        col("patient_key")
            .n_unique()
            .cast(DataType::Int64)
            .alias("patients"),
        col("total_cost").sum().alias("total_cost"),
        fill("fund_paid").sum().alias("fund_paid"),
        agg::avg_cost(false),
        agg::avg_cost(true),
        // Stays of diagnoses usually treated without admission: what an
        // admission beyond expectation costs (it is one of these, not an
        // average stay with its surgery and week in bed).
        col("total_cost")
            .filter(ip().and(col("expected_admission").lt(lit(MILD_ADMISSION))))
            .mean()
            .alias("avg_cost_inpatient_mild"),
        fill("fund_paid")
            .filter(op())
            .mean()
            .alias("avg_fund_outpatient"),
        fill("fund_paid")
            .filter(ip())
            .mean()
            .alias("avg_fund_inpatient"),
        agg::alos(),
        col("los_days")
            .filter(ip())
            .cast(DataType::Int64)
            .sum()
            .alias("bed_days"),
        fill("bed_amount").filter(ip()).sum().alias("_bed_ip"),
        col("total_cost").filter(ip()).sum().alias("_cost_ip"),
        fill("drug_amount").sum().alias("_drug"),
        fill("supply_amount").sum().alias("_supply"),
        fill("lab_amount").sum().alias("_lab"),
        fill("imaging_amount").sum().alias("_imaging"),
        fill("procedure_amount").sum().alias("_procedure"),
        fill("originator_amount").sum().alias("_originator"),
        fill("adjuvant_amount").sum().alias("_adjuvant"),
        fill("vitamin_mineral_amount").sum().alias("_vitamin"),
        fill("lab_count").sum().alias("_lab_n"),
        fill("imaging_count").sum().alias("_imaging_n"),
        agg::oop_visit_share(),
        col("overlaps_previous")
            .cast(DataType::Float64)
            .mean()
            .alias("overlapping_claim_share"),
        col("total_cost")
            .filter(col("out_of_province"))
            .sum()
            .alias("oop_cost"),
        col("out_of_province")
            .cast(DataType::Int64)
            .sum()
            .alias("oop_visits"),
        col("new_patient")
            .cast(DataType::Int64)
            .sum()
            .alias("new_patients"),
        (col("new_patient").and(col("out_of_province")))
            .cast(DataType::Int64)
            .sum()
            .alias("oop_new_patients"),
        col("expected_cost").sum().alias("expected_cost"),
        col("los_days")
            .filter(ip())
            .cast(DataType::Float64)
            .sum()
            .alias("_los_ip"),
        col("expected_los").filter(ip()).sum().alias("_exp_los"),
        col("expected_admission").sum().alias("expected_admissions"),
        // Visits coded with a diagnosis usually admitted (the upcoding
        // check's care test).
        col("expected_admission")
            .filter(severe())
            .sum()
            .alias("expected_admissions_severe"),
        ip().and(severe())
            .cast(DataType::Float64)
            .sum()
            .alias("inpatient_episodes_severe"),
        // Σ p²: the binomial variance of admissions given the codes,
        // Σ p(1 − p), and the spread of the coded rate (the upcoding check).
        (col("expected_admission") * col("expected_admission"))
            .sum()
            .alias("expected_admissions_sq"),
        (col("expected_admission") * col("expected_admission"))
            .filter(severe())
            .sum()
            .alias("expected_admissions_severe_sq"),
    ];
    for g in VISIT_GROUPS {
        let is = col("visit_group").eq(lit(g));
        aggs.push(
            is.clone()
                .cast(DataType::Int64)
                .sum()
                .alias(format!("vg_{g}_visits")),
        );
        aggs.push(
            col("total_cost")
                .filter(is)
                .mean()
                .alias(format!("vg_{g}_avg_cost")),
        );
    }
    let table = visits
        .clone()
        .group_by([col("facility_code"), col("period_start")])
        .agg(aggs)
        .with_columns([
            ratio(col("visits"), col("patients")).alias("visits_per_patient"),
            ratio(col("inpatient_episodes"), col("visits")).alias("admission_rate"),
            ratio(col("_bed_ip"), col("_cost_ip")).alias("bed_cost_share_inpatient"),
            ratio(col("_drug"), col("total_cost")).alias("drug_share"),
            ratio(col("_supply"), col("total_cost")).alias("supply_share"),
            ratio(col("_lab"), col("total_cost")).alias("lab_share"),
            ratio(col("_imaging"), col("total_cost")).alias("imaging_share"),
            ratio(col("_procedure"), col("total_cost")).alias("procedure_share"),
            ratio(col("_originator"), col("_drug")).alias("originator_drug_share"),
            ratio(col("_adjuvant"), col("_drug")).alias("adjuvant_drug_share"),
            ratio(col("_vitamin"), col("_drug")).alias("vitamin_mineral_drug_share"),
            ratio(col("_lab_n"), col("visits")).alias("tests_per_visit"),
            ratio(col("_imaging_n"), col("visits")).alias("imaging_per_visit"),
            ratio(col("oop_cost"), col("total_cost")).alias("oop_cost_share"),
            // Undefined while the facility's claims do not reach 13 weeks
            // back: every card looks new then.
            when(
                (col("period_start").cast(DataType::Int32)
                    - col("period_start")
                        .min()
                        .over([col("facility_code")])?
                        .cast(DataType::Int32))
                .lt(lit(NEW_PATIENT_LAPSE_DAYS)),
            )
            .then(lit(NULL).cast(DataType::Float64))
            .otherwise(ratio(col("oop_new_patients"), col("new_patients")))
            .alias("oop_new_patient_share"),
            ratio(col("total_cost"), col("expected_cost")).alias("oe_cost"),
            (col("total_cost") - col("expected_cost")).alias("excess_cost_vnd"),
            ratio(col("_los_ip"), col("_exp_los")).alias("oe_los"),
            ratio(col("inpatient_episodes"), col("expected_admissions")).alias("oe_admission"),
            lit(cfg.period.name()).alias("period"),
        ])
        .select([all()
            .exclude_cols([
                "_bed_ip",
                "_cost_ip",
                "_drug",
                "_supply",
                "_lab",
                "_imaging",
                "_procedure",
                "_originator",
                "_adjuvant",
                "_vitamin",
                "_lab_n",
                "_imaging_n",
                "_los_ip",
                "_exp_los",
            ])
            .as_expr()])
        .join(
            price_index(chunk.filter(store.lines()?), cfg, &norms.reference_prices),
            [col("facility_code"), col("period_start")],
            [col("facility_code"), col("period_start")],
            JoinArgs::new(JoinType::Left),
        )
        .join(
            extra_admission_cost(visits),
            [col("facility_code"), col("period_start")],
            [col("facility_code"), col("period_start")],
            JoinArgs::new(JoinType::Left),
        );
    Ok(table)
}

/// What an admission beyond expectation costs at a facility in a period
/// (`extra_admission_cost`, VND): per diagnosis (dx3), the admissions above
/// its expected count weigh the gap between its stays' and its outpatient
/// visits' mean cost that period. An unjustified admission is a patient who
/// would have been an outpatient of the same diagnosis: two or three days
/// in bed and more tests, but fewer days of drugs than a take-home
/// prescription — far less than an average stay, or even an average stay
/// of the rarely admitted diagnoses, whose longer stays weigh on it. Null
/// where no diagnosis had both more admissions than expected and
/// outpatients to compare with.
fn extra_admission_cost(visits: LazyFrame) -> LazyFrame {
    let ip = || col("inpatient");
    visits
        .group_by([col("facility_code"), col("period_start"), col("dx3")])
        .agg([
            ip().cast(DataType::Float64).sum().alias("_ip"),
            col("expected_admission").sum().alias("_e"),
            col("total_cost").filter(ip()).mean().alias("_c_ip"),
            col("total_cost").filter(ip().not()).mean().alias("_c_op"),
        ])
        .with_column((col("_ip") - col("_e")).alias("_w"))
        .filter(
            col("_w")
                .gt(lit(0.0))
                .and(col("_c_ip").is_not_null())
                .and(col("_c_op").is_not_null()),
        )
        .with_column(
            when((col("_c_ip") - col("_c_op")).gt(lit(0.0)))
                .then(col("_c_ip") - col("_c_op"))
                .otherwise(lit(0.0))
                .alias("_gap"),
        )
        .group_by([col("facility_code"), col("period_start")])
        .agg([((col("_w") * col("_gap")).sum() / col("_w").sum()).alias("extra_admission_cost")])
}

/// Growth against the same period one year earlier (`_yoy`, relative) and
/// against the mean of the facility's previous periods (`_trend`, relative).
fn with_growth(table: LazyFrame, period: Period) -> Result<LazyFrame, FeatureError> {
    // Join key of "the same period": for weeks the day number (last year's
    // week + 364 days = this week), else year·10000 + month·100 + day.
    let day_no = || {
        col("period_start")
            .cast(DataType::Int32)
            .cast(DataType::Int64)
    };
    let ymd = |years_ahead: i64| {
        (col("period_start").dt().year().cast(DataType::Int64) + lit(years_ahead)) * lit(10_000i64)
            + col("period_start").dt().month().cast(DataType::Int64) * lit(100i64)
            + col("period_start").dt().day().cast(DataType::Int64)
    };
    let (this_key, last_key) = match period {
        Period::Week => (day_no(), day_no() + lit(364i64)),
        _ => (ymd(0), ymd(1)),
    };
    let last_year = table.clone().select(
        [col("facility_code"), last_key.alias("_key")]
            .into_iter()
            .chain(
                GROWTH_INDICATORS
                    .iter()
                    .map(|c| col(*c).alias(format!("{c}_ly"))),
            )
            .collect::<Vec<_>>(),
    );
    let n = period.trend_len();
    let opts = RollingOptionsFixedWindow {
        window_size: n,
        min_periods: n,
        ..Default::default()
    };
    let mut growth = Vec::new();
    for c in GROWTH_INDICATORS {
        growth.push((ratio(col(*c), col(format!("{c}_ly"))) - lit(1.0)).alias(format!("{c}_yoy")));
        let trailing = col(*c)
            .cast(DataType::Float64)
            .shift(lit(1))
            .rolling_mean(opts.clone())
            .over([col("facility_code")])?;
        growth.push((ratio(col(*c), trailing) - lit(1.0)).alias(format!("{c}_trend")));
    }
    let mut drop: Vec<String> = GROWTH_INDICATORS
        .iter()
        .map(|c| format!("{c}_ly"))
        .collect();
    drop.push("_key".into());
    Ok(table
        .with_column(this_key.alias("_key"))
        .join(
            last_year,
            [col("facility_code"), col("_key")],
            [col("facility_code"), col("_key")],
            JoinArgs::new(JoinType::Left),
        )
        .sort(["facility_code", "period_start"], Default::default())
        .with_columns(growth)
        .select([all().exclude_cols(drop).as_expr()]))
}

/// The core indicators only (visits, outpatient/inpatient average cost,
/// ALOS, admission rate, bed-day cost share of inpatient cost,
/// out-of-province share of visits) per facility and period: the quick view,
/// and the like-for-like comparison with other tools in `benches/`.
pub fn core_indicators(store: &Store, cfg: &FeatureConfig) -> Result<LazyFrame, FeatureError> {
    let keys = [col("visit_key")];
    let bed = store
        .lines()?
        .filter(col("category").eq(lit("bed")))
        .group_by(keys.clone())
        .agg([col("amount").sum().alias("bed_amount")]);
    let mut v = store.visits()?;
    v = in_range(v, cfg);
    let ip = || col("inpatient");
    Ok(v.select([
        col("facility_code"),
        col("visit_key"),
        col("discharge_date"),
        col("total_cost"),
        col("inpatient"),
        col("los_days"),
        col("out_of_province"),
    ])
    .join(bed, keys.clone(), keys, JoinArgs::new(JoinType::Left))
    .with_column(period_start(cfg))
    .group_by([col("facility_code"), col("period_start")])
    .agg([
        agg::visits(),
        agg::avg_cost(false),
        agg::avg_cost(true),
        agg::alos(),
        ip().cast(DataType::Float64).mean().alias("admission_rate"),
        col("bed_amount")
            .fill_null(lit(0.0))
            .filter(ip())
            .sum()
            .alias("_bed"),
        col("total_cost").filter(ip()).sum().alias("_ip"),
        agg::oop_visit_share(),
    ])
    .with_column(ratio(col("_bed"), col("_ip")).alias("bed_cost_share_inpatient"))
    .select([all().exclude_cols(["_bed", "_ip"]).as_expr()])
    .sort(["facility_code", "period_start"], Default::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::GROWTH_INDICATORS;

    #[test]
    fn trend_compares_with_the_mean_of_previous_periods() {
        let df = df!(
            "facility_code" => ["A", "A", "A", "A"],
            "period_start" => [
                chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
                chrono::NaiveDate::from_ymd_opt(2024, 2, 1).unwrap(),
                chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
                chrono::NaiveDate::from_ymd_opt(2024, 4, 1).unwrap(),
            ],
            "visits" => [10i64, 20, 30, 60],
        )
        .unwrap();
        let mut lf = df.lazy();
        for c in GROWTH_INDICATORS.iter().filter(|c| **c != "visits") {
            lf = lf.with_column(lit(1.0).alias(*c));
        }
        let out = with_growth(lf, Period::Month).unwrap().collect().unwrap();
        let t = out.column("visits_trend").unwrap().f64().unwrap().clone();
        assert_eq!(t.get(2), None, "needs 3 earlier months");
        assert!((t.get(3).unwrap() - 2.0).abs() < 1e-12);
    }
}
