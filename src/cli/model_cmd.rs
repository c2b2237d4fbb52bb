//! `vistaflow convert-weights` and `vistaflow classes`: the VISTA3D model's files and label
//! table.

use super::{EXIT_FAILED, EXIT_INVALID};
use std::path::Path;
use vistaflow_nodes::vista3d::{classes, weights};

/// Converts the bundle's pickled `model.pt` into a safetensors file: in-process through
/// libtorch's pickle reader when it can, else through Python (see `weights::convert_pickle`).
pub fn convert(src: &Path, dst: &Path, force: bool) -> i32 {
    if dst.exists() && !force {
        eprintln!(
            "error: {} exists; pass --force to replace it",
            dst.display()
        );
        return EXIT_INVALID;
    }
    if dst.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        eprintln!(
            "error: {}: the output must end in .safetensors",
            dst.display()
        );
        return EXIT_INVALID;
    }
    let python = std::env::var_os("VISTAFLOW_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "python3".into());
    match weights::convert_pickle(src, dst, &python) {
        Ok(n) => {
            let shapes = tch::Tensor::read_safetensors(dst)
                .map(|t| t.into_iter().map(|(k, t)| (k, t.size())).collect())
                .unwrap_or_default();
            let what = weights::infer_config(&shapes)
                .map(|c| c.describe())
                .unwrap_or_default();
            eprintln!(
                "wrote {} ({n} tensors, {what}); use it as `model:` of vista3d_auto",
                dst.display()
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}

/// Prints the label table: id, name, and how automatic segmentation treats the class.
pub fn list_classes() -> i32 {
    use std::io::Write;
    let t = classes::table();
    // Written with error checks so that `vistaflow classes | head` ends quietly.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{:>4}  {:<36} notes", "id", "name");
    for (id, name) in t.classes.iter().filter(|(id, _)| **id > 0) {
        let mut notes = Vec::new();
        if let Some(parts) = t.subclass.get(id) {
            notes.push(format!("segmented as its {} parts", parts.len()));
        }
        if t.everything_labels.contains(id) {
            notes.push("in `everything`".to_string());
        }
        if t.unsupported.contains(id) {
            notes.push("not trained for automatic segmentation".to_string());
        }
        if writeln!(out, "{id:>4}  {name:<36} {}", notes.join("; ")).is_err() {
            break;
        }
    }
    0
}
