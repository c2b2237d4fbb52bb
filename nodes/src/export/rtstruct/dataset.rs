//! The RT Structure Set IOD's data set (PS3.3 A.19): Patient, General Study, RT Series,
//! General Equipment, Frame of Reference, Structure Set, ROI Contour, RT ROI Observations and SOP Common modules,
//! as a Part 10 file in Explicit VR Little Endian.

use super::Roi;
use crate::export::dicom_seg::dataset::{
    instance_refs, patient_and_study, ALGORITHM, MANUFACTURER,
};
use crate::export::dicom_seg::elements::{Ds, Obj};
use crate::export::dicom_seg::source::SourceRef;
use dicom_core::value::PrimitiveValue;
use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;

/// RT Structure Set Storage.
const RTSTRUCT: &str = "1.2.840.10008.5.1.4.1.1.481.3";
/// What RT Referenced Study items name as their SOP class (Study Component Management,
/// retired but what planning systems write and expect).
const STUDY_COMPONENT: &str = "1.2.840.10008.3.1.2.3.2";

pub struct Content<'a> {
    pub src: &'a SourceRef,
    pub study_instance_uid: String,
    pub referenced_series_uid: String,
    pub frame_of_reference_uid: String,
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    pub rois: Vec<Roi>,
}

/// An image reference: the slice's SOP class and instance (and frame, in a multi-frame file).
fn image_ref(src: &SourceRef, k: usize) -> Obj {
    let inst = &src.instances[k];
    let mut d = Ds::new();
    d.s(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &src.sop_class_uid)
        .s(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            &inst.sop_instance_uid,
        );
    if let Some(f) = inst.frame {
        d.s(tags::REFERENCED_FRAME_NUMBER, VR::IS, &f.to_string());
    }
    d.done()
}

fn referenced_frame_of_reference(c: &Content) -> Obj {
    let images = instance_refs(c.src);
    let mut series = Ds::new();
    series
        .s(tags::SERIES_INSTANCE_UID, VR::UI, &c.referenced_series_uid)
        .seq(tags::CONTOUR_IMAGE_SEQUENCE, images);
    let mut study = Ds::new();
    study
        .s(tags::REFERENCED_SOP_CLASS_UID, VR::UI, STUDY_COMPONENT)
        .s(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            &c.study_instance_uid,
        )
        .seq(tags::RT_REFERENCED_SERIES_SEQUENCE, vec![series.done()]);
    let mut d = Ds::new();
    d.s(
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        &c.frame_of_reference_uid,
    )
    .seq(tags::RT_REFERENCED_STUDY_SEQUENCE, vec![study.done()]);
    d.done()
}

fn contour_item(src: &SourceRef, number: usize, k: usize, points: &[[f64; 3]]) -> Obj {
    let mut d = Ds::new();
    d.seq(tags::CONTOUR_IMAGE_SEQUENCE, vec![image_ref(src, k)])
        .s(tags::CONTOUR_GEOMETRIC_TYPE, VR::CS, "CLOSED_PLANAR")
        .s(
            tags::NUMBER_OF_CONTOUR_POINTS,
            VR::IS,
            &points.len().to_string(),
        )
        .s(tags::CONTOUR_NUMBER, VR::IS, &number.to_string())
        .ds(
            tags::CONTOUR_DATA,
            &points.iter().flatten().copied().collect::<Vec<_>>(),
        );
    d.done()
}

/// ORGAN for anatomy, GTV for VISTA3D's tumour classes (their TG-263 names start GTV_).
fn interpreted_type(r: &Roi) -> &'static str {
    if r.name.starts_with("GTV") {
        "GTV"
    } else {
        "ORGAN"
    }
}

/// The whole data set.
pub fn build(c: &Content) -> Obj {
    let src = c.src;
    let version = env!("CARGO_PKG_VERSION");
    let mut d = Ds::new();
    if src.attributes.values().any(|v| !v.is_ascii()) || c.rois.iter().any(|r| !r.name.is_ascii()) {
        d.s(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    }
    d.s(tags::SOP_CLASS_UID, VR::UI, RTSTRUCT).s(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        &c.sop_instance_uid,
    );
    patient_and_study(&mut d, src, &c.study_instance_uid);

    // RT Series, General Equipment.
    let series_number = src.series_number(2000);
    d.s(tags::MODALITY, VR::CS, "RTSTRUCT")
        .s(tags::SERIES_INSTANCE_UID, VR::UI, &c.series_instance_uid)
        .s(tags::SERIES_NUMBER, VR::IS, &series_number.to_string())
        .s(
            tags::SERIES_DESCRIPTION,
            VR::LO,
            &format!("{ALGORITHM} structures"),
        )
        .s(tags::OPERATORS_NAME, VR::PN, "")
        .s(tags::MANUFACTURER, VR::LO, MANUFACTURER)
        .s(tags::MANUFACTURER_MODEL_NAME, VR::LO, MANUFACTURER)
        .s(tags::SOFTWARE_VERSIONS, VR::LO, version);

    // Frame of Reference (the CT's).
    d.s(
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        &c.frame_of_reference_uid,
    )
    .s(
        tags::POSITION_REFERENCE_INDICATOR,
        VR::LO,
        src.attr("PositionReferenceIndicator"),
    );

    // Structure Set: dated as the study (not the clock), so the same result gives the same
    // bytes.
    let (date, time) = src.content_date_time();
    d.s(tags::INSTANCE_NUMBER, VR::IS, "1")
        .s(tags::STRUCTURE_SET_LABEL, VR::SH, ALGORITHM)
        .s(
            tags::STRUCTURE_SET_NAME,
            VR::LO,
            &format!("{ALGORITHM} (vistaflow {version})"),
        )
        .s(tags::STRUCTURE_SET_DATE, VR::DA, date)
        .s(tags::STRUCTURE_SET_TIME, VR::TM, time)
        .seq(
            tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
            vec![referenced_frame_of_reference(c)],
        );
    let roi_items = c
        .rois
        .iter()
        .map(|r| {
            let mut i = Ds::new();
            i.s(tags::ROI_NUMBER, VR::IS, &r.number.to_string())
                .s(
                    tags::REFERENCED_FRAME_OF_REFERENCE_UID,
                    VR::UI,
                    &c.frame_of_reference_uid,
                )
                .s(tags::ROI_NAME, VR::LO, &r.name)
                .s(
                    tags::ROI_DESCRIPTION,
                    VR::ST,
                    &if r.input == "labels" {
                        format!("class {} of the label map", r.class)
                    } else {
                        "a planning structure derived from the label map".to_string()
                    },
                )
                .s(tags::ROI_GENERATION_ALGORITHM, VR::CS, "AUTOMATIC")
                .s(
                    tags::ROI_GENERATION_DESCRIPTION,
                    VR::LO,
                    &format!("{ALGORITHM} (vistaflow {version})"),
                );
            i.done()
        })
        .collect();
    d.seq(tags::STRUCTURE_SET_ROI_SEQUENCE, roi_items);

    // ROI Contour.
    let contour_items = c
        .rois
        .iter()
        .map(|r| {
            let contours = r
                .contours
                .iter()
                .enumerate()
                .map(|(n, (k, pts))| contour_item(src, n + 1, *k, pts))
                .collect();
            let mut i = Ds::new();
            i.put(
                tags::ROI_DISPLAY_COLOR,
                VR::IS,
                PrimitiveValue::Strs(r.colour.iter().map(|v| v.to_string()).collect()),
            )
            .s(tags::REFERENCED_ROI_NUMBER, VR::IS, &r.number.to_string())
            .seq(tags::CONTOUR_SEQUENCE, contours);
            i.done()
        })
        .collect();
    d.seq(tags::ROI_CONTOUR_SEQUENCE, contour_items);

    // RT ROI Observations: the algorithm as the interpreter.
    let observations = c
        .rois
        .iter()
        .map(|r| {
            let mut i = Ds::new();
            i.s(tags::OBSERVATION_NUMBER, VR::IS, &r.number.to_string())
                .s(tags::REFERENCED_ROI_NUMBER, VR::IS, &r.number.to_string())
                .s(tags::RTROI_INTERPRETED_TYPE, VR::CS, interpreted_type(r))
                .s(
                    tags::ROI_INTERPRETER,
                    VR::PN,
                    &format!("{ALGORITHM}^{MANUFACTURER}"),
                );
            i.done()
        })
        .collect();
    d.seq(tags::RTROI_OBSERVATIONS_SEQUENCE, observations);
    d.done()
}

/// The Part 10 file: preamble, meta group, data set in Explicit VR Little Endian.
pub fn encode(obj: Obj) -> Result<Vec<u8>, String> {
    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| format!("cannot build the file meta information: {e}"))?;
    let mut out = Vec::new();
    file.write_all(&mut out)
        .map_err(|e| format!("cannot encode the data set: {e}"))?;
    Ok(out)
}
