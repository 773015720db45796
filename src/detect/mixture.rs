//! Gaussian mixture density of typical facility-periods (linfa-clustering's
//! EM): a facility-period far from every component — low log-density —
//! is unusual in a way no single indicator shows. Fitted with linfa, kept
//! as plain arrays (weights, means, Cholesky factors) so the model saves to
//! JSON and scores without refitting.

use linfa::prelude::*;
use linfa_clustering::GaussianMixtureModel;
use ndarray::Array2;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

/// Settings of the mixture. Defaults: 3 components, seed 130.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MixtureConfig {
    pub components: usize,
    /// Added to the covariance diagonals (standardised units).
    pub reg_covariance: f64,
    pub seed: u64,
}

impl Default for MixtureConfig {
    fn default() -> Self {
        MixtureConfig {
            components: 3,
            reg_covariance: 1e-2,
            seed: 130,
        }
    }
}

/// A fitted mixture.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mixture {
    weights: Vec<f64>,
    means: Vec<Vec<f64>>,
    /// Lower Cholesky factor of each covariance, row-major.
    chol: Vec<Vec<f64>>,
    log_det: Vec<f64>,
    dim: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MixtureError {
    #[error("gaussian mixture: {0}")]
    Fit(String),
}

fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(l)
}

impl Mixture {
    /// Fits on the rows of `x` (standardised features).
    pub fn fit(x: &Array2<f64>, cfg: &MixtureConfig) -> Result<Mixture, MixtureError> {
        let dim = x.ncols();
        let ds = DatasetBase::from(x.clone());
        let gmm = GaussianMixtureModel::params_with_rng(
            cfg.components,
            Xoshiro256Plus::seed_from_u64(cfg.seed),
        )
        .reg_covariance(cfg.reg_covariance)
        .max_n_iterations(200)
        .fit(&ds)
        .map_err(|e| MixtureError::Fit(e.to_string()))?;
        let mut out = Mixture {
            weights: gmm.weights().to_vec(),
            means: gmm.means().rows().into_iter().map(|r| r.to_vec()).collect(),
            chol: Vec::new(),
            log_det: Vec::new(),
            dim,
        };
        for c in gmm.covariances().outer_iter() {
            let a: Vec<f64> = c.iter().copied().collect();
            let l = cholesky(&a, dim)
                .ok_or_else(|| MixtureError::Fit("covariance not positive definite".into()))?;
            out.log_det
                .push(2.0 * (0..dim).map(|i| l[i * dim + i].ln()).sum::<f64>());
            out.chol.push(l);
        }
        Ok(out)
    }

    /// Log-density of one row.
    pub fn log_density(&self, row: &[f64]) -> f64 {
        let d = self.dim;
        let mut terms = Vec::with_capacity(self.weights.len());
        for (c, w) in self.weights.iter().enumerate() {
            // Solve L y = (x − μ); squared Mahalanobis distance = |y|².
            let l = &self.chol[c];
            let mut y = vec![0.0; d];
            for i in 0..d {
                let mut s = row[i] - self.means[c][i];
                for k in 0..i {
                    s -= l[i * d + k] * y[k];
                }
                y[i] = s / l[i * d + i];
            }
            let m2: f64 = y.iter().map(|v| v * v).sum();
            terms.push(
                w.max(1e-300).ln()
                    - 0.5 * (m2 + self.log_det[c] + d as f64 * (2.0 * std::f64::consts::PI).ln()),
            );
        }
        let m = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One standard normal component: the log-density is the textbook one.
    #[test]
    fn single_component_density_is_the_normal_density() {
        let mut x = Array2::<f64>::zeros((400, 2));
        for i in 0..400 {
            x[[i, 0]] = ((i * 37) % 400) as f64 / 400.0 - 0.5;
            x[[i, 1]] = ((i * 91) % 400) as f64 / 400.0 - 0.5;
        }
        let m = Mixture::fit(
            &x,
            &MixtureConfig {
                components: 1,
                reg_covariance: 0.0,
                seed: 1,
            },
        )
        .unwrap();
        // Uniform(−0.5, 0.5) columns: variance 1/12 each, independent.
        let var: f64 = 1.0 / 12.0;
        let expect = -0.5 * (2.0 * var.ln() + 2.0 * (2.0 * std::f64::consts::PI).ln());
        assert!((m.log_density(&[0.0, 0.0]) - expect).abs() < 0.05);
        assert!(m.log_density(&[3.0, 3.0]) < m.log_density(&[0.0, 0.0]) - 50.0);
    }
}
