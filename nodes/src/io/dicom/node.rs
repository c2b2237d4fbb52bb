//! The `load_dicom` node: params, spec, and the call into [`super::load`].

use super::load::load;
use super::series::Choice;
use crate::node::{Compute, Ctx, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, NodeParams, ParamError, ParamSchema, Params};
use crate::value::{PortType, Value};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Loads one DICOM series (see the [module docs](super)).
pub struct LoadDicom;

#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
#[params(check = LoadDicomParams::check_regex)]
struct LoadDicomParams {
    /// a folder (searched recursively; non-DICOM files are skipped) or one DICOM file
    #[param(input_path)]
    path: PathBuf,
    /// load the series with this SeriesInstanceUID
    series_uid: Option<String>,
    /// load the series with this SeriesNumber
    series_number: Option<i64>,
    /// load a series of this Modality (CT, MR, ...); default: CT when there is one
    modality: Option<String>,
    /// load a series whose SeriesDescription matches this regex
    description: Option<String>,
    /// consider only series with at least this many slices
    #[param(min = 1)]
    min_slices: Option<i64>,
    /// resample uneven or missing slices onto a regular grid (linear along the slice normal)
    /// instead of failing
    #[param(default = false)]
    allow_irregular: bool,
}

impl LoadDicomParams {
    fn description(&self) -> Result<Option<regex::Regex>, ParamError> {
        self.description
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| ParamError::at("description", format!("not a valid regex: {e}")))
    }

    fn check_regex(&self) -> Result<(), ParamError> {
        self.description().map(|_| ())
    }
}

impl Node for LoadDicom {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "load_dicom",
            version: "1",
            summary: "Reads one DICOM series (a folder searched recursively, or one file) as a \
                      float32 volume in HU for CT, with its patient geometry",
            inputs: vec![],
            exactly_one_input_of: vec![],
            outputs: vec![PortSpec::output(
                "image",
                PortType::Image,
                "the series, float32 [k,j,i], Rescale Slope/Intercept applied",
            )],
            params: ParamSchema::of::<LoadDicomParams>(),
            compute: Compute::Cpu,
        })
    }

    fn run(&self, ctx: &Ctx, _inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: LoadDicomParams = params::load(params)?;
        let description = p.description()?;
        let choice = Choice {
            series_uid: p.series_uid,
            series_number: p.series_number,
            modality: p.modality,
            description,
            min_slices: p.min_slices,
        };
        let vol = load(&p.path, &choice, p.allow_irregular, ctx)?;
        Ok(Outputs::from([("image".to_string(), Value::Image(vol))]))
    }
}
