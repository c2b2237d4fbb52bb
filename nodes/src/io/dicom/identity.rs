//! The identifying attributes of the loaded series, for `Volume::identity` (exports such as
//! DICOM SEG reference them). Never logged, traced or shown.

use super::header::Instance;
use super::series::FrameRef;
use serde_json::{json, Map, Value};

/// `instances` holds, per output slice `k` (or per sorted input slice when the volume was
/// resampled, with `"resampled": true`), the SOP Instance UID and, for multi-frame files,
/// the 1-based frame number.
pub fn identity(images: &[Instance], order: &[FrameRef], resampled: bool) -> Value {
    let first = &images[order[0].inst];
    let ids = &first.ids;
    let instances: Vec<Value> = order
        .iter()
        .map(|f| {
            let inst = &images[f.inst];
            let mut m = Map::new();
            m.insert("sop_instance_uid".into(), json!(inst.ids.sop_instance_uid));
            if inst.enhanced {
                m.insert("frame".into(), json!(f.frame + 1));
            }
            Value::Object(m)
        })
        .collect();
    let attributes: Map<String, Value> = ids
        .module
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "source": "dicom",
        "study_instance_uid": ids.study_instance_uid,
        "series_instance_uid": ids.series_instance_uid,
        "frame_of_reference_uid": ids.frame_of_reference_uid,
        "sop_class_uid": ids.sop_class_uid,
        "resampled": resampled,
        "instances": instances,
        "attributes": attributes,
    })
}
