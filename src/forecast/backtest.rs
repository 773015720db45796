//! Rolling-origin backtest of the engine beside the naive baselines: from
//! each origin (every `backtest_step` months with at least
//! `backtest_min_history` months before it and 12 after), forecast 12
//! months with the data up to the origin only, and compare the 12-month
//! totals with what happened.

use super::baselines::Baseline;
use super::*;

/// One method's accuracy over the backtest.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MethodScore {
    pub method: String,
    /// Mean absolute error of the province 12-month totals (over provinces
    /// and origins), as a share of the actual.
    pub province_error: f64,
    /// Median over facilities of their mean absolute 12-month-total error.
    pub facility_error: f64,
}

/// Coverage of 80/90/95 % intervals, with the number of cases checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Coverage {
    pub rate: [f64; 3],
    pub n: usize,
}

impl Coverage {
    fn from(hits: [usize; 3], n: usize) -> Self {
        Coverage {
            rate: hits.map(|h| h as f64 / n.max(1) as f64),
            n,
        }
    }
}

pub struct Backtest {
    /// code, origin, method, forecast and actual 12-month totals, error.
    pub per_origin: DataFrame,
    /// The engine first, then each baseline.
    pub methods: Vec<MethodScore>,
    /// The engine's (province code, origin, error of the 12-month total).
    pub province_errors: Vec<(String, NaiveDate, f64)>,
    /// Engine intervals: facilities' 12-month totals, provinces' 12-month
    /// totals, facility-months, province-months.
    pub coverage_year: Coverage,
    pub coverage_year_province: Coverage,
    pub coverage_month: Coverage,
    pub coverage_month_province: Coverage,
    pub origins: Vec<NaiveDate>,
}

impl Backtest {
    /// The engine's score.
    pub fn engine(&self) -> &MethodScore {
        &self.methods[0]
    }

    /// The best baseline on province error and on facility error (each its own).
    pub fn best_baselines(&self) -> (&MethodScore, &MethodScore) {
        let b = &self.methods[1..];
        let p = b
            .iter()
            .min_by(|x, y| x.province_error.total_cmp(&y.province_error))
            .expect("baselines");
        let f = b
            .iter()
            .min_by(|x, y| x.facility_error.total_cmp(&y.facility_error))
            .expect("baselines");
        (p, f)
    }
}

/// The origins of a backtest over the history: month indices.
pub fn origins(h: &History, cfg: &ForecastConfig) -> Vec<usize> {
    let upto_all = last_complete(h);
    let mut out = Vec::new();
    let mut o = upto_all.saturating_sub(12);
    while o >= cfg.backtest_min_history.max(13) && o + 12 <= upto_all {
        out.push(o);
        if o < cfg.backtest_step.max(1) {
            break;
        }
        o -= cfg.backtest_step.max(1);
    }
    out.reverse();
    out
}

pub fn backtest(h: &History, cfg: &ForecastConfig) -> Result<Backtest, ForecastError> {
    use rayon::prelude::*;
    let os = origins(h, cfg);
    if os.is_empty() {
        return Err(ForecastError::Input(format!(
            "{} complete months: a backtest needs {} months of history and 12 to check",
            last_complete(h),
            cfg.backtest_min_history
        )));
    }
    let groups = provinces(h);
    let mut codes: Vec<String> = h.series.keys().cloned().collect();
    codes.extend(groups.keys().map(|p| province_key(p)));
    let series: HashMap<&String, Vec<f64>> = codes
        .iter()
        .map(|c| (c, series_of(h, c).iter().map(|v| v[0]).collect()))
        .collect();
    let names: Vec<&str> = std::iter::once("engine")
        .chain(Baseline::ALL.iter().map(|b| b.name()))
        .collect();
    // Per origin: (code, origin, method index, forecast total, actual total,
    // the engine's 90 % interval of the total), and interval hits per level
    // and their counts for facility years, province years, facility months,
    // province months.
    type Row = (String, usize, usize, f64, f64, Option<(f64, f64)>);
    type Hits = ([[usize; 3]; 4], [usize; 4]);
    let results: Vec<(Vec<Row>, Hits)> = os
        .par_iter()
        .map(|&o| {
            let f = forecast_from(h, o, 12, cfg);
            let mut rows = Vec::new();
            let mut hits = [[0usize; 3]; 4];
            let mut n = [0usize; 4];
            let all: Vec<usize> = (0..12).collect();
            for code in &codes {
                let y = &series[code];
                let Some(first) = y[..o].iter().position(|v| *v > 0.0) else {
                    continue;
                };
                let actual = &y[o..o + 12];
                let ta: f64 = actual.iter().sum();
                let prov = is_province(code);
                if let Some(fc) = f.by_code.get(code) {
                    let tf: f64 = fc.point.iter().sum();
                    let (_, b) = f.sum_with_bounds(code, &all);
                    rows.push((code.clone(), o, 0, tf, ta, Some(b[1])));
                    if ta > 0.0 && tf > 0.0 {
                        let (iy, im) = if prov { (1, 3) } else { (0, 2) };
                        for l in 0..3 {
                            hits[iy][l] += (ta >= b[l].0 && ta <= b[l].1) as usize;
                        }
                        n[iy] += 1;
                        for k in 0..12 {
                            for (l, (lo, hi)) in fc.bounds.iter().enumerate() {
                                hits[im][l] += (actual[k] >= lo[k] && actual[k] <= hi[k]) as usize;
                            }
                            n[im] += 1;
                        }
                    }
                }
                for (bi, b) in Baseline::ALL.iter().enumerate() {
                    let p = b.forecast(&y[first..o], 12);
                    rows.push((code.clone(), o, bi + 1, p.iter().sum(), ta, None));
                }
            }
            (rows, (hits, n))
        })
        .collect();
    let mut hits = [[0usize; 3]; 4];
    let mut n = [0usize; 4];
    let mut rows: Vec<Row> = Vec::new();
    for (r, (hh, nn)) in results {
        rows.extend(r);
        for i in 0..4 {
            n[i] += nn[i];
            for l in 0..3 {
                hits[i][l] += hh[i][l];
            }
        }
    }
    let err = |tf: f64, ta: f64| if ta > 0.0 { (tf - ta) / ta } else { f64::NAN };
    let mut methods = Vec::new();
    for (mi, name) in names.iter().enumerate() {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.2 == mi).collect();
        let prov: Vec<f64> = mine
            .iter()
            .filter(|r| is_province(&r.0) && r.4 > 0.0)
            .map(|r| err(r.3, r.4).abs())
            .collect();
        let mut per_fac: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for r in mine.iter().filter(|r| !is_province(&r.0) && r.4 > 0.0) {
            per_fac.entry(&r.0).or_default().push(err(r.3, r.4).abs());
        }
        let mut fac: Vec<f64> = per_fac
            .values()
            .map(|v| v.iter().sum::<f64>() / v.len() as f64)
            .collect();
        methods.push(MethodScore {
            method: name.to_string(),
            province_error: prov.iter().sum::<f64>() / prov.len().max(1) as f64,
            facility_error: if fac.is_empty() {
                f64::NAN
            } else {
                crate::detect::median(&mut fac)
            },
        });
    }
    let province_errors = rows
        .iter()
        .filter(|r| r.2 == 0 && is_province(&r.0) && r.4 > 0.0)
        .map(|r| (r.0.clone(), h.months[r.1], err(r.3, r.4)))
        .collect();
    let per_origin = DataFrame::new_infer_height(vec![
        Column::new(
            "code".into(),
            rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "origin".into(),
            rows.iter().map(|r| h.months[r.1]).collect::<Vec<_>>(),
        ),
        Column::new(
            "method".into(),
            rows.iter().map(|r| names[r.2]).collect::<Vec<_>>(),
        ),
        Column::new(
            "forecast_12m_vnd".into(),
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        ),
        Column::new(
            "actual_12m_vnd".into(),
            rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        ),
        Column::new(
            "lo90_12m_vnd".into(),
            rows.iter().map(|r| r.5.map(|b| b.0)).collect::<Vec<_>>(),
        ),
        Column::new(
            "hi90_12m_vnd".into(),
            rows.iter().map(|r| r.5.map(|b| b.1)).collect::<Vec<_>>(),
        ),
        Column::new(
            "error".into(),
            rows.iter()
                .map(|r| (r.4 > 0.0).then(|| err(r.3, r.4)))
                .collect::<Vec<_>>(),
        ),
    ])?;
    Ok(Backtest {
        per_origin,
        methods,
        province_errors,
        coverage_year: Coverage::from(hits[0], n[0]),
        coverage_year_province: Coverage::from(hits[1], n[1]),
        coverage_month: Coverage::from(hits[2], n[2]),
        coverage_month_province: Coverage::from(hits[3], n[3]),
        origins: os.iter().map(|o| h.months[*o]).collect(),
    })
}

/// The backtests of several data sets as one Markdown table: per row the
/// province error and the median facility error of the engine and each
/// baseline (12-month totals), and the coverage of the engine's 90 %
/// intervals.
pub fn markdown(rows: &[(String, &Backtest)]) -> String {
    let mut s = String::from(
        "| data | measure | engine | last year | last year × growth | seasonal naive + drift | ETS | engine ≤ best naive |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (name, b) in rows {
        let (bp, bf) = b.best_baselines();
        let e = b.engine();
        let cell = |v: f64| format!("{:.2} %", 100.0 * v);
        let line = |what: &str, f: &dyn Fn(&MethodScore) -> f64, best: f64| {
            let mut l = format!("| {name} | {what} |");
            for m in &b.methods {
                let v = f(m);
                if m.method == "engine" {
                    l.push_str(&format!(" **{}** |", cell(v)));
                } else {
                    l.push_str(&format!(" {} |", cell(v)));
                }
            }
            l.push_str(if f(e) <= best + 1e-12 {
                " yes |\n"
            } else {
                " **no** |\n"
            });
            l
        };
        s.push_str(&line(
            "province 12-month error",
            &|m| m.province_error,
            bp.province_error,
        ));
        s.push_str(&line(
            "median facility 12-month error",
            &|m| m.facility_error,
            bf.facility_error,
        ));
    }
    s.push_str(
        "\n| data | origins | 90 % interval coverage: facility 12-month totals | province 12-month totals | facility-months | province-months | 80 % / 95 %, facility 12-month totals |\n|---|---|---|---|---|---|---|\n",
    );
    for (name, b) in rows {
        let c = |c: &Coverage| format!("{:.1} % (n = {})", 100.0 * c.rate[1], c.n);
        s.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {:.1} % / {:.1} % |\n",
            b.origins.len(),
            c(&b.coverage_year),
            c(&b.coverage_year_province),
            c(&b.coverage_month),
            c(&b.coverage_month_province),
            100.0 * b.coverage_year.rate[0],
            100.0 * b.coverage_year.rate[2],
        ));
    }
    s
}
