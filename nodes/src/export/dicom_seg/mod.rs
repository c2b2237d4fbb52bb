//! DICOM Segmentation objects (binary, one segment per class) referencing the source series.

use crate::node::{Ctx, NodeError};
use crate::value::{LabelMap, Volume};
use std::path::Path;

/// Writes `labels` (on `source`'s grid) as a DICOM SEG file at `path`.
pub fn write(path: &Path, labels: &LabelMap, source: &Volume, ctx: &Ctx) -> Result<(), NodeError> {
    let _ = (path, labels, source, ctx);
    Err(NodeError::Invalid("dicom_seg export is not written yet".into()))
}
