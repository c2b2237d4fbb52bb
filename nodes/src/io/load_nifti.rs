//! `load_nifti`: a NIfTI-1/NIfTI-2 file (.nii or .nii.gz) as an image or a label map.

use super::load_port;
use crate::node::{
    Ctx, Fallback, InputTypes, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec,
};
use crate::params::{self, ParamSpec, ParamType, Params};
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::OnceLock;

pub struct LoadNifti;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadNiftiParams {
    path: PathBuf,
    labels: bool,
    class_names: Option<std::collections::BTreeMap<String, String>>,
}

/// `class_names`: {id: name}, ids integers above 0.
fn check_class_names(v: &serde_json::Value) -> Result<(), String> {
    let Some(o) = v.as_object() else {
        return Err("class_names: an object {label id: class name}".into());
    };
    for (k, name) in o {
        if k.trim().parse::<u32>().ok().filter(|&i| i > 0).is_none() {
            return Err(format!(
                "class_names: `{k}` is not a label id (an integer > 0)"
            ));
        }
        if !name.is_string() {
            return Err(format!("class_names: {k} -> a name (text)"));
        }
    }
    Ok(())
}

impl Node for LoadNifti {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "load_nifti",
            version: "1",
            summary:
                "Reads a NIfTI-1 or NIfTI-2 file (.nii, .nii.gz) with its affine, as nibabel does",
            inputs: vec![],
            exactly_one_input_of: vec![],
            outputs: load_port::specs(),
            params: vec![
                ParamSpec::required("path", ParamType::InputPath, "the .nii or .nii.gz file"),
                ParamSpec::optional(
                    "labels",
                    ParamType::Bool,
                    json!(false),
                    "read as a label map (integer class ids) on port `labels`",
                ),
                ParamSpec::optional(
                    "class_names",
                    ParamType::Custom {
                        describe: "{label id: class name}",
                        check: check_class_names,
                    },
                    serde_json::Value::Null,
                    "with labels: names for the file's label ids (a NIfTI file stores none), \
                     e.g. {5: liver} for TotalSegmentator; `metrics` with `match: name` pairs \
                     classes by them",
                ),
            ],
            fallback: Fallback::None,
        })
    }

    fn outputs(&self, params: &Params, _inputs: &InputTypes) -> Vec<PortSpec> {
        load_port::selected(self.spec(), params)
    }

    fn run(&self, ctx: &Ctx, _inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: LoadNiftiParams = params::parse(params)?;
        let mut value = super::nifti::read(&p.path, p.labels, ctx)?;
        if let Some(names) = &p.class_names {
            let crate::value::Value::Labels(l) = &mut value else {
                return Err(NodeError::Invalid(
                    "class_names names label ids: add `labels: true`".into(),
                ));
            };
            for (k, name) in names {
                let id: u32 = k.trim().parse().expect("checked");
                l.classes.insert(id, name.clone());
            }
        }
        Ok(load_port::output(value, p.labels))
    }
}
