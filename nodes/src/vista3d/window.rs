//! Where sliding windows go and how they are weighted, exactly as MONAI's
//! `sliding_window_inference` (`_get_scan_interval`, `dense_patch_slices`,
//! `compute_importance_map` with mode "gaussian").

use tch::{Device, Kind, Tensor};

/// Symmetric zero padding that makes each axis at least a patch long: `(before, after)` per
/// axis, the larger half after (MONAI pads `diff // 2` before).
pub fn padding(size: [i64; 3], patch: [i64; 3]) -> [(i64, i64); 3] {
    std::array::from_fn(|a| {
        let diff = (patch[a] - size[a]).max(0);
        (diff / 2, diff - diff / 2)
    })
}

/// Window start corners over an image of `size` (already at least a patch on each axis), in
/// MONAI's order (first axis slowest).
pub fn starts(size: [i64; 3], patch: [i64; 3], overlap: f64) -> Vec<[i64; 3]> {
    let per_axis: Vec<Vec<i64>> = (0..3)
        .map(|a| {
            let interval = if patch[a] == size[a] {
                patch[a]
            } else {
                (((patch[a] as f64) * (1.0 - overlap)) as i64).max(1)
            };
            let num = (size[a] as f64 / interval as f64).ceil() as i64;
            let count = (0..num)
                .find(|d| d * interval + patch[a] >= size[a])
                .map_or(1, |d| d + 1);
            (0..count)
                .map(|i| {
                    let s = i * interval;
                    s - (s + patch[a] - size[a]).max(0)
                })
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    for &x in &per_axis[0] {
        for &y in &per_axis[1] {
            for &z in &per_axis[2] {
                out.push([x, y, z]);
            }
        }
    }
    out
}

/// The gaussian importance map [P0, P1, P2] (sigma = 0.125 x patch), clamped below at
/// max(min, 1e-3), float32.
pub fn gaussian(patch: [i64; 3], device: Device) -> Tensor {
    let mut map: Option<Tensor> = None;
    for (a, &p) in patch.iter().enumerate() {
        let sigma = 0.125 * p as f64;
        let half = (p as f64 - 1.0) / 2.0;
        let x = Tensor::arange(p, (Kind::Float, device)) - half;
        let g = (x.square() / (-2.0 * sigma * sigma)).exp();
        map = Some(match map {
            None => g,
            Some(m) => {
                let mut shape = vec![1i64; a + 1];
                shape[a] = p;
                m.unsqueeze(-1) * g.view(shape.as_slice())
            }
        });
    }
    let map = map.expect("three axes");
    let min = map.min().double_value(&[]).max(1e-3);
    map.clamp_min(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_follow_monai() {
        // MONAI: image 200, roi 128, overlap 0.3 -> interval 89 -> starts 0, 72.
        assert_eq!(
            starts([200, 128, 300], [128, 128, 128], 0.3)
                .iter()
                .map(|s| s[0])
                .collect::<std::collections::BTreeSet<_>>(),
            [0, 72].into()
        );
        let s = starts([200, 128, 300], [128, 128, 128], 0.3);
        // axis 2: 300 -> 0, 89, 172 (178 clamped to 300-128=172)
        assert_eq!(s.len(), 2 * 3);
        assert_eq!(s[0], [0, 0, 0]);
        assert_eq!(s[2], [0, 0, 172]);
        assert_eq!(
            padding([100, 128, 7], [128, 128, 128]),
            [(14, 14), (0, 0), (60, 61)]
        );
    }

    #[test]
    fn gaussian_peaks_near_one_and_is_clamped() {
        let g = gaussian([8, 8, 8], Device::Cpu);
        assert_eq!(g.size(), [8, 8, 8]);
        let centre = g.double_value(&[3, 4, 3]);
        let e = (-0.25f64 / (2.0 * 1.0)).exp(); // each axis: x = 0.5, sigma = 1
        assert!((centre - e.powi(3)).abs() < 1e-6, "{centre}");
        let corner = g.double_value(&[0, 0, 0]);
        assert!((corner - (-(3.5f64).powi(2) / 2.0).exp().powi(3).max(1e-3)).abs() < 1e-9);
    }
}
