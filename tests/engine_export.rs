//! workflows/planning-export.yaml on the real TotalSegmentator series: every export format
//! through the engine, cached like any node (an STL folder included), rerun when a written
//! file is gone.

mod common;

use common::run;
use std::collections::BTreeMap;
use vistaflow::exec::RunOptions;

#[test]
fn planning_export_writes_every_format_and_caches_them() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The repo's workflow, its output and cache folders moved into the temp dir.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/planning-export.yaml"),
    )
    .unwrap()
    .replace("../out/", "out/")
    .replace("../.vistaflow/cache", ".cache");
    let wf = d.join("planning-export.yaml");
    std::fs::write(&wf, text).unwrap();
    let vars = BTreeMap::from([
        (
            "CT".to_string(),
            data.join("totalsegmentator/example_ct_dicom")
                .display()
                .to_string(),
        ),
        (
            "SEG".to_string(),
            data.join("totalsegmentator/example_seg_dicom.nii.gz")
                .display()
                .to_string(),
        ),
    ]);
    let reg = common::registry();
    let plan = || vistaflow::workflow::load(&wf, &vars, &reg).unwrap();

    let first = run(plan(), RunOptions::default());
    assert_eq!(first.first_failure(), None);
    assert_eq!(first.ran().len(), 8);
    let out = d.join("out/planning-export");
    for f in [
        "seg.dcm",
        "seg.nii.gz",
        "seg.json",
        "seg.ctbl",
        "preview.png",
        "report.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("seg.json")).unwrap()).unwrap();
    let classes = side["classes"].as_array().unwrap().len();
    let meshes: Vec<_> = std::fs::read_dir(out.join("meshes"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(meshes.len(), classes, "one STL per class");
    assert!(classes > 20);

    // Nothing changed: only the report runs.
    let second = run(plan(), RunOptions::default());
    assert_eq!(second.first_failure(), None);
    assert_eq!(second.ran(), ["report"]);

    // One mesh deleted: the folder's digest changed, so the STL export runs again.
    std::fs::remove_file(meshes[0].path()).unwrap();
    let third = run(plan(), RunOptions::default());
    assert_eq!(third.ran(), ["meshes", "report"]);
    assert!(meshes[0].path().is_file());
}
