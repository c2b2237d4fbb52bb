//! Reading an RT Structure Set file: its frame of reference, referenced series, and each
//! ROI's name and contours. Messages never contain identifying values.

use crate::io::dicom::attrs::{self, Obj};
use crate::io::dicom::header::{self, Probe};
use dicom_dictionary_std::tags;
use std::path::Path;

/// One contour as the file gives it.
pub struct Contour {
    /// `CLOSED_PLANAR`, `OPEN_PLANAR`, `POINT`, ...
    pub kind: String,
    /// LPS millimetres.
    pub points: Vec<[f64; 3]>,
    /// SOP Instance UIDs of its Contour Image Sequence.
    pub images: Vec<String>,
}

pub struct Roi {
    pub number: i64,
    pub name: String,
    pub contours: Vec<Contour>,
}

pub struct StructureSet {
    pub frame_of_reference: Option<String>,
    pub series: Vec<String>,
    pub rois: Vec<Roi>,
}

fn attr(tag: dicom_core::Tag, kw: &'static str) -> attrs::Attr {
    attrs::Attr(tag, kw)
}

/// Reads `path`; the error says what is wrong, without values.
pub fn read(path: &Path) -> Result<StructureSet, String> {
    let obj = match header::open(path, true) {
        Ok(o) => o,
        Err(Probe::NotDicom) => return Err("not a DICOM file".into()),
        Err(Probe::Broken(why)) | Err(Probe::Other(why)) => return Err(why),
        Err(Probe::Image(_)) => unreachable!("open does not probe"),
    };
    let class = attrs::text(&obj, attr(tags::SOP_CLASS_UID, "SOPClassUID")).unwrap_or_default();
    let modality = attrs::text(&obj, attr(tags::MODALITY, "Modality")).unwrap_or_default();
    if class != "1.2.840.10008.5.1.4.1.1.481.3" && modality != "RTSTRUCT" {
        return Err(format!(
            "not an RT Structure Set (SOP Class {class}, modality {modality})"
        ));
    }
    let frames = attrs::items(
        &obj,
        attr(
            tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
            "ReferencedFrameOfReferenceSequence",
        ),
    );
    let frame_of_reference = frames
        .first()
        .and_then(|f| attrs::text(f, attr(tags::FRAME_OF_REFERENCE_UID, "FrameOfReferenceUID")))
        .or_else(|| {
            attrs::text(
                &obj,
                attr(tags::FRAME_OF_REFERENCE_UID, "FrameOfReferenceUID"),
            )
        });
    let series = frames
        .iter()
        .flat_map(|f| {
            attrs::items(
                f,
                attr(
                    tags::RT_REFERENCED_STUDY_SEQUENCE,
                    "RTReferencedStudySequence",
                ),
            )
        })
        .flat_map(|s| {
            attrs::items(
                s,
                attr(
                    tags::RT_REFERENCED_SERIES_SEQUENCE,
                    "RTReferencedSeriesSequence",
                ),
            )
        })
        .filter_map(|s| attrs::text(s, attr(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")))
        .collect();
    let names: Vec<(i64, String)> = attrs::items(
        &obj,
        attr(tags::STRUCTURE_SET_ROI_SEQUENCE, "StructureSetROISequence"),
    )
    .iter()
    .map(|r| {
        let n = attrs::int(r, attr(tags::ROI_NUMBER, "ROINumber"))?
            .ok_or("a StructureSetROISequence item has no ROINumber")?;
        let name = attrs::text(r, attr(tags::ROI_NAME, "ROIName")).unwrap_or(format!("ROI {n}"));
        Ok((n, name))
    })
    .collect::<Result<_, String>>()?;
    if names.is_empty() {
        return Err("the structure set lists no ROI (StructureSetROISequence is empty)".into());
    }
    let mut rois: Vec<Roi> = names
        .into_iter()
        .map(|(number, name)| Roi {
            number,
            name,
            contours: Vec::new(),
        })
        .collect();
    for item in attrs::items(&obj, attr(tags::ROI_CONTOUR_SEQUENCE, "ROIContourSequence")) {
        let n = attrs::int(
            item,
            attr(tags::REFERENCED_ROI_NUMBER, "ReferencedROINumber"),
        )?
        .ok_or("a ROIContourSequence item has no ReferencedROINumber")?;
        let Some(roi) = rois.iter_mut().find(|r| r.number == n) else {
            return Err(format!(
                "contours for ROI number {n}, which the structure set does not list"
            ));
        };
        for c in attrs::items(item, attr(tags::CONTOUR_SEQUENCE, "ContourSequence")) {
            let kind = attrs::text(
                c,
                attr(tags::CONTOUR_GEOMETRIC_TYPE, "ContourGeometricType"),
            )
            .unwrap_or_default();
            let data = attrs::floats(c, attr(tags::CONTOUR_DATA, "ContourData"))
                .map_err(|e| format!("ROI `{}`: {e}", roi.name))?
                .unwrap_or_default();
            if data.len() % 3 != 0 {
                return Err(format!(
                    "ROI `{}`: a contour has {} numbers, not x\\y\\z triplets",
                    roi.name,
                    data.len()
                ));
            }
            let images = attrs::items(
                c,
                attr(tags::CONTOUR_IMAGE_SEQUENCE, "ContourImageSequence"),
            )
            .iter()
            .filter_map(|i: &Obj| {
                attrs::text(
                    i,
                    attr(
                        tags::REFERENCED_SOP_INSTANCE_UID,
                        "ReferencedSOPInstanceUID",
                    ),
                )
            })
            .collect();
            roi.contours.push(Contour {
                kind,
                points: data.chunks(3).map(|p| [p[0], p[1], p[2]]).collect(),
                images,
            });
        }
    }
    Ok(StructureSet {
        frame_of_reference,
        series,
        rois,
    })
}
