//! What the SEG references: the source series as `load_dicom` recorded it in
//! `Volume::identity`, and the check that the label map lies on the source's grid.
//!
//! Messages here never contain values from the identity: they may identify the patient.

use crate::node::NodeError;
use crate::value::{LabelMap, Volume};
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// Largest difference, in mm, between the label map's and the image's affine entries.
pub const GRID_TOL_MM: f64 = 1e-4;

/// One source image (frame) the SEG's frames can point at.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceRef {
    pub sop_instance_uid: String,
    /// 1-based frame number in a multi-frame source file.
    pub frame: Option<u32>,
}

/// The source series' identifying attributes.
#[derive(Clone, Debug)]
pub struct SourceRef {
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub frame_of_reference_uid: Option<String>,
    pub sop_class_uid: String,
    /// The image was resampled from its slices: `instances` are the series' slices, not the
    /// image's slices one to one.
    pub resampled: bool,
    /// Shape and LPS affine of the image as load_dicom made it (absent in older identities).
    pub loaded_grid: Option<(Vec<i64>, [[f64; 4]; 4])>,
    /// Per image slice `k` (or per sorted source slice when `resampled`).
    pub instances: Vec<InstanceRef>,
    /// Patient and study module attributes, by DICOM keyword.
    pub attributes: BTreeMap<String, String>,
    /// [`SourceRef::deidentify`] was applied.
    pub identity_removed: bool,
}

fn not_dicom(format: &str, why: &str) -> NodeError {
    NodeError::Invalid(format!(
        "{format} needs the image from load_dicom as its source ({why}): a {format} file \
         references the DICOM series it was made from. Connect the `image` output of the \
         load_dicom node that read the series (the labels must be resampled onto it)"
    ))
}

fn broken(format: &str, what: &str) -> NodeError {
    NodeError::Invalid(format!(
        "{format}: the source image's DICOM identity is incomplete ({what}); load the \
         series again with load_dicom"
    ))
}

/// A non-empty string field of `j`.
fn text(j: &Json, key: &str) -> Option<String> {
    j.get(key)
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl SourceRef {
    /// Reads `source.identity`; fails unless it was written by `load_dicom`. `format` (e.g.
    /// `dicom_seg`) names the export in the messages.
    pub fn of(source: &Volume, format: &str) -> Result<SourceRef, NodeError> {
        let broken = |what: &str| broken(format, what);
        let not_dicom = |why: &str| not_dicom(format, why);
        let id = source.identity.as_deref().ok_or_else(|| {
            let from = source
                .meta
                .get("source_format")
                .map(|f| format!("this image comes from {f}, not DICOM"))
                .unwrap_or_else(|| "this image has no DICOM identity".into());
            not_dicom(&from)
        })?;
        if id.get("source").and_then(Json::as_str) != Some("dicom") {
            return Err(not_dicom("this image's identity is not from DICOM"));
        }
        let instances = id
            .get("instances")
            .and_then(Json::as_array)
            .ok_or_else(|| broken("no instances"))?
            .iter()
            .enumerate()
            .map(|(k, inst)| {
                let sop_instance_uid = text(inst, "sop_instance_uid").ok_or_else(|| {
                    NodeError::Invalid(format!(
                        "{format}: source slice {k} has no SOP Instance UID (neither in the \
                         data set nor in the file meta information), so the file cannot \
                         reference it; give the series' files their UIDs first"
                    ))
                })?;
                let frame = inst
                    .get("frame")
                    .and_then(Json::as_u64)
                    .map(|f| u32::try_from(f).map_err(|_| broken("a frame number is too large")))
                    .transpose()?;
                Ok(InstanceRef {
                    sop_instance_uid,
                    frame,
                })
            })
            .collect::<Result<Vec<_>, NodeError>>()?;
        if instances.is_empty() {
            return Err(broken("no instances"));
        }
        let attributes = id
            .get("attributes")
            .and_then(Json::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(SourceRef {
            study_instance_uid: text(id, "study_instance_uid"),
            series_instance_uid: text(id, "series_instance_uid"),
            frame_of_reference_uid: text(id, "frame_of_reference_uid"),
            sop_class_uid: text(id, "sop_class_uid").ok_or_else(|| broken("no SOP Class UID"))?,
            resampled: id.get("resampled").and_then(Json::as_bool).unwrap_or(false),
            loaded_grid: id.get("grid").and_then(|g| {
                let shape: Vec<i64> = serde_json::from_value(g.get("shape")?.clone()).ok()?;
                let affine: [[f64; 4]; 4] =
                    serde_json::from_value(g.get("affine_lps")?.clone()).ok()?;
                Some((shape, affine))
            }),
            instances,
            attributes,
            identity_removed: false,
        })
    }

    /// DICOM PS3.15 E.1 Basic Application Level Confidentiality Profile, Retain UIDs Option,
    /// for the attributes a SEG copies: the patient and study identifiers and dates become
    /// empty (action Z), the study description goes (X); UIDs stay, so the SEG still
    /// references its series (which the user de-identifies with the same option).
    pub fn deidentify(&mut self) {
        const KEEP: [&str; 2] = ["SeriesNumber", "PositionReferenceIndicator"];
        self.attributes.retain(|k, _| KEEP.contains(&k.as_str()));
        self.identity_removed = true;
    }

    /// The derived object's series number: the source's plus `offset` (`offset` alone when
    /// the source has none), so that viewers list it beside its series.
    pub fn series_number(&self, offset: i64) -> i64 {
        self.attr("SeriesNumber")
            .parse::<i64>()
            .ok()
            .filter(|n| (0..1_000_000).contains(n))
            .map_or(offset, |n| n + offset)
    }

    /// The derived object's content date and time: the study's, not the clock's, so that
    /// the same result gives the same bytes.
    pub fn content_date_time(&self) -> (&str, &str) {
        match (self.attr("StudyDate"), self.attr("StudyTime")) {
            ("", _) => ("19700101", "000000"),
            (d, "") => (d, "000000"),
            (d, t) => (d, t),
        }
    }

    /// The source of an export of `format` from `source` (load_dicom's image), de-identified
    /// when asked, with `labels` checked to be on its grid.
    pub fn for_export(
        labels: &LabelMap,
        source: &Volume,
        deidentify: bool,
        format: &str,
    ) -> Result<SourceRef, NodeError> {
        let mut src = SourceRef::of(source, format)?;
        if deidentify {
            src.deidentify();
        }
        check_grid(labels, source, &src, format)?;
        Ok(src)
    }

    /// A patient/study attribute by keyword (empty when absent).
    pub fn attr(&self, keyword: &str) -> &str {
        self.attributes
            .get(keyword)
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// Fails unless `labels` has `source`'s shape and affine (within [`GRID_TOL_MM`]), and the
/// source slices are those load_dicom read.
pub fn check_grid(
    labels: &LabelMap,
    source: &Volume,
    src: &SourceRef,
    format: &str,
) -> Result<(), NodeError> {
    let hint = "resample the labels onto the image first: a `resample` node with \
                `inputs: { image: <labels>, reference: <the load_dicom node>.image }`";
    let (ls, is) = (labels.volume.data().size(), source.data().size());
    if ls.len() != 3 {
        return Err(NodeError::Invalid(format!(
            "{format}: the label map must be 3D [D,H,W], got shape {ls:?}"
        )));
    }
    if is.len() != 3 {
        return Err(NodeError::Invalid(format!(
            "{format}: the source image must be 3D [D,H,W], got shape {is:?}"
        )));
    }
    if ls != is {
        return Err(NodeError::Invalid(format!(
            "{format}: the labels are not on the source image's grid: shape [D,H,W] {ls:?} vs \
             {is:?}; {hint}"
        )));
    }
    let (a, b) = (
        labels.volume.geometry().affine_lps,
        source.geometry().affine_lps,
    );
    let worst = (0..3)
        .flat_map(|r| (0..4).map(move |c| (r, c)))
        .map(|(r, c)| (a[r][c] - b[r][c]).abs())
        .fold(0.0, f64::max);
    if worst.is_nan() || worst > GRID_TOL_MM {
        return Err(NodeError::Invalid(format!(
            "{format}: the labels are not on the source image's grid: their affines differ by \
             up to {worst:.3e} mm (tolerance {GRID_TOL_MM:e} mm); {hint}"
        )));
    }
    if let Some((shape, affine)) = &src.loaded_grid {
        let b = source.geometry().affine_lps;
        let moved = (0..3)
            .flat_map(|r| (0..4).map(move |c| (r, c)))
            .any(|(r, c)| {
                // NaN counts as moved.
                let d = (affine[r][c] - b[r][c]).abs();
                d.is_nan() || d > GRID_TOL_MM
            });
        if *shape != is || moved {
            return Err(NodeError::Invalid(format!(
                "{format}: the source image is not on the grid load_dicom read (it was cropped, \
                 resampled or reoriented since), so its slices are not the series' instances. \
                 Pass load_dicom's own `image` as the source, and resample the labels onto that"
            )));
        }
    }
    if !src.resampled && src.instances.len() as i64 != is[0] {
        return Err(NodeError::Invalid(format!(
            "{format}: the source image has {} slices but load_dicom read {} from the series: \
             it was changed after loading (cropped or resampled). Pass load_dicom's own `image` \
             as the source, and resample the labels onto that",
            is[0],
            src.instances.len()
        )));
    }
    Ok(())
}
