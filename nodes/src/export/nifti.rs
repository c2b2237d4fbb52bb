//! NIfTI export of a label map: uint8/uint16 voxels, the class table as a JSON sidecar, a
//! 3D Slicer colour table (`.ctbl`) and an ITK-SNAP label description (`.itksnap.txt`).

use super::preview::class_colour;
use crate::io::atomic::write_text;
use crate::io::nifti::sidecars;
use crate::io::sample::Sample;
use crate::node::{Ctx, NodeError};
use crate::value::{LabelMap, Value};
use std::path::Path;

/// Writes the label map and its class tables.
pub fn write_labels(path: &Path, labels: &LabelMap, ctx: &Ctx) -> Result<(), NodeError> {
    let t = labels.volume.data();
    let (min, max) = if t.numel() == 0 {
        (0, 0)
    } else {
        (t.min().int64_value(&[]), t.max().int64_value(&[]))
    };
    let sample = match (min, max) {
        (0.., ..=255) => Sample::Uint8,
        (0.., ..=65535) => Sample::Uint16,
        _ => {
            return Err(NodeError::file(
                path,
                format!(
                    "label ids run from {min} to {max}; a NIfTI label map for clinical tools \
                     holds 0..65535 (uint16): renumber the classes or use save_nifti"
                ),
            ))
        }
    };
    // Only classes present go into the tables, named as the label map names them.
    let present: Vec<i64> = if t.numel() == 0 {
        vec![]
    } else {
        let counts = t
            .flatten(0, -1)
            .to_kind(tch::Kind::Int64)
            .bincount::<tch::Tensor>(None, 0);
        let counts = Vec::<i64>::try_from(&counts).map_err(NodeError::from)?;
        (0..counts.len() as i64)
            .filter(|&i| counts[i as usize] > 0)
            .collect()
    };
    let classes: Vec<(u32, String)> = present
        .into_iter()
        .filter(|&id| id > 0)
        .map(|id| {
            let name = labels
                .classes
                .get(&(id as u32))
                .cloned()
                .unwrap_or_else(|| format!("class {id}"));
            (id as u32, name)
        })
        .collect();
    crate::io::nifti::write_as(path, &Value::Labels(labels.clone()), Some(sample), ctx)?;
    let [json_path, ctbl, itk] = sidecars(path);
    let json = serde_json::json!({
        "labels": path.file_name().and_then(|n| n.to_str()),
        "dtype": if sample == Sample::Uint8 { "uint8" } else { "uint16" },
        "classes": classes.iter().map(|(id, name)| serde_json::json!({
            "id": id, "name": name, "color": class_colour(*id),
        })).collect::<Vec<_>>(),
    });
    write_text(
        &json_path,
        &(serde_json::to_string_pretty(&json).unwrap_or_default() + "\n"),
    )?;
    write_text(&ctbl, &slicer_table(&classes))?;
    write_text(&itk, &itksnap_table(&classes))
}

/// 3D Slicer's colour table file: `id name r g b a` per line, names without spaces.
fn slicer_table(classes: &[(u32, String)]) -> String {
    let mut s = String::from("# Color table file written by vistaflow\n");
    s += &format!("# {} values\n0 background 0 0 0 0\n", classes.len() + 1);
    for (id, name) in classes {
        let [r, g, b] = class_colour(*id);
        s += &format!(
            "{id} {} {r} {g} {b} 255\n",
            name.replace(char::is_whitespace, "_")
        );
    }
    s
}

/// ITK-SNAP's label description file: `IDX R G B A VIS MSH "LABEL"` per line.
fn itksnap_table(classes: &[(u32, String)]) -> String {
    let mut s = String::from(
        "################################################\n\
         # ITK-SnAP Label Description File (written by vistaflow)\n\
         # Columns: IDX -R- -G- -B- -A-- VIS MSH LABEL\n\
         ################################################\n",
    );
    s += "    0     0    0    0        0  0  0    \"Clear Label\"\n";
    for (id, name) in classes {
        let [r, g, b] = class_colour(*id);
        s += &format!(
            "{id:5} {r:5} {g:4} {b:4}        1  1  1    \"{}\"\n",
            name.replace('"', "'")
        );
    }
    s
}
