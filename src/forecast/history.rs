//! The monthly history the forecasts start from: spending, visits,
//! out-of-province spending and a case-mix index per facility and month,
//! from the claims store (or from the generator, for the benchmark).

use super::*;
use crate::store::chunks::streamed;

/// Monthly panel from the store: spending, visits, out-of-province spending
/// and a case-mix index per facility and month, plus the facility registry.
pub struct History {
    pub months: Vec<NaiveDate>,
    /// facility → (spending, visits, out-of-province spending, expected cost) per month.
    pub series: BTreeMap<String, Vec<[f64; 4]>>,
    pub registry: HashMap<String, [String; 4]>,
    /// facility → service group → share of spending in the last 12 months.
    pub group_share: HashMap<String, HashMap<String, f64>>,
    /// facility → price change of the last 12 months against the 12 before (Paasche).
    pub price_change: HashMap<String, f64>,
    /// province → the same over its facilities.
    pub province_price_change: HashMap<String, f64>,
    /// facility → current province (of the facility, after the 2025 mergers).
    pub province_of: BTreeMap<String, String>,
    /// Last discharge date in the data.
    pub last_day: NaiveDate,
    pub budgets: HashMap<(String, i32), f64>,
    /// Current province code → its name (`datasets/reference/provinces.csv`).
    pub province_names: BTreeMap<String, String>,
    /// Facility → the code it claimed under before (registry
    /// `previous_code`); the two series are joined under the new code.
    pub previous: BTreeMap<String, String>,
}

impl History {
    /// Name of a code for people: a facility's registry name, a province's
    /// name from the reference table.
    pub fn display_name(&self, code: &str) -> String {
        match code.strip_prefix("province:") {
            Some(p) => self
                .province_names
                .get(p)
                .cloned()
                .unwrap_or_else(|| p.to_string()),
            None => self
                .registry
                .get(code)
                .map(|r| r[0].clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| code.to_string()),
        }
    }

    /// History from the generator's monthly totals (the forecasting
    /// benchmark: years of claims without writing and ingesting them).
    /// Spending and visits only: no lines, budgets or case mix.
    pub fn from_generated(
        cfg: &crate::generate::GenConfig,
        summary: &crate::generate::GenSummary,
    ) -> Result<History, ForecastError> {
        let reference = crate::reference::Reference::builtin();
        let rows = crate::generate::registry_rows(cfg);
        let mut registry = HashMap::new();
        let mut province_of = BTreeMap::new();
        let mut previous = BTreeMap::new();
        for r in &rows {
            let current = reference
                .province(&r[2])
                .map(|p| p.current_code.clone())
                .unwrap_or_else(|| r[2].clone());
            province_of.insert(r[0].clone(), current);
            registry.insert(
                r[0].clone(),
                [r[1].clone(), r[3].clone(), r[4].clone(), r[6].clone()],
            );
            if !r[7].is_empty() {
                previous.insert(r[0].clone(), r[7].clone());
            }
        }
        let first = month_of(cfg.start);
        let last_day = cfg.start + chrono::Duration::days(cfg.days as i64 - 1);
        let mut months = vec![first];
        while *months.last().expect("one month") < month_of(last_day) {
            months.push(add_months(*months.last().expect("one month"), 1));
        }
        let idx: HashMap<NaiveDate, usize> =
            months.iter().enumerate().map(|(i, d)| (*d, i)).collect();
        let mut series: BTreeMap<String, Vec<[f64; 4]>> = BTreeMap::new();
        for ((code, month), (cost, visits)) in &summary.monthly {
            let s = series
                .entry(code.clone())
                .or_insert_with(|| vec![[0.0; 4]; months.len()]);
            if let Some(&k) = idx.get(month) {
                let v = *visits as f64;
                s[k] = [*cost, v, 0.0, v];
            }
        }
        let mut h = History {
            months,
            series,
            registry,
            group_share: HashMap::new(),
            price_change: HashMap::new(),
            province_price_change: HashMap::new(),
            province_of,
            last_day,
            budgets: HashMap::new(),
            province_names: province_names(&reference),
            previous,
        };
        h.province_of.retain(|c, _| h.series.contains_key(c));
        link_previous(&mut h);
        Ok(h)
    }
}

fn province_names(reference: &crate::reference::Reference) -> BTreeMap<String, String> {
    reference
        .provinces()
        .map(|p| (p.current_code.clone(), p.current_name.clone()))
        .collect()
}

/// Joins each facility's series with the ones it claimed under before
/// (chains followed to the newest code), so a re-coded facility keeps its
/// history under its current code.
fn link_previous(h: &mut History) {
    let successor: HashMap<&String, &String> =
        h.previous.iter().map(|(new, old)| (old, new)).collect();
    let newest = |code: &String| {
        let mut c = code;
        for _ in 0..64 {
            match successor.get(c) {
                Some(n) if *n != c => c = n,
                _ => break,
            }
        }
        c.clone()
    };
    let moves: Vec<(String, String)> = h
        .previous
        .values()
        .map(|old| (old.clone(), newest(old)))
        .filter(|(old, new)| old != new && h.series.contains_key(new))
        .collect();
    for (old, new) in moves {
        let Some(prev) = h.series.remove(&old) else {
            continue;
        };
        if let Some(s) = h.series.get_mut(&new) {
            for (a, b) in s.iter_mut().zip(prev) {
                for k in 0..4 {
                    a[k] += b[k];
                }
            }
        }
        h.province_of.remove(&old);
    }
}

/// Reads the history up to `as_of` (inclusive; default: all).
pub fn history(store: &Store, as_of: Option<NaiveDate>) -> Result<History, ForecastError> {
    let mut visits = store.visits()?;
    if let Some(d) = as_of {
        visits = visits.filter(col("discharge_date").lt_eq(lit(d)));
    }
    let visits = visits.select([
        col("facility_code"),
        col("facility_province"),
        col("discharge_date"),
        col("total_cost"),
        col("out_of_province"),
        col("visit_group"),
        col("dx3"),
    ]);
    // Case mix: each visit's expected cost is the mean cost of its
    // diagnosis category and visit type over all the data (years pooled,
    // so prices do not move it). Two streaming passes: the cells' means (a
    // small table), then the facility-months; the visits are never held.
    let cell = [col("dx3"), col("visit_group")];
    let means = streamed(
        visits
            .clone()
            .group_by(cell.clone())
            .agg([col("total_cost").mean().alias("expected")]),
    )?;
    // An unknown diagnosis is a cell of its own (as a window over the
    // visits would have it).
    let mut on_cell = JoinArgs::new(JoinType::Left);
    on_cell.nulls_equal = true;
    let v = streamed(
        visits
            .join(means.lazy(), cell.clone(), cell, on_cell)
            .with_column(
                col("discharge_date")
                    .dt()
                    .truncate(lit("1mo"))
                    .alias("month"),
            )
            .group_by([col("facility_code"), col("month")])
            .agg([
                col("facility_province").first().alias("province"),
                col("total_cost").sum().alias("cost"),
                len().cast(DataType::Float64).alias("visits"),
                col("total_cost")
                    .filter(col("out_of_province"))
                    .sum()
                    .alias("oop"),
                col("expected").sum().alias("expected"),
            ]),
    )?;
    if v.height() == 0 {
        return Err(ForecastError::Input("the store holds no visits".into()));
    }
    let f = str_col(&v, "facility_code")?;
    let prov = str_col(&v, "province")?;
    let province_of: BTreeMap<String, String> =
        f.iter().cloned().zip(prov.iter().cloned()).collect();
    let m = date_col(&v, "month")?;
    let cost = f64_col(&v, "cost")?;
    let vis = f64_col(&v, "visits")?;
    let oop = f64_col(&v, "oop")?;
    let exp = f64_col(&v, "expected")?;
    let last_day = streamed(store.visits()?.select([col("discharge_date").max()]))?;
    let mut last_day = date_col(&last_day, "discharge_date")?[0];
    if let Some(d) = as_of {
        last_day = last_day.min(d);
    }
    let first = *m.iter().min().unwrap();
    let last = month_of(last_day);
    let mut months = vec![first];
    while *months.last().unwrap() < last {
        months.push(add_months(*months.last().unwrap(), 1));
    }
    let idx: HashMap<NaiveDate, usize> = months.iter().enumerate().map(|(i, d)| (*d, i)).collect();
    let mut series: BTreeMap<String, Vec<[f64; 4]>> = BTreeMap::new();
    for i in 0..v.height() {
        let s = series
            .entry(f[i].clone())
            .or_insert_with(|| vec![[0.0; 4]; months.len()]);
        if let Some(&k) = idx.get(&m[i]) {
            s[k] = [cost[i], vis[i], oop[i], exp[i]];
        }
    }
    let mut registry = HashMap::new();
    let mut previous = BTreeMap::new();
    if store.facilities_path().exists() {
        let r = store.facilities()?.collect()?;
        let code = str_col(&r, "facility_code")?;
        let get = |c: &str| str_col(&r, c).unwrap_or_else(|_| vec![String::new(); r.height()]);
        let (name, level, grade, kind) = (get("name"), get("level"), get("grade"), get("kind"));
        // Stores written before the column existed have none.
        let prev = get("previous_code");
        for i in 0..r.height() {
            if !prev[i].is_empty() {
                previous.insert(code[i].clone(), prev[i].clone());
            }
            registry.insert(
                code[i].clone(),
                [
                    name[i].clone(),
                    level[i].clone(),
                    grade[i].clone(),
                    kind[i].clone(),
                ],
            );
        }
    }
    let mut budgets = HashMap::new();
    if store.budgets_path().exists() {
        let b = store.budgets()?.collect()?;
        let code = str_col(&b, "facility_code")?;
        let year = f64_col(&b, "year")?;
        let amount = f64_col(&b, "budget_vnd")?;
        for i in 0..b.height() {
            budgets.insert((code[i].clone(), year[i] as i32), amount[i]);
        }
    }
    let (group_share, amounts) = line_statistics(store, last_day)?;
    let mut price_change = HashMap::new();
    let mut by_province: HashMap<String, (f64, f64)> = HashMap::new();
    for (fac, (a, b)) in &amounts {
        if *b > 0.0 {
            price_change.insert(fac.clone(), a / b - 1.0);
        }
        if let Some(p) = province_of.get(fac) {
            let e = by_province.entry(p.clone()).or_default();
            e.0 += a;
            e.1 += b;
        }
    }
    let province_price_change = by_province
        .into_iter()
        .filter(|(_, (_, b))| *b > 0.0)
        .map(|(p, (a, b))| (p, a / b - 1.0))
        .collect();
    let mut h = History {
        months,
        series,
        registry,
        group_share,
        price_change,
        province_price_change,
        province_of,
        last_day,
        budgets,
        province_names: province_names(&crate::reference::Reference::builtin()),
        previous,
    };
    link_previous(&mut h);
    Ok(h)
}

/// Service-group shares of the last 12 months, and per facility the two
/// sums of the price change of the last 12 months against the 12 before: Σ amount / Σ quantity × the
/// earlier period's province median unit price of the same item (Paasche).
#[allow(clippy::type_complexity)]
fn line_statistics(
    store: &Store,
    last_day: NaiveDate,
) -> Result<
    (
        HashMap<String, HashMap<String, f64>>,
        HashMap<String, (f64, f64)>,
    ),
    ForecastError,
> {
    let recent = last_day - chrono::Duration::days(365);
    let before = last_day - chrono::Duration::days(730);
    // Three streaming passes over the lines of the two years; only small
    // tables are held (per facility and category, per item and unit price,
    // per facility).
    let lines = store
        .lines()?
        .filter(
            col("discharge_date")
                .gt(lit(before))
                .and(col("discharge_date").lt_eq(lit(last_day))),
        )
        .select([
            col("facility_code"),
            col("item_code"),
            col("category"),
            col("quantity"),
            col("amount"),
            col("discharge_date").gt(lit(recent)).alias("recent"),
        ]);
    let shares = streamed(
        lines
            .clone()
            .filter(col("recent"))
            .group_by([col("facility_code"), col("category")])
            .agg([col("amount").sum().alias("a")]),
    )?
    .lazy()
    .with_column((col("a") / col("a").sum().over([col("facility_code")])?).alias("share"))
    .collect()?;
    let mut group_share: HashMap<String, HashMap<String, f64>> = HashMap::new();
    {
        let f = str_col(&shares, "facility_code")?;
        let c = str_col(&shares, "category")?;
        let s = f64_col(&shares, "share")?;
        for i in 0..shares.height() {
            group_share
                .entry(f[i].clone())
                .or_default()
                .insert(c[i].clone(), s[i]);
        }
    }
    // The earlier year's median unit price of each item, from the counts
    // of each (item, unit price): prices repeat, so the table is small and
    // the median exact.
    let prices = streamed(
        lines
            .clone()
            .filter(col("recent").not().and(col("quantity").gt(lit(0.0))))
            .group_by([
                col("item_code"),
                (col("amount") / col("quantity")).alias("price"),
            ])
            .agg([len().cast(DataType::UInt64).alias("n")]),
    )?;
    let base = median_by_item(&prices)?;
    let per = streamed(
        lines
            .filter(col("recent").and(col("quantity").gt(lit(0.0))))
            .join(
                base.lazy(),
                [col("item_code")],
                [col("item_code")],
                JoinArgs::new(JoinType::Inner),
            )
            .with_column((col("quantity") * col("p0")).alias("at_p0"))
            .group_by([col("facility_code")])
            .agg([
                col("amount").sum().alias("a"),
                col("at_p0").sum().alias("b"),
            ]),
    )?;
    let mut amounts = HashMap::new();
    {
        let f = str_col(&per, "facility_code")?;
        let a = f64_col(&per, "a")?;
        let b = f64_col(&per, "b")?;
        for i in 0..per.height() {
            amounts.insert(f[i].clone(), (a[i], b[i]));
        }
    }
    Ok((group_share, amounts))
}

/// Median of `price` per `item_code` from a table of (item, price, count
/// of lines): the middle line's price, or the mean of the two middle ones
/// (as Polars' median of the lines themselves). NaN prices are left out.
fn median_by_item(prices: &DataFrame) -> Result<DataFrame, ForecastError> {
    let sorted = prices
        .clone()
        .lazy()
        .filter(
            col("price")
                .is_not_nan()
                .and(col("item_code").is_not_null()),
        )
        .sort(["item_code", "price"], Default::default())
        .collect()?;
    let item = sorted.column("item_code")?.str()?;
    let price = sorted.column("price")?.f64()?;
    let n = sorted.column("n")?.u64()?;
    let (mut codes, mut medians) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < sorted.height() {
        let code = item.get(i).unwrap_or_default();
        let mut j = i;
        let mut total = 0u64;
        while j < sorted.height() && item.get(j).unwrap_or_default() == code {
            total += n.get(j).unwrap_or(0);
            j += 1;
        }
        // The prices at ranks (total − 1) / 2 and total / 2 (0-based).
        let at = |rank: u64| {
            let mut seen = 0u64;
            for k in i..j {
                seen += n.get(k).unwrap_or(0);
                if seen > rank {
                    return price.get(k);
                }
            }
            None
        };
        if let (Some(lo), Some(hi)) = (at((total - 1) / 2), at(total / 2)) {
            codes.push(code.to_string());
            medians.push((lo + hi) / 2.0);
        }
        i = j;
    }
    Ok(DataFrame::new_infer_height(vec![
        Column::new("item_code".into(), codes),
        Column::new("p0".into(), medians),
    ])?)
}

#[cfg(test)]
mod median_tests {
    use super::*;

    /// Lines 1, 2, 2, 9 of item A (median 2) and 3, 5 of item B (median 4),
    /// given as counts per price.
    #[test]
    fn the_median_from_counts_is_the_median_of_the_lines() {
        let df = df!(
            "item_code" => ["A", "B", "A", "A", "B"],
            "price" => [2.0, 5.0, 1.0, 9.0, 3.0],
            "n" => [2u64, 1, 1, 1, 1],
        )
        .unwrap();
        let m = median_by_item(&df).unwrap();
        let p = m.column("p0").unwrap().f64().unwrap();
        assert_eq!(p.get(0), Some(2.0));
        assert_eq!(p.get(1), Some(4.0));
    }
}
