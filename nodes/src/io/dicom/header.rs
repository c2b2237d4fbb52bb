//! Reading one file's header (everything before the pixel data) into an [`Instance`]: what
//! grouping, sorting and decoding need, and the identifying attributes kept for exports.

use super::attrs::{self, float, floats_n, int, text, texts, Obj};
use super::enhanced;
use super::frame::{build_geom, rescale, FrameGeom};
use super::lengths;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::OpenFileOptions;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Identifying attributes of one file, kept only for `Volume::identity`.
#[derive(Clone, Debug, Default)]
pub struct Ids {
    pub sop_instance_uid: Option<String>,
    pub sop_class_uid: Option<String>,
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub frame_of_reference_uid: Option<String>,
    /// Patient and study module attributes, by DICOM keyword.
    pub module: Vec<(&'static str, String)>,
}

/// One DICOM file holding a grey-level cross-sectional image (one or more frames).
#[derive(Clone, Debug)]
pub struct Instance {
    pub path: PathBuf,
    pub transfer_syntax: String,
    pub modality: String,
    /// SeriesInstanceUID, or a key built from other attributes where it is empty.
    pub series_key: String,
    pub series_number: Option<i64>,
    pub description: Option<String>,
    pub rescale_type: Option<String>,
    pub rows: u32,
    pub cols: u32,
    /// Multi-frame with per-frame functional groups (Enhanced CT/MR).
    pub enhanced: bool,
    /// `(frame index in the file, geometry)`.
    pub frames: Vec<(u32, FrameGeom)>,
    pub ids: Ids,
}

/// What a file turned out to be.
pub enum Probe {
    /// Boxed: an `Instance` is large and most probes are not images.
    Image(Box<Instance>),
    /// A DICOM file that is not a grey-level cross-sectional image (DICOMDIR, SR, SEG, RT,
    /// colour, projection images without patient geometry); the reason, without values.
    Other(String),
    /// No `DICM` magic: not a DICOM Part 10 file.
    NotDicom,
    /// A DICOM file that cannot be read; the problem, without values.
    Broken(String),
}

/// How a file starts.
#[derive(Clone, Copy)]
enum Start {
    /// DICOM Part 10: the 128-byte preamble then `DICM` (`true`), or `DICM` at offset 0.
    Part10 {
        preamble: bool,
    },
    /// A legacy data set without preamble or file meta group (ACR-NEMA style, old PACS
    /// exports; pydicom's `no_meta.dcm`): its transfer syntax, guessed from the first element.
    Legacy(&'static str),
    NotDicom,
}

/// Reads the first bytes of `path` and tells how it starts.
fn sniff(path: &Path) -> std::io::Result<Start> {
    let mut f = File::open(path)?;
    let mut buf = [0u8; 132];
    let mut n = 0;
    while n < buf.len() {
        let m = f.read(&mut buf[n..])?;
        if m == 0 {
            break;
        }
        n += m;
    }
    Ok(if n >= 132 && &buf[128..132] == b"DICM" {
        Start::Part10 { preamble: true }
    } else if n >= 4 && &buf[0..4] == b"DICM" {
        Start::Part10 { preamble: false }
    } else if n >= 8 {
        legacy_syntax(&buf[..8]).map_or(Start::NotDicom, Start::Legacy)
    } else {
        Start::NotDicom
    })
}

/// The transfer syntax of a data set that starts with `first` (8 bytes) and has no file meta
/// group, as dcm2niix and pydicom guess it: the first element's group is an even public
/// group after the meta group (0008-7FE0); an explicit VR is two upper-case letters after the
/// tag; big endian (explicit VR only) when the group reads lower that way round.
fn legacy_syntax(first: &[u8]) -> Option<&'static str> {
    use dicom_dictionary_std::uids;
    let plausible = |g: u16| (0x0008..=0x7fe0).contains(&g) && g.is_multiple_of(2);
    let explicit = first[4].is_ascii_uppercase() && first[5].is_ascii_uppercase();
    let (le, be) = (
        u16::from_le_bytes([first[0], first[1]]),
        u16::from_be_bytes([first[0], first[1]]),
    );
    // Both readings can look like a group (0x0008 is 0x0800 the other way round): the first
    // element of a data set is in a low group, so the smaller reading wins.
    if plausible(le) && !(plausible(be) && be < le && explicit) {
        Some(if explicit {
            uids::EXPLICIT_VR_LITTLE_ENDIAN
        } else {
            uids::IMPLICIT_VR_LITTLE_ENDIAN
        })
    } else if plausible(be) && explicit {
        // Explicit VR Big Endian: retired from the standard (so deprecated in the dictionary),
        // but old files still carry it.
        Some("1.2.840.10008.1.2.2")
    } else {
        None
    }
}

/// Opens `path` with `ReadPreamble` chosen from the magic bytes; `read_all` reads the pixel
/// data too. Errors are in words, without values.
pub fn open(path: &Path, read_all: bool) -> Result<dicom_object::DefaultDicomObject, Probe> {
    let start = match sniff(path) {
        Ok(Start::NotDicom) => return Err(Probe::NotDicom),
        Ok(start) => start,
        Err(e) => return Err(Probe::Broken(format!("cannot read: {e}"))),
    };
    // Declared lengths against the file's size first: the parser allocates what they say.
    let walked = File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|f| match start {
            Start::Part10 { preamble } => {
                lengths::check(&f, if preamble { 132 } else { 4 }, true, None, read_all)
            }
            // A legacy data set is read whole (see open_legacy), pixel data included, so its
            // pixel data length is checked even for a header scan (a fuzzing finding: 4 GB).
            Start::Legacy(ts) => lengths::check(&f, 0, false, Some(ts), true),
            Start::NotDicom => Ok(()),
        });
    match (walked, start) {
        (Ok(()), _) => {}
        // Lengths that do not fit: the guess that this is a legacy data set was wrong.
        (Err(_), Start::Legacy(_)) => return Err(Probe::NotDicom),
        (Err(e), _) => return Err(Probe::Broken(e)),
    }
    let preamble = match start {
        Start::Part10 { preamble: true } => ReadPreamble::Always,
        Start::Part10 { preamble: false } => ReadPreamble::Never,
        Start::Legacy(ts) => return open_legacy(path, ts),
        Start::NotDicom => return Err(Probe::NotDicom),
    };
    let mut opts = OpenFileOptions::new().read_preamble(preamble);
    if !read_all {
        opts = opts.read_until(tags::PIXEL_DATA);
    }
    opts.open_file(path).map_err(|e| {
        let chain = error_chain(&e);
        Probe::Broken(if chain.contains("failed to fill whole buffer") {
            format!(
                "truncated: the file ends inside a data element (an interrupted copy?): {chain}"
            )
        } else {
            format!("not a readable DICOM file: {chain}")
        })
    })
}

/// A legacy data set read whole with the guessed transfer syntax and given the file meta
/// group it lacks. A file whose guess was wrong reads as garbage or fails: `NotDicom` then,
/// as before (such a file was never readable as DICOM by this loader).
fn open_legacy(path: &Path, ts_uid: &str) -> Result<dicom_object::DefaultDicomObject, Probe> {
    use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    let ts = TransferSyntaxRegistry
        .get(ts_uid)
        .ok_or_else(|| Probe::Broken(format!("transfer syntax {ts_uid} is not known")))?;
    let file = File::open(path).map_err(|e| Probe::Broken(format!("cannot read: {e}")))?;
    let obj =
        dicom_object::InMemDicomObject::read_dataset_with_ts(std::io::BufReader::new(file), ts)
            .map_err(|_| Probe::NotDicom)?;
    if obj.get(tags::SOP_CLASS_UID).is_none() && obj.get(tags::MODALITY).is_none() {
        return Err(Probe::NotDicom);
    }
    obj.with_meta(dicom_object::FileMetaTableBuilder::new().transfer_syntax(ts_uid))
        .map_err(|e| {
            Probe::Broken(format!(
                "a DICOM data set without file meta group, and without the SOP Class and \
                 Instance UIDs that would stand in for it: {}",
                error_chain(&e)
            ))
        })
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

/// Reads the header of `path`.
pub fn probe(path: &Path) -> Probe {
    let obj = match open(path, false) {
        Ok(o) => o,
        Err(p) => return p,
    };
    match instance(path, &obj) {
        Ok(p) => p,
        Err(msg) => Probe::Broken(msg),
    }
}

const DICOMDIR_CLASS: &str = "1.2.840.10008.1.3.10";

fn instance(path: &Path, file: &dicom_object::DefaultDicomObject) -> Result<Probe, String> {
    let meta = file.meta();
    let obj: &Obj = file;
    // dicom-rs's getters trim a UID's padding (any trailing whitespace or NUL), the same
    // trim that lengths.rs applies to the raw transfer syntax.
    let meta_class = meta.media_storage_sop_class_uid();
    if meta_class == DICOMDIR_CLASS {
        return Ok(Probe::Other(
            "a DICOMDIR (the folder is searched instead)".into(),
        ));
    }
    let modality = text(obj, attrs::MODALITY).unwrap_or_default();
    if matches!(
        modality.as_str(),
        "SEG" | "RTSTRUCT" | "RTPLAN" | "RTDOSE" | "RTIMAGE" | "SR" | "PR" | "KO" | "REG"
    ) {
        return Ok(Probe::Other(format!(
            "modality {modality} is not an image volume"
        )));
    }
    let (Some(rows), Some(cols)) = (int(obj, attrs::ROWS)?, int(obj, attrs::COLUMNS)?) else {
        return Ok(Probe::Other("no image (Rows/Columns absent)".into()));
    };
    if rows <= 0 || cols <= 0 || rows > 65535 || cols > 65535 {
        return Err(format!("Rows/Columns out of range ({rows} x {cols})"));
    }
    let spp = int(obj, attrs::SAMPLES_PER_PIXEL)?.unwrap_or(1);
    let photometric = text(obj, attrs::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    if spp != 1 || !(photometric.is_empty() || photometric.starts_with("MONOCHROME")) {
        return Ok(Probe::Other(format!(
            "a colour image ({photometric}, {spp} samples per pixel); only grey-level volumes \
             are loaded"
        )));
    }
    let nframes = match int(obj, attrs::NUMBER_OF_FRAMES)? {
        None => 1,
        Some(n) if n >= 1 => n as u32,
        Some(n) => return Err(format!("NumberOfFrames is {n}")),
    };
    let enhanced = obj
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .is_some();
    let frames: Vec<(u32, FrameGeom)> = if enhanced {
        let geoms = enhanced::frame_geoms(obj, nframes)?;
        match geoms {
            Some(g) => g
                .into_iter()
                .enumerate()
                .map(|(i, g)| (i as u32, g))
                .collect(),
            None => {
                return Ok(Probe::Other(
                    "a multi-frame image without plane position/orientation per frame".into(),
                ))
            }
        }
    } else {
        if nframes > 1 {
            return Ok(Probe::Other(format!(
                "a {nframes}-frame image without per-frame functional groups (cine or \
                 projection frames, not slices)"
            )));
        }
        match plain_geom(obj)? {
            Some(g) => vec![(0, g)],
            None => {
                return Ok(Probe::Other(
                    "no patient geometry (ImagePositionPatient, ImageOrientationPatient or \
                     PixelSpacing absent)"
                        .into(),
                ))
            }
        }
    };

    let series_uid = text(obj, attrs::SERIES_INSTANCE_UID);
    let description = text(obj, attrs::SERIES_DESCRIPTION);
    let series_number = int(obj, attrs::SERIES_NUMBER).ok().flatten();
    let for_uid = text(obj, attrs::FRAME_OF_REFERENCE_UID);
    let study_uid = text(obj, attrs::STUDY_INSTANCE_UID);
    let series_key = match &series_uid {
        Some(uid) => format!("uid|{uid}"),
        // Where the UID is empty (anonymised data), instances of one series still share
        // these; orientation, spacing and size are added when stacks are formed.
        None => format!(
            "attrs|{}|{}|{modality}|{:?}|{}|{}|{}|{}|{}|{}",
            for_uid.as_deref().unwrap_or(""),
            study_uid.as_deref().unwrap_or(""),
            series_number,
            description.as_deref().unwrap_or(""),
            texts(obj, attrs::IMAGE_TYPE).join("\\"),
            texts(obj, attrs::CONVOLUTION_KERNEL).join("\\"),
            text(obj, attrs::SLICE_THICKNESS).unwrap_or_default(),
            text(obj, attrs::ECHO_TIME).unwrap_or_default(),
            text(obj, attrs::ECHO_NUMBERS).unwrap_or_default(),
        ),
    };
    let mut module = Vec::new();
    for a in [
        attrs::PATIENT_NAME,
        attrs::PATIENT_ID,
        attrs::PATIENT_BIRTH_DATE,
        attrs::PATIENT_SEX,
        attrs::STUDY_DATE,
        attrs::STUDY_TIME,
        attrs::STUDY_ID,
        attrs::ACCESSION_NUMBER,
        attrs::REFERRING_PHYSICIAN_NAME,
        attrs::STUDY_DESCRIPTION,
        attrs::SERIES_DESCRIPTION,
        attrs::MANUFACTURER,
        attrs::POSITION_REFERENCE_INDICATOR,
    ] {
        if let Some(v) = text(obj, a) {
            module.push((a.1, v));
        }
    }
    if let Some(n) = series_number {
        module.push(("SeriesNumber", n.to_string()));
    }
    let ids = Ids {
        sop_instance_uid: text(obj, attrs::SOP_INSTANCE_UID).or_else(|| {
            Some(meta.media_storage_sop_instance_uid().to_string()).filter(|s| !s.is_empty())
        }),
        sop_class_uid: text(obj, attrs::SOP_CLASS_UID)
            .or_else(|| Some(meta_class.to_string()).filter(|s| !s.is_empty())),
        study_instance_uid: study_uid,
        series_instance_uid: series_uid,
        frame_of_reference_uid: for_uid,
        module,
    };
    Ok(Probe::Image(Box::new(Instance {
        path: path.to_path_buf(),
        transfer_syntax: meta.transfer_syntax().to_string(),
        modality,
        series_key,
        series_number,
        description,
        rescale_type: text(obj, attrs::RESCALE_TYPE),
        rows: rows as u32,
        cols: cols as u32,
        enhanced,
        frames,
        ids,
    })))
}

/// Geometry of a single-frame image from its root attributes; `Ok(None)` when absent.
fn plain_geom(obj: &Obj) -> Result<Option<FrameGeom>, String> {
    let ipp = floats_n(obj, attrs::IMAGE_POSITION_PATIENT, 3)?;
    let iop = floats_n(obj, attrs::IMAGE_ORIENTATION_PATIENT, 6)?;
    let ps = floats_n(obj, attrs::PIXEL_SPACING, 2)?;
    let (Some(ipp), Some(iop), Some(ps)) = (ipp, iop, ps) else {
        return Ok(None);
    };
    let (slope, intercept) = rescale(obj)?;
    build_geom(
        &ipp,
        &iop,
        &ps,
        float(obj, attrs::SLICE_THICKNESS)?,
        slope,
        intercept,
    )
    .map(Some)
}
