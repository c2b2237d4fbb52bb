//! Typed reads of data elements, tolerant of absent and empty values.
//!
//! Every reader takes an [`Attr`] (tag plus keyword) so that messages can name the attribute.
//! Values are never put into messages: they may identify the patient.

use dicom_core::header::HasLength;
use dicom_core::value::PrimitiveValue;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// A data set (a file's root or a sequence item).
pub type Obj = InMemDicomObject;

/// A tag with its DICOM keyword, for messages.
#[derive(Clone, Copy)]
pub struct Attr(pub Tag, pub &'static str);

macro_rules! attrs {
    ($($name:ident = $tag:ident, $kw:literal;)*) => {
        $(pub const $name: Attr = Attr(tags::$tag, $kw);)*
    };
}

attrs! {
    MODALITY = MODALITY, "Modality";
    SERIES_INSTANCE_UID = SERIES_INSTANCE_UID, "SeriesInstanceUID";
    STUDY_INSTANCE_UID = STUDY_INSTANCE_UID, "StudyInstanceUID";
    SOP_INSTANCE_UID = SOP_INSTANCE_UID, "SOPInstanceUID";
    SOP_CLASS_UID = SOP_CLASS_UID, "SOPClassUID";
    FRAME_OF_REFERENCE_UID = FRAME_OF_REFERENCE_UID, "FrameOfReferenceUID";
    SERIES_NUMBER = SERIES_NUMBER, "SeriesNumber";
    SERIES_DESCRIPTION = SERIES_DESCRIPTION, "SeriesDescription";
    IMAGE_TYPE = IMAGE_TYPE, "ImageType";
    CONVOLUTION_KERNEL = CONVOLUTION_KERNEL, "ConvolutionKernel";
    ECHO_TIME = ECHO_TIME, "EchoTime";
    ECHO_NUMBERS = ECHO_NUMBERS, "EchoNumbers";
    SLICE_THICKNESS = SLICE_THICKNESS, "SliceThickness";
    ROWS = ROWS, "Rows";
    COLUMNS = COLUMNS, "Columns";
    SAMPLES_PER_PIXEL = SAMPLES_PER_PIXEL, "SamplesPerPixel";
    PHOTOMETRIC_INTERPRETATION = PHOTOMETRIC_INTERPRETATION, "PhotometricInterpretation";
    BITS_ALLOCATED = BITS_ALLOCATED, "BitsAllocated";
    BITS_STORED = BITS_STORED, "BitsStored";
    PIXEL_REPRESENTATION = PIXEL_REPRESENTATION, "PixelRepresentation";
    NUMBER_OF_FRAMES = NUMBER_OF_FRAMES, "NumberOfFrames";
    IMAGE_POSITION_PATIENT = IMAGE_POSITION_PATIENT, "ImagePositionPatient";
    IMAGE_ORIENTATION_PATIENT = IMAGE_ORIENTATION_PATIENT, "ImageOrientationPatient";
    PIXEL_SPACING = PIXEL_SPACING, "PixelSpacing";
    RESCALE_SLOPE = RESCALE_SLOPE, "RescaleSlope";
    RESCALE_INTERCEPT = RESCALE_INTERCEPT, "RescaleIntercept";
    RESCALE_TYPE = RESCALE_TYPE, "RescaleType";
    PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE = PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, "PerFrameFunctionalGroupsSequence";
    SHARED_FUNCTIONAL_GROUPS_SEQUENCE = SHARED_FUNCTIONAL_GROUPS_SEQUENCE, "SharedFunctionalGroupsSequence";
    PLANE_POSITION_SEQUENCE = PLANE_POSITION_SEQUENCE, "PlanePositionSequence";
    PLANE_ORIENTATION_SEQUENCE = PLANE_ORIENTATION_SEQUENCE, "PlaneOrientationSequence";
    PIXEL_MEASURES_SEQUENCE = PIXEL_MEASURES_SEQUENCE, "PixelMeasuresSequence";
    PIXEL_VALUE_TRANSFORMATION_SEQUENCE = PIXEL_VALUE_TRANSFORMATION_SEQUENCE, "PixelValueTransformationSequence";
    PATIENT_NAME = PATIENT_NAME, "PatientName";
    PATIENT_ID = PATIENT_ID, "PatientID";
    PATIENT_BIRTH_DATE = PATIENT_BIRTH_DATE, "PatientBirthDate";
    PATIENT_SEX = PATIENT_SEX, "PatientSex";
    STUDY_DATE = STUDY_DATE, "StudyDate";
    STUDY_TIME = STUDY_TIME, "StudyTime";
    STUDY_ID = STUDY_ID, "StudyID";
    ACCESSION_NUMBER = ACCESSION_NUMBER, "AccessionNumber";
    REFERRING_PHYSICIAN_NAME = REFERRING_PHYSICIAN_NAME, "ReferringPhysicianName";
    STUDY_DESCRIPTION = STUDY_DESCRIPTION, "StudyDescription";
    MANUFACTURER = MANUFACTURER, "Manufacturer";
    POSITION_REFERENCE_INDICATOR = POSITION_REFERENCE_INDICATOR, "PositionReferenceIndicator";
}

/// The raw bytes of an element stored with VR UN (explicit VR files whose writer did not
/// know the attribute); the dictionary VR is not applied by the parser, so text attributes
/// are read from these bytes.
fn un_bytes(obj: &Obj, a: Attr) -> Option<&[u8]> {
    let e = obj.get(a.0)?;
    match (e.vr(), e.value().primitive()) {
        (VR::UN, Some(PrimitiveValue::U8(b))) => Some(b),
        _ => None,
    }
}

fn un_text(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .to_string()
}

/// The value as trimmed text; `None` when absent, empty or not text.
pub fn text(obj: &Obj, a: Attr) -> Option<String> {
    if let Some(b) = un_bytes(obj, a) {
        let s = un_text(b);
        return (!s.is_empty()).then_some(s);
    }
    let e = obj.get(a.0)?;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_string())
}

/// All values as trimmed texts (multi-valued attributes joined by `\`).
pub fn texts(obj: &Obj, a: Attr) -> Vec<String> {
    match obj.get(a.0).and_then(|e| e.to_multi_str().ok()) {
        Some(v) => v.iter().map(|s| s.trim().to_string()).collect(),
        None => vec![],
    }
}

/// Numbers; `Ok(None)` when absent or empty, `Err` when present but not numbers.
pub fn floats(obj: &Obj, a: Attr) -> Result<Option<Vec<f64>>, String> {
    if let Some(b) = un_bytes(obj, a) {
        let s = un_text(b);
        if s.is_empty() {
            return Ok(None);
        }
        return s
            .split('\\')
            .map(|x| x.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect::<Option<Vec<f64>>>()
            .map(Some)
            .ok_or_else(|| format!("{} (VR UN) is not a list of numbers", a.1));
    }
    let Some(e) = obj.get(a.0) else {
        return Ok(None);
    };
    if e.value().primitive().is_some_and(|p| p.is_empty())
        || e.to_str().is_ok_and(|s| s.trim().is_empty())
    {
        return Ok(None);
    }
    match e.to_multi_float64() {
        Ok(v) if v.iter().all(|x| x.is_finite()) => Ok(Some(v)),
        Ok(_) => Err(format!("{} holds a non-finite number", a.1)),
        Err(_) => Err(format!("{} is not a list of numbers", a.1)),
    }
}

/// Exactly `n` numbers, or `Ok(None)` when absent/empty.
pub fn floats_n(obj: &Obj, a: Attr, n: usize) -> Result<Option<Vec<f64>>, String> {
    match floats(obj, a)? {
        None => Ok(None),
        Some(v) if v.len() == n => Ok(Some(v)),
        Some(v) => Err(format!("{} has {} values, expected {n}", a.1, v.len())),
    }
}

/// One number, or `Ok(None)` when absent/empty.
pub fn float(obj: &Obj, a: Attr) -> Result<Option<f64>, String> {
    Ok(floats(obj, a)?.and_then(|v| v.first().copied()))
}

/// One integer, or `Ok(None)` when absent/empty.
pub fn int(obj: &Obj, a: Attr) -> Result<Option<i64>, String> {
    if let Some(b) = un_bytes(obj, a) {
        // Binary (US/UL, little endian) or text (IS), by length and content.
        return match b.len() {
            0 => Ok(None),
            2 => Ok(Some(u16::from_le_bytes([b[0], b[1]]) as i64)),
            4 if !b.iter().all(|c| c.is_ascii_digit() || *c == b' ') => {
                Ok(Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64))
            }
            _ => un_text(b)
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("{} (VR UN) is not an integer", a.1)),
        };
    }
    let Some(e) = obj.get(a.0) else {
        return Ok(None);
    };
    if e.value().primitive().is_some_and(|p| p.is_empty())
        || e.to_str().is_ok_and(|s| s.trim().is_empty())
    {
        return Ok(None);
    }
    e.to_int::<i64>()
        .map(Some)
        .map_err(|_| format!("{} is not an integer", a.1))
}

/// The items of a sequence (empty when absent).
pub fn items(obj: &Obj, a: Attr) -> &[Obj] {
    obj.get(a.0).and_then(|e| e.items()).unwrap_or(&[])
}

/// The first item of a sequence nested in a functional group item.
pub fn first_item(obj: &Obj, a: Attr) -> Option<&Obj> {
    items(obj, a).first()
}
