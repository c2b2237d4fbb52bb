//! NIfTI-1/NIfTI-2 reading and NIfTI-1 writing, geometry as nibabel reads it.
//!
//! Reading (single-file `.nii` or `.nii.gz`; gzip is detected by its magic bytes, not by the
//! name; either byte order):
//! - **Affine**: nibabel's `img.affine` (`get_best_affine`): the sform when `sform_code != 0`,
//!   else the qform when `qform_code != 0`, else nibabel's base affine (voxel sizes on the
//!   diagonal, x negated, volume centred on 0), after nibabel's header fixes (see
//!   [`header::Header::nibabel_fix`]). It is converted from RAS to the project's LPS
//!   [`Geometry`](crate::value::Geometry).
//! - **Voxels**: the tensor is `[k, j, i]` (`[D, H, W]`), exactly the on-disk order, or
//!   `[C, D, H, W]` with `C = dim[4]` for a true 4D file (a 4th dimension of size 1 is
//!   dropped). uint16 widens to int32 and uint32 to int64 (tch has no such unsigned kinds).
//! - **Scaling** as nibabel: `scl_slope` 0 or not finite means none, slope 1 / inter 0 means
//!   none; otherwise an image becomes `raw * slope + inter` computed in float64 and returned
//!   as float32 (float64 files stay float64). nibabel returns float64 there; ours is that
//!   value rounded once to float32.
//! - **Labels** (`labels: true`): integer voxels keep their kind. Float voxels, and scaled
//!   ones, must all be whole numbers and become the smallest of uint8, int16, int32, int64
//!   that holds their range; anything else is an error.
//! - **Metadata**: only `source_format` (`nifti1`/`nifti2`) and `nifti_xform_code` (the code of
//!   the transform used, 0 for the base affine). No file names, no `descrip`/`aux_file`
//!   (free text that may hold patient data).
//!
//! Writing: NIfTI-1, see [`write`].

mod affine;
mod dtype;
mod header;
mod node;
mod read;
mod write;
pub(crate) use write::write_as;

pub use node::{LoadNifti, SaveNifti};

use crate::node::{Ctx, NodeError};
use crate::value::Value;
use std::path::{Path, PathBuf};

/// Metadata key: the file format read (`nifti1` or `nifti2`).
pub const META_SOURCE_FORMAT: &str = "source_format";
/// Metadata key: the NIfTI xform code of the affine (1 scanner, 2 aligned, 3 Talairach,
/// 4 MNI, 5 template; 0 when neither transform was set). [`write`] writes it back.
pub const META_XFORM_CODE: &str = "nifti_xform_code";

/// Reads `path` as an image, or as a label map when `labels` is true. The tensor is on the CPU.
pub fn read(path: &Path, labels: bool, ctx: &Ctx) -> Result<Value, NodeError> {
    read::read(path, labels, ctx)
}

/// Writes `value` to `path` as a single-file NIfTI-1: gzip-compressed when the name ends in
/// `.nii.gz`, raw for `.nii` (other names are refused). Atomic: a temporary file in the same
/// folder is written, fsynced and renamed over `path`, so a crash never leaves half a file.
/// Missing parent folders are created.
///
/// - Voxels in their own kind (uint8, int8, int16, int32, int64, float32, float64; bool is
///   written as uint8, half/bfloat16 as float32), `scl_slope` 1 and `scl_inter` 0.
/// - sform = the exact RAS affine; qform = the nearest rotation with the column lengths as
///   `pixdim[1..4]` and qfac in `pixdim[0]` (as nibabel's `set_qform(strip_shears=True)`:
///   a sheared affine is exact only in the sform).
/// - Both codes are the volume's `nifti_xform_code` when it came from a NIfTI file with one
///   (so an MNI template stays MNI), else 1 (scanner): vistaflow's geometry is DICOM patient
///   space, which is the scanner's frame.
pub fn write(path: &Path, value: &Value, ctx: &Ctx) -> Result<(), NodeError> {
    write::write(path, value, ctx)
}

/// The class tables `export` writes beside a label map and `load_nifti` reads back:
/// `seg.nii.gz` -> `seg.json`, `seg.ctbl`, `seg.itksnap.txt`.
pub fn sidecars(path: &Path) -> [PathBuf; 3] {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("labels");
    let stem = name
        .strip_suffix(".nii.gz")
        .or_else(|| name.strip_suffix(".nii"))
        .unwrap_or(name);
    let with = |ext: &str| path.with_file_name(format!("{stem}{ext}"));
    [with(".json"), with(".ctbl"), with(".itksnap.txt")]
}
