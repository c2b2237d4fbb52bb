//! The operations on structure masks (`[D, H, W]` flags): margins by the exact Euclidean
//! distance between voxel centres, with the voxel spacing (as planning systems grow and
//! shrink structures), and booleans.

use crate::metrics::edt::squared_edt;

/// Relative slack on distance comparisons, so that a voxel exactly at the margin (e.g. 5 mm
/// on a 1 mm grid) is counted the same whatever the rounding of the squares.
const TIE: f64 = 1e-9;

/// `mask` grown (`margin_mm` > 0) or shrunk (< 0) by the margin along the image's i, j, k
/// axes (`[x, y, z]` for an axial CT); `spacing` is mm per voxel along (d, h, w) = (k, j, i).
/// Growing keeps every voxel whose centre is within the margin ellipsoid of a voxel of the
/// mask; shrinking keeps the voxels of the mask farther than it from every voxel outside.
pub fn margin(
    mask: &[bool],
    shape: [usize; 3],
    spacing: [f64; 3],
    margin_mm: [f64; 3],
) -> Vec<bool> {
    let grow = margin_mm.iter().all(|m| *m >= 0.0);
    let r = margin_mm.map(f64::abs);
    if r.iter().all(|m| *m == 0.0) {
        return mask.to_vec();
    }
    // Distances in units of the margin along each axis: inside the ellipsoid is <= 1. An
    // axis without margin gets a spacing so large that no step along it is within reach.
    let along = |axis_mm: f64, s: f64| if axis_mm == 0.0 { 1e12 } else { s / axis_mm };
    let scaled = [
        along(r[2], spacing[0]),
        along(r[1], spacing[1]),
        along(r[0], spacing[2]),
    ];
    if grow {
        let d = squared_edt(mask, shape, scaled);
        d.iter().map(|&v| v <= 1.0 + TIE).collect()
    } else {
        let outside: Vec<bool> = mask.iter().map(|m| !m).collect();
        let d = squared_edt(&outside, shape, scaled);
        mask.iter()
            .zip(&d)
            .map(|(&m, &v)| m && v > 1.0 + TIE)
            .collect()
    }
}

pub fn union(a: &mut [bool], b: &[bool]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x |= *y);
}

pub fn intersect(a: &mut [bool], b: &[bool]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x &= *y);
}

pub fn subtract(a: &mut [bool], b: &[bool]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x &= !*y);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_grows_into_the_ellipsoid_of_its_margin() {
        let shape = [5, 5, 5];
        let mut m = vec![false; 125];
        m[2 * 25 + 2 * 5 + 2] = true;
        // 1 mm isotropic, 1 mm margin: the 6-neighbourhood
        assert_eq!(
            margin(&m, shape, [1.0; 3], [1.0; 3])
                .iter()
                .filter(|v| **v)
                .count(),
            7
        );
        // sqrt(2) mm: also the 12 edge neighbours (exactly at the margin)
        let r = 2f64.sqrt();
        assert_eq!(
            margin(&m, shape, [1.0; 3], [r; 3])
                .iter()
                .filter(|v| **v)
                .count(),
            19
        );
        // 2 mm along z (k) only: the point and 2 above, 2 below
        assert_eq!(
            margin(&m, shape, [1.0; 3], [0.0, 0.0, 2.0])
                .iter()
                .filter(|v| **v)
                .count(),
            5
        );
    }

    #[test]
    fn shrinking_is_growing_the_outside() {
        let shape = [6, 7, 8];
        let m: Vec<bool> = (0..6 * 7 * 8).map(|v| (v * 7919) % 5 < 3).collect();
        let spacing = [2.5, 0.8, 0.8];
        let shrunk = margin(&m, shape, spacing, [-1.6, -1.6, -2.5]);
        let outside: Vec<bool> = m.iter().map(|v| !v).collect();
        let grown_out = margin(&outside, shape, spacing, [1.6, 1.6, 2.5]);
        let want: Vec<bool> = grown_out.iter().map(|v| !v).collect();
        assert_eq!(shrunk, want);
    }
}
