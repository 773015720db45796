//! The naive rules a planner would try first, each on one monthly series
//! (a facility's or a province's total), so the engine is always measured
//! beside them.

use super::model;

/// A naive forecasting rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// Next year = last year, month by month.
    LastYear,
    /// Last year × last year's growth (the last 12 months against the 12 before).
    LastYearGrowth,
    /// Seasonal naive with drift: last year's month plus the average
    /// year-on-year change of the history.
    SeasonalDrift,
    /// Exponential smoothing of the series alone (augurs AutoETS after an
    /// MSTL season, in logs), no pooling.
    Ets,
}

impl Baseline {
    pub const ALL: [Baseline; 4] = [
        Baseline::LastYear,
        Baseline::LastYearGrowth,
        Baseline::SeasonalDrift,
        Baseline::Ets,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Baseline::LastYear => "last year",
            Baseline::LastYearGrowth => "last year × growth",
            Baseline::SeasonalDrift => "seasonal naive + drift",
            Baseline::Ets => "ETS",
        }
    }

    /// Forecast of `h` months after the history `y` (from the series' first
    /// month with spending).
    pub fn forecast(self, y: &[f64], h: usize) -> Vec<f64> {
        let n = y.len();
        if n == 0 {
            return vec![0.0; h];
        }
        if n < 12 {
            let m = y.iter().sum::<f64>() / n as f64;
            return vec![m; h];
        }
        let last = |k: usize| y[n - 12 + k % 12];
        let s12 = |end: usize| y[end - 12..end].iter().sum::<f64>();
        match self {
            Baseline::LastYear => (0..h).map(last).collect(),
            Baseline::LastYearGrowth => {
                let g = if n >= 24 && s12(n - 12) > 0.0 {
                    s12(n) / s12(n - 12)
                } else {
                    1.0
                };
                (0..h)
                    .map(|k| last(k) * g.powi(1 + (k / 12) as i32))
                    .collect()
            }
            Baseline::SeasonalDrift => {
                let d = (12..n).map(|t| y[t] - y[t - 12]).sum::<f64>() / (n - 12).max(1) as f64;
                (0..h)
                    .map(|k| (last(k) + d * (1 + k / 12) as f64).max(0.0))
                    .collect()
            }
            Baseline::Ets => model::forecast(y, h).point,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_rules() {
        // Two years: 10 a month, then 12 a month.
        let y: Vec<f64> = (0..24).map(|t| if t < 12 { 10.0 } else { 12.0 }).collect();
        assert_eq!(Baseline::LastYear.forecast(&y, 13), vec![12.0; 13]);
        let g = Baseline::LastYearGrowth.forecast(&y, 13);
        assert!((g[0] - 14.4).abs() < 1e-9 && (g[12] - 17.28).abs() < 1e-9);
        let d = Baseline::SeasonalDrift.forecast(&y, 13);
        assert!((d[0] - 14.0).abs() < 1e-9 && (d[12] - 16.0).abs() < 1e-9);
        assert_eq!(Baseline::LastYear.forecast(&[], 2), vec![0.0; 2]);
    }
}
