//! NIfTI-1/NIfTI-2 reading and NIfTI-1 writing, geometry as nibabel reads it.

use crate::node::{Ctx, NodeError};
use crate::value::Value;
use std::path::Path;

/// Reads `path` as an image, or as a label map when `labels` is true.
pub fn read(path: &Path, labels: bool, ctx: &Ctx) -> Result<Value, NodeError> {
    let _ = (labels, ctx);
    Err(NodeError::file(path, "NIfTI reading is not implemented yet"))
}

/// Writes `value` to `path` atomically (temp file, fsync, rename).
pub fn write(path: &Path, value: &Value, ctx: &Ctx) -> Result<(), NodeError> {
    let _ = (value, ctx);
    Err(NodeError::file(path, "NIfTI writing is not implemented yet"))
}
