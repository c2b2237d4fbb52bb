//! Shared by the DICOM export tests (SEG and RT-STRUCT): the real TotalSegmentator CT
//! series and its labels on the series' grid, dciodvfy, a recorder of warnings and progress.

use dicom_core::VR;
use dicom_dictionary_std::tags;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use tch::{Device, Kind};
use vistaflow_nodes::io::dicom::LoadDicom;
use vistaflow_nodes::io::LoadNifti;
use vistaflow_nodes::node::{CancelToken, Ctx, Inputs, Node, ProgressSink};
use vistaflow_nodes::params::Params;
use vistaflow_nodes::spatial::Resample;
use vistaflow_nodes::value::{LabelMap, Value, Volume};

pub const TS_DICOM: &str = "totalsegmentator/example_ct_dicom";
pub const TS_SEG: &str = "totalsegmentator/example_seg_dicom.nii.gz";
/// Names for some of the label map's ids, from TotalSegmentator v2's `total` task (liver = 5
/// is documented with the data). Spelled as a user might: "Spleen" matches VISTA3D's "spleen"
/// (case ignored); TotalSegmentator's "adrenal_gland_right" is not a VISTA3D name, so it gets
/// the generic code and a warning. The other ids stay unnamed ("class <id>", generic code).
pub const NAMES: [(u32, &str); 5] = [
    (1, "Spleen"),
    (5, "liver"),
    (6, "stomach"),
    (7, "pancreas"),
    (8, "adrenal_gland_right"),
];

/// Warnings and progress collected from a run.
#[derive(Default)]
pub struct Rec {
    pub warnings: Mutex<Vec<String>>,
    pub progress: Mutex<Vec<(u64, u64)>>,
}

impl ProgressSink for Rec {
    fn progress(&self, done: u64, total: u64, _: &str) {
        self.progress.lock().unwrap().push((done, total));
    }
    fn warn(&self, m: &str) {
        self.warnings.lock().unwrap().push(m.to_string());
    }
}

pub fn rec_ctx() -> (Ctx, Arc<Rec>) {
    let rec = Arc::new(Rec::default());
    (Ctx::new(Device::Cpu, CancelToken::new(), rec.clone()), rec)
}

/// Params as the engine checks them: the spec's defaults, then `extra`.
pub fn params(node: &dyn Node, extra: Json) -> Params {
    let mut p = Params::new();
    for ps in &node.spec().params {
        if let Some(d) = &ps.default {
            p.insert(ps.name.into(), d.clone());
        }
    }
    for (k, v) in extra.as_object().unwrap() {
        p.insert(k.clone(), v.clone());
    }
    p
}

pub fn need(p: PathBuf) -> PathBuf {
    assert!(
        p.exists(),
        "{} is missing: run scripts/fetch-data.sh",
        p.display()
    );
    p
}

pub fn load_dicom(dir: &Path) -> Volume {
    let p = params(&LoadDicom, json!({ "path": dir.to_str().unwrap() }));
    match LoadDicom.run(&Ctx::cpu(), Inputs::new(), &p) {
        Ok(mut out) => match out.remove("image") {
            Some(Value::Image(v)) => v,
            other => panic!("load_dicom: expected an image, got {other:?}"),
        },
        Err(e) => panic!("load_dicom {}: {e}", dir.display()),
    }
}

pub fn load_nifti(path: &Path, labels: bool) -> Value {
    let p = params(
        &LoadNifti,
        json!({ "path": path.to_str().unwrap(), "labels": labels }),
    );
    let mut out = LoadNifti
        .run(&Ctx::cpu(), Inputs::new(), &p)
        .unwrap_or_else(|e| panic!("load_nifti {}: {e}", path.display()));
    out.remove(if labels { "labels" } else { "image" })
        .expect("load_nifti output")
}

/// `labels` resampled onto `image` by the `resample` node (`reference` input).
pub fn resample_onto(labels: LabelMap, image: &Volume) -> LabelMap {
    let p = params(&Resample, json!({}));
    let out = Resample
        .run(
            &Ctx::cpu(),
            Inputs::from([
                ("image".to_string(), Value::Labels(labels)),
                ("reference".to_string(), Value::Image(image.clone())),
            ]),
            &p,
        )
        .unwrap_or_else(|e| panic!("resample: {e}"));
    match out.get("labels") {
        Some(Value::Labels(l)) => l.clone(),
        other => panic!("resample: expected labels, got {other:?}"),
    }
}

/// The series (`dicom_dir`) and its labels, on the series' grid, liver named.
pub fn inputs(dicom_dir: &Path, data: &Path) -> (Volume, LabelMap) {
    let ct = load_dicom(dicom_dir);
    let Value::Labels(raw) = load_nifti(&need(data.join(TS_SEG)), true) else {
        panic!("load_nifti labels: true gives labels")
    };
    let mut labels = resample_onto(raw, &ct);
    for (id, name) in NAMES {
        labels.classes.insert(id, name.into());
    }
    (ct, labels)
}

/// Runs dciodvfy; fails on any "Error" line; returns the warning lines.
pub fn dciodvfy(seg: &Path) -> Vec<String> {
    let out = match Command::new("dciodvfy").arg(seg).output() {
        Ok(o) => o,
        Err(e) => {
            panic!("cannot run dciodvfy ({e}): install dicom3tools (apt-get install dicom3tools)")
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("Error")).collect();
    let warnings: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("Warning"))
        .map(str::to_string)
        .collect();
    eprintln!(
        "dciodvfy: {} errors, {} warnings",
        errors.len(),
        warnings.len()
    );
    for w in &warnings {
        eprintln!("  {w}");
    }
    assert!(errors.is_empty(), "dciodvfy reports errors:\n{text}");
    warnings
}

/// The class ids present (> 0), ascending.
pub fn present(labels: &LabelMap) -> Vec<u32> {
    let flat = labels.volume.data().to_kind(Kind::Int64).flatten(0, -1);
    let v: Vec<i64> = Vec::<i64>::try_from(&flat).unwrap();
    let set: std::collections::BTreeSet<i64> = v.into_iter().filter(|&c| c > 0).collect();
    set.into_iter().map(|c| c as u32).collect()
}

/// A copy of the series whose files carry Study/Series/SOP Instance UIDs (`decompress`: and
/// native pixel data).
pub fn series_with_uids(src: &Path, dst: &Path, decompress: bool) {
    std::fs::create_dir_all(dst).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let mut obj = dicom_object::open_file(&f).unwrap();
        let sop = obj
            .meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0')
            .to_string();
        let class = obj
            .meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0')
            .to_string();
        obj.put_str(tags::STUDY_INSTANCE_UID, VR::UI, "2.25.1111111111111111111");
        obj.put_str(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            "2.25.2222222222222222222",
        );
        obj.put_str(tags::SOP_INSTANCE_UID, VR::UI, sop);
        obj.put_str(tags::SOP_CLASS_UID, VR::UI, class);
        if decompress {
            // Native pixel data (Explicit VR Little Endian), for readers without the series'
            // JPEG 2000 codec (plastimatch's DICOM loader).
            let raw = {
                use dicom_pixeldata::PixelDecoder;
                obj.decode_pixel_data().unwrap().data().to_vec()
            };
            obj.put(dicom_core::DataElement::new(
                tags::PIXEL_DATA,
                VR::OW,
                dicom_core::PrimitiveValue::from(raw),
            ));
            obj.meta_mut().set_transfer_syntax(
                &dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN,
            );
        }
        obj.write_to_file(dst.join(f.file_name().unwrap())).unwrap();
    }
}
