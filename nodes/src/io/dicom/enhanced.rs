//! Per-frame geometry of Enhanced (multi-frame) CT/MR images from their functional groups.
//!
//! For each frame, a functional group is taken from the frame's item of the Per-frame
//! Functional Groups Sequence, else from the Shared Functional Groups Sequence:
//! PlanePositionSequence > ImagePositionPatient, PlaneOrientationSequence >
//! ImageOrientationPatient, PixelMeasuresSequence > PixelSpacing and SliceThickness,
//! PixelValueTransformationSequence > RescaleSlope/Intercept (else the root's, else 1 and 0).

use super::attrs::{self, first_item, float, floats_n, items, Attr, Obj};
use super::frame::{build_geom, rescale, FrameGeom};

/// The geometry of each of `nframes` frames; `Ok(None)` when the file has no plane
/// position/orientation (not a set of slices).
pub fn frame_geoms(obj: &Obj, nframes: u32) -> Result<Option<Vec<FrameGeom>>, String> {
    let per = items(obj, attrs::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    if per.len() != nframes as usize {
        return Err(format!(
            "PerFrameFunctionalGroupsSequence has {} items for {nframes} frames (NumberOfFrames)",
            per.len()
        ));
    }
    let shared = first_item(obj, attrs::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    fn group<'a>(frame: &'a Obj, shared: Option<&'a Obj>, seq: Attr) -> Option<&'a Obj> {
        first_item(frame, seq).or_else(|| shared.and_then(|s| first_item(s, seq)))
    }
    let root_rescale = rescale(obj)?;
    let mut out = Vec::with_capacity(per.len());
    for (n, frame) in per.iter().enumerate() {
        let at = |m: String| format!("frame {}: {m}", n + 1);
        let ipp = match group(frame, shared, attrs::PLANE_POSITION_SEQUENCE) {
            Some(g) => floats_n(g, attrs::IMAGE_POSITION_PATIENT, 3).map_err(at)?,
            None => None,
        };
        let iop = match group(frame, shared, attrs::PLANE_ORIENTATION_SEQUENCE) {
            Some(g) => floats_n(g, attrs::IMAGE_ORIENTATION_PATIENT, 6).map_err(at)?,
            None => None,
        };
        let measures = group(frame, shared, attrs::PIXEL_MEASURES_SEQUENCE);
        let ps = match measures {
            Some(g) => floats_n(g, attrs::PIXEL_SPACING, 2).map_err(at)?,
            None => None,
        };
        let thickness = match measures {
            Some(g) => float(g, attrs::SLICE_THICKNESS).map_err(at)?,
            None => None,
        };
        let (slope, intercept) =
            match group(frame, shared, attrs::PIXEL_VALUE_TRANSFORMATION_SEQUENCE) {
                Some(g) => rescale(g).map_err(at)?,
                None => root_rescale,
            };
        let (Some(ipp), Some(iop)) = (ipp, iop) else {
            return Ok(None);
        };
        let Some(ps) = ps else {
            return Err(at("PixelMeasuresSequence > PixelSpacing is absent".into()));
        };
        out.push(build_geom(&ipp, &iop, &ps, thickness, slope, intercept).map_err(at)?);
    }
    Ok(Some(out))
}
