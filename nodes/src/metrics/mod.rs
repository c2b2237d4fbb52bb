//! `metrics`: how well a prediction agrees with a reference (Dice, IoU, Hausdorff, surface
//! distances, surface Dice) per class, or, without a reference, quality-control figures of
//! one label map. Definitions and empty-mask values follow MONAI 1.6
//! (docs/metrics-conventions.md); distances are exact Euclidean distances in mm.

mod components;
mod distance;
pub(crate) mod edt;
mod grid;
mod node;
mod overlap;
mod pairs;
mod qc;
mod surface;

pub use node::Metrics;
