//! Where the patient's axes are in the voxel grid, and the three views in radiological
//! convention.
//!
//! Each world axis (LPS: x towards the patient's Left, y Posterior, z Superior) is matched to
//! the voxel axis closest to it (nibabel's `io_orientation`; an oblique grid is shown as if it
//! were not). A *display coordinate* along world axis `w` counts voxels from the R, A or I
//! end: it is the voxel index when that index grows towards L, P or S, else `n - 1 - index`.
//! Everything the sheet shows is computed in display coordinates, so a grid stored in any
//! axis order or direction gives the same picture.
//!
//! | view     | slice fixes | image left -> right       | image top -> bottom |
//! |----------|-------------|---------------------------|---------------------|
//! | axial    | z           | patient right -> left (x) | anterior -> posterior (y) |
//! | coronal  | y           | patient right -> left (x) | superior -> inferior (z)  |
//! | sagittal | x           | anterior -> posterior (y) | superior -> inferior (z)  |

use crate::spatial::Orientation;
use crate::value::Geometry;

/// The world axes in voxel terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Axes {
    /// Voxel axis (0 = i, 1 = j, 2 = k) closest to world axis x, y, z.
    pub vox: [usize; 3],
    /// Whether that voxel index grows towards L, P, S (+) rather than R, A, I.
    pub positive: [bool; 3],
    /// Number of voxels along world axis x, y, z.
    pub n: [usize; 3],
    /// Voxel size in mm along world axis x, y, z.
    pub spacing: [f64; 3],
}

impl Axes {
    /// The axes of a grid of spatial shape `[nk, nj, ni]` placed by `geometry`.
    pub fn of(geometry: &Geometry, shape: [usize; 3]) -> Axes {
        let o = Orientation::of(&geometry.affine_lps);
        let sp = geometry.spacing();
        let mut axes = Axes {
            vox: [0; 3],
            positive: [true; 3],
            n: [0; 3],
            spacing: [0.0; 3],
        };
        for a in 0..3 {
            let w = o.axis[a];
            axes.vox[w] = a;
            axes.positive[w] = o.positive[a];
            axes.n[w] = shape[2 - a];
            axes.spacing[w] = sp[a];
        }
        axes
    }

    /// Physical extent in mm along world axis x, y, z (voxel count times spacing).
    pub fn extent(&self) -> [f64; 3] {
        [0, 1, 2].map(|w| self.n[w] as f64 * self.spacing[w])
    }

    /// The voxel index along `w`'s voxel axis of display coordinate `d` (and back: the map
    /// is its own inverse).
    pub fn flip(&self, w: usize, d: usize) -> usize {
        if self.positive[w] {
            d
        } else {
            self.n[w] - 1 - d
        }
    }
}

/// One of the three views of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Axial,
    Coronal,
    Sagittal,
}

impl View {
    /// Left to right on the sheet.
    pub const ALL: [View; 3] = [View::Axial, View::Coronal, View::Sagittal];

    pub fn name(self) -> &'static str {
        match self {
            View::Axial => "axial",
            View::Coronal => "coronal",
            View::Sagittal => "sagittal",
        }
    }

    /// The world axis the slice fixes.
    pub fn fixed(self) -> usize {
        match self {
            View::Axial => 2,
            View::Coronal => 1,
            View::Sagittal => 0,
        }
    }

    /// The world axis running left to right (display coordinate increasing).
    pub fn across(self) -> usize {
        match self {
            View::Axial | View::Coronal => 0,
            View::Sagittal => 1,
        }
    }

    /// The world axis running top to bottom, and whether its display coordinate decreases
    /// downwards (superior up).
    pub fn down(self) -> (usize, bool) {
        match self {
            View::Axial => (1, false),
            View::Coronal | View::Sagittal => (2, true),
        }
    }

    /// The patient directions at the image's left and right edges, for the column header.
    pub fn left_right(self) -> (&'static str, &'static str) {
        match self {
            View::Axial | View::Coronal => ("R", "L"),
            View::Sagittal => ("A", "P"),
        }
    }
}

/// The display coordinate (of `n` voxels) sampled by pixel `p` of a `len`-pixel run: the
/// voxel whose span holds the pixel's centre, `floor((2p + 1) n / (2 len))`.
pub(crate) fn nearest(p: usize, len: usize, n: usize) -> usize {
    (((2 * p + 1) * n) / (2 * len)).min(n.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_of_ras_and_lps() {
        let ras = Geometry::from_ras([
            [3.0, 0.0, 0.0, 0.0],
            [0.0, 2.0, 0.0, 0.0],
            [0.0, 0.0, 5.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        let a = Axes::of(&ras, [30, 101, 122]);
        assert_eq!(a.vox, [0, 1, 2]);
        assert_eq!(a.positive, [false, false, true]);
        assert_eq!(a.n, [122, 101, 30]);
        assert_eq!(a.spacing, [3.0, 2.0, 5.0]);
        assert_eq!(a.flip(0, 0), 121);
        // k along A-P (towards anterior), i along S, j along L.
        let mut m = [[0.0; 4]; 4];
        m[2][0] = 1.0;
        m[0][1] = 2.0;
        m[1][2] = -3.0;
        m[3][3] = 1.0;
        let a = Axes::of(&Geometry { affine_lps: m }, [4, 5, 6]);
        assert_eq!(a.vox, [1, 2, 0]);
        assert_eq!(a.positive, [true, false, true]);
        assert_eq!(a.n, [5, 4, 6]);
        assert_eq!(a.spacing, [2.0, 3.0, 1.0]);
    }

    #[test]
    fn nearest_sampling() {
        assert_eq!(
            (0..6).map(|p| nearest(p, 6, 3)).collect::<Vec<_>>(),
            [0, 0, 1, 1, 2, 2]
        );
        assert_eq!((0..2).map(|p| nearest(p, 2, 5)).collect::<Vec<_>>(), [1, 3]);
    }
}
