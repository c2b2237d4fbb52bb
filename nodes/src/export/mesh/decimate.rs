//! The occupancy field of one class that the surface is extracted from: the class's
//! bounding box sampled every `step` voxels and padded by one empty sample on every side, so
//! that masks touching the volume's border still close.
//!
//! With `step` > 1 each sample stands for a block of `step`^3 voxels. A block counts as
//! inside when **any** of its voxels belongs to the class (max pooling: thin parts do not
//! vanish); the fraction of its voxels that do (mean pooling) then tells the extraction where
//! between samples the surface crosses, so the coarse mesh does not grow by half a block.

use super::scan::{ClassExtent, LabelGrid, LabelValue};

/// Largest accepted step: block voxel counts are kept in a `u16` (40^3 = 64000).
pub const MAX_STEP: u32 = 40;

/// A padded grid of samples of one class.
pub(crate) struct Field {
    /// Samples along `[x, y, z]` (= voxel axes i, j, k), padding included.
    pub dims: [usize; 3],
    /// Class voxels in the block of each sample, `x` fastest; 0 = outside.
    counts: Vec<u16>,
    /// Voxels per block (`step`^3).
    block: f64,
    /// Voxel index (i, j, k) of sample (0, 0, 0).
    pub origin: [f64; 3],
    /// Voxels between neighbouring samples.
    pub step: f64,
}

impl Field {
    /// Samples `class` of `g` inside its extent `e` every `step` voxels (`1..=MAX_STEP`).
    pub fn sample<T: LabelValue>(g: &LabelGrid<T>, class: T, e: &ClassExtent, step: u32) -> Field {
        let s = step.clamp(1, MAX_STEP) as usize;
        let mut n = [0usize; 3];
        let mut origin = [0.0; 3];
        for a in 0..3 {
            let voxels = e.max[a] - e.min[a] + 1;
            n[a] = voxels.div_ceil(s) + 2;
            // Sample 1 is the centre of the block whose first voxel is e.min; sample 0 pads.
            origin[a] = e.min[a] as f64 + (s as f64 - 1.0) / 2.0 - s as f64;
        }
        let mut counts = vec![0u16; n[0] * n[1] * n[2]];
        for k in e.min[2]..=e.max[2] {
            let z = (k - e.min[2]) / s + 1;
            for j in e.min[1]..=e.max[1] {
                let y = (j - e.min[1]) / s + 1;
                let row = g.index(0, j, k);
                let voxels = &g.data[row + e.min[0]..=row + e.max[0]];
                let base = (z * n[1] + y) * n[0];
                for (di, &v) in voxels.iter().enumerate() {
                    if v == class {
                        counts[base + di / s + 1] += 1;
                    }
                }
            }
        }
        Field {
            dims: n,
            counts,
            block: (s * s * s) as f64,
            origin,
            step: s as f64,
        }
    }

    /// Flat index of sample `(x, y, z)`.
    pub fn index(&self, x: usize, y: usize, z: usize) -> usize {
        (z * self.dims[1] + y) * self.dims[0] + x
    }

    /// Whether the sample at flat index `at` is inside.
    pub fn inside(&self, at: usize) -> bool {
        self.counts[at] > 0
    }

    /// Fraction of the block at flat index `at` that belongs to the class.
    pub fn fraction(&self, at: usize) -> f64 {
        self.counts[at] as f64 / self.block
    }

    /// Voxel index coordinates of sample `(x, y, z)`.
    pub fn position(&self, p: [usize; 3]) -> [f64; 3] {
        [
            self.origin[0] + self.step * p[0] as f64,
            self.origin[1] + self.step * p[1] as f64,
            self.origin[2] + self.step * p[2] as f64,
        ]
    }
}
