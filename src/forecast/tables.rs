//! The tables `bhyt forecast` writes, and the fan charts.

use super::*;

/// The tables `bhyt forecast` writes.
pub struct ForecastTables {
    /// code, month, actual, point, lo/hi 80, 90, 95, model.
    pub monthly: DataFrame,
    /// Growth from the last complete year to the forecast year, decomposed.
    pub growth: DataFrame,
    /// In-year projection against the budget.
    pub projection: DataFrame,
    /// Calendar-year totals (this year and next) with 80/90/95 % intervals
    /// of the yearly sum.
    pub yearly: DataFrame,
}

/// Runs the forecast from the end of the history to the end of next year.
pub fn run(
    h: &History,
    cfg: &ForecastConfig,
) -> Result<(Forecasts, ForecastTables), ForecastError> {
    for (i, c) in cfg.changes.iter().enumerate() {
        if c.kind != "price" && c.kind != "coverage" {
            return Err(ForecastError::Input(format!(
                "change {}: kind `{}` is neither price nor coverage",
                i + 1,
                c.kind
            )));
        }
        if !(c.factor.is_finite() && c.factor > 0.0) {
            return Err(ForecastError::Input(format!(
                "change {}: factor {} must be positive",
                i + 1,
                c.factor
            )));
        }
    }
    let upto = last_complete(h);
    if upto < 13 {
        return Err(ForecastError::Input(format!(
            "{upto} complete months of history: at least 13 are needed (36 for a seasonal forecast)"
        )));
    }
    let last_month = h.months[upto - 1];
    // To the end of next year.
    let horizon = (12 - last_month.month0() as usize - 1) + 12;
    let horizon = if horizon == 11 { 12 } else { horizon };
    let horizon = horizon.max(12);
    let f = forecast_from(h, upto, horizon, cfg);
    let monthly = monthly_table(h, &f, upto)?;
    let growth = growth_table(h, &f, upto, cfg)?;
    let projection = projection_table(h, &f, upto)?;
    let yearly = yearly_table(h, &f, upto)?;
    Ok((
        f,
        ForecastTables {
            monthly,
            growth,
            projection,
            yearly,
        },
    ))
}

fn monthly_table(h: &History, f: &Forecasts, upto: usize) -> Result<DataFrame, ForecastError> {
    let mut code = Vec::new();
    let mut month = Vec::new();
    let mut actual: Vec<Option<f64>> = Vec::new();
    let mut point: Vec<Option<f64>> = Vec::new();
    let mut b: [Vec<Option<f64>>; 6] = Default::default();
    let mut model = Vec::new();
    for (c, fc) in &f.by_code {
        let s = series_of(h, c);
        for (i, m) in h.months.iter().enumerate().take(upto) {
            code.push(c.clone());
            month.push(*m);
            actual.push(Some(s[i][0]));
            point.push(None);
            for v in b.iter_mut() {
                v.push(None);
            }
            model.push(String::new());
        }
        for k in 0..fc.point.len() {
            code.push(c.clone());
            let m = add_months(f.start, k as i32);
            month.push(m);
            // Actuals of a partial last month are not shown as complete.
            actual.push(None);
            point.push(Some(fc.point[k]));
            for (l, (lo, hi)) in fc.bounds.iter().enumerate() {
                b[2 * l].push(lo.get(k).copied());
                b[2 * l + 1].push(hi.get(k).copied());
            }
            model.push(fc.model.clone());
        }
    }
    let names = ["lo80", "hi80", "lo90", "hi90", "lo95", "hi95"];
    let mut cols = vec![
        Column::new("code".into(), code),
        Column::new("month".into(), month),
        Column::new("actual_vnd".into(), actual),
        Column::new("forecast_vnd".into(), point),
    ];
    for (n, v) in names.iter().zip(b) {
        cols.push(Column::new((*n).into(), v));
    }
    cols.push(Column::new("model".into(), model));
    Ok(DataFrame::new_infer_height(cols)?)
}

fn growth_table(
    h: &History,
    f: &Forecasts,
    upto: usize,
    cfg: &ForecastConfig,
) -> Result<DataFrame, ForecastError> {
    // Base year: the last complete calendar year of the history; forecast
    // year: the next one.
    let last_month = h.months[upto - 1];
    let base_year = if last_month.month() == 12 {
        last_month.year()
    } else {
        last_month.year() - 1
    };
    let fy = base_year + 1;
    let mut rows: Vec<(String, [f64; 9])> = Vec::new();
    for (c, fc) in &f.by_code {
        let s = series_of(h, c);
        let year_sum = |y: i32, k: usize| -> f64 {
            h.months
                .iter()
                .zip(&s)
                .take(upto)
                .filter(|(m, _)| m.year() == y)
                .map(|(_, v)| v[k])
                .sum()
        };
        // Forecast-year spending: actual months of that year + forecast months.
        let mut f1 = year_sum(fy, 0);
        let mut known = 0.0;
        for k in 0..fc.point.len() {
            if add_months(f.start, k as i32).year() == fy {
                f1 += fc.point[k];
                known += f.known[c][k];
            }
        }
        let a0 = year_sum(base_year, 0);
        let (v0, oop0, e0) = (
            year_sum(base_year, 1),
            year_sum(base_year, 2),
            year_sum(base_year, 3),
        );
        let ep = year_sum(base_year - 1, 3);
        if a0 <= 0.0 || v0 <= 0.0 || f1 <= 0.0 {
            continue;
        }
        // The yearly rates the history shows (year-on-year over the last
        // 12 months, the estimator of the forecast's growth), as log parts
        // of the forecast's growth; VND by the log-mean weight (LMDI), so
        // the parts add up exactly to the change.
        let rate = |k: usize| -> f64 {
            if upto < 24 {
                return 0.0;
            }
            let y: Vec<f64> = s[..upto].iter().map(|v| v[k]).collect();
            let plain = ForecastConfig {
                step_t: 0.0,
                ..cfg.clone()
            };
            growth::growth_of(&y, upto, &vec![0.0; upto], &plain).g
        };
        let vol = rate(1);
        // Case mix: growth of the expected cost (diagnosis × visit type at
        // pooled prices) beyond the visits'.
        let cmi = if e0 > 0.0 && ep > 0.0 {
            rate(3) - vol
        } else {
            0.0
        };
        let prov_change = |p: &str| h.province_price_change.get(p).copied().unwrap_or(0.0);
        let price = match c.strip_prefix("province:") {
            Some(p) => prov_change(p),
            None => h.price_change.get(c).copied().unwrap_or_else(|| {
                prov_change(h.province_of.get(c).map(String::as_str).unwrap_or("?"))
            }),
        };
        let total_log = (f1 / a0).ln();
        let known_log = if f1 - known > 0.0 {
            (f1 / (f1 - known)).ln()
        } else {
            0.0
        };
        let price_log = (1.0 + price).max(1e-6).ln();
        let other_log = total_log - vol - price_log - cmi - known_log;
        let w = if total_log.abs() > 1e-9 {
            (f1 - a0) / total_log
        } else {
            a0
        };
        let oop1 = if a0 > 0.0 { oop0 / a0 * f1 } else { 0.0 };
        rows.push((
            c.clone(),
            [
                a0,
                f1,
                w * vol,
                w * price_log,
                w * cmi,
                w * known_log,
                w * other_log,
                oop1 - oop0,
                f1 / a0 - 1.0,
            ],
        ));
    }
    let n = rows.len();
    let col_of = |k: usize| rows.iter().map(|r| r.1[k]).collect::<Vec<f64>>();
    let [code, name] = code_and_name(h, rows.iter().map(|r| r.0.as_str()));
    Ok(DataFrame::new_infer_height(vec![
        code,
        name,
        Column::new("base_year".into(), vec![base_year; n]),
        Column::new("forecast_year".into(), vec![fy; n]),
        Column::new("base_vnd".into(), col_of(0)),
        Column::new("forecast_vnd".into(), col_of(1)),
        Column::new("growth".into(), col_of(8)),
        Column::new("volume_vnd".into(), col_of(2)),
        Column::new("price_vnd".into(), col_of(3)),
        Column::new("case_mix_vnd".into(), col_of(4)),
        Column::new("known_changes_vnd".into(), col_of(5)),
        Column::new("other_vnd".into(), col_of(6)),
        Column::new("out_of_province_vnd".into(), col_of(7)),
    ])?)
}

/// The `code` and `name` columns of a table of codes.
fn code_and_name<'a>(h: &History, codes: impl Iterator<Item = &'a str>) -> [Column; 2] {
    let codes: Vec<&str> = codes.collect();
    [
        Column::new("code".into(), codes.clone()),
        Column::new(
            "name".into(),
            codes.iter().map(|c| h.display_name(c)).collect::<Vec<_>>(),
        ),
    ]
}

/// Calendar-year totals of every code: each year that has forecast months
/// (this year's complete months are actual), with the bounds of the yearly
/// sum and the change from the year before.
fn yearly_table(h: &History, f: &Forecasts, upto: usize) -> Result<DataFrame, ForecastError> {
    let mut code = Vec::new();
    let mut name = Vec::new();
    let mut year = Vec::new();
    let mut actual = Vec::new();
    let mut point = Vec::new();
    let mut b: [Vec<f64>; 6] = Default::default();
    let mut prev = Vec::new();
    let mut model = Vec::new();
    let years: Vec<i32> = {
        let mut y: Vec<i32> = (0..f.by_code.values().next().map_or(0, |x| x.point.len()))
            .map(|k| add_months(f.start, k as i32).year())
            .collect();
        y.dedup();
        y
    };
    for (c, fc) in &f.by_code {
        let s = series_of(h, c);
        let sum_actual = |y: i32| -> f64 {
            h.months
                .iter()
                .zip(&s)
                .take(upto)
                .filter(|(m, _)| m.year() == y)
                .map(|(_, v)| v[0])
                .sum()
        };
        for &y in &years {
            let ks: Vec<usize> = (0..fc.point.len())
                .filter(|k| add_months(f.start, *k as i32).year() == y)
                .collect();
            let a = sum_actual(y);
            let (p, bounds) = f.sum_with_bounds(c, &ks);
            code.push(c.clone());
            name.push(h.display_name(c));
            year.push(y);
            actual.push(a);
            point.push(a + p);
            for (l, (lo, hi)) in bounds.iter().enumerate() {
                b[2 * l].push(a + lo);
                b[2 * l + 1].push(a + hi);
            }
            // The year before: actual, or this table's forecast of it.
            let before = if y - 1 < f.start.year() {
                sum_actual(y - 1)
            } else {
                let kb: Vec<usize> = (0..fc.point.len())
                    .filter(|k| add_months(f.start, *k as i32).year() == y - 1)
                    .collect();
                sum_actual(y - 1) + f.sum_with_bounds(c, &kb).0
            };
            prev.push(before);
            model.push(fc.model.clone());
        }
    }
    let growth: Vec<Option<f64>> = point
        .iter()
        .zip(&prev)
        .map(|(p, b)| (*b > 0.0).then(|| p / b - 1.0))
        .collect();
    let mut cols = vec![
        Column::new("code".into(), code),
        Column::new("name".into(), name),
        Column::new("year".into(), year),
        Column::new("actual_to_date_vnd".into(), actual),
        Column::new("forecast_vnd".into(), point),
    ];
    for (n, v) in ["lo80", "hi80", "lo90", "hi90", "lo95", "hi95"]
        .iter()
        .zip(b)
    {
        cols.push(Column::new((*n).into(), v));
    }
    cols.push(Column::new("previous_year_vnd".into(), prev));
    cols.push(Column::new("growth".into(), growth));
    cols.push(Column::new("model".into(), model));
    Ok(DataFrame::new_infer_height(cols)?)
}

fn projection_table(h: &History, f: &Forecasts, upto: usize) -> Result<DataFrame, ForecastError> {
    // The year of the last data month (the current year).
    let year = h.months[h.months.len() - 1].year();
    let mut rows: Vec<(String, [Option<f64>; 8], Option<NaiveDate>)> = Vec::new();
    for (c, fc) in &f.by_code {
        let s = series_of(h, c);
        let spent: f64 = h
            .months
            .iter()
            .zip(&s)
            .filter(|(m, _)| m.year() == year)
            .map(|(_, v)| v[0])
            .sum();
        let complete: f64 = h
            .months
            .iter()
            .zip(&s)
            .take(upto)
            .filter(|(m, _)| m.year() == year)
            .map(|(_, v)| v[0])
            .sum();
        let mut path = Vec::new();
        let mut cum = complete;
        let mut ks = Vec::new();
        for k in 0..fc.point.len() {
            let m = add_months(f.start, k as i32);
            if m.year() != year {
                continue;
            }
            ks.push(k);
            cum += fc.point[k];
            path.push((m, cum));
        }
        // The rest of the year as one sum, with the yearly error model.
        let (rest, b) = f.sum_with_bounds(c, &ks);
        let proj = [complete + rest, complete + b[1].0, complete + b[1].1];
        let budget = if let Some(p) = c.strip_prefix("province:") {
            let b: f64 = h
                .budgets
                .iter()
                .filter(|((code, y), _)| {
                    *y == year && h.province_of.get(code).map(String::as_str) == Some(p)
                })
                .map(|(_, v)| *v)
                .sum();
            (b > 0.0).then_some(b)
        } else {
            h.budgets.get(&(c.clone(), year)).copied()
        };
        // Month the budget runs out: first month whose cumulative spending
        // (actual, then forecast) passes it.
        let run_out = budget.and_then(|b| {
            let mut cum = 0.0;
            for (m, v) in h.months.iter().zip(&s).take(upto) {
                if m.year() == year {
                    cum += v[0];
                    if cum > b {
                        return Some(*m);
                    }
                }
            }
            path.iter().find(|(_, v)| *v > b).map(|(m, _)| *m)
        });
        rows.push((
            c.clone(),
            [
                budget,
                Some(spent),
                Some(proj[0]),
                Some(proj[1]),
                Some(proj[2]),
                budget.map(|b| proj[0] - b),
                budget.map(|b| proj[1] - b),
                budget.map(|b| proj[2] - b),
            ],
            run_out,
        ));
    }
    let n = rows.len();
    let col_of = |k: usize| rows.iter().map(|r| r.1[k]).collect::<Vec<Option<f64>>>();
    let [code, name] = code_and_name(h, rows.iter().map(|r| r.0.as_str()));
    Ok(DataFrame::new_infer_height(vec![
        code,
        name,
        Column::new("year".into(), vec![year; n]),
        Column::new("as_of".into(), vec![h.last_day; n]),
        Column::new("budget_vnd".into(), col_of(0)),
        Column::new("spent_to_date_vnd".into(), col_of(1)),
        Column::new("projected_vnd".into(), col_of(2)),
        Column::new("projected_lo90".into(), col_of(3)),
        Column::new("projected_hi90".into(), col_of(4)),
        Column::new("overrun_vnd".into(), col_of(5)),
        Column::new("overrun_lo90".into(), col_of(6)),
        Column::new("overrun_hi90".into(), col_of(7)),
        Column::new(
            "runs_out_in".into(),
            rows.iter().map(|r| r.2).collect::<Vec<Option<NaiveDate>>>(),
        ),
    ])?)
}

/// Writes the tables and the fan charts under `dir`.
pub fn write(
    h: &History,
    f: &Forecasts,
    t: &mut ForecastTables,
    dir: &Path,
    lang: crate::detect::Lang,
) -> Result<usize, ForecastError> {
    crate::store::write_parquet_atomic(&mut t.monthly, &dir.join("forecast_monthly.parquet"))?;
    crate::store::write_parquet_atomic(&mut t.growth, &dir.join("forecast_growth.parquet"))?;
    crate::store::write_parquet_atomic(&mut t.projection, &dir.join("budget_projection.parquet"))?;
    crate::store::write_parquet_atomic(&mut t.yearly, &dir.join("forecast_yearly.parquet"))?;
    let charts = dir.join("charts");
    let mut n = 0;
    for (code, fc) in &f.by_code {
        let s = series_of(h, code);
        let upto = last_complete(h);
        let from = upto.saturating_sub(36);
        let hist: Vec<(NaiveDate, f64)> = (from..upto).map(|i| (h.months[i], s[i][0])).collect();
        let name = if is_province(code) {
            let p = h.display_name(code);
            match lang {
                crate::detect::Lang::Vi => format!("Toàn tỉnh {p}"),
                crate::detect::Lang::En => format!("Province total {p}"),
            }
        } else {
            h.registry
                .get(code)
                .map(|r| format!("{code} {}", r[0]))
                .unwrap_or_else(|| code.clone())
        };
        chart::fan_chart(
            &charts.join(format!("{}.svg", code.replace(':', "-"))),
            &name,
            &hist,
            f.start,
            fc,
            lang,
        )?;
        if is_province(code) {
            chart::fan_chart(
                &charts.join(format!("{}.png", code.replace(':', "-"))),
                &name,
                &hist,
                f.start,
                fc,
                lang,
            )?;
        }
        n += 1;
    }
    Ok(n)
}
