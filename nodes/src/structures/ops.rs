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

/// The body: voxels above `threshold` (HU), the largest 6-connected part of them, with
/// the holes of each slice along the last axis filled (background there that does not
/// reach the slice's border through 4-connected background: lungs, bowel gas). `values`
/// in [d, h, w] order.
pub fn body(values: &[f32], shape: [usize; 3], threshold: f64) -> Vec<bool> {
    let [d, h, w] = shape;
    let above: Vec<bool> = values.iter().map(|v| (*v as f64) > threshold).collect();
    // Largest 6-connected component, by flood fill with an explicit stack.
    let mut component = vec![0u32; above.len()];
    let (mut best, mut best_size, mut next) = (0u32, 0usize, 0u32);
    let mut stack = Vec::new();
    for start in 0..above.len() {
        if !above[start] || component[start] != 0 {
            continue;
        }
        next += 1;
        component[start] = next;
        stack.push(start);
        let mut size = 0;
        while let Some(v) = stack.pop() {
            size += 1;
            let (k, j, i) = (v / (h * w), v / w % h, v % w);
            let mut visit = |n: usize| {
                if above[n] && component[n] == 0 {
                    component[n] = next;
                    stack.push(n);
                }
            };
            if i > 0 {
                visit(v - 1)
            }
            if i + 1 < w {
                visit(v + 1)
            }
            if j > 0 {
                visit(v - w)
            }
            if j + 1 < h {
                visit(v + w)
            }
            if k > 0 {
                visit(v - h * w)
            }
            if k + 1 < d {
                visit(v + h * w)
            }
        }
        if size > best_size {
            (best, best_size) = (next, size);
        }
    }
    let mut mask: Vec<bool> = component.iter().map(|c| best > 0 && *c == best).collect();
    // Fill each slice's holes: background reached from the border stays outside.
    let mut outside = vec![false; h * w];
    for k in 0..d {
        let slice = &mut mask[k * h * w..(k + 1) * h * w];
        outside.iter_mut().for_each(|o| *o = false);
        for p in (0..w)
            .chain((h - 1) * w..h * w)
            .chain((0..h).flat_map(|j| [j * w, j * w + w - 1]))
        {
            if !slice[p] && !outside[p] {
                outside[p] = true;
                stack.push(p);
            }
        }
        while let Some(p) = stack.pop() {
            let (j, i) = (p / w, p % w);
            let mut visit = |n: usize| {
                if !slice[n] && !outside[n] {
                    outside[n] = true;
                    stack.push(n);
                }
            };
            if i > 0 {
                visit(p - 1)
            }
            if i + 1 < w {
                visit(p + 1)
            }
            if j > 0 {
                visit(p - w)
            }
            if j + 1 < h {
                visit(p + w)
            }
        }
        for (m, o) in slice.iter_mut().zip(&outside) {
            *m = !*o;
        }
    }
    mask
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
