//! The PNG preview sheet: axial, coronal and sagittal views through each class, coloured
//! overlays and a legend.

use crate::node::{Ctx, NodeError};
use crate::value::{LabelMap, Volume};
use std::path::Path;

/// Writes the preview sheet of `labels` (over `image` when given, on its grid) to `path`.
pub fn write_png(
    path: &Path,
    labels: &LabelMap,
    image: Option<&Volume>,
    ctx: &Ctx,
) -> Result<(), NodeError> {
    let _ = (path, labels, image, ctx);
    Err(NodeError::Invalid("png export is not written yet".into()))
}
