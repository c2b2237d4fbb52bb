//! [`ModelFile`]: trained weights written by `vista3d_train`, passed to the nodes that load
//! weights.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Weights (a .safetensors file) and their card. The value names the file with its content
/// digest rather than holding the bytes: weights are large, and the engine already reruns the
/// node that wrote them when the file goes missing or changes, so the cached value always
/// names the file as written. The digest makes downstream cache keys follow the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    pub path: PathBuf,
    pub sha256: String,
    /// The model card (also next to the weights as .json).
    pub card: serde_json::Value,
}
