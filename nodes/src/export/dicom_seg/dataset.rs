//! The Segmentation IOD's data set (PS3.3 A.51): Patient, General Study, General Series,
//! Segmentation Series, Frame of Reference, General and Enhanced General Equipment, General
//! Image, Image Pixel, Segmentation Image, Multi-frame Functional Groups, Multi-frame
//! Dimension, Common Instance Reference and SOP Common modules, and its encoding as a Part 10
//! file in Explicit VR Little Endian.

use super::codes::Code;
use super::content::{Content, Segment};
use super::elements::{code_item, code_with_modifier, dcm, truncate, Ds, Obj};
use super::groups::{dimensions, frame_item, shared_groups};
use super::source::{InstanceRef, SourceRef};
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;

/// Manufacturer, model and content creator written into every SEG.
pub const MANUFACTURER: &str = "vistaflow";
/// The segmentation algorithm named in every segment.
pub const ALGORITHM: &str = "VISTA3D";

fn segment_item(s: &Segment) -> Obj {
    let mut algo = Ds::new();
    algo.seq(
        tags::ALGORITHM_FAMILY_CODE_SEQUENCE,
        vec![code_item(&dcm("123110", "Artificial Intelligence"))],
    )
    .s(tags::ALGORITHM_NAME, VR::LO, ALGORITHM)
    .s(tags::ALGORITHM_VERSION, VR::LO, env!("CARGO_PKG_VERSION"));

    let c = s.codes;
    let mut d = Ds::new();
    d.us(tags::SEGMENT_NUMBER, s.number)
        .s(tags::SEGMENT_LABEL, VR::LO, &truncate(&s.label, 64))
        .s(
            tags::SEGMENT_DESCRIPTION,
            VR::ST,
            &format!("class {} of the label map", s.class),
        )
        .s(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC")
        .s(tags::SEGMENT_ALGORITHM_NAME, VR::LO, ALGORITHM)
        .seq(
            tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE,
            vec![algo.done()],
        )
        .seq(
            tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
            vec![code_item(&c.category)],
        )
        .seq(
            tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
            vec![code_with_modifier(
                &c.kind,
                c.type_modifier.as_ref(),
                tags::SEGMENTED_PROPERTY_TYPE_MODIFIER_CODE_SEQUENCE,
            )],
        )
        .put(
            tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE,
            VR::US,
            PrimitiveValue::U16(s.lab.into_iter().collect()),
        );
    if let Some(region) = &c.region {
        d.seq(
            tags::ANATOMIC_REGION_SEQUENCE,
            vec![code_with_modifier(
                region,
                c.region_modifier.as_ref(),
                tags::ANATOMIC_REGION_MODIFIER_SEQUENCE,
            )],
        );
    }
    d.done()
}

/// The source instances, each once (a multi-frame file is one instance), in slice order.
pub(crate) fn unique_instances(src: &SourceRef) -> impl Iterator<Item = &InstanceRef> {
    let mut seen = std::collections::BTreeSet::new();
    src.instances
        .iter()
        .filter(move |i| seen.insert(i.sop_instance_uid.as_str()))
}

/// One reference item (SOP class and instance) per source instance, in slice order.
pub(crate) fn instance_refs(src: &SourceRef) -> Vec<Obj> {
    unique_instances(src)
        .map(|i| {
            let mut d = Ds::new();
            d.s(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &src.sop_class_uid)
                .s(
                    tags::REFERENCED_SOP_INSTANCE_UID,
                    VR::UI,
                    &i.sop_instance_uid,
                );
            d.done()
        })
        .collect()
}

fn referenced_series(c: &Content) -> Obj {
    let instances = instance_refs(c.src);
    let mut d = Ds::new();
    d.seq(tags::REFERENCED_INSTANCE_SEQUENCE, instances).s(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &c.referenced_series_uid,
    );
    d.done()
}

/// Patient and General Study modules, copied from the source (Type 2: present, maybe
/// empty), with the de-identification attributes when the identity was removed.
pub(crate) fn patient_and_study(d: &mut Ds, src: &SourceRef, study_instance_uid: &str) {
    // Patient and General Study: copied from the source (Type 2: present, maybe empty).
    for (tag, vr, kw) in [
        (tags::PATIENT_NAME, VR::PN, "PatientName"),
        (tags::PATIENT_ID, VR::LO, "PatientID"),
        (tags::PATIENT_BIRTH_DATE, VR::DA, "PatientBirthDate"),
        (tags::PATIENT_SEX, VR::CS, "PatientSex"),
        (tags::STUDY_DATE, VR::DA, "StudyDate"),
        (tags::STUDY_TIME, VR::TM, "StudyTime"),
        (
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            "ReferringPhysicianName",
        ),
        (tags::STUDY_ID, VR::SH, "StudyID"),
        (tags::ACCESSION_NUMBER, VR::SH, "AccessionNumber"),
    ] {
        d.s(tag, vr, src.attr(kw));
    }
    if !src.attr("StudyDescription").is_empty() {
        d.s(
            tags::STUDY_DESCRIPTION,
            VR::LO,
            src.attr("StudyDescription"),
        );
    }
    d.s(tags::STUDY_INSTANCE_UID, VR::UI, study_instance_uid);
    if src.identity_removed {
        let code = |value: &str, meaning: &str| {
            code_item(&Code {
                value: value.into(),
                scheme: "DCM".into(),
                meaning: meaning.into(),
            })
        };
        d.s(tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES")
            .s(
                tags::DEIDENTIFICATION_METHOD,
                VR::LO,
                "PS3.15 E.1 Basic Profile, Retain UIDs Option (vistaflow)",
            )
            .seq(
                tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
                vec![
                    code("113100", "Basic Application Confidentiality Profile"),
                    code("113110", "Retain UIDs Option"),
                ],
            );
    }
}

/// The whole data set.
pub fn build(c: &Content) -> Obj {
    let src = c.src;
    let version = env!("CARGO_PKG_VERSION");
    let mut d = Ds::new();

    // SOP Common; the character set only when some copied text is not ASCII.
    if src.attributes.values().any(|v| !v.is_ascii()) {
        d.s(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    }
    d.s(tags::SOP_CLASS_UID, VR::UI, uids::SEGMENTATION_STORAGE)
        .s(tags::SOP_INSTANCE_UID, VR::UI, &c.sop_instance_uid);

    patient_and_study(&mut d, src, &c.study_instance_uid);

    // General Series + Segmentation Series.
    let series_number = src.series_number(1000);
    d.s(tags::MODALITY, VR::CS, "SEG")
        .s(tags::SERIES_INSTANCE_UID, VR::UI, &c.series_instance_uid)
        .s(tags::SERIES_NUMBER, VR::IS, &series_number.to_string())
        .s(
            tags::SERIES_DESCRIPTION,
            VR::LO,
            &format!("{ALGORITHM} segmentation"),
        );

    // Frame of Reference.
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

    // General + Enhanced General Equipment.
    d.s(tags::MANUFACTURER, VR::LO, MANUFACTURER)
        .s(tags::MANUFACTURER_MODEL_NAME, VR::LO, MANUFACTURER)
        .s(tags::DEVICE_SERIAL_NUMBER, VR::LO, "0")
        .s(tags::SOFTWARE_VERSIONS, VR::LO, version);

    // General Image, Segmentation Image, Multi-frame Functional Groups. The content date and
    // time are the study's (not the clock's), so that the same result gives the same bytes.
    let (date, time) = src.content_date_time();
    d.s(tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY")
        .s(tags::INSTANCE_NUMBER, VR::IS, "1")
        .s(tags::CONTENT_DATE, VR::DA, date)
        .s(tags::CONTENT_TIME, VR::TM, time)
        .s(tags::CONTENT_LABEL, VR::CS, "VISTA3D_SEG")
        .s(
            tags::CONTENT_DESCRIPTION,
            VR::LO,
            &format!("{ALGORITHM} segmentation written by vistaflow {version}"),
        )
        // A name with its component separator: "vistaflow" alone reads as a retired PN form.
        .s(
            tags::CONTENT_CREATOR_NAME,
            VR::PN,
            &format!("{MANUFACTURER}^"),
        )
        .s(tags::SEGMENTATION_TYPE, VR::CS, "BINARY")
        .s(tags::SEGMENTS_OVERLAP, VR::CS, "NO")
        .s(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00")
        .s(tags::NUMBER_OF_FRAMES, VR::IS, &c.frames.len().to_string());
    d.seq(
        tags::SEGMENT_SEQUENCE,
        c.segments.iter().map(segment_item).collect(),
    );
    d.seq(
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![shared_groups(c)],
    );
    d.seq(
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        c.frames.iter().map(|f| frame_item(c, f)).collect(),
    );
    dimensions(c, &mut d);

    // Common Instance Reference.
    d.seq(tags::REFERENCED_SERIES_SEQUENCE, vec![referenced_series(c)]);

    // Image Pixel.
    d.us(tags::SAMPLES_PER_PIXEL, 1)
        .s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2")
        .us(tags::ROWS, c.shape[1] as u16)
        .us(tags::COLUMNS, c.shape[2] as u16)
        .us(tags::BITS_ALLOCATED, 1)
        .us(tags::BITS_STORED, 1)
        .us(tags::HIGH_BIT, 0)
        .us(tags::PIXEL_REPRESENTATION, 0);
    d.done()
}

/// The Part 10 file (preamble, meta group, data set in Explicit VR Little Endian) with
/// `pixel_data` as Pixel Data (OB).
pub fn encode(mut obj: Obj, pixel_data: Vec<u8>) -> Result<Vec<u8>, String> {
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixel_data),
    ));
    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| format!("cannot build the file meta information: {e}"))?;
    let mut out = Vec::new();
    file.write_all(&mut out)
        .map_err(|e| format!("cannot encode the data set: {e}"))?;
    Ok(out)
}
