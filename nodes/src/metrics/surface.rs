//! Surfaces of binary masks and the distances between them, as MONAI computes them: a
//! surface voxel is a mask voxel with a 6-neighbour outside the mask (scipy's default
//! binary erosion, outside the image counts as background); distances are exact Euclidean
//! distances in mm between surface voxel centres.

use super::edt::squared_edt;
use super::grid::{BBox, LabelGrid};

/// Distances from each surface voxel of one mask to the other mask's surface (mm), both ways.
/// A direction is empty when either surface is; [`super::distance`] turns that into MONAI's
/// `inf`/`nan` values.
pub struct SurfaceDistances {
    /// Prediction surface -> reference surface.
    pub pred_to_ref: Vec<f64>,
    /// Reference surface -> prediction surface.
    pub ref_to_pred: Vec<f64>,
    pub pred_surface: usize,
    pub ref_surface: usize,
}

/// Masks `pred == p` and `reference == r` cropped to `bbox` (their union box) with one
/// voxel of background around it; then surfaces and both directed distance sets.
pub fn surface_distances(
    pred: &LabelGrid,
    p: i32,
    reference: &LabelGrid,
    r: i32,
    bbox: &BBox,
    spacing: [f64; 3],
) -> SurfaceDistances {
    let (a, shape) = crop_mask(pred, p, bbox);
    let (b, _) = crop_mask(reference, r, bbox);
    let ea = edges(&a, shape);
    let eb = edges(&b, shape);
    let na = ea.iter().filter(|&&e| e).count();
    let nb = eb.iter().filter(|&&e| e).count();
    let directed = |from: &[bool], to: &[bool], n_to: usize| -> Vec<f64> {
        if n_to == 0 || !from.contains(&true) {
            return vec![];
        }
        let d2 = squared_edt(to, shape, spacing);
        from.iter()
            .zip(&d2)
            .filter(|(&e, _)| e)
            .map(|(_, &d)| d.sqrt())
            .collect()
    };
    SurfaceDistances {
        pred_to_ref: directed(&ea, &eb, nb),
        ref_to_pred: directed(&eb, &ea, na),
        pred_surface: na,
        ref_surface: nb,
    }
}

/// `grid == id` inside `bbox` grown by one voxel on every side (outside the image: false).
fn crop_mask(grid: &LabelGrid, id: i32, bbox: &BBox) -> (Vec<bool>, [usize; 3]) {
    let s = bbox.shape().map(|n| n + 2);
    let [gd, gh, gw] = grid.shape;
    let mut m = vec![false; s[0] * s[1] * s[2]];
    for z in 0..bbox.shape()[0] {
        let k = bbox.lo[0] + z;
        if k >= gd {
            continue;
        }
        for y in 0..bbox.shape()[1] {
            let j = bbox.lo[1] + y;
            if j >= gh {
                continue;
            }
            let row = &grid.ids[(k * gh + j) * gw + bbox.lo[2]..(k * gh + j) * gw + bbox.hi[2]];
            let out = ((z + 1) * s[1] + y + 1) * s[2] + 1;
            for (x, &v) in row.iter().enumerate() {
                m[out + x] = v == id;
            }
        }
    }
    (m, s)
}

/// Mask voxels with at least one 6-neighbour outside the mask. The mask has a background
/// border, so every mask voxel has all six neighbours in the array.
fn edges(m: &[bool], shape: [usize; 3]) -> Vec<bool> {
    let [d, h, w] = shape;
    let (sk, sj) = (h * w, w);
    let mut e = vec![false; m.len()];
    for k in 1..d.saturating_sub(1) {
        for j in 1..h.saturating_sub(1) {
            let base = k * sk + j * sj;
            for i in 1..w.saturating_sub(1) {
                let v = base + i;
                if m[v] {
                    e[v] =
                        !(m[v - 1] && m[v + 1] && m[v - sj] && m[v + sj] && m[v - sk] && m[v + sk]);
                }
            }
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solid_cube_has_its_shell_as_surface() {
        // 4x4x4 cube inside a 6x6x6 grid: 64 voxels, 8 interior, 56 on the surface.
        let mut ids = vec![0; 216];
        for k in 1..5 {
            for j in 1..5 {
                for i in 1..5 {
                    ids[(k * 6 + j) * 6 + i] = 3;
                }
            }
        }
        let g = LabelGrid {
            ids,
            shape: [6, 6, 6],
        };
        let mut bb = BBox::empty();
        bb.add([1, 1, 1]);
        bb.add([4, 4, 4]);
        let d = surface_distances(&g, 3, &g, 3, &bb, [1.0, 1.0, 1.0]);
        assert_eq!(d.pred_surface, 56);
        assert!(d.pred_to_ref.iter().all(|&x| x == 0.0));
    }
}
