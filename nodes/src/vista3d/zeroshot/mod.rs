//! `vista3d_zeroshot`: a structure outside VISTA3D's classes segmented from clicks alone.
//! The clicks go through `vista3d_refine`'s pipeline with a class id above 132, which the
//! point head serves with its zero-shot embedding; the mask can then be snapped to
//! supervoxels (see [`super::snap`] for what that adds and when).

mod node;

pub use node::Vista3dZeroshot;
