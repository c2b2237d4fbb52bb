//! The `structures` node against scipy (`scripts/oracles/structures_scipy.py`): margins by
//! scipy's exact Euclidean distance transform with the voxel spacing, on a real anisotropic
//! label map (data/metrics/aniso_prediction.nii.gz: 0.7 x 1.1 x 2.5 mm), voxel for voxel;
//! booleans exact. Skips only when data/ is absent.

mod common;

use common::{data_dir, python, repo};
use serde_json::{json, Value as Json};
use std::process::Command;
use tch::Kind;
use vistaflow_nodes::io::LoadNifti;
use vistaflow_nodes::node::{Ctx, Inputs, Node};
use vistaflow_nodes::params::Params;
use vistaflow_nodes::structures::Structures;
use vistaflow_nodes::value::{LabelMap, Value};

fn params(node: &dyn Node, extra: Json) -> Params {
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

fn run(labels: &LabelMap, defs: &Json) -> Result<LabelMap, String> {
    let p = params(
        &Structures,
        json!({ "structures": defs, "keep_inputs": false }),
    );
    let out = Structures
        .run(
            &Ctx::cpu(),
            Inputs::from([("labels".to_string(), Value::Labels(labels.clone()))]),
            &p,
        )
        .map_err(|e| e.to_string())?;
    match out.get("labels") {
        Some(Value::Labels(l)) => Ok(l.clone()),
        other => panic!("expected labels, got {other:?}"),
    }
}

/// The structure `name` (painted last in `out`, so its class is its whole mask) against
/// scipy's `dir/<name>.u8`: no voxel different, and at least `least` voxels in it.
fn assert_equals_scipy(out: &LabelMap, name: &str, dir: &std::path::Path, least: usize) {
    let id = out.classes.iter().find(|(_, c)| *c == name).unwrap().0;
    let ours = Vec::<bool>::try_from(&out.volume.data().eq(*id as i64).flatten(0, -1)).unwrap();
    let want: Vec<bool> = std::fs::read(dir.join(format!("{name}.u8")))
        .unwrap()
        .iter()
        .map(|b| *b == 1)
        .collect();
    let wrong = ours.iter().zip(&want).filter(|(a, b)| a != b).count();
    let count = want.iter().filter(|x| **x).count();
    eprintln!("{name}: {count} voxels, {wrong} differ from scipy");
    assert!(
        count >= least,
        "{name}: {count} voxels: the case checks little"
    );
    assert_eq!(wrong, 0, "{name}");
}

#[test]
fn margins_rings_and_booleans_equal_scipy_voxel_for_voxel_on_an_anisotropic_grid() {
    let Some(data) = data_dir() else {
        eprintln!("skipped: data/ is absent (scripts/fetch-data.sh)");
        return;
    };
    let path = data.join("metrics/aniso_prediction.nii.gz");
    let p = params(&LoadNifti, json!({ "path": path, "labels": true }));
    let Some(Value::Labels(labels)) = LoadNifti
        .run(&Ctx::cpu(), Inputs::new(), &p)
        .unwrap()
        .remove("labels")
    else {
        panic!("labels")
    };
    let defs = json!([
        { "name": "Grow5", "from": "1", "margin_mm": 5 },
        { "name": "GrowAxes", "from": "1", "margin_mm": [3, 2, 7.5] },
        { "name": "Shrink3", "from": "1", "margin_mm": -3 },
        { "name": "ShrinkZ", "from": "3", "margin_mm": [0, 0, -2.5] },
        { "name": "Ring", "from": "Grow5", "ring_mm": [2, 10] },
        { "name": "Both", "union": ["2", "3"] },
        { "name": "Overlap", "from": "Grow5", "intersect": ["Both"] },
        { "name": "Minus", "from": "Both", "subtract": ["Grow5", "5"] },
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("labels.i32");
    let t = labels.volume.data().to_kind(Kind::Int).contiguous();
    let mut bytes = vec![0u8; t.numel() * 4];
    t.copy_data_u8(&mut bytes, t.numel());
    std::fs::write(&raw, &bytes).unwrap();
    let s = labels.volume.geometry().spacing();
    let spec = json!({ "labels_raw": raw, "shape": labels.volume.spatial_shape(),
                       "spacing_dhw": [s[2], s[1], s[0]], "structures": defs });
    let spec_path = tmp.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let o = Command::new(python())
        .arg(repo().join("scripts/oracles/structures_scipy.py"))
        .arg(&spec_path)
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "structures_scipy.py: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    let all = defs.as_array().unwrap();
    for n in 0..all.len() {
        // the definitions up to this one; painted last, its class is its whole mask
        let out = run(&labels, &Json::Array(all[..=n].to_vec())).unwrap();
        let name = all[n]["name"].as_str().unwrap();
        assert_equals_scipy(&out, name, tmp.path(), 1);
    }
}

/// The body contour (`body_hu`) on the real TotalSegmentator CT (3 mm) against scipy's
/// connected components and hole filling, then cropping by it and shrinking it.
#[test]
fn a_body_contour_and_what_is_cropped_by_it_equal_scipy_on_a_real_ct() {
    let Some(data) = data_dir() else {
        eprintln!("skipped: data/ is absent (scripts/fetch-data.sh)");
        return;
    };
    let load = |path: std::path::PathBuf, labels: bool| {
        let p = params(&LoadNifti, json!({ "path": path, "labels": labels }));
        let mut out = LoadNifti.run(&Ctx::cpu(), Inputs::new(), &p).unwrap();
        out.remove(if labels { "labels" } else { "image" }).unwrap()
    };
    let ts = data.join("totalsegmentator");
    let Value::Image(ct) = load(ts.join("example_ct.nii.gz"), false) else {
        panic!("image")
    };
    let Value::Labels(labels) = load(ts.join("example_seg_fast_force_split.nii.gz"), true) else {
        panic!("labels")
    };
    let defs = json!([
        { "name": "Body", "body_hu": -500 },
        { "name": "Body_inner", "from": "Body", "margin_mm": -9 },
        { "name": "Liver_grown", "from": "5", "margin_mm": 30 },
        { "name": "Liver_grown_in_body", "from": "Liver_grown", "intersect": ["Body_inner"] },
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let raw = |t: &tch::Tensor, kind: Kind, name: &str| {
        let t = t.to_kind(kind).contiguous();
        let mut bytes = vec![0u8; t.numel() * 4];
        t.copy_data_u8(&mut bytes, t.numel());
        let path = tmp.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        path
    };
    let s = labels.volume.geometry().spacing();
    let spec = json!({
        "labels_raw": raw(labels.volume.data(), Kind::Int, "labels.i32"),
        "image_raw": raw(ct.data(), Kind::Float, "image.f32"),
        "shape": labels.volume.spatial_shape(),
        "spacing_dhw": [s[2], s[1], s[0]],
        "structures": defs,
    });
    let spec_path = tmp.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let o = Command::new(python())
        .arg(repo().join("scripts/oracles/structures_scipy.py"))
        .arg(&spec_path)
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = params(
        &Structures,
        json!({ "structures": defs, "keep_inputs": false }),
    );
    let all = defs.as_array().unwrap();
    for n in 0..all.len() {
        let p = params(
            &Structures,
            json!({ "structures": Json::Array(all[..=n].to_vec()), "keep_inputs": false }),
        );
        let out = Structures
            .run(
                &Ctx::cpu(),
                Inputs::from([
                    ("labels".to_string(), Value::Labels(labels.clone())),
                    ("image".to_string(), Value::Image(ct.clone())),
                ]),
                &p,
            )
            .unwrap();
        let Some(Value::Labels(out)) = out.get("labels") else {
            panic!("labels")
        };
        let name = all[n]["name"].as_str().unwrap();
        assert_equals_scipy(out, name, tmp.path(), 1000);
    }
    // Without the image: the structure is named with the fix.
    let e = Structures
        .run(
            &Ctx::cpu(),
            Inputs::from([("labels".to_string(), Value::Labels(labels.clone()))]),
            &p,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("`Body` (body_hu) needs the CT"), "{e}");
}

#[test]
fn bad_definitions_are_refused_with_the_structure_named() {
    let bad = |defs: Json| {
        let schema = Structures
            .spec()
            .params
            .iter()
            .find(|p| p.name == "structures")
            .unwrap()
            .clone();
        match &schema.ty {
            vistaflow_nodes::params::ParamType::Custom { check, .. } => check(&defs).unwrap_err(),
            _ => panic!("custom"),
        }
    };
    assert!(bad(json!([{ "name": "A" }])).contains("structure `A`: say what it is made from"));
    assert!(
        bad(json!([{ "name": "A", "from": "1", "margin_mm": [1, -1, 0] }])).contains("one sign")
    );
    assert!(
        bad(json!([{ "name": "A", "from": "1", "ring_mm": [5, 2] }]))
            .contains("0 <= inner < outer")
    );
    assert!(
        bad(json!([{ "name": "A", "from": "1" }, { "name": "A", "from": "2" }]))
            .contains("defined twice")
    );
    assert!(bad(json!([{ "name": "A", "from": "1", "margn_mm": 3 }]))
        .contains("unknown field `margn_mm`"));
}
