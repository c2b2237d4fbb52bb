//! Nodes that read and write image files.

pub(crate) mod atomic;
pub mod dicom;
mod labels;
mod load_port;
mod messages;
pub mod nifti;
pub mod nrrd;
pub(crate) mod sample;
mod stream;

pub use nifti::{LoadNifti, SaveNifti};
