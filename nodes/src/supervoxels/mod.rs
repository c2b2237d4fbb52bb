//! `supervoxels`: 3D SLIC supervoxels of a CT, the pseudo-label step of the VISTA3D paper
//! (SLIC with `n_segments` 400, compactness 0.01, sigma 3, air below -800 HU zeroed), used to
//! make zero-shot training targets. Not needed to run the model.
//!
//! Pipeline, one module per step:
//! 1. [`node`]: HU window to [0, 1] and the body mask (voxels at or above `air_below_hu`);
//! 2. [`smooth`]: Gaussian smoothing in voxels (scipy's `gaussian_filter`, mode `reflect`);
//! 3. [`slic`]: seeds on a grid over the body's bounding box, spread over the body by a
//!    spatial-only k-means pass (as scikit-image's masked SLIC), then k-means on (position,
//!    intensity) restricted to windows of +-2S around each centre (scikit-image's distance);
//! 4. [`connectivity`]: fragments below half the mean supervoxel size merged into a
//!    neighbour, ids renumbered 1..N in raster order.
//!
//! The output is a label map of int32 ids 1..N with 0 for air and an empty class table: the
//! ids are arbitrary cluster numbers, not classes, so naming 400 of them would add nothing.

mod connectivity;
mod node;
mod slic;
mod smooth;

pub use node::Supervoxels;
