//! The plain series model kept as the "ETS" baseline of the backtest (the
//! engine before the growth model, `engine.rs`): one monthly series → point
//! forecast and prediction intervals.
//!
//! The series is modelled in logs (spending grows by a share a year, and its
//! seasonal swing grows with it): MSTL splits off the 12-month season
//! (`augurs-mstl`), and the rest is forecast by exponential smoothing chosen
//! by AICc among error/trend forms (`augurs-ets` AutoETS, the R `ets`
//! search; its seasonal models are not implemented, hence MSTL). Intervals
//! come from the models in log space and are exponentiated. A series shorter
//! than two seasons drops the season; one too short for anything is
//! forecast by its mean with the spread of its values. `augurs` can panic on
//! model classes whose intervals it does not implement: a panic is caught
//! and falls back to the mean forecast.

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::{Fit, Forecast, Predict};

/// Interval levels, in this order everywhere: 80 %, 90 %, 95 %.
pub const LEVELS: [f64; 3] = [0.8, 0.9, 0.95];

/// Forecast of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesForecast {
    pub point: Vec<f64>,
    /// (lower, upper) per level of [`LEVELS`].
    pub bounds: [(Vec<f64>, Vec<f64>); 3],
    /// Model used: the ETS type (e.g. `AAdA`), or `mean`.
    pub model: String,
}

impl SeriesForecast {
    /// Multiplies point and bounds of month `i` by `f`.
    pub fn scale(&mut self, i: usize, f: f64) {
        self.point[i] *= f;
        for (lo, hi) in self.bounds.iter_mut() {
            lo[i] *= f;
            hi[i] *= f;
        }
    }
}

pub(crate) fn z(level: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::standard().inverse_cdf(0.5 + level / 2.0)
}

fn mean_forecast(y: &[f64], h: usize) -> SeriesForecast {
    let n = y.len().max(1) as f64;
    let m = y.iter().sum::<f64>() / n;
    let sd = (y.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    let band = |l: f64| {
        let w = z(l) * sd * (1.0 + 1.0 / n).sqrt();
        (vec![(m - w).max(0.0); h], vec![m + w; h])
    };
    SeriesForecast {
        point: vec![m; h],
        bounds: [band(0.8), band(0.9), band(0.95)],
        model: "mean".into(),
    }
}

/// Point and log-space intervals of one fit: (point, [(lo, hi)] per level), all in logs.
type LogForecast = (Vec<f64>, [(Vec<f64>, Vec<f64>); 3]);

fn log_forecast(logs: &[f64], h: usize) -> Option<LogForecast> {
    let n = logs.len();
    let run = || -> Option<LogForecast> {
        let mut out: LogForecast = (Vec::new(), Default::default());
        if n >= 24 {
            let m = MSTLModel::new(vec![12], AutoETS::non_seasonal().into_trend_model());
            let fitted = m.fit(logs).ok()?;
            for (k, level) in LEVELS.iter().enumerate() {
                let f: Forecast = fitted.predict(h, *level).ok()?;
                let iv = f.intervals?;
                out.0 = f.point;
                out.1[k] = (iv.lower, iv.upper);
            }
        } else {
            let fitted = AutoETS::non_seasonal().fit(logs).ok()?;
            for (k, level) in LEVELS.iter().enumerate() {
                let f: Forecast = fitted.predict(h, *level).ok()?;
                let iv = f.intervals?;
                out.0 = f.point;
                out.1[k] = (iv.lower, iv.upper);
            }
        }
        out.0.iter().all(|v| v.is_finite()).then_some(out)
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
        .ok()
        .flatten()
}

fn logs_of(y: &[f64]) -> Option<(Vec<f64>, f64)> {
    let mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
    if y.len() < 8 || mean <= 0.0 {
        return None;
    }
    // Offset keeps empty months finite in logs.
    let c = 0.01 * mean;
    Some((y.iter().map(|v| (v.max(0.0) + c).ln()).collect(), c))
}

/// Forecasts `h` months after the series `y` (monthly, non-negative).
pub fn forecast(y: &[f64], h: usize) -> SeriesForecast {
    if h == 0 {
        return SeriesForecast {
            point: vec![],
            bounds: Default::default(),
            model: "none".into(),
        };
    }
    let Some((logs, c)) = logs_of(y) else {
        return mean_forecast(y, h);
    };
    let Some((point, bounds)) = log_forecast(&logs, h) else {
        return mean_forecast(y, h);
    };
    let back = |v: f64| (v.exp() - c).max(0.0);
    let to_vnd = |b: &(Vec<f64>, Vec<f64>)| {
        (
            b.0.iter().map(|v| back(*v)).collect(),
            b.1.iter().map(|v| back(*v)).collect(),
        )
    };
    SeriesForecast {
        point: point.iter().map(|v| back(*v)).collect(),
        bounds: [to_vnd(&bounds[0]), to_vnd(&bounds[1]), to_vnd(&bounds[2])],
        model: if logs.len() >= 24 {
            "MSTL(12)+ETS"
        } else {
            "ETS"
        }
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series growing 9 % a year with a winter peak: the forecast
    /// continues the growth and the season, and the intervals nest.
    #[test]
    fn seasonal_growth_is_continued() {
        let y: Vec<f64> = (0..48)
            .map(|t| {
                let season = 1.0 + 0.15 * ((t % 12) as f64 / 12.0 * std::f64::consts::TAU).cos();
                100.0 * 1.09f64.powf(t as f64 / 12.0) * season * (1.0 + 0.01 * ((t * 7) % 5) as f64)
            })
            .collect();
        let f = forecast(&y, 12);
        assert_ne!(f.model, "mean");
        let next: f64 = f.point.iter().sum();
        let last: f64 = y[36..].iter().sum();
        assert!(
            (next / last - 1.09).abs() < 0.03,
            "{} {}",
            next / last,
            f.model
        );
        // January (a peak) above July.
        assert!(f.point[0] > f.point[6]);
        for i in 0..12 {
            assert!(f.bounds[0].0[i] <= f.point[i] && f.point[i] <= f.bounds[0].1[i]);
            assert!(f.bounds[2].0[i] <= f.bounds[0].0[i] && f.bounds[0].1[i] <= f.bounds[2].1[i]);
        }
    }

    #[test]
    fn short_or_empty_series_fall_back() {
        let f = forecast(&[5.0, 7.0, 6.0], 3);
        assert_eq!(f.model, "mean");
        assert_eq!(f.point, vec![6.0; 3]);
        let f = forecast(&[0.0; 30], 2);
        assert_eq!(f.point, vec![0.0; 2]);
    }
}
