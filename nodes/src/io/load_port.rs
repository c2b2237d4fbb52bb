//! The output port of the loaders that read an image or, with `labels: true`, a label map
//! (`load_nifti`, `load_nrrd`): port `image` or port `labels`.

use crate::node::{NodeSpec, Outputs, PortSpec};
use crate::value::{PortType, Value};

/// The two ports, for the spec.
pub(crate) fn specs() -> Vec<PortSpec> {
    vec![
        PortSpec::output("image", PortType::Image, "the image (when labels: false)"),
        PortSpec::output(
            "labels",
            PortType::Labels,
            "the label map (when labels: true)",
        ),
    ]
}

fn name(labels: bool) -> &'static str {
    if labels {
        "labels"
    } else {
        "image"
    }
}

/// The one of `spec`'s outputs that the `labels` param selects.
pub(crate) fn selected(spec: &NodeSpec, labels: bool) -> Vec<PortSpec> {
    let want = name(labels);
    spec.outputs
        .iter()
        .filter(|p| p.name == want)
        .cloned()
        .collect()
}

/// `value` on the port for `labels`.
pub(crate) fn output(value: Value, labels: bool) -> Outputs {
    Outputs::from([(name(labels).to_string(), value)])
}
