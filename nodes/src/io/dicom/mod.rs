//! DICOM series loading (`load_dicom`).
//!
//! **Input.** `path` is a folder, searched recursively (symlinks followed), or one file.
//! Every file is probed by its magic bytes: files without `DICM` (at byte 128, or at 0 without
//! a preamble) are skipped and counted in a warning; so are DICOM files that are not grey-level
//! cross-sectional images (a DICOMDIR, SR, SEG, RT objects, colour images, images without
//! ImagePositionPatient/ImageOrientationPatient/PixelSpacing, multi-frame files without
//! per-frame functional groups). DICOM files whose header cannot be parsed are skipped with a
//! warning naming the file and the problem. Nothing loadable at all is an error that counts
//! what was found (an empty folder says so); for a single-file `path` the file's own problem is
//! the error.
//!
//! **Series.** Frames are grouped by SeriesInstanceUID; where it is empty (anonymised data such
//! as TotalSegmentator's sample) by FrameOfReferenceUID, StudyInstanceUID, Modality,
//! SeriesNumber, SeriesDescription, ImageType, ConvolutionKernel, SliceThickness, EchoTime and
//! EchoNumbers. Within a group, frames are split further by size, orientation and pixel spacing
//! (so a localizer in the same series is its own candidate). The params `series_uid`,
//! `series_number`, `modality`, `description` (regex on SeriesDescription) and `min_slices`
//! filter the candidates; without `modality`, CT candidates are preferred when there are any;
//! then the one with the most slices is loaded (the others are named in a warning). A tie is an
//! error listing the tied candidates by modality, slice count, size, spacing, orientation and
//! SeriesNumber (never UIDs or descriptions) and the params to choose with.
//!
//! **Geometry.** Slices are sorted by the projection of ImagePositionPatient on the slice normal
//! (row direction x column direction), never by InstanceNumber. The volume's tensor is
//! `[k, j, i]` and its affine maps voxel `(i, j, k)` to LPS mm (DICOM patient space): `i` steps
//! along the row direction by PixelSpacing[1], `j` along the column direction by
//! PixelSpacing[0], `k` by `(last position - first position) / (n - 1)` (the slice normal times
//! the slice step), origin at the first sorted slice's ImagePositionPatient. Checks:
//! two slices at one position is an error (echoes or time points in one series); slice
//! positions running more than 0.01 degrees *and* 0.02 mm away from the normal is gantry tilt,
//! an error with the angle; a gap differing from the median gap by more than 1% (at least
//! 0.001 mm) is an error with the positions and the expected step, unless `allow_irregular`,
//! which resamples onto a regular grid from the first to the last slice at about the median
//! step by linear interpolation along the normal (meta `dicom_slices_resampled`). A one-slice
//! series is allowed: its `k` step is SliceThickness (1 mm when absent).
//!
//! **Voxels.** Always float32: stored values are masked to BitsStored (sign-extended when
//! PixelRepresentation is 1), then `value * RescaleSlope + RescaleIntercept` in f64, rounded
//! once to f32 (exact for 16-bit data with integer rescale; HU for CT). Enhanced CT/MR take
//! position, orientation, spacing and rescale per frame from the functional groups.
//! Transfer syntaxes: uncompressed (little/big endian, implicit/explicit), deflated, RLE,
//! JPEG baseline/extended/lossless (pure Rust) and JPEG 2000 (OpenJPEG C, built by cargo); a series may mix them.
//! JPEG-LS is not enabled (its decoder, CharLS, needs a C++/cmake build) and fails with the
//! decoder's message naming the file.
//!
//! **Metadata** (`Volume::meta`): `source_format` = `dicom`, `modality`, `units` (`HU` for CT,
//! else RescaleType when given). **Identity** (`Volume::identity`, never logged): Study,
//! Series, Frame of Reference and SOP Class UIDs, the SOP Instance UID (and frame number for
//! multi-frame files) of each slice in `k` order, and the patient/study module attributes.
//! Decoding runs in parallel over files; progress is reported in slices.

pub(crate) mod attrs;
mod enhanced;
mod frame;
pub(crate) mod header;
mod identity;
mod layout;
mod lengths;
mod load;
mod node;
mod pixels;
mod scan;
mod series;

pub use load::{META_MODALITY, META_RESAMPLED, META_SOURCE_FORMAT, META_UNITS};
pub use node::LoadDicom;
pub use scan::series_uids;
