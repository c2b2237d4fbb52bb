//! The `load_nrrd` and `save_nrrd` nodes.

use crate::io::load_port;
use crate::node::{Compute, Ctx, InputTypes, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, NodeParams, ParamSchema, Params};
use crate::value::PortType;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `load_nrrd`: a NRRD file as an image (port `image`) or a label map (port `labels`).
pub struct LoadNrrd;

#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
struct LoadParams {
    /// the .nrrd file, or the .nhdr header of a detached one
    #[param(input_path)]
    path: PathBuf,
    /// read as a label map (integer class ids; Slicer segment names become the class table)
    /// on port `labels`
    #[param(default = false)]
    labels: bool,
}

impl Node for LoadNrrd {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "load_nrrd",
            version: "1",
            summary: "Reads a NRRD file (.nrrd, .seg.nrrd, or .nhdr with its data file; raw or \
                      gzip) with its space directions and origin, in LPS",
            inputs: vec![],
            exactly_one_input_of: vec![],
            outputs: load_port::specs(),
            params: ParamSchema::of::<LoadParams>(),
            compute: Compute::Cpu,
        })
    }

    fn outputs(&self, params: &Params, _inputs: &InputTypes) -> Vec<PortSpec> {
        load_port::selected(
            self.spec(),
            params::read::<LoadParams>(params).is_ok_and(|p| p.labels),
        )
    }

    /// A detached header's data files: changing one must change the cache key.
    fn companions(&self, param: &str, path: &Path, _params: &Params) -> Vec<PathBuf> {
        match param {
            "path" => super::data_files(path),
            _ => Vec::new(),
        }
    }

    fn run(&self, ctx: &Ctx, _inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: LoadParams = params::load(params)?;
        let value = super::read(&p.path, p.labels, ctx)?;
        Ok(load_port::output(value, p.labels))
    }
}

/// `save_nrrd`: writes an image or a label map as NRRD.
pub struct SaveNrrd;

#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
struct SaveParams {
    /// file to write: .nrrd (attached) or .nhdr (detached data file beside it)
    #[param(output_path)]
    path: PathBuf,
    /// gzip encoding (false: raw)
    #[param(default = true)]
    compress: bool,
}

impl Node for SaveNrrd {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "save_nrrd",
            version: "1",
            summary: "Writes an image or label map as NRRD in LPS (.nrrd, or .nhdr with a \
                      .raw.gz/.raw data file)",
            inputs: vec![
                PortSpec::optional_input("image", PortType::Image, "an image to write"),
                PortSpec::optional_input("labels", PortType::Labels, "a label map to write"),
            ],
            exactly_one_input_of: vec!["image", "labels"],
            outputs: vec![],
            params: ParamSchema::of::<SaveParams>(),
            compute: Compute::Cpu,
        })
    }

    /// A `.nhdr` header's data file: deleting it reruns the save.
    fn companions(&self, param: &str, path: &Path, params: &Params) -> Vec<PathBuf> {
        let compress = params::read::<SaveParams>(params).is_ok_and(|p| p.compress);
        match param {
            "path" => super::written_data_file(path, compress)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }

    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: SaveParams = params::load(params)?;
        if inputs.len() != 1 {
            return Err(NodeError::Invalid(format!(
                "save_nrrd needs exactly one of `image` or `labels`, got {}",
                inputs.len()
            )));
        }
        let value = inputs
            .into_values()
            .next()
            .ok_or_else(|| NodeError::Invalid("save_nrrd needs `image` or `labels`".into()))?;
        super::write(&p.path, &value, p.compress, ctx)?;
        Ok(Outputs::new())
    }
}
