//! NRRD reading and writing, and the `load_nrrd` / `save_nrrd` nodes.
//!
//! Two nodes, as for NIfTI (not one `load_image` picking by extension): the params differ
//! (`compress` exists only for NRRD) and each kind's version then changes only with its own
//! format's code.
//!
//! Reading ([`read`]):
//! - **Files**: attached `.nrrd`/`.seg.nrrd` (header, blank line, data) and detached `.nhdr`
//!   with `data file:` one file, `LIST`, or a `%d` pattern (relative to the header's folder);
//!   `line skip` and `byte skip` (-1 for raw data at the end of the file). The format is
//!   recognised by the `NRRD000N` magic, not by the name.
//! - **Encodings** raw and gzip (`gz`), streamed straight into the tensor's memory; either
//!   `endian`. Types int8, uint8, int16, uint16, int32, uint32, int64, uint64, float, double
//!   in every NRRD spelling (`short`, `unsigned char`, ...). uint16 widens to int32 and uint32
//!   to int64 (tch has no such kinds, as in the NIfTI reader); uint64 is read as int64 and
//!   values of 2^63 or more are an error.
//! - **Geometry**: see [`geometry`]. The axes with a `space directions` vector are i, j, k;
//!   the tensor is `[k, j, i]`, or `[C, k, j, i]` when one axis is `none` (Slicer's layered
//!   segmentations, vector images; a `none` axis of size 1 is dropped). `space` may be
//!   left-posterior-superior (taken as is), right-anterior-superior (x, y negated),
//!   left-anterior-superior (y negated), or scanner-xyz / 3D-right-handed / a bare
//!   `space dimension: 3` (taken as LPS, as ITK does: DICOM patient space is the scanner's
//!   frame). 3D-left-handed, time spaces and 2D images are errors. Without any space,
//!   `spacings` and `axis mins` give an axis-aligned affine. `measurement frame` (which only
//!   affects vector values) and `centers` are ignored.
//! - **Data length**: too little data (raw or decompressed) is an error; more gzip data than
//!   the header says is an error (as pynrrd); trailing raw bytes are ignored with a warning
//!   (as ITK and pynrrd).
//! - **Labels** (`labels: true`): integer samples keep their kind; float ones must be whole
//!   numbers and go to the smallest of uint8/int16/int32/int64 that holds them. 3D Slicer
//!   `SegmentN_Name` / `SegmentN_LabelValue` pairs fill the class table.
//! - **Metadata**: only `source_format` (`nrrd`) and `nrrd_space` (the space as written).
//!   `content`, `labels`, units and other key/value pairs are not kept (free text that may
//!   hold patient data).
//!
//! Writing ([`write`]): NRRD0004, `space: left-posterior-superior`, `space directions` and
//! `space origin` from the affine in shortest round-trip decimals (exact when read back),
//! gzip (level 2) or raw, this machine's byte order, kinds `domain` (plus `list` for a
//! channel axis, written last), and Slicer segment keys for a label map's classes. Atomic.

mod dtype;
pub mod geometry;
mod header;
mod node;
mod read;
mod write;

pub use node::{LoadNrrd, SaveNrrd};

use crate::node::{Ctx, NodeError};
use crate::value::Value;
use std::path::{Path, PathBuf};

/// Metadata key: the file format read (`nrrd`).
pub const META_SOURCE_FORMAT: &str = "source_format";
/// Metadata key: the NRRD `space` the file was written in (`left-posterior-superior`,
/// `right-anterior-superior`, ...; `none` for files without one).
pub const META_SPACE: &str = "nrrd_space";

/// Reads the NRRD at `path` (attached or detached) as an image, or as a label map when
/// `labels` is true. The tensor is on the CPU.
pub fn read(path: &Path, labels: bool, ctx: &Ctx) -> Result<Value, NodeError> {
    read::read(path, labels, ctx)
}

/// Writes `value` to `path`: `.nrrd` holds header and data; `.nhdr` is a detached header with
/// the data in `<stem>.raw.gz` (or `<stem>.raw` when `compress` is false) beside it; other
/// names are refused. gzip-compressed when `compress`. Atomic: each file is written to a
/// temporary file in the same folder, fsynced and renamed (for `.nhdr` the data file first),
/// so a crash never leaves half a file. Missing parent folders are created.
pub fn write(path: &Path, value: &Value, compress: bool, ctx: &Ctx) -> Result<(), NodeError> {
    write::write(path, value, compress, ctx)
}

/// The data files of the NRRD header at `path` when they are detached (relative names taken
/// against the header's folder), for the cache key of the node that reads it. Empty for an
/// attached file or one that cannot be parsed (reading it then says why).
pub fn data_files(path: &Path) -> Vec<PathBuf> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    match header::Header::read(&mut std::io::BufReader::new(file)) {
        Ok(header::Header {
            data: header::DataFiles::Detached(files),
            ..
        }) => {
            let dir = path.parent().unwrap_or(Path::new(""));
            // One outside the folder is never read, not even to digest it.
            files
                .iter()
                .filter_map(|f| data_file_path(dir, f).ok())
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Where a detached data file named in a header is: inside the header's folder only. A
/// header is data from outside, and `data file: /etc/passwd` or `../../x` would read any
/// file as voxels; a user who means it links or copies the file beside the header.
pub fn data_file_path(dir: &Path, name: &str) -> Result<PathBuf, String> {
    use std::path::Component;
    let rel = Path::new(name);
    if rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        Ok(dir.join(rel))
    } else {
        Err(format!(
            "the data file `{name}` is outside the header's folder (an absolute path or one \
             through `..`): vistaflow reads data files only beside the header; link or copy \
             the file into the header's folder and name it there"
        ))
    }
}

/// The data file [`write`] puts beside a `.nhdr` header; `None` for an attached `.nrrd`.
pub fn written_data_file(path: &Path, compress: bool) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    (name.ends_with(".nhdr") && name.len() > 5)
        .then(|| path.with_file_name(write::data_file_name(name, compress)))
}
