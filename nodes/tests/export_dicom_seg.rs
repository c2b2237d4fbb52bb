//! `export::dicom_seg::write` on the real TotalSegmentator CT series, checked by dciodvfy
//! (dicom3tools) and read back with highdicom (`scripts/oracles/dicom_seg_readback.py`).
//!
//! Needs `scripts/fetch-data.sh` (data/totalsegmentator), `scripts/setup-python.sh` (pydicom,
//! highdicom; python from VISTAFLOW_PYTHON or ~/.cache/vistaflow/venv/bin/python) and
//! dicom3tools (`apt-get install dicom3tools`). Tests skip, with a message, only when data/ is
//! absent; any other missing piece is a failure.
//!
//! The labels are TotalSegmentator's `example_seg_dicom.nii.gz`, made on this very series
//! (`example_seg.nii.gz` belongs to `example_ct_sm.nii.gz` and does not overlap the series),
//! loaded with `load_nifti` and resampled onto the DICOM image with `resample` (`reference`).
//! The series' files have empty Study/Series/SOP Instance UIDs (their SOP Instance UIDs are in
//! the file meta information), so the SEG is checked twice: on the series as it is (derived
//! study/series UIDs and a warning), and on a copy whose files got their UIDs filled in (the
//! SEG must then carry the source's study UID and reference its series).

mod common;

use common::dicom_export::*;
use common::{data_dir, python, repo};
use dicom_dictionary_std::tags;
use serde_json::{json, Value as Json};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind};
use vistaflow_nodes::export::dicom_seg;
use vistaflow_nodes::node::{CancelToken, Ctx, Inputs, Node, NodeError};
use vistaflow_nodes::spatial::Resample;
use vistaflow_nodes::value::{LabelMap, Value, Volume};

/// Reads the SEG back with highdicom against `labels`; returns the oracle's JSON.
fn readback(seg: &Path, dicom_dir: &Path, labels: &LabelMap, strict_uids: bool) -> Json {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("labels.i32");
    let t = labels.volume.data().to_kind(Kind::Int).contiguous();
    let n = t.numel();
    let mut bytes = vec![0u8; n * 4];
    t.copy_data_u8(&mut bytes, n);
    std::fs::write(&raw, &bytes).unwrap();
    let codes: Json =
        serde_json::from_str(include_str!("../src/export/dicom_seg/codes.json")).unwrap();
    let segments: Vec<Json> = present(labels)
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let (label, code) = match labels.classes.get(&c) {
                Some(name) => {
                    let key = name.to_lowercase().replace('_', " ");
                    let code = codes["classes"].get(&key).unwrap_or(&codes["fallback"]);
                    (name.clone(), code)
                }
                None => (format!("class {c}"), &codes["fallback"]),
            };
            json!({
                "number": i + 1, "class": c, "label": label,
                "category": code["category"]["value"], "type": code["type"]["value"],
            })
        })
        .collect();
    let expected = json!({
        "labels_raw": raw.to_str().unwrap(),
        "shape": labels.volume.spatial_shape(),
        "affine_lps": labels.volume.geometry().affine_lps,
        "segments": segments,
        "strict_uids": strict_uids,
    });
    let exp_path = tmp.path().join("expected.json");
    std::fs::write(&exp_path, expected.to_string()).unwrap();
    let out_path = tmp.path().join("result.json");
    let out = Command::new(python())
        .arg(repo().join("scripts/oracles/dicom_seg_readback.py"))
        .arg(seg)
        .arg(dicom_dir)
        .arg(&exp_path)
        .arg(&out_path)
        .output()
        .expect("running the highdicom oracle");
    assert!(
        out.status.success(),
        "dicom_seg_readback.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap()
}

/// Writes, validates and reads back; returns the warnings of the write.
fn write_and_check(dicom_dir: &Path, data: &Path, out: &Path, strict_uids: bool) -> Vec<String> {
    let (ct, labels) = inputs(dicom_dir, data);
    let (ctx, rec) = rec_ctx();
    let t0 = Instant::now();
    dicom_seg::write(out, &labels, &ct, false, &ctx).unwrap_or_else(|e| panic!("dicom_seg: {e}"));
    let took = t0.elapsed();
    let classes = present(&labels);
    eprintln!(
        "{}: wrote {} segments, {} bytes in {:.3} s",
        dicom_dir.display(),
        classes.len(),
        std::fs::metadata(out).unwrap().len(),
        took.as_secs_f64()
    );
    let progress = rec.progress.lock().unwrap().clone();
    assert_eq!(
        progress.last(),
        Some(&(classes.len() as u64, classes.len() as u64)),
        "progress per segment"
    );
    let warnings = rec.warnings.lock().unwrap().clone();
    for w in &warnings {
        eprintln!("  warning: {w}");
    }
    dciodvfy(out);
    let r = readback(out, dicom_dir, &labels, strict_uids);
    eprintln!(
        "highdicom read-back: {} frames, plane positions within {} mm",
        r["number_of_frames"], r["worst_plane_position_mm"]
    );
    let mut total = 0;
    for s in r["segments"].as_array().unwrap() {
        eprintln!(
            "  segment {:>2} {:<12} type {:<9}: {:>7} voxels, {} mismatched",
            s["number"],
            s["label"].as_str().unwrap(),
            s["type"].as_str().unwrap(),
            s["voxels"],
            s["mismatched_voxels"]
        );
        total += s["mismatched_voxels"].as_i64().unwrap();
    }
    assert_eq!(r["segments"].as_array().unwrap().len(), classes.len());
    assert_eq!(total, 0, "mismatched voxels: {r}");
    assert!(
        r["problems"].as_array().unwrap().is_empty(),
        "read-back problems: {}",
        r["problems"]
    );
    // Same inputs, same bytes.
    let again = out.with_extension("again.dcm");
    dicom_seg::write(&again, &labels, &ct, false, &Ctx::cpu()).unwrap();
    assert!(
        std::fs::read(out).unwrap() == std::fs::read(&again).unwrap(),
        "two writes of the same result differ"
    );
    warnings
}

#[test]
fn seg_of_the_real_series_validates_and_reads_back() {
    let Some(data) = data_dir() else { return };
    let series = need(data.join(TS_DICOM));
    let tmp = tempfile::tempdir().unwrap();
    let warnings = write_and_check(&series, &data, &tmp.path().join("out/seg.dcm"), false);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("StudyInstanceUID") && w.contains("SeriesInstanceUID")),
        "the series has empty study/series UIDs: expected a warning, got {warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("no name for class")),
        "unnamed classes: expected a warning, got {warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("no SNOMED CT code") && w.contains("adrenal_gland_right")),
        "a name without a code: expected a warning, got {warnings:?}"
    );
}

/// The source image with its identity changed by `edit`.
fn with_identity(ct: &Volume, edit: impl FnOnce(&mut Json)) -> Volume {
    let mut id = ct.identity.as_deref().unwrap().clone();
    edit(&mut id);
    let mut v = ct.clone();
    v.identity = Some(Arc::new(id));
    v
}

/// Identities load_dicom writes for other series: a resampled one (frames reference the
/// series only) and a multi-frame one (frames reference frame numbers). Both must validate.
#[test]
fn resampled_and_multiframe_sources_validate() {
    let Some(data) = data_dir() else { return };
    let series = need(data.join(TS_DICOM));
    let (ct, labels) = inputs(&series, &data);
    let tmp = tempfile::tempdir().unwrap();

    let resampled = with_identity(&ct, |id| id["resampled"] = json!(true));
    let (ctx, rec) = rec_ctx();
    let out = tmp.path().join("resampled.dcm");
    dicom_seg::write(&out, &labels, &resampled, false, &ctx).unwrap();
    let warnings = rec.warnings.lock().unwrap().clone();
    assert!(
        warnings.iter().any(|w| w.contains("resampled")),
        "{warnings:?}"
    );
    dciodvfy(&out);
    let obj = dicom_object::open_file(&out).unwrap();
    let frames = obj
        .element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .unwrap();
    let first = &frames.items().unwrap()[0];
    assert!(first.element(tags::DERIVATION_IMAGE_SEQUENCE).is_err());
    let shared = &obj
        .element(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()[0];
    let sources = shared
        .element(tags::DERIVATION_IMAGE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()[0]
        .element(tags::SOURCE_IMAGE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()
        .len();
    assert_eq!(sources, 20, "every source slice, in the shared groups");
    assert!(first.element(tags::PLANE_POSITION_SEQUENCE).is_ok());

    let multi = with_identity(&ct, |id| {
        let uid = id["instances"][0]["sop_instance_uid"].clone();
        let n = id["instances"].as_array().unwrap().len();
        id["instances"] = (1..=n)
            .map(|f| json!({ "sop_instance_uid": uid, "frame": f }))
            .collect();
        id["sop_class_uid"] = json!("1.2.840.10008.5.1.4.1.1.2.1"); // Enhanced CT
    });
    let out = tmp.path().join("multiframe.dcm");
    dicom_seg::write(&out, &labels, &multi, false, &Ctx::cpu()).unwrap();
    dciodvfy(&out);
    let obj = dicom_object::open_file(&out).unwrap();
    let refs = obj
        .element(tags::REFERENCED_SERIES_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()[0]
        .element(tags::REFERENCED_INSTANCE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()
        .len();
    assert_eq!(refs, 1, "one multi-frame instance referenced once");
    let frames = obj
        .element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .unwrap();
    for item in frames.items().unwrap() {
        let src = &item
            .element(tags::DERIVATION_IMAGE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0]
            .element(tags::SOURCE_IMAGE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0];
        let n: i64 = src
            .element(tags::REFERENCED_FRAME_NUMBER)
            .unwrap()
            .to_str()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let pos = item
            .element(tags::FRAME_CONTENT_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0]
            .element(tags::DIMENSION_INDEX_VALUES)
            .unwrap()
            .to_multi_int::<i64>()
            .unwrap()[1];
        assert_eq!(n, pos, "frame k+1 of the source for slice k");
    }
}

#[test]
fn seg_of_a_series_with_uids_joins_its_study() {
    let Some(data) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let series = tmp.path().join("ct");
    series_with_uids(&need(data.join(TS_DICOM)), &series, false);
    let warnings = write_and_check(&series, &data, &tmp.path().join("seg.dcm"), true);
    assert!(
        !warnings.iter().any(|w| w.contains("StudyInstanceUID")),
        "no UID is missing: {warnings:?}"
    );
}

fn invalid(r: Result<(), NodeError>) -> String {
    match r {
        Err(NodeError::Invalid(m)) => m,
        Err(e) => panic!("expected NodeError::Invalid, got {e:?}"),
        Ok(()) => panic!("expected an error, wrote a SEG"),
    }
}

#[test]
fn bad_inputs_are_refused_with_a_hint() {
    let Some(data) = data_dir() else { return };
    let series = need(data.join(TS_DICOM));
    let (ct, labels) = inputs(&series, &data);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("seg.dcm");
    let ctx = Ctx::cpu();

    // Labels as stored in the NIfTI: same shape, but y flipped in the affine.
    let Value::Labels(raw) = load_nifti(&data.join(TS_SEG), true) else {
        unreachable!()
    };
    let m = invalid(dicom_seg::write(&out, &raw, &ct, false, &ctx));
    eprintln!("off the grid: {m}");
    assert!(
        m.contains("not on the source image's grid") && m.contains("affine"),
        "{m}"
    );
    assert!(m.contains("resample") && m.contains("reference"), "{m}");

    // Another shape.
    let small = LabelMap::new(
        Volume::new(
            labels.volume.data().narrow(0, 0, 5),
            *labels.volume.geometry(),
        )
        .unwrap(),
        labels.classes.clone(),
    )
    .unwrap();
    let m = invalid(dicom_seg::write(&out, &small, &ct, false, &ctx));
    assert!(m.contains("shape") && m.contains("reference"), "{m}");

    // An image from NIfTI: no DICOM identity.
    let Value::Image(nii) = load_nifti(&data.join(TS_SEG), false) else {
        unreachable!()
    };
    let m = invalid(dicom_seg::write(&out, &labels, &nii, false, &ctx));
    eprintln!("NIfTI source: {m}");
    assert!(
        m.contains("dicom_seg needs the image from load_dicom"),
        "{m}"
    );

    // The CT resampled to 2.5 mm after loading, with the labels on that grid: the two agree
    // with each other, but its slices are no longer the series' instances.
    let p = params(&Resample, json!({ "spacing": [2.5, 2.5, 2.5] }));
    let iso = match Resample
        .run(
            &ctx,
            Inputs::from([("image".to_string(), Value::Image(ct.clone()))]),
            &p,
        )
        .unwrap()
        .remove("image")
    {
        Some(Value::Image(v)) => v,
        other => panic!("resample: {other:?}"),
    };
    let on_iso = resample_onto(labels.clone(), &iso);
    let m = invalid(dicom_seg::write(&out, &on_iso, &iso, false, &ctx));
    eprintln!("resampled source: {m}");
    assert!(m.contains("not on the grid load_dicom read"), "{m}");

    // Nothing labelled.
    let empty = LabelMap::new(
        Volume::new(labels.volume.data().zeros_like(), *labels.volume.geometry()).unwrap(),
        labels.classes.clone(),
    )
    .unwrap();
    let m = invalid(dicom_seg::write(&out, &empty, &ct, false, &ctx));
    eprintln!("empty: {m}");
    assert!(m.contains("nothing to export"), "{m}");

    assert!(!out.exists(), "no file after a refusal");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no partial files left"
    );

    // No patient identifiers in messages: none of the identity's values appear.
    let id = ct.identity.as_deref().unwrap();
    for v in id["attributes"].as_object().unwrap().values() {
        let v = v.as_str().unwrap();
        if v.len() > 3 {
            assert!(!m.contains(v));
        }
    }
}

#[test]
fn cancellation_stops_between_segments() {
    let Some(data) = data_dir() else { return };
    let series = need(data.join(TS_DICOM));
    let (ct, labels) = inputs(&series, &data);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("seg.dcm");
    let cancel = CancelToken::new();
    cancel.cancel();
    let ctx = Ctx::new(Device::Cpu, cancel, Arc::new(Rec::default()));
    match dicom_seg::write(&out, &labels, &ct, false, &ctx) {
        Err(NodeError::Cancelled) => {}
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert!(!out.exists());
}

/// `deidentify`: the SEG still validates, holds no patient or study identifier or date of the
/// source (pydicom reads them empty), says how it was de-identified (PS3.15 Basic Profile with
/// the Retain UIDs Option), and still references the series' instances.
#[test]
fn deidentified_seg_validates_and_leaves_out_identifiers() {
    let Some(data) = data_dir() else { return };
    let series = need(data.join(TS_DICOM));
    let (ct, labels) = inputs(&series, &data);
    // Identifiers the real series lacks, so that their absence means something.
    let ct = with_identity(&ct, |id| {
        let a = &mut id["attributes"];
        a["PatientName"] = json!("Doe^Jane");
        a["PatientID"] = json!("ID-4711");
        a["PatientBirthDate"] = json!("19610203");
        a["AccessionNumber"] = json!("ACC-99");
        a["StudyDescription"] = json!("CT abdomen Doe");
    });
    let tmp = tempfile::tempdir().unwrap();
    let (plain, deid) = (tmp.path().join("plain.dcm"), tmp.path().join("deid.dcm"));
    dicom_seg::write(&plain, &labels, &ct, false, &Ctx::cpu()).unwrap();
    dicom_seg::write(&deid, &labels, &ct, true, &Ctx::cpu()).unwrap();
    dciodvfy(&deid);
    let read = |p: &Path| -> Json {
        let script = "import json, sys, pydicom\n\
            d = pydicom.dcmread(sys.argv[1])\n\
            g = lambda k: str(d.get(k, '<absent>'))\n\
            codes = [c.CodeValue for c in d.get('DeidentificationMethodCodeSequence', [])]\n\
            refs = [i.ReferencedSOPInstanceUID for s in d.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence]\n\
            print(json.dumps({k: g(k) for k in ['PatientName', 'PatientID', 'PatientBirthDate', 'AccessionNumber', 'StudyDescription', 'StudyDate', 'PatientIdentityRemoved']} | {'codes': codes, 'refs': len(refs)}))";
        let o = Command::new(common::python())
            .args(["-c", script])
            .arg(p)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (p, d) = (read(&plain), read(&deid));
    assert_eq!(p["PatientName"], "Doe^Jane");
    assert_eq!(p["PatientIdentityRemoved"], "<absent>");
    for k in [
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "AccessionNumber",
        "StudyDate",
    ] {
        assert_eq!(d[k], "", "{k}: {d}");
    }
    assert_eq!(d["StudyDescription"], "<absent>");
    assert_eq!(d["PatientIdentityRemoved"], "YES");
    assert_eq!(d["codes"], json!(["113100", "113110"]));
    assert_eq!(
        d["refs"], p["refs"],
        "the series' instances are still referenced"
    );
    assert!(d["refs"].as_i64().unwrap() > 0);
}

/// In `dir`: the series with its UIDs, its image and labels, and vistaflow's SEG of them
/// (`None`, with a message, when data/ is absent).
fn series_and_seg(
    dir: &Path,
) -> Option<(std::path::PathBuf, Volume, LabelMap, std::path::PathBuf)> {
    let Some(data) = data_dir() else {
        eprintln!("skipped: data/ is absent (scripts/fetch-data.sh)");
        return None;
    };
    let series = dir.join("ct");
    series_with_uids(&need(data.join(TS_DICOM)), &series, false);
    let (ct, labels) = inputs(&series, &data);
    let ours = dir.join("ours.dcm");
    let (ctx, _) = rec_ctx();
    dicom_seg::write(&ours, &labels, &ct, false, &ctx).unwrap();
    Some((series, ct, labels, ours))
}

/// load_dicom_seg on `seg` over `ct`: the labels and the warnings.
fn load_seg(seg: &Path, ct: &Volume) -> (LabelMap, Vec<String>) {
    let (ctx, rec) = rec_ctx();
    let labels = vistaflow_nodes::io::seg::load(seg, ct, 0.5, &ctx)
        .unwrap_or_else(|e| panic!("load_dicom_seg {}: {e}", seg.display()));
    let w = rec.warnings.lock().unwrap().clone();
    (labels, w)
}

/// The mask of the class named `name` in `labels`, as flags.
fn mask_named(labels: &LabelMap, name: &str) -> Vec<bool> {
    let id = labels
        .classes
        .iter()
        .find(|(_, n)| *n == name)
        .unwrap_or_else(|| panic!("no class {name}: {:?}", labels.classes))
        .0;
    let t = labels.volume.data().eq(*id as i64).flatten(0, -1);
    Vec::<bool>::try_from(&t).unwrap()
}

fn mask_of(labels: &LabelMap, class: u32) -> Vec<bool> {
    Vec::<bool>::try_from(&labels.volume.data().eq(class as i64).flatten(0, -1)).unwrap()
}

#[test]
fn load_dicom_seg_reads_our_seg_and_highdicoms_binary_and_fractional_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((series, ct, labels, ours)) = series_and_seg(tmp.path()) else {
        return;
    };

    // vistaflow's own SEG: every segment voxel for voxel, named by its label
    let (back, warnings) = load_seg(&ours, &ct);
    assert!(warnings.is_empty(), "{warnings:?}");
    let classes = present(&labels);
    assert_eq!(back.classes.len(), classes.len());
    for &c in &classes {
        let name = labels
            .classes
            .get(&c)
            .cloned()
            .unwrap_or(format!("class {c}"));
        assert!(mask_of(&labels, c) == mask_named(&back, &name), "{name}");
    }

    // highdicom's, binary and fractional (0.8 inside, 0.3 on a ring: threshold 0.5)
    let raw = tmp.path().join("labels.i32");
    let t = labels.volume.data().to_kind(Kind::Int).contiguous();
    let mut bytes = vec![0u8; t.numel() * 4];
    t.copy_data_u8(&mut bytes, t.numel());
    std::fs::write(&raw, &bytes).unwrap();
    let picked = [(5u32, "Liver"), (1, "Spleen"), (6, "Stomach")];
    for kind in ["binary", "fractional"] {
        let spec = json!({
            "labels_raw": raw, "shape": labels.volume.spatial_shape(),
            "affine_lps": labels.volume.geometry().affine_lps, "type": kind,
            "segments": picked.iter().map(|(c, n)| json!({"class": c, "label": n})).collect::<Vec<_>>(),
        });
        let spec_path = tmp.path().join(format!("{kind}.json"));
        std::fs::write(&spec_path, spec.to_string()).unwrap();
        let out = tmp.path().join(format!("{kind}.dcm"));
        let o = Command::new(python())
            .arg(repo().join("scripts/oracles/highdicom_seg.py"))
            .arg(&series)
            .arg(&spec_path)
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "highdicom_seg.py: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let (back, _) = load_seg(&out, &ct);
        for (c, name) in picked {
            let want = mask_of(&labels, c);
            let got = mask_named(&back, name);
            let wrong = want.iter().zip(&got).filter(|(a, b)| a != b).count();
            eprintln!(
                "highdicom {kind} {name}: {} voxels, {wrong} differ",
                want.iter().filter(|x| **x).count()
            );
            assert_eq!(wrong, 0, "highdicom {kind} {name}");
        }
    }
}

#[test]
fn load_dicom_seg_refuses_a_seg_of_another_scan_and_files_that_are_no_seg() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((series, ct, _, ours)) = series_and_seg(tmp.path()) else {
        return;
    };
    let mut obj = dicom_object::open_file(&ours).unwrap();
    obj.put_str(tags::FRAME_OF_REFERENCE_UID, dicom_core::VR::UI, "2.25.42");
    let other = tmp.path().join("other-scan.dcm");
    obj.write_to_file(&other).unwrap();
    let err = |p: &Path| match vistaflow_nodes::io::seg::load(p, &ct, 0.5, &Ctx::cpu()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{} loaded", p.display()),
    };
    let e = err(&other);
    assert!(
        e.contains("other-scan.dcm") && e.contains("another frame of reference"),
        "{e}"
    );
    let slice = std::fs::read_dir(&series)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let e = err(&slice);
    assert!(e.contains("not a DICOM Segmentation"), "{e}");
}
