//! The run's provenance record as a JSON file (`export` with `format: report`).

use crate::io::atomic::write_text;
use crate::node::{Ctx, NodeError};
use crate::value::LabelMap;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Writes the engine's run record, plus the sha256 of the label voxels when given (so two
/// runs can be shown to give the same result byte for byte).
pub fn write_report(path: &Path, labels: Option<&LabelMap>, ctx: &Ctx) -> Result<(), NodeError> {
    let mut record = ctx.run_record().ok_or_else(|| {
        NodeError::Invalid(
            "format `report` records a workflow run; it has nothing to record outside one \
             (run it with `vistaflow run`)"
                .into(),
        )
    })?;
    if let Some(l) = labels {
        let t = l.volume.data().to_device(tch::Device::Cpu).contiguous();
        // copy_data_u8 takes a count of elements, the buffer is in bytes (a byte count here
        // failed on every label map wider than uint8)
        let mut bytes = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, t.numel())
            .map_err(NodeError::from)?;
        record["result"] = serde_json::json!({
            "shape": t.size(),
            "dtype": format!("{:?}", t.kind()).to_lowercase(),
            "voxels_sha256": format!("{:x}", Sha256::digest(&bytes)),
            "affine_lps": l.volume.geometry().affine_lps,
            "classes": l.classes,
        });
    }
    let text = serde_json::to_string_pretty(&record).unwrap_or_default() + "\n";
    write_text(path, &text)
}
