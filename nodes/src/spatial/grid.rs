//! Sampling grids: a shape plus a voxel -> LPS affine, and the small affine algebra the
//! spatial nodes need (inverse, product, spacing-only target grids).
//!
//! Shapes here are in tensor order `[nk, nj, ni]` (as [`Volume::spatial_shape`] returns);
//! affine columns are in voxel-index order `(i, j, k)`.

// Small fixed-size matrix code reads best with explicit indices.

use crate::value::{Geometry, Volume};

/// A 4x4 affine, row-major.
pub type Mat4 = [[f64; 4]; 4];

/// Where a volume's voxels lie: its spatial shape `[nk, nj, ni]` and its geometry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub shape: [i64; 3],
    pub geometry: Geometry,
}

impl Grid {
    /// The grid a volume is on.
    pub fn of(v: &Volume) -> Grid {
        Grid {
            shape: v.spatial_shape(),
            geometry: *v.geometry(),
        }
    }

    /// Same shape, and every affine entry within `tol_mm`: two volumes whose voxels are the
    /// same points.
    pub fn matches(&self, other: &Grid, tol_mm: f64) -> bool {
        let (a, b) = (&self.geometry.affine_lps, &other.geometry.affine_lps);
        self.shape == other.shape
            && (0..3).all(|r| (0..4).all(|c| (a[r][c] - b[r][c]).abs() <= tol_mm))
    }

    /// Number of voxels along voxel axis `a` (0 = i, 1 = j, 2 = k).
    pub fn len_along(&self, a: usize) -> i64 {
        self.shape[2 - a]
    }

    /// A grid with the same orientation and origin (the first voxel centre stays where it is)
    /// and the given spacing `[si, sj, sk]` in mm, covering the input's voxel centres as MONAI's
    /// `Spacing` does (`scale_extent=False`): `n' = round((n - 1) * s / s') + 1` per axis.
    pub fn with_spacing(&self, spacing: [f64; 3]) -> Grid {
        let old = self.geometry.spacing();
        let mut a = self.geometry.affine_lps;
        let mut shape = self.shape;
        for c in 0..3 {
            let scale = spacing[c] / old[c];
            for row in a.iter_mut().take(3) {
                row[c] *= scale;
            }
            let n = self.len_along(c);
            let extent = (n - 1) as f64 * old[c];
            shape[2 - c] = ((extent / spacing[c]).round() as i64 + 1).max(1);
        }
        Grid {
            shape,
            geometry: Geometry { affine_lps: a },
        }
    }

    pub fn voxels(&self) -> i64 {
        self.shape.iter().product()
    }
}

/// `a * b`.
pub fn mul(a: &Mat4, b: &Mat4) -> Mat4 {
    let mut m = [[0.0; 4]; 4];
    for (r, row) in m.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = (0..4).map(|t| a[r][t] * b[t][c]).sum();
        }
    }
    m
}

/// The inverse of an affine (last row `0 0 0 1`), or `None` when its 3x3 part is singular.
pub fn inverse(a: &Mat4) -> Option<Mat4> {
    let m = |r: usize, c: usize| a[r][c];
    let cof = |r: usize, c: usize| {
        let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
        let (c1, c2) = ((c + 1) % 3, (c + 2) % 3);
        m(r1, c1) * m(r2, c2) - m(r1, c2) * m(r2, c1)
    };
    let det = (0..3).map(|c| m(0, c) * cof(0, c)).sum::<f64>();
    let scale = (0..3)
        .map(|c| (0..3).map(|r| m(r, c) * m(r, c)).sum::<f64>())
        .product::<f64>()
        .sqrt();
    if !det.is_finite() || det.abs() <= 1e-12 * scale.max(f64::MIN_POSITIVE) {
        return None;
    }
    let mut inv = [[0.0; 4]; 4];
    for r in 0..3 {
        for c in 0..3 {
            // inverse = adjugate / det; adjugate is the transposed cofactor matrix.
            inv[r][c] = cof(c, r) / det;
        }
    }
    for r in 0..3 {
        inv[r][3] = -(0..3).map(|c| inv[r][c] * a[c][3]).sum::<f64>();
    }
    inv[3][3] = 1.0;
    Some(inv)
}

/// The affine that maps an output voxel index `(i, j, k, 1)` of `out` to the continuous
/// voxel index of `input`: `inv(A_in) * A_out`.
pub fn out_to_in(input: &Grid, out: &Grid) -> Result<Mat4, String> {
    let inv = inverse(&input.geometry.affine_lps).ok_or_else(|| {
        format!(
            "the input's affine is singular (spacing {:?}); it does not place voxels in space",
            input.geometry.spacing()
        )
    })?;
    Ok(mul(&inv, &out.geometry.affine_lps))
}

/// Axis-aligned mapping: output voxel axis `a` reads input voxel axis `axis[a]`, at
/// continuous input index `scale[a] * idx + offset[a]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Separable {
    pub axis: [usize; 3],
    pub scale: [f64; 3],
    pub offset: [f64; 3],
}

/// `Some` when `m` (output voxel -> input voxel) moves each output axis along one input axis
/// only: off-axis terms add under 1e-6 voxel over the whole output grid.
pub fn separable(m: &Mat4, out_shape: [i64; 3]) -> Option<Separable> {
    let mut axis = [usize::MAX; 3];
    let mut scale = [0.0; 3];
    let mut used = [false; 3];
    for a in 0..3 {
        let n = out_shape[2 - a].max(1) as f64;
        let r = (0..3).max_by(|&x, &y| m[x][a].abs().total_cmp(&m[y][a].abs()))?;
        if used[r] || m[r][a] == 0.0 {
            return None;
        }
        for o in 0..3 {
            if o != r && m[o][a].abs() * n > 1e-6 {
                return None;
            }
        }
        used[r] = true;
        axis[a] = r;
        scale[a] = m[r][a];
    }
    let mut offset = [0.0; 3];
    for a in 0..3 {
        offset[a] = m[axis[a]][3];
    }
    Some(Separable {
        axis,
        scale,
        offset,
    })
}

/// Rounds values within 1e-6 of an integer to it, so that grid-aligned samples are exact copies.
pub fn snap(c: f64) -> f64 {
    let r = c.round();
    if (c - r).abs() < 1e-6 {
        r
    } else {
        c
    }
}
