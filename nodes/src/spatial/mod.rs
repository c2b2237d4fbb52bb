//! Spatial nodes: `resample`, `crop_foreground`.
//!
//! The work is done by plain functions ([`resample_value`], [`resample_volume`],
//! [`reorient`], [`foreground_box`], [`crop`]) that tests and other nodes call directly; the
//! node kinds in `nodes.rs` only read params and ports.

pub mod components;
mod cpu;
mod crop;
pub mod grid;
mod node;
mod orient;
mod resample;
mod target;

pub use crop::{crop, foreground_box, parse_list, CropBox, META_END, META_FROM_SHAPE, META_START};
pub use grid::Grid;
pub use node::{CropForeground, Resample};
pub use orient::{reorient, Orientation, CODES};
pub use resample::{resample_volume, resample_volume_on_tensors, Interp, Outside};
pub use target::{resample_value, InterpChoice, Target};
