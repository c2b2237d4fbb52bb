//! The order statistics and the bootstrap of the cohort summary, deterministic so that two
//! runs (one process, or a Slurm array and its gather job) write the same bytes.

/// The `q` quantile (0..=1) of sorted finite values, linearly interpolated between order
/// statistics (Hyndman-Fan type 7: numpy's and R's default). `None` when empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

pub fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

pub use crate::splitmix::SplitMix64;

/// Resamples of the percentile bootstrap.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// The percentile bootstrap 95% interval of the mean of `v` (`BOOTSTRAP_RESAMPLES`
/// resamples with replacement, seeded by `seed`; the 2.5% and 97.5% type-7 quantiles of the
/// resampled means). `None` for fewer than 2 values, where there is nothing to resample.
pub fn bootstrap_ci_mean(v: &[f64], seed: u64) -> Option<(f64, f64)> {
    if v.len() < 2 {
        return None;
    }
    let mut rng = SplitMix64(seed);
    let mut means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| (0..v.len()).map(|_| v[rng.below(v.len())]).sum::<f64>() / v.len() as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    Some((quantile(&means, 0.025)?, quantile(&means, 0.975)?))
}

/// A seed from a text (FNV-1a): each (node, class, metric) has its own resampling stream,
/// the same on every machine.
pub fn seed_of(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_numpys_linear_ones() {
        // numpy.quantile([1, 2, 4, 8, 16], [0.25, 0.5, 0.9]) = [2., 4., 12.8]
        let v = [1.0, 2.0, 4.0, 8.0, 16.0];
        assert_eq!(quantile(&v, 0.25), Some(2.0));
        assert_eq!(quantile(&v, 0.5), Some(4.0));
        assert!((quantile(&v, 0.9).unwrap() - 12.8).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn the_bootstrap_interval_brackets_the_mean_and_shrinks_with_n() {
        let small: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let large: Vec<f64> = (0..1000).map(|i| (i % 10) as f64).collect();
        let (a, b) = bootstrap_ci_mean(&small, 7).unwrap();
        let (c, d) = bootstrap_ci_mean(&large, 7).unwrap();
        assert!(a < 4.5 && 4.5 < b, "{a} {b}");
        assert!(c < 4.5 && 4.5 < d, "{c} {d}");
        // Standard error of the mean: 2.87/sqrt(10) = 0.91 and 2.87/sqrt(1000) = 0.091, so
        // the 95% widths are near 3.6 and 0.36.
        assert!((b - a - 3.6).abs() < 0.6, "{}", b - a);
        assert!((d - c - 0.36).abs() < 0.06, "{}", d - c);
        assert_eq!(bootstrap_ci_mean(&[1.0], 7), None);
        assert_eq!(bootstrap_ci_mean(&small, 7), bootstrap_ci_mean(&small, 7));
    }
}
