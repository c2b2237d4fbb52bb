//! ROI names: AAPM TG-263 names for VISTA3D's classes (`tg263.json`), the user's `names:`
//! first.

use std::collections::BTreeMap;
use std::sync::OnceLock;

fn table() -> &'static BTreeMap<String, String> {
    static T: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    T.get_or_init(|| {
        #[derive(serde::Deserialize)]
        struct Doc {
            names: BTreeMap<String, String>,
        }
        let doc: Doc = serde_json::from_str(include_str!("tg263.json"))
            .expect("tg263.json is valid (checked by a test)");
        doc.names
    })
}

/// The ROI name of class `id` named `class` (None: the class table has no name): the user's
/// override (by class name or id), else TG-263's name, else the class name itself, else
/// `class_<id>`. At most 64 characters (LO).
pub fn roi_name(id: u32, class: Option<&str>, overrides: &BTreeMap<String, String>) -> String {
    let name = class
        .and_then(|c| overrides.get(c))
        .or_else(|| overrides.get(&id.to_string()))
        .cloned()
        .or_else(|| class.and_then(|c| table().get(c)).cloned())
        .or_else(|| class.map(str::to_string))
        .unwrap_or_else(|| format!("class_{id}"));
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vista3d_class_has_a_distinct_tg263_name_of_at_most_16_characters() {
        let classes = &crate::vista3d::classes::table().classes;
        let mut seen = std::collections::BTreeSet::new();
        for (id, name) in classes.iter().filter(|(id, _)| **id != 0) {
            let roi = table()
                .get(name)
                .unwrap_or_else(|| panic!("no TG-263 name for {name}"));
            assert!(roi.len() <= 16 && !roi.contains(' '), "{id} {name}: {roi}");
            assert!(seen.insert(roi.clone()), "{roi} twice");
        }
        let none = BTreeMap::new();
        assert_eq!(roi_name(14, Some("left kidney"), &none), "Kidney_L");
        assert_eq!(roi_name(121, Some("spinal cord"), &none), "SpinalCord");
        let mine = BTreeMap::from([("liver".to_string(), "Liver_AI".to_string())]);
        assert_eq!(roi_name(1, Some("liver"), &mine), "Liver_AI");
        assert_eq!(roi_name(7, None, &none), "class_7");
    }
}
