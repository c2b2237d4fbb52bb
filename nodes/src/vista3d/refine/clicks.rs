//! Clicks as a workflow gives them (`points`), checked and placed on the input image's grid.

use super::super::classes::table;
use crate::spatial::grid::{inverse, Mat4};
use crate::value::Geometry;
use serde_json::Value as Json;

/// Where a click is, as written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Place {
    /// Voxel indices `[i, j, k]` of the input image (its tensor is `[k, j, i]`).
    Voxel([i64; 3]),
    /// LPS millimetres (DICOM/ITK patient space).
    Lps([f64; 3]),
    /// RAS millimetres (NIfTI/nibabel world space).
    Ras([f64; 3]),
}

/// One checked click.
#[derive(Clone, Debug, PartialEq)]
pub struct Click {
    pub place: Place,
    pub positive: bool,
    /// Global VISTA3D class id (above `last_supported`: a zero-shot structure).
    pub class: u32,
}

/// Ids with special point labels (2/3 instead of 0/1): MONAI's `VISTA3D.convert_point_label`
/// list (`special_index_network` in vista3d_labels.json: tumours, vessels, trachea). The
/// other list in that file (`VistaPreTransformd`'s default) names lung lobes and a cyst and is
/// not the one the network was trained with.
pub fn special_classes() -> &'static [u32] {
    static S: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let j: Json = serde_json::from_str(include_str!("../vista3d_labels.json"))
            .expect("the embedded vista3d_labels.json is valid");
        j["special_index_network"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64())
                    .map(|v| v as u32)
                    .collect()
            })
            .unwrap_or_default()
    })
}

const POINT_HELP: &str = "each point is an object with exactly one of `voxel: [i, j, k]`, \
    `lps_mm: [x, y, z]` or `ras_mm: [x, y, z]`, plus `label: positive|negative` and `class` \
    (a VISTA3D class name or id), e.g. {voxel: [60, 48, 30], label: positive, class: liver}";

fn three(v: &Json, what: &str, n: usize) -> Result<[f64; 3], String> {
    let a = v
        .as_array()
        .filter(|a| a.len() == 3 && a.iter().all(Json::is_number))
        .ok_or_else(|| format!("point {n}: `{what}` must be a list of 3 numbers, found {v}"))?;
    Ok(std::array::from_fn(|i| a[i].as_f64().unwrap_or(f64::NAN)))
}

/// Parses and checks the `points` param.
pub fn parse(v: &Json) -> Result<Vec<Click>, String> {
    let items = v
        .as_array()
        .ok_or_else(|| format!("`points` must be a list of clicks; {POINT_HELP}"))?;
    if items.is_empty() {
        return Err(format!(
            "`points` is empty: give at least one click; {POINT_HELP}"
        ));
    }
    items.iter().enumerate().map(|(n, p)| one(p, n)).collect()
}

fn one(p: &Json, n: usize) -> Result<Click, String> {
    let obj = p
        .as_object()
        .ok_or_else(|| format!("point {n} is {p}, not an object; {POINT_HELP}"))?;
    for k in obj.keys() {
        if !["voxel", "lps_mm", "ras_mm", "label", "class"].contains(&k.as_str()) {
            return Err(format!("point {n}: unknown key `{k}`; {POINT_HELP}"));
        }
    }
    let places: Vec<&str> = ["voxel", "lps_mm", "ras_mm"]
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    if places.len() != 1 {
        return Err(format!(
            "point {n}: give exactly one of `voxel`, `lps_mm`, `ras_mm` (found {}); {POINT_HELP}",
            if places.is_empty() {
                "none".to_string()
            } else {
                places.join(", ")
            }
        ));
    }
    let place = match places[0] {
        "voxel" => {
            let a = three(&obj["voxel"], "voxel", n)?;
            if a.iter().any(|x| x.fract() != 0.0 || !x.is_finite()) {
                return Err(format!(
                    "point {n}: `voxel` holds whole voxel indices [i, j, k], found {}; give \
                     millimetres as `lps_mm` or `ras_mm`",
                    obj["voxel"]
                ));
            }
            Place::Voxel(a.map(|x| x as i64))
        }
        "lps_mm" => Place::Lps(three(&obj["lps_mm"], "lps_mm", n)?),
        _ => Place::Ras(three(&obj["ras_mm"], "ras_mm", n)?),
    };
    let positive = match obj.get("label").and_then(Json::as_str) {
        Some("positive") => true,
        Some("negative") => false,
        _ => {
            return Err(format!(
                "point {n}: `label` must be `positive` or `negative`, found {}",
                obj.get("label")
                    .map_or("nothing".to_string(), |l| l.to_string())
            ))
        }
    };
    let class = obj
        .get("class")
        .ok_or_else(|| format!("point {n}: no `class`; {POINT_HELP}"))?;
    let r = table()
        .resolve(class)
        .map_err(|e| format!("point {n}: {e}"))?;
    let class = match r.ids.as_slice() {
        [one] => *one,
        parts => {
            return Err(format!(
                "point {n}: class {class} is segmented through its parts ({}); click on one \
                 part at a time",
                parts
                    .iter()
                    .map(|i| format!("`{}`", table().classes.get(i).map_or("?", |s| s)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    };
    Ok(Click {
        place,
        positive,
        class,
    })
}

/// The `points` param check, run when the workflow is loaded.
pub fn check_param(v: &Json) -> Result<(), String> {
    parse(v).map(|_| ())
}

fn apply(m: &Mat4, p: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|r| (0..3).map(|c| m[r][c] * p[c]).sum::<f64>() + m[r][3])
}

/// The voxel `[i, j, k]` of an image with `geometry` and `shape_ijk` that a click is on
/// (millimetres are rounded to the nearest voxel centre), or why not.
pub fn voxel_of(
    click: &Click,
    n: usize,
    geometry: &Geometry,
    shape_ijk: [i64; 3],
) -> Result<[i64; 3], String> {
    let v = match click.place {
        Place::Voxel(v) => v,
        Place::Lps(p) | Place::Ras(p) => {
            let lps = match click.place {
                Place::Ras(_) => [-p[0], -p[1], p[2]],
                _ => p,
            };
            let inv = inverse(&geometry.affine_lps)
                .ok_or_else(|| "the image's affine cannot be inverted".to_string())?;
            // Rounded so that a click given in millimetres is the same click as the voxel it
            // falls in (MONAI rounds clicks to voxels when it merges components, too).
            apply(&inv, lps).map(|x| x.round() as i64)
        }
    };
    if (0..3).any(|a| v[a] < 0 || v[a] >= shape_ijk[a]) {
        let given = match click.place {
            Place::Voxel(x) => format!("voxel {x:?}"),
            Place::Lps(x) => format!("lps_mm {x:?} (voxel {v:?})"),
            Place::Ras(x) => format!("ras_mm {x:?} (voxel {v:?})"),
        };
        return Err(format!(
            "point {n}: {given} is outside the image, whose voxels run from [0, 0, 0] to {:?} \
             ([i, j, k]); check the coordinates and their space (voxel, lps_mm or ras_mm)",
            shape_ijk.map(|s| s - 1)
        ));
    }
    Ok(v)
}

/// Maps a voxel of one grid to the nearest voxel of another through the patient (MONAI's
/// `inv(affine_after) @ affine_original`).
pub fn map_voxel(from: &Geometry, to: &Geometry, v: [i64; 3]) -> Option<[i64; 3]> {
    let inv = inverse(&to.affine_lps)?;
    let world = apply(&from.affine_lps, v.map(|x| x as f64));
    Some(apply(&inv, world).map(|x| x.round() as i64))
}
