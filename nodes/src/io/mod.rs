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

/// The most a deflate stream can expand (RFC 1951: about 1032:1): a compressed file of N bytes
/// holds at most this many times N, so a header declaring more is refused before allocating.
pub(crate) const MAX_INFLATE: u64 = 1032;

/// `1.5 GB`, `35.2 TB`: sizes in messages.
pub(crate) fn human_bytes(n: u64) -> String {
    let units = ["bytes", "KB", "MB", "GB", "TB", "PB", "EB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1000.0 && u + 1 < units.len() {
        x /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{x:.1} {}", units[u])
    }
}
