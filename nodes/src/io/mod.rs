//! Nodes that read and write image files.

pub(crate) mod atomic;
pub mod dicom;
mod labels;
mod load_nifti;
mod load_port;
mod messages;
pub mod nifti;
pub mod nrrd;
pub(crate) mod sample;
mod save_nifti;
mod stream;

pub use load_nifti::LoadNifti;
pub use save_nifti::SaveNifti;
