//! The `vista3d_refine` node: segmentation from clicks, on its own or as a correction of a
//! previous label map, as MONAI's VISTA3D interactive path does it.
//!
//! Steps (MONAI 1.6.1 / the model-zoo bundle): the bundle's preprocessing (foreground crop,
//! HU scaling, RAS; [`preprocess`]); clicks mapped into that grid through the affines; per
//! class, `point_based_window_inferer` (a patch centred on each click, clamped to the image,
//! window outputs summed where they overlap) with the point head prompted by the class
//! (`prompt_class`: ids above 132 take the zero-shot token; special classes get point labels
//! 2/3); with a prior label map, each window merges the prior's logits with the point logits by
//! `connected_components_combine` (only regions connected to a click change) and voxels no
//! window covers keep the prior; without one, `keep_components_with_positive_points` keeps
//! only objects holding a positive click. Logits > 0 are the class. Classes run in turn, each
//! merged into the label map before the next.
//!
//! A prior label map becomes logits ±[`PRIOR_LOGIT`] (inside/outside the class).

mod clicks;
mod components;
mod features;
mod inferer;
mod node;
mod points_file;
mod segment;

pub use clicks::{special_classes, voxel_of, Click, Place};
pub use node::Vista3dRefine;
pub use segment::{segment, RefineOptions};

use crate::params::{NodeParams, ParamChoice};
use serde::Deserialize;
use serde_json::Value as Json;
use tch::Device;

/// The logit a prior label map stands for: +1 inside the refined class, -1 outside.
pub const PRIOR_LOGIT: f64 = 1.0;

/// Checks a `points` param as `vista3d_refine` does (null: the clicks are in `points_file`).
pub fn check_points(v: &Json) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    clicks::check_param(v)
}

/// The windows around clicks, shared by vista3d_refine and vista3d_zeroshot.
#[derive(Deserialize, NodeParams, Clone)]
pub struct WindowParams {
    /// window size in voxels around each click, each a multiple of 16
    #[param(default = [128, 128, 128], positive)]
    pub patch: [i64; 3],
    /// keep the image encoder's features per window in the cache, so a later click in a
    /// window already seen runs only the point head (auto: on the CPU, where the encoder is
    /// slow; off on a GPU)
    #[param(default = CacheFeatures::Auto)]
    pub cache_features: CacheFeatures,
    /// a click well inside a window an earlier run computed uses that window instead of one
    /// centred on it (false: MONAI's placement exactly)
    #[param(default = true)]
    pub reuse_windows: bool,
}

/// Whether encoder features are kept between runs.
#[derive(ParamChoice, Clone, Copy, PartialEq, Debug)]
pub enum CacheFeatures {
    Auto,
    On,
    Off,
}

impl CacheFeatures {
    /// On a GPU the encoder is faster than writing and reading its features.
    pub fn keep(self, device: Device) -> bool {
        match self {
            CacheFeatures::On => true,
            CacheFeatures::Off => false,
            CacheFeatures::Auto => device == Device::Cpu,
        }
    }
}

/// Checked clicks from a `points` list (class names resolved to ids).
pub fn parse_clicks(points: &Json) -> Result<Vec<Click>, String> {
    clicks::parse(points)
}

/// The clicks from `points` or `points_file`: exactly one of them.
pub fn points_of(points: &Json, file: Option<&std::path::Path>) -> Result<Json, String> {
    match (points.is_null(), file) {
        (false, None) => Ok(points.clone()),
        (true, Some(f)) => points_file::read(f),
        (true, None) => Err(
            "give the clicks as `points` (a list) or `points_file` (a .json or \
             .csv file)"
                .into(),
        ),
        (false, Some(_)) => Err("give the clicks as `points` or `points_file`, not both".into()),
    }
}
