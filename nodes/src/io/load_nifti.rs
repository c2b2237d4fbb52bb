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
            ],
            fallback: Fallback::None,
        })
    }

    fn outputs(&self, params: &Params, _inputs: &InputTypes) -> Vec<PortSpec> {
        load_port::selected(self.spec(), params)
    }

    fn run(&self, ctx: &Ctx, _inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: LoadNiftiParams = params::parse(params)?;
        let value = super::nifti::read(&p.path, p.labels, ctx)?;
        Ok(load_port::output(value, p.labels))
    }
}
