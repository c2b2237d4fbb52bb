//! Surface-distance metrics from directed distances, with MONAI 1.6's values for empty masks
//! (see docs/metrics-conventions.md): a direction whose target surface is empty holds `inf`
//! for each of its voxels (MONAI also fills the pred -> ref direction with `inf` per
//! reference voxel when the prediction is empty); no distance at all gives `nan`.

use super::surface::SurfaceDistances;

/// The directed distance sets exactly as MONAI builds them, in float32 like its tensors.
/// MONAI's `get_surface_distance(a, b)` gives `inf` per voxel of `a` when `b` is empty, and
/// `inf` per voxel of `b` when only `a` is empty.
fn monai_sets(s: &SurfaceDistances) -> (Vec<f32>, Vec<f32>) {
    let set = |from: &[f64], n_from: usize, n_to: usize| -> Vec<f32> {
        if n_to == 0 {
            vec![f32::INFINITY; n_from]
        } else if n_from == 0 {
            vec![f32::INFINITY; n_to]
        } else {
            from.iter().map(|&x| x as f32).collect()
        }
    };
    let (p, r) = (s.pred_surface, s.ref_surface);
    (set(&s.pred_to_ref, p, r), set(&s.ref_to_pred, r, p))
}

/// torch.quantile (linear interpolation) of one set, in float32 as torch computes it (so a
/// set of `inf` gives `nan`, as `inf - inf` does in torch's lerp); `nan` for an empty set.
fn quantile(v: &mut [f32], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = (q as f32) * ((v.len() - 1) as f32);
    let lo = rank.floor() as usize;
    let hi = (rank.ceil() as usize).min(v.len() - 1);
    let w = rank - lo as f32;
    let cmp = |a: &f32, b: &f32| a.total_cmp(b);
    let (_, &mut a, right) = v.select_nth_unstable_by(lo, cmp);
    let b = if hi > lo {
        right.iter().copied().min_by(cmp).unwrap_or(a)
    } else {
        a
    };
    // at::lerp: a + w (b - a) below one half, b - (b - a)(1 - w) from one half on.
    let out = if w < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    };
    out as f64
}

/// Hausdorff distance at `percentile` (None: the maximum): the larger of the two directed
/// values; `nan` when a direction has no distances.
pub fn hausdorff(s: &SurfaceDistances, percentile: Option<f64>) -> f64 {
    let (mut a, mut b) = monai_sets(s);
    let directed = |v: &mut [f32]| match percentile {
        _ if v.is_empty() => f64::NAN,
        None => v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64,
        Some(p) => quantile(v, p / 100.0),
    };
    let (da, db) = (directed(&mut a), directed(&mut b));
    if da.is_nan() || db.is_nan() {
        f64::NAN
    } else {
        da.max(db)
    }
}

/// Average symmetric surface distance: the mean of both directed sets together.
pub fn assd(s: &SurfaceDistances) -> f64 {
    let (a, b) = monai_sets(s);
    let n = a.len() + b.len();
    if n == 0 {
        return f64::NAN;
    }
    // MONAI averages a float32 tensor; summing in f64 differs from it by far less than 1e-6.
    let sum: f64 = a.iter().chain(&b).map(|&x| x as f64).sum();
    sum / n as f64
}

/// Normalised surface Dice at `tolerance_mm`: surface voxels of either mask within the
/// tolerance of the other surface, over all surface voxels; `nan` when both are empty.
pub fn nsd(s: &SurfaceDistances, tolerance_mm: f64) -> f64 {
    let (a, b) = monai_sets(s);
    let n = a.len() + b.len();
    if n == 0 {
        return f64::NAN;
    }
    let t = tolerance_mm as f32;
    let ok = a.iter().chain(&b).filter(|&&d| d <= t).count();
    ok as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd(p: Vec<f64>, r: Vec<f64>) -> SurfaceDistances {
        SurfaceDistances {
            pred_surface: p.len(),
            ref_surface: r.len(),
            pred_to_ref: p,
            ref_to_pred: r,
        }
    }

    #[test]
    fn quantiles_interpolate_like_torch() {
        // torch.quantile(tensor([0., 1, 2, 10]), 0.95) = 2 + 0.85 * 8 = 8.8
        let s = sd(vec![10.0, 0.0, 2.0, 1.0], vec![0.5]);
        assert!((hausdorff(&s, Some(95.0)) - 8.8).abs() < 1e-6);
        assert_eq!(hausdorff(&s, None), 10.0);
        assert!((assd(&s) - 13.5 / 5.0).abs() < 1e-12);
        assert!((nsd(&s, 2.0) - 4.0 / 5.0).abs() < 1e-12);
    }

    #[test]
    fn empty_masks_follow_monai() {
        let both = sd(vec![], vec![]);
        assert!(
            hausdorff(&both, Some(95.0)).is_nan()
                && assd(&both).is_nan()
                && nsd(&both, 2.0).is_nan()
        );
        // MONAI: hd inf, but hd95 nan (torch.quantile over inf values interpolates inf - inf).
        let no_ref = sd(vec![f64::INFINITY; 3], vec![]);
        assert_eq!(hausdorff(&no_ref, None), f64::INFINITY);
        assert!(hausdorff(&no_ref, Some(95.0)).is_nan());
        assert_eq!(nsd(&no_ref, 2.0), 0.0);
        let no_pred = sd(vec![], vec![f64::INFINITY; 4]);
        assert!(hausdorff(&no_pred, Some(95.0)).is_nan());
        assert_eq!(assd(&no_pred), f64::INFINITY);
    }
}
