//! `export`: the files a workflow hands to people and other tools (NIfTI + class tables,
//! DICOM SEG, STL meshes, a PNG preview sheet, a JSON provenance report).

pub mod dicom_seg;
pub mod mesh;
pub mod nifti;
mod node;
pub mod preview;
mod report;
pub mod rtstruct;

pub use node::Export;
