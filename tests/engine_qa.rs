//! A QA workflow on real label maps: metrics against a reference, the NIfTI export with its
//! class tables, and the run's provenance report, through the engine and its cache.

mod common;

use common::{load, run};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::path::Path;
use vistaflow::exec::RunOptions;

fn sha256_file(p: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(p).unwrap()))
}

fn read_json(p: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

const WORKFLOW: &str = "version: 1
name: qa
nodes:
  ref:    { kind: load_nifti, params: { path: reference.nii.gz, labels: true } }
  pred:   { kind: load_nifti, params: { path: prediction.nii.gz, labels: true } }
  m:      { kind: metrics, inputs: { prediction: pred.labels, reference: ref.labels },
            params: { metrics: [dice, hd95, nsd], path: out/metrics.csv } }
  qc:     { kind: metrics, inputs: { prediction: pred.labels }, params: { path: out/qc.json } }
  seg:    { kind: export, inputs: { labels: pred.labels }, params: { format: nifti, path: out/seg.nii.gz } }
  report: { kind: export, inputs: { labels: pred.labels }, params: { format: report, path: out/report.json } }
";

#[test]
fn report_records_the_run_and_reruns_alone() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for f in ["reference.nii.gz", "prediction.nii.gz"] {
        std::fs::copy(data.join("metrics").join(f), d.join(f)).unwrap();
    }
    let wf = d.join("qa.yaml");
    std::fs::write(&wf, WORKFLOW).unwrap();
    let reg = common::registry();

    let first = run(load(&wf, &reg), RunOptions::default());
    assert_eq!(first.first_failure(), None);
    assert_eq!(first.ran().len(), 6);
    let rep = read_json(&d.join("out/report.json"));
    assert_eq!(rep["format"], "vistaflow.report.v1");
    assert_eq!(rep["workflow"]["sha256"], sha256_file(&wf));
    assert_eq!(rep["software"]["vistaflow"], env!("CARGO_PKG_VERSION"));
    let nodes = rep["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 6);
    let node = |id: &str| nodes.iter().find(|n| n["id"] == id).unwrap().clone();
    // The report runs last: every other node has finished when it is written.
    for n in nodes.iter().filter(|n| n["id"] != "report") {
        assert_eq!(n["status"], "ran", "{}", n["id"]);
        assert_eq!(n["key"].as_str().unwrap().len(), 64);
    }
    // Input file digests and written file digests are the files' sha256.
    assert_eq!(
        node("pred")["reads"][0]["sha256"],
        sha256_file(&d.join("prediction.nii.gz"))
    );
    assert_eq!(
        node("m")["writes"][0]["sha256"],
        sha256_file(&d.join("out/metrics.csv"))
    );
    assert_eq!(
        node("m")["params"]["metrics"],
        serde_json::json!(["dice", "hd95", "nsd"])
    );
    assert_eq!(node("m")["inputs"][0]["from"], "pred.labels");
    let result_sha = rep["result"]["voxels_sha256"].as_str().unwrap().to_string();
    assert_eq!(rep["result"]["shape"], serde_json::json!([30, 101, 122]));

    // Second run: everything cached but the report, which records the same keys and result.
    let second = run(load(&wf, &reg), RunOptions::default());
    assert_eq!(second.ran(), ["report"]);
    let rep2 = read_json(&d.join("out/report.json"));
    for (a, b) in nodes.iter().zip(rep2["nodes"].as_array().unwrap()) {
        assert_eq!(a["key"], b["key"], "{}", a["id"]);
    }
    assert_eq!(rep2["result"]["voxels_sha256"], result_sha.as_str());
    assert!(rep2["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["id"] != "report")
        .all(|n| n["status"] == "cached"));

    // The metrics CSV: one row per class of either map (41 of the reference, the prediction
    // drops one and adds one) with the documented header.
    let csv = std::fs::read_to_string(d.join("out/metrics.csv")).unwrap();
    assert!(
        csv.starts_with("class_id,class_name,dice,hd95,nsd,voxels_prediction,voxels_reference\n")
    );
    assert_eq!(csv.lines().count(), 1 + 42);
    let qc = read_json(&d.join("out/qc.json"));
    assert_eq!(qc["columns"][2], "voxels");

    // The NIfTI export: uint8 on the same grid with the same voxels (nibabel), and the class
    // tables beside it.
    let nb = common::nibabel(&d.join("out/seg.nii.gz"));
    let src = common::nibabel(&d.join("prediction.nii.gz"));
    assert_eq!(nb["dtype"], "uint8", "{nb}");
    assert_eq!(nb["shape"], src["shape"]);
    assert_eq!(nb["affine"], src["affine"]);
    assert_eq!(nb["sha256"], src["sha256"], "same voxels");
    let side = read_json(&d.join("out/seg.json"));
    let classes = side["classes"].as_array().unwrap();
    // The prediction's 41 classes (one of the reference's removed, one added).
    assert_eq!(classes.len(), 41);
    assert_eq!(classes[0]["id"], 1);
    assert_eq!(classes[0]["color"].as_array().unwrap().len(), 3);
    let ctbl = std::fs::read_to_string(d.join("out/seg.ctbl")).unwrap();
    assert_eq!(ctbl.lines().filter(|l| !l.starts_with('#')).count(), 42);
    let itk = std::fs::read_to_string(d.join("out/seg.itksnap.txt")).unwrap();
    assert!(itk.contains("\"Clear Label\""));

    // A changed prediction changes the keys of everything downstream of it, and the report
    // says so. (The new prediction file is a copy of the reference: `pred` now has `ref`'s
    // key, content-addressed, so its output comes from the cache.)
    std::fs::copy(
        data.join("metrics/reference.nii.gz"),
        d.join("prediction.nii.gz"),
    )
    .unwrap();
    let third = run(load(&wf, &reg), RunOptions::default());
    assert_eq!(third.ran(), ["m", "qc", "seg", "report"]);
    let rep3 = read_json(&d.join("out/report.json"));
    let key_of = |r: &Json, id: &str| {
        r["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap()["key"]
            .clone()
    };
    assert_ne!(key_of(&rep3, "m"), key_of(&rep, "m"));
    assert_eq!(key_of(&rep3, "ref"), key_of(&rep, "ref"));
    assert_eq!(key_of(&rep3, "pred"), key_of(&rep, "ref"));
    assert_ne!(rep3["result"]["voxels_sha256"], result_sha.as_str());
}

#[test]
fn a_failed_run_still_writes_its_report() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for f in ["reference.nii.gz", "prediction.nii.gz"] {
        std::fs::copy(data.join("metrics").join(f), d.join(f)).unwrap();
    }
    let wf = d.join("qa.yaml");
    // `classes` names are checked against the maps' class tables only when the node runs.
    std::fs::write(
        &wf,
        WORKFLOW.replace(
            "metrics: [dice, hd95, nsd]",
            "metrics: [dice], classes: [spleen]",
        ),
    )
    .unwrap();
    let r = run(load(&wf, &common::registry()), RunOptions::default());
    let (id, _, cause) = r.first_failure().unwrap();
    assert_eq!(id, "m");
    assert!(cause.contains("no class named `spleen`"), "{cause}");
    let rep = read_json(&d.join("out/report.json"));
    let m = rep["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "m")
        .unwrap()
        .clone();
    assert_eq!(m["status"], "failed");
    assert!(m["error"].as_str().unwrap().contains("spleen"));
    // The labels the report describes came from a node that succeeded.
    assert_eq!(rep["result"]["shape"], serde_json::json!([30, 101, 122]));
}

#[test]
fn export_errors_name_the_fix() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(data.join("metrics/prediction.nii.gz"), d.join("p.nii.gz")).unwrap();
    let wf = d.join("bad.yaml");
    std::fs::write(
        &wf,
        "version: 1\nnodes:\n  p: { kind: load_nifti, params: { path: p.nii.gz, labels: true } }\n  \
         s: { kind: export, inputs: { labels: p.labels }, params: { format: dicom_seg, path: out/seg.dcm } }\n",
    )
    .unwrap();
    let r = run(load(&wf, &common::registry()), RunOptions::default());
    let (id, _, cause) = r.first_failure().unwrap();
    assert_eq!(id, "s");
    assert!(cause.contains("needs `image`"), "{cause}");
    let bad_format = d.join("bad2.yaml");
    std::fs::write(
        &bad_format,
        "version: 1\nnodes:\n  p: { kind: load_nifti, params: { path: p.nii.gz, labels: true } }\n  \
         s: { kind: export, inputs: { labels: p.labels }, params: { format: nift, path: o.nii.gz } }\n",
    )
    .unwrap();
    let e = vistaflow::workflow::load(&bad_format, &Default::default(), &common::registry())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("bad2.yaml:4") && e.contains("nifti"), "{e}");
}
