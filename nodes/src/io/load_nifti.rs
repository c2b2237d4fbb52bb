//! `load_nifti`: a NIfTI-1/NIfTI-2 file (.nii or .nii.gz) as an image or a label map.

use super::load_port;
use crate::node::{
    Ctx, Fallback, InputTypes, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec,
};
use crate::params::{self, ParamSpec, ParamType, Params};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub struct LoadNifti;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadNiftiParams {
    path: PathBuf,
    labels: bool,
    class_names: Option<BTreeMap<String, String>>,
}

/// The class table `export` (format nifti) wrote beside `path` (`seg.nii.gz` -> `seg.json`),
/// when there is one that names this file: {id: name}. Another JSON file of that name is not
/// ours and is left alone; ours but unreadable is an error naming it.
fn sidecar_names(path: &Path) -> Result<Option<BTreeMap<u32, String>>, NodeError> {
    let [json_path, ..] = super::nifti::sidecars(path);
    let Ok(text) = std::fs::read_to_string(&json_path) else {
        return Ok(None);
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok(None);
    };
    let file_name = path.file_name().and_then(|n| n.to_str());
    if json["labels"].as_str() != file_name || file_name.is_none() {
        return Ok(None);
    }
    let bad = || {
        NodeError::file(
            &json_path,
            "the class table beside the label map is malformed (`classes` must be a list of \
             {id, name}); fix or delete it, or give `class_names`",
        )
    };
    let mut names = BTreeMap::new();
    for c in json["classes"].as_array().ok_or_else(bad)? {
        let id = c["id"]
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(bad)?;
        let name = c["name"].as_str().ok_or_else(bad)?;
        names.insert(id, name.to_string());
    }
    Ok(Some(names))
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
                     classes by them. Without it, the names come from the class table \
                     `export` wrote beside the file (NAME.json), when there is one",
                ),
            ],
            fallback: Fallback::None,
        })
    }

    fn outputs(&self, params: &Params, _inputs: &InputTypes) -> Vec<PortSpec> {
        load_port::selected(self.spec(), params)
    }

    /// The class table beside a label map, read when `class_names` is not given.
    fn companions(&self, param: &str, path: &Path, params: &Params) -> Vec<PathBuf> {
        let labels = params.get("labels").and_then(|l| l.as_bool()) == Some(true);
        let named = params.get("class_names").is_some_and(|n| !n.is_null());
        match param {
            "path" if labels && !named => vec![super::nifti::sidecars(path)[0].clone()],
            _ => Vec::new(),
        }
    }

    fn run(&self, ctx: &Ctx, _inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: LoadNiftiParams = params::parse(params)?;
        let mut value = super::nifti::read(&p.path, p.labels, ctx)?;
        if let (crate::value::Value::Labels(l), None) = (&mut value, &p.class_names) {
            if let Some(names) = sidecar_names(&p.path)? {
                l.classes.extend(names);
            }
        }
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
