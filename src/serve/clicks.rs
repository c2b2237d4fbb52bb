//! A click from the page, placed on the refine node's image: the voxel it is on, that voxel's
//! centre in RAS millimetres (so the same click replays on any grid the workflow makes), and
//! the class. As a `points` entry and as the `points_file` CSV.

use serde::Serialize;
use serde_json::{json, Value as Json};
use vistaflow_nodes::value::Volume;
use vistaflow_nodes::viewer::{self, Body};
use vistaflow_nodes::vista3d::classes::table;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Click {
    pub ras_mm: [f64; 3],
    pub voxel: [i64; 3],
    pub positive: bool,
    pub class: u32,
    pub class_name: String,
}

impl Click {
    /// The click at RAS mm `ras` on `image`, or why it cannot be one (outside the image or
    /// the body, a class VISTA3D does not take a click for).
    pub fn place(
        image: &Volume,
        body: &Body,
        ras: [f64; 3],
        positive: bool,
        class: u32,
    ) -> Result<Click, String> {
        let class_name = class_name(class)?;
        let voxel = viewer::voxel_at(image, ras).map_err(|e| {
            format!(
                "the click is outside the image: {}",
                e.trim_start_matches("point 1: ")
            )
        })?;
        if !body.contains(voxel) {
            return Err(format!(
                "the click at voxel {voxel:?} is outside the body ({:.0} HU there; the body is \
                 the patient's outline above {} HU): click inside the patient",
                viewer::value_at(image, voxel),
                viewer::BODY_HU
            ));
        }
        let centre = image
            .geometry()
            .affine_ras()
            .map(|row| (0..3).map(|c| row[c] * voxel[c] as f64).sum::<f64>() + row[3]);
        // Rounded to a micrometre: the CSV and the report stay readable, the voxel the same.
        let ras_mm = [0, 1, 2].map(|a| (centre[a] * 1000.0).round() / 1000.0);
        Ok(Click {
            ras_mm,
            voxel,
            positive,
            class,
            class_name,
        })
    }

    /// The refine node's `points` entry.
    pub fn as_point(&self) -> Json {
        json!({
            "ras_mm": self.ras_mm,
            "label": if self.positive { "positive" } else { "negative" },
            "class": self.class,
        })
    }
}

/// The class's name, or why a click cannot take it.
fn class_name(class: u32) -> Result<String, String> {
    let t = table();
    if class == 0 {
        return Err("choose a class for the click (background is not one)".into());
    }
    // Above it: a new (zero-shot) structure, as the refine node decides.
    if class > t.last_supported {
        return Ok(format!("new structure {class}"));
    }
    let name = t
        .classes
        .get(&class)
        .ok_or_else(|| format!("class {class} is not a VISTA3D class"))?;
    if let Some(parts) = t.subclass.get(&class) {
        return Err(format!(
            "{name} is segmented through its {} parts: choose one of them for the click",
            parts.len()
        ));
    }
    Ok(name.clone())
}

/// The clicks as the refine node's `points_file` CSV (`--set` it, or name it in the workflow,
/// and `vistaflow run` replays the same correction).
pub fn points_csv(clicks: &[Click]) -> String {
    let mut s = String::from("space,x,y,z,label,class\n");
    for c in clicks {
        let [x, y, z] = c.ras_mm;
        let label = if c.positive { "positive" } else { "negative" };
        s.push_str(&format!("ras_mm,{x},{y},{z},{label},{}\n", c.class));
    }
    s
}

/// The classes a click can take, for the page's list: (id, name), parts rather than wholes.
pub fn clickable_classes() -> Vec<(u32, String)> {
    let t = table();
    t.classes
        .iter()
        .filter(|(id, _)| **id > 0 && !t.subclass.contains_key(id))
        .map(|(id, n)| (*id, n.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_a_click_cannot_take_say_why() {
        assert_eq!(class_name(1).unwrap(), "liver");
        assert!(class_name(0).unwrap_err().contains("background"));
        let kidney = table().id_of("kidney").unwrap();
        assert!(class_name(kidney).unwrap_err().contains("parts"));
        assert!(class_name(133).unwrap().starts_with("new structure"));
        let ids: Vec<u32> = clickable_classes().iter().map(|c| c.0).collect();
        assert!(ids.contains(&1) && !ids.contains(&kidney) && !ids.contains(&0));
    }

    #[test]
    fn the_csv_is_the_refine_nodes_points_file() {
        let c = Click {
            ras_mm: [1.5, -2.25, 3.0],
            voxel: [1, 2, 3],
            positive: false,
            class: 3,
            class_name: "spleen".into(),
        };
        assert_eq!(
            points_csv(std::slice::from_ref(&c)),
            "space,x,y,z,label,class\nras_mm,1.5,-2.25,3,negative,3\n"
        );
        assert_eq!(c.as_point()["label"], "negative");
    }
}
