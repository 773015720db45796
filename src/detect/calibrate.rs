//! One scale for every detector: the **severity**, the standard-normal
//! quantile of the detector's tail probability under "nothing unusual"
//! (severity 3 ≈ p 0.00135). Each detector's statistic is turned into a tail
//! probability by a rule fixed in advance (analytic where the null is known,
//! the saved training distribution where it is not), never by ranking the
//! current week, so a severity of 4 means the same thing every week.

use statrs::distribution::{ContinuousCDF, DiscreteCDF, Normal, Poisson};

fn normal() -> Normal {
    Normal::standard()
}

/// Severity of a one-sided tail probability p: Φ⁻¹(1 − p), within [0, 8].
pub fn severity_of_p(p: f64) -> f64 {
    if !(p.is_finite()) || p >= 0.5 {
        return 0.0;
    }
    let p = p.max(1e-15);
    // Φ⁻¹(1 − p) = −Φ⁻¹(p): keeps precision for small p.
    (-normal().inverse_cdf(p)).clamp(0.0, 8.0)
}

/// Tail probability of a severity (inverse of [`severity_of_p`]).
pub fn p_of_severity(s: f64) -> f64 {
    normal().cdf(-s)
}

/// Tail probability of `m` independent looks at the smallest of them
/// (Šidák): 1 − (1 − p)^m.
pub fn sidak(p: f64, m: usize) -> f64 {
    1.0 - (1.0 - p).powi(m.max(1) as i32)
}

/// A CUSUM `S = max(0, S + z − k)` of standard-normal steps exceeds h with
/// stationary probability ≈ exp(−2kh) (Brownian approximation of the random
/// walk with drift −k; Siegmund 1985).
pub fn cusum_p(h: f64, k: f64) -> f64 {
    if h <= 0.0 {
        1.0
    } else {
        (-2.0 * k * h).exp().min(1.0)
    }
}

/// P(K ≥ k) for K ~ Poisson(λ): the chance of at least `k` flagged claims
/// when λ are expected.
pub fn poisson_tail(k: f64, lambda: f64) -> f64 {
    if k <= 0.0 {
        return 1.0;
    }
    if lambda <= 0.0 {
        return 0.0;
    }
    match Poisson::new(lambda) {
        Ok(d) => d.sf(k as u64 - 1),
        Err(_) => 1.0,
    }
}

/// Empirical tail probability of `s` in a sorted training sample, with the
/// +1 of a conformal p-value: (1 + #{train ≥ s}) / (n + 1).
pub fn empirical_p(sorted: &[f64], s: f64) -> f64 {
    let above = sorted.len() - sorted.partition_point(|v| *v < s);
    (1.0 + above as f64) / (sorted.len() as f64 + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert!((severity_of_p(0.001_349_898) - 3.0).abs() < 1e-4);
        assert_eq!(severity_of_p(0.7), 0.0);
        assert!((p_of_severity(3.0) - 0.001_349_898).abs() < 1e-8);
        assert!((sidak(0.01, 2) - 0.0199).abs() < 1e-12);
        assert!((cusum_p(4.0, 1.0) - (-8f64).exp()).abs() < 1e-15);
        // P(K ≥ 3 | λ = 1) = 1 − e⁻¹(1 + 1 + 1/2).
        assert!((poisson_tail(3.0, 1.0) - (1.0 - (-1f64).exp() * 2.5)).abs() < 1e-12);
        let t = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(empirical_p(&t, 3.5), 2.0 / 5.0);
        assert_eq!(empirical_p(&t, 9.0), 1.0 / 5.0);
    }
}
