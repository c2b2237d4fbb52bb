//! What a SEG is built from: its segments, its frames and the UIDs and geometry around them
//! (shared by the data set and its functional groups).

use super::codes::SegmentCodes;
use super::source::SourceRef;

/// One segment: a class of the label map.
pub struct Segment {
    /// 1-based SegmentNumber.
    pub number: u16,
    /// The class id in the label map.
    pub class: u32,
    /// SegmentLabel: the class name.
    pub label: String,
    pub codes: &'static SegmentCodes,
    /// RecommendedDisplayCIELabValue.
    pub lab: [u16; 3],
}

/// One frame: segment `segment` on image slice `slice`.
pub struct Frame {
    pub segment: u16,
    pub slice: usize,
}

/// Everything the data set is built from.
pub struct Content<'a> {
    pub src: &'a SourceRef,
    pub study_instance_uid: String,
    pub referenced_series_uid: String,
    pub frame_of_reference_uid: String,
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    pub dimension_organization_uid: String,
    /// `[D, H, W]`.
    pub shape: [usize; 3],
    /// voxel (i, j, k) -> LPS mm.
    pub affine: [[f64; 4]; 4],
    /// Whether frames reference source slices one to one (not for resampled images).
    pub per_frame_sources: bool,
    pub segments: Vec<Segment>,
    pub frames: Vec<Frame>,
}
