//! The `vista3d_auto` node: automatic segmentation of the classes asked for.
//!
//! The bundle's preprocessing (foreground crop at HU > 0 with a 10-voxel margin, HU window
//! scaling to [0, 1], orientation to RAS), streaming sliding-window inference, its
//! post-processing (argmax over the classes, background where no logit is positive), and the
//! inverse of the preprocessing so that labels land on the input's own grid.

mod node;

pub use node::Vista3dAuto;
