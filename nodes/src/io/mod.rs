//! Nodes that read and write image files.

pub mod atomic;
pub mod dicom;
mod labels;
mod load_port;
mod messages;
pub mod nifti;
pub mod nrrd;
pub(crate) mod painter;
pub mod rtstruct;
pub(crate) mod sample;
pub mod seg;
mod stream;

pub use nifti::{LoadNifti, SaveNifti};

/// The most a deflate stream can expand (RFC 1951: about 1032:1): a compressed file of N bytes
/// holds at most this many times N, so a header declaring more is refused before allocating.
pub(crate) const MAX_INFLATE: u64 = 1032;
