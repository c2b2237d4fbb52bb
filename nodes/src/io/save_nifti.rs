//! `save_nifti`: writes an image or a label map as NIfTI-1 (.nii or .nii.gz by extension).

use crate::node::{Ctx, Fallback, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, ParamSpec, ParamType, Params};
use crate::value::PortType;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::OnceLock;

pub struct SaveNifti;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveNiftiParams {
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
            params: vec![ParamSpec::required(
                "path",
                ParamType::OutputPath,
                "file to write; .nii.gz is gzip-compressed",
            )],
            fallback: Fallback::None,
        })
    }

    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: SaveNiftiParams = params::parse(params)?;
        let value = inputs
            .into_values()
            .next()
            .ok_or_else(|| NodeError::Invalid("save_nifti needs `image` or `labels`".into()))?;
        super::nifti::write(&p.path, &value, ctx)?;
        Ok(Outputs::new())
    }
}
