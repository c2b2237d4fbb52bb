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

/// workflows/planning-rtstruct.yaml on the real series with the small test network (random
/// weights: the organs are not anatomy, the path is): structures derived on the CT's grid,
/// an RT-STRUCT that dciodvfy accepts and load_rtstruct reads back with the derived ROIs.
#[test]
fn planning_rtstruct_derives_structures_and_writes_a_valid_rtstruct() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/planning-rtstruct.yaml"),
    )
    .unwrap()
    .replace("../out/", "out/")
    .replace("../.vistaflow/cache", ".cache")
    // the small test network, its patch and a coarse grid keep the run short
    .replace(
        "model: \"${MODEL}\"",
        "model: \"${MODEL}\"\n      network: small\n      patch: [32, 32, 32]",
    )
    .replace("spacing: [1.5, 1.5, 1.5]", "spacing: [4, 4, 4]");
    let wf = d.join("planning-rtstruct.yaml");
    std::fs::write(&wf, text).unwrap();
    let vars = BTreeMap::from([
        (
            "CT".to_string(),
            data.join("totalsegmentator/example_ct_dicom")
                .display()
                .to_string(),
        ),
        (
            "MODEL".to_string(),
            data.join("vista3d/small/weights.safetensors")
                .display()
                .to_string(),
        ),
    ]);
    let reg = common::registry();
    let plan = vistaflow::workflow::load(&wf, &vars, &reg).unwrap();
    let report = run(plan, RunOptions::default());
    assert_eq!(report.first_failure(), None);
    let rt = d.join("out/planning-rtstruct/rtstruct.dcm");
    let o = std::process::Command::new("dciodvfy")
        .arg(&rt)
        .output()
        .expect("dciodvfy");
    let text = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
    assert!(!text.lines().any(|l| l.starts_with("Error")), "{text}");
    // read back by load_rtstruct on the series
    use vistaflow::nodes::node::Node;
    let mut p = vistaflow::nodes::params::Params::new();
    p.insert(
        "path".into(),
        serde_json::json!(data.join("totalsegmentator/example_ct_dicom")),
    );
    let ct = match vistaflow::nodes::io::dicom::LoadDicom
        .run(&vistaflow::nodes::node::Ctx::cpu(), Default::default(), &p)
        .unwrap()
        .remove("image")
    {
        Some(vistaflow::nodes::Value::Image(v)) => v,
        other => panic!("{other:?}"),
    };
    let back =
        vistaflow::nodes::io::rtstruct::load(&rt, &ct, None, &vistaflow::nodes::node::Ctx::cpu())
            .unwrap();
    // The organs come from `labels`, the derived structures from `structures`: ROIs of
    // their own, so the PRV keeps the whole cord and the union both kidneys (one label map
    // could hold only one of each overlapping pair).
    let names: Vec<&String> = back.classes.values().collect();
    let known = [
        "Liver",
        "Spleen",
        "Kidney_L",
        "Kidney_R",
        "Stomach",
        "SpinalCord",
        "Kidneys",
        "SpinalCord_PRV05",
        "z_Ring_Liver",
    ];
    assert!(
        names.iter().all(|n| known.contains(&n.as_str())),
        "{names:?}"
    );
    let roi = |name: &str| {
        let l = vistaflow::nodes::io::rtstruct::load(
            &rt,
            &ct,
            Some(&[name.to_string()]),
            &vistaflow::nodes::node::Ctx::cpu(),
        )
        .unwrap();
        let v = l.volume.data().flatten(0, -1).ne(0);
        Vec::<bool>::try_from(&v).unwrap()
    };
    for (inner, outer) in [("SpinalCord", "SpinalCord_PRV05"), ("Kidney_L", "Kidneys")] {
        if !names.iter().any(|n| *n == inner) {
            continue;
        }
        let (a, b) = (roi(inner), roi(outer));
        let n = a.iter().filter(|x| **x).count();
        let both = a.iter().zip(&b).filter(|(x, y)| **x && **y).count();
        assert!(
            n > 0 && both == n,
            "{outer} holds {both} of {inner}'s {n} voxels"
        );
    }
    assert!(d.join("out/planning-rtstruct/seg.dcm").is_file());
    assert!(d.join("out/planning-rtstruct/report.json").is_file());
}
