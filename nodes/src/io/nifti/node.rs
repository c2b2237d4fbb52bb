//! The `load_nifti` and `save_nifti` nodes: a NIfTI-1/NIfTI-2 file (.nii or .nii.gz) as an
//! image or a label map, and an image or label map written as NIfTI-1 (.nii or .nii.gz by
//! extension).

use crate::io::load_port;
use crate::node::{Compute, Ctx, InputTypes, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, NodeParams, ParamError, ParamSchema, ParamType, Params};
use crate::value::PortType;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub struct LoadNifti;

#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
#[params(check = LoadNiftiParams::check_names)]
struct LoadNiftiParams {
    /// the .nii or .nii.gz file
    #[param(input_path)]
    path: PathBuf,
    /// read as a label map (integer class ids) on port `labels`
    #[param(default = false)]
    labels: bool,
    /// with labels: names for the file's label ids (a NIfTI file stores none), e.g. {5: liver}
    /// for TotalSegmentator; `metrics` with `match: name` pairs classes by them. Without it,
    /// the names come from the class table `export` wrote beside the file (NAME.json), when
    /// there is one
    #[param(ty = ParamType::Custom {
        describe: "{label id: class name}",
        check: check_class_names,
    })]
    class_names: Option<BTreeMap<String, String>>,
}

impl LoadNiftiParams {
    fn check_names(&self) -> Result<(), ParamError> {
        if self.class_names.is_some() && !self.labels {
            return Err(ParamError::at(
                "class_names",
                "class_names names label ids: add `labels: true`",
            ));
        }
        Ok(())
    }
}

/// The class table `export` (format nifti) wrote beside `path` (`seg.nii.gz` -> `seg.json`),
/// when there is one that names this file: {id: name}. Another JSON file of that name is not
/// ours and is left alone; ours but unreadable is an error naming it.
fn sidecar_names(path: &Path) -> Result<Option<BTreeMap<u32, String>>, NodeError> {
    let [json_path, ..] = super::sidecars(path);
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
            params: ParamSchema::of::<LoadNiftiParams>(),
            compute: Compute::Cpu,
        })
    }

    fn outputs(&self, params: &Params, _inputs: &InputTypes) -> Vec<PortSpec> {
        load_port::selected(
            self.spec(),
            params::read::<LoadNiftiParams>(params).is_ok_and(|p| p.labels),
        )
    }

    /// The class table beside a label map, read when `class_names` is not given.
    fn companions(&self, param: &str, path: &Path, params: &Params) -> Vec<PathBuf> {
        let Ok(p) = params::read::<LoadNiftiParams>(params) else {
            return Vec::new();
        };
        match param {
            "path" if p.labels && p.class_names.is_none() => vec![super::sidecars(path)[0].clone()],
            _ => Vec::new(),
        }
    }

    fn run(&self, ctx: &Ctx, _inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: LoadNiftiParams = params::load(params)?;
        let mut value = super::read(&p.path, p.labels, ctx)?;
        if let (crate::value::Value::Labels(l), None) = (&mut value, &p.class_names) {
            if let Some(names) = sidecar_names(&p.path)? {
                l.classes.extend(names);
            }
        }
        if let Some(names) = &p.class_names {
            let crate::value::Value::Labels(l) = &mut value else {
                unreachable!("checked: class_names needs labels: true");
            };
            for (k, name) in names {
                let id: u32 = k.trim().parse().expect("checked");
                l.classes.insert(id, name.clone());
            }
        }
        Ok(load_port::output(value, p.labels))
    }
}

pub struct SaveNifti;

#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
struct SaveNiftiParams {
    /// file to write; .nii.gz is gzip-compressed
    #[param(output_path)]
    path: PathBuf,
}

impl Node for SaveNifti {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "save_nifti",
            version: "1",
            summary: "Writes an image or label map as NIfTI-1 (.nii.gz compressed, .nii raw)",
            inputs: vec![
                PortSpec::optional_input("image", PortType::Image, "an image to write"),
                PortSpec::optional_input("labels", PortType::Labels, "a label map to write"),
            ],
            exactly_one_input_of: vec!["image", "labels"],
            outputs: vec![],
            params: ParamSchema::of::<SaveNiftiParams>(),
            compute: Compute::Cpu,
        })
    }

    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: SaveNiftiParams = params::load(params)?;
        let value = inputs
            .into_values()
            .next()
            .ok_or_else(|| NodeError::Invalid("save_nifti needs `image` or `labels`".into()))?;
        super::write(&p.path, &value, ctx)?;
        Ok(Outputs::new())
    }
}
