//! What a viewer (`vistaflow serve`) needs from values: the volumes as NIfTI for the page, a
//! legend of the classes shown, and where a click falls.

use crate::export::preview::class_colour;
use crate::node::{Ctx, NodeError};
use crate::value::{LabelMap, Value, Volume};
use crate::vista3d::refine::{voxel_of, Click, Place};
use serde::Serialize;
use std::path::Path;

/// One class of a label map as the page's legend shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LegendEntry {
    pub id: u32,
    pub name: String,
    /// The class colour of every export (preview PNGs, NIfTI colour tables, DICOM SEG).
    pub rgb: [u8; 3],
    pub voxels: i64,
    pub ml: f64,
}

/// The classes present in `labels` (background left out), with their volumes.
pub fn legend(labels: &LabelMap) -> Result<Vec<LegendEntry>, String> {
    let t = labels.volume.data();
    if t.numel() == 0 {
        return Ok(vec![]);
    }
    // bincount takes any integer kind: no int64 copy of the whole map (8x its size).
    let flat = t.flatten(0, -1);
    let min = flat.min().int64_value(&[]);
    if min < 0 {
        return Err(format!("the label map holds a negative class id ({min})"));
    }
    let counts =
        Vec::<i64>::try_from(&flat.bincount::<tch::Tensor>(None, 0)).map_err(|e| e.to_string())?;
    let ml_per_voxel = labels.volume.geometry().spacing().iter().product::<f64>() / 1000.0;
    // Above it an id is a zero-shot structure (the refine node's rule).
    let last_known = crate::vista3d::classes::table().last_supported;
    Ok(counts
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, &n)| n > 0)
        .map(|(id, &n)| {
            let id = id as u32;
            LegendEntry {
                id,
                name: labels.classes.get(&id).cloned().unwrap_or_else(|| {
                    if id > last_known {
                        format!("new structure {id}") // a zero-shot id, as the page names it
                    } else {
                        format!("class {id}")
                    }
                }),
                rgb: class_colour(id),
                voxels: n,
                ml: n as f64 * ml_per_voxel,
            }
        })
        .collect())
}

/// The voxel `[i, j, k]` of `volume` nearest to RAS millimetres `ras` (as the refine node
/// places a `ras_mm` click), or why it is outside.
pub fn voxel_at(volume: &Volume, ras: [f64; 3]) -> Result<[i64; 3], String> {
    let click = Click {
        place: Place::Ras(ras),
        positive: true,
        class: 0,
    };
    let [nk, nj, ni] = volume.spatial_shape();
    voxel_of(&click, 1, volume.geometry(), [ni, nj, nk])
}

/// The value of `volume` at voxel `[i, j, k]` (its tensor is `[k, j, i]`).
pub fn value_at(volume: &Volume, v: [i64; 3]) -> f64 {
    volume.data().double_value(&[v[2], v[1], v[0]])
}

/// Where the patient is: the body contour of the `structures` node (`body_hu`), so that a
/// click in the table or the air around the patient is refused and one in a lung is not.
pub struct Body {
    mask: Vec<bool>,
    shape: [i64; 3],
}

/// The HU threshold of the body contour, as in workflows/planning-rtstruct.yaml.
pub const BODY_HU: f64 = -500.0;

impl Body {
    pub fn of(image: &Volume) -> Result<Body, String> {
        let t = image
            .data()
            .to_device(tch::Device::Cpu)
            .to_kind(tch::Kind::Float)
            .flatten(0, -1);
        let values = Vec::<f32>::try_from(&t).map_err(|e| e.to_string())?;
        let [nk, nj, ni] = image.spatial_shape();
        let mask = crate::structures::ops::body(&values, [nk, nj, ni].map(|x| x as usize), BODY_HU);
        Ok(Body {
            mask,
            shape: [ni, nj, nk],
        })
    }

    /// Whether voxel `[i, j, k]` is inside the body.
    pub fn contains(&self, v: [i64; 3]) -> bool {
        let [ni, nj, _] = self.shape;
        (0..3).all(|a| (0..self.shape[a]).contains(&v[a]))
            && self.mask[((v[2] * nj + v[1]) * ni + v[0]) as usize]
    }
}

/// Writes `value` as an uncompressed NIfTI-1 file for the page (a browser reads it at once;
/// NiiVue reads the affine, so the views are in patient space).
pub fn write_nifti(path: &Path, value: &Value) -> Result<(), NodeError> {
    crate::io::nifti::write(path, value, &Ctx::cpu())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Geometry;
    use std::collections::BTreeMap;
    use tch::{Kind, Tensor};

    fn labels() -> LabelMap {
        // [k, j, i] = [2, 3, 4]; 2 x 2 x 3 mm voxels = 0.012 ml.
        let data = Tensor::zeros([2, 3, 4], (Kind::Uint8, tch::Device::Cpu));
        let _ = data.get(0).get(1).get(2).fill_(5);
        let _ = data.get(1).fill_(1);
        let _ = data.get(0).get(2).get(3).fill_(133);
        let geometry = Geometry::axis_aligned([2.0, 2.0, 3.0], [10.0, 20.0, 30.0]);
        let classes = BTreeMap::from([(1, "spleen".to_string()), (5, "liver".to_string())]);
        LabelMap::new(Volume::new(data, geometry).unwrap(), classes).unwrap()
    }

    #[test]
    fn legend_counts_each_present_class_with_its_volume() {
        let l = legend(&labels()).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(
            (l[0].id, l[0].name.as_str(), l[0].voxels),
            (1, "spleen", 12)
        );
        assert!((l[0].ml - 12.0 * 0.012).abs() < 1e-12);
        assert_eq!((l[1].id, l[1].voxels), (5, 1));
        assert_eq!(l[1].rgb, class_colour(5));
        assert_eq!((l[2].id, l[2].name.as_str()), (133, "new structure 133"));
    }

    #[test]
    fn a_click_in_ras_lands_on_the_nearest_voxel_and_reads_its_value() {
        let l = labels();
        // Voxel [2, 1, 0] is at LPS (14, 22, 30) = RAS (-14, -22, 30); 0.9 mm off still rounds to it.
        let v = voxel_at(&l.volume, [-14.9, -21.1, 30.4]).unwrap();
        assert_eq!(v, [2, 1, 0]);
        assert_eq!(value_at(&l.volume, v), 5.0);
        let far = voxel_at(&l.volume, [-14.0, -22.0, 300.0]).unwrap_err();
        assert!(far.contains("outside the image"), "{far}");
    }

    #[test]
    fn the_body_holds_the_patient_and_its_lungs_not_the_air_around() {
        // 12^3 of air (-1000 HU), a 8^3 block of tissue (40 HU) holding a 2^3 "lung" (-800).
        let data = Tensor::full([12, 12, 12], -1000.0, (Kind::Float, tch::Device::Cpu));
        let _ = data
            .narrow(0, 2, 8)
            .narrow(1, 2, 8)
            .narrow(2, 2, 8)
            .fill_(40.0);
        let _ = data
            .narrow(0, 5, 2)
            .narrow(1, 5, 2)
            .narrow(2, 5, 2)
            .fill_(-800.0);
        let image = Volume::new(data, Geometry::axis_aligned([1.0; 3], [0.0; 3])).unwrap();
        let body = Body::of(&image).unwrap();
        assert!(body.contains([3, 3, 3]));
        assert!(body.contains([5, 6, 5]), "a lung is inside the body");
        assert!(!body.contains([0, 0, 0]));
        assert!(!body.contains([11, 5, 5]));
        assert!(
            !body.contains([12, 5, 5]),
            "outside the image is outside the body"
        );
    }
}
