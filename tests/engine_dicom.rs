//! A DICOM folder as a workflow source: the folder's content digest keys the cache, and the
//! loaded series overlays the TotalSegmentator organ segmentation through the affines.

mod common;

use common::{load, run};
use vistaflow::exec::RunOptions;

#[test]
fn dicom_folder_source_is_cached_by_content() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let series = dir.path().join("series");
    std::fs::create_dir(&series).unwrap();
    for e in std::fs::read_dir(data.join("totalsegmentator/example_ct_dicom"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), series.join(e.file_name())).unwrap();
    }
    let wf = dir.path().join("wf.yaml");
    std::fs::write(
        &wf,
        "version: 1\nnodes:\n  ct: { kind: load_dicom, params: { path: series } }\n  \
         out: { kind: save_nifti, inputs: { image: ct.image }, params: { path: out/ct.nii.gz } }\n",
    )
    .unwrap();
    let reg = common::registry();
    let first = run(load(&wf, &reg), RunOptions::default());
    assert_eq!(first.first_failure(), None);
    assert_eq!(first.ran().len(), 2);
    // nibabel sees the 20-slice 512x512 series with HU values.
    let nb = common::nibabel(&dir.path().join("out/ct.nii.gz"));
    assert_eq!(nb["shape"], serde_json::json!([512, 512, 20]), "{nb}");

    assert!(
        run(load(&wf, &reg), RunOptions::default()).ran().is_empty(),
        "second run all cached"
    );

    // A file added to the folder changes the folder's digest: the loader runs again (and
    // skips the non-DICOM file), and so does the save, whose input key changed.
    std::fs::write(series.join("README.txt"), "not DICOM").unwrap();
    let r = run(load(&wf, &reg), RunOptions::default());
    assert_eq!(r.first_failure(), None);
    assert_eq!(r.ran(), ["ct", "out"]);
}

/// The design's example chain on real data: DICOM -> 1.5 mm -> back onto the DICOM grid, and
/// the TotalSegmentator organ segmentation (a NIfTI whose sform flips y) resampled onto the
/// DICOM grid. nibabel then checks that the liver (label 5) sits on liver HU values.
#[test]
fn dicom_resample_round_trip_overlays_the_organ_segmentation() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("wf.yaml");
    let src = data.join("totalsegmentator");
    std::fs::write(
        &wf,
        format!(
            "version: 1\nnodes:\n  \
             ct: {{ kind: load_dicom, params: {{ path: {dcm} }} }}\n  \
             iso: {{ kind: resample, inputs: {{ image: ct.image }}, params: {{ spacing: [1.5, 1.5, 1.5], orientation: RAS }} }}\n  \
             back: {{ kind: resample, inputs: {{ image: iso.image, reference: ct.image }} }}\n  \
             seg: {{ kind: load_nifti, params: {{ path: {seg}, labels: true }} }}\n  \
             seg_on_ct: {{ kind: resample, inputs: {{ image: seg.labels, reference: ct.image }} }}\n  \
             o_ct: {{ kind: save_nifti, inputs: {{ image: ct.image }}, params: {{ path: ct.nii.gz }} }}\n  \
             o_back: {{ kind: save_nifti, inputs: {{ image: back.image }}, params: {{ path: back.nii.gz }} }}\n  \
             o_seg: {{ kind: save_nifti, inputs: {{ labels: seg_on_ct.labels }}, params: {{ path: seg.nii.gz }} }}\n",
            dcm = src.join("example_ct_dicom").display(),
            seg = src.join("example_seg_dicom.nii.gz").display(),
        ),
    )
    .unwrap();
    let r = run(load(&wf, &common::registry()), RunOptions::default());
    assert_eq!(r.first_failure(), None);
    let script = r#"
import sys, json, numpy as np, nibabel as nib
d = sys.argv[1]
ct, back, seg = (nib.load(f"{d}/{n}.nii.gz") for n in ("ct", "back", "seg"))
a, b, s = ct.get_fdata(), back.get_fdata(), np.asanyarray(seg.dataobj)
assert np.allclose(ct.affine, seg.affine, atol=1e-4) and np.allclose(ct.affine, back.affine, atol=1e-4)
inner = (slice(4, -4),) * 3
print(json.dumps({"liver_hu": float(a[s == 5].mean()), "liver_voxels": int((s == 5).sum()),
                  "labels": int(len(np.unique(s))),
                  "back_mean_abs_diff_interior": float(np.abs(a - b)[inner].mean()),
                  "ct_mean": float(a[inner].mean())}))
"#;
    let out = std::process::Command::new(common::python())
        .args(["-c", script])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hu = v["liver_hu"].as_f64().unwrap();
    assert!(
        (40.0..=140.0).contains(&hu),
        "mean HU in the liver label is {hu}: geometry is off ({v})"
    );
    assert!(v["liver_voxels"].as_i64().unwrap() > 10_000, "{v}");
    assert!(v["labels"].as_i64().unwrap() > 10, "{v}");
    // 0.98x0.98x2 mm -> 1.5 mm -> back is lossy but close on average.
    assert!(
        v["back_mean_abs_diff_interior"].as_f64().unwrap() < 40.0,
        "{v}"
    );
    eprintln!("oracle: {v}");
}
