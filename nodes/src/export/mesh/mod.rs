//! Surface meshes of label maps (one per class, LPS mm) and their STL files.

use crate::node::{Ctx, NodeError};
use crate::value::LabelMap;
use std::path::{Path, PathBuf};

/// How meshes are made.
#[derive(Clone, Debug)]
pub struct MeshOptions {
    /// Smoothing iterations (0 = none).
    pub smooth_iterations: u32,
    /// Sample every `step`-th voxel (1 = full resolution); larger steps decimate.
    pub step: u32,
}

/// Writes one binary STL per class of `labels` into the folder `dir`; returns the files.
pub fn write_stl(
    dir: &Path,
    labels: &LabelMap,
    opts: &MeshOptions,
    ctx: &Ctx,
) -> Result<Vec<PathBuf>, NodeError> {
    let _ = (dir, labels, opts, ctx);
    Err(NodeError::Invalid("stl export is not written yet".into()))
}
