//! Nodes that read and write image files.

pub mod dicom;
mod load_nifti;
pub mod nifti;
pub mod nrrd;
mod save_nifti;

pub use load_nifti::LoadNifti;
pub use save_nifti::SaveNifti;
