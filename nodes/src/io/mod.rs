//! Nodes that read and write image files.

mod load_nifti;
pub mod nifti;
mod save_nifti;

pub use load_nifti::LoadNifti;
pub use save_nifti::SaveNifti;
