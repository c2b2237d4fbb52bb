//! The `load_dicom` node: params, spec, and the call into [`super::load`].

use super::load::load;
use super::series::Choice;
use crate::node::{Ctx, Fallback, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, ParamSpec, ParamType, Params};
use crate::value::{PortType, Value};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Loads one DICOM series (see the [module docs](super)).
pub struct LoadDicom;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadDicomParams {
    path: PathBuf,
    series_uid: Option<String>,
    series_number: Option<i64>,
    modality: Option<String>,
    description: Option<String>,
    min_slices: Option<i64>,
    allow_irregular: bool,
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
            params: vec![
                ParamSpec::required(
                    "path",
                    ParamType::InputPath,
                    "a folder (searched recursively; non-DICOM files are skipped) or one DICOM file",
                ),
                ParamSpec::optional(
                    "series_uid",
                    ParamType::Str,
                    Json::Null,
                    "load the series with this SeriesInstanceUID",
                ),
                ParamSpec::optional(
                    "series_number",
                    ParamType::Int,
                    Json::Null,
                    "load the series with this SeriesNumber",
                ),
                ParamSpec::optional(
                    "modality",
                    ParamType::Str,
                    Json::Null,
                    "load a series of this Modality (CT, MR, ...); default: CT when there is one",
                ),
                ParamSpec::optional(
                    "description",
                    ParamType::Str,
                    Json::Null,
                    "load a series whose SeriesDescription matches this regex",
                ),
                ParamSpec::optional(
                    "min_slices",
                    ParamType::Int,
                    Json::Null,
                    "consider only series with at least this many slices",
                ),
                ParamSpec::optional(
                    "allow_irregular",
                    ParamType::Bool,
                    json!(false),
                    "resample uneven or missing slices onto a regular grid (linear along the \
                     slice normal) instead of failing",
                ),
            ],
            fallback: Fallback::None,
        })
    }

    fn run(&self, ctx: &Ctx, _inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: LoadDicomParams = params::parse(params)?;
        let description = match &p.description {
            Some(r) => Some(regex::Regex::new(r).map_err(|e| {
                NodeError::Invalid(format!("param `description` is not a valid regex: {e}"))
            })?),
            None => None,
        };
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
