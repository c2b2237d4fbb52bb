//! The `metrics` node against MONAI 1.6.1 and MedPy (golden values from
//! scripts/oracles/metrics_golden.py, made by scripts/fetch-data.sh into data/metrics/).

mod common;

use serde_json::{json, Value as Json};
use std::path::Path;
use vistaflow_nodes::io::nifti;
use vistaflow_nodes::metrics::Metrics;
use vistaflow_nodes::node::{Ctx, Inputs, Node};
use vistaflow_nodes::value::{Cell, Table, Value};

fn golden() -> Option<(std::path::PathBuf, Json)> {
    let dir = common::data_dir()?.join("metrics");
    let text = std::fs::read_to_string(dir.join("golden.json")).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/fetch-data.sh",
            dir.join("golden.json").display()
        )
    });
    Some((dir, serde_json::from_str(&text).unwrap()))
}

fn labels(p: &Path) -> Value {
    nifti::read(p, true, &Ctx::cpu()).unwrap()
}

fn run(inputs: Inputs, params: Json) -> Result<Table, String> {
    let node = Metrics;
    let p = common::with_defaults(&node, params);
    let mut out = node
        .run(&Ctx::cpu(), inputs, &p)
        .map_err(|e| e.to_string())?;
    match out.remove("table") {
        Some(Value::Table(t)) => Ok(t),
        other => panic!("no table: {other:?}"),
    }
}

const ALL: [&str; 6] = ["dice", "iou", "hd95", "hd", "assd", "nsd"];

fn golden_number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) if s == "nan" => Some(f64::NAN),
        Json::String(s) if s == "inf" => Some(f64::INFINITY),
        _ => None,
    }
}

fn same(ours: f64, theirs: f64, tol: f64) -> bool {
    (ours.is_nan() && theirs.is_nan()) || ours == theirs || (ours - theirs).abs() <= tol
}

#[test]
fn every_case_equals_monai_and_medpy() {
    let Some((dir, g)) = golden() else { return };
    let mut compared = 0;
    let mut worst = [0.0f64; 6];
    for (case, c) in g.as_object().unwrap() {
        if case.starts_with('_') {
            continue;
        }
        let files = &c["files"];
        let pred = labels(&dir.join(files["prediction"].as_str().unwrap()));
        let reference = labels(&dir.join(files["reference"].as_str().unwrap()));
        let mut params = json!({ "metrics": ALL });
        if let Some(req) = c.get("requested_classes") {
            params["classes"] = req.clone();
        }
        let t = run(
            Inputs::from([
                ("prediction".to_string(), pred),
                ("reference".to_string(), reference),
            ]),
            params,
        )
        .unwrap();
        let classes = c["classes"].as_object().unwrap();
        assert_eq!(t.rows.len(), classes.len(), "{case}: rows");
        for (id, want) in classes {
            let key = Cell::Int(id.parse().unwrap());
            for (m, metric) in ALL.iter().enumerate() {
                let ours = t.get(&key, metric).and_then(Cell::as_f64).unwrap();
                let theirs = golden_number(&want[*metric]).unwrap();
                let tol = if matches!(*metric, "dice" | "iou" | "nsd") {
                    1e-6
                } else {
                    1e-3
                };
                assert!(
                    same(ours, theirs, tol),
                    "{case} class {id} {metric}: ours {ours}, MONAI {theirs}"
                );
                if ours.is_finite() {
                    worst[m] = worst[m].max((ours - theirs).abs());
                }
                compared += 1;
            }
            // MedPy (another implementation: float64 EDT): hd and assd agree with MONAI's
            // definitions; its hd95 is the percentile of the union (documented difference).
            for (ours_m, medpy) in [("hd", "medpy_hd"), ("assd", "medpy_assd")] {
                if let Some(theirs) = golden_number(&want[medpy]) {
                    let ours = t.get(&key, ours_m).and_then(Cell::as_f64).unwrap();
                    assert!(
                        same(ours, theirs, 1e-3),
                        "{case} class {id}: {ours_m} {ours} vs MedPy {theirs}"
                    );
                }
            }
            let np = t
                .get(&key, "voxels_prediction")
                .and_then(Cell::as_f64)
                .unwrap();
            assert_eq!(
                np,
                want["pred_voxels"].as_f64().unwrap(),
                "{case} class {id}"
            );
        }
    }
    eprintln!(
        "compared {compared} values; worst finite |ours - MONAI| per metric {ALL:?}: {worst:?}"
    );
    assert!(compared > 200, "too few values compared: {compared}");
}

#[test]
fn a_perturbation_moves_the_numbers_it_should() {
    // The untouched classes score perfectly; the removed class is empty in the prediction;
    // a shifted class has a Hausdorff distance of at least its shift.
    let Some((dir, g)) = golden() else { return };
    let c = &g["real"];
    let t = run(
        Inputs::from([
            (
                "prediction".to_string(),
                labels(&dir.join("prediction.nii.gz")),
            ),
            (
                "reference".to_string(),
                labels(&dir.join("reference.nii.gz")),
            ),
        ]),
        json!({ "metrics": ALL }),
    )
    .unwrap();
    let mut saw = (0, 0);
    for (id, want) in c["classes"].as_object().unwrap() {
        let key = Cell::Int(id.parse().unwrap());
        let dice = t.get(&key, "dice").and_then(Cell::as_f64).unwrap();
        let what = want["perturbation"].as_str().unwrap_or("");
        if what == "untouched" {
            assert_eq!(dice, 1.0, "class {id}");
            assert_eq!(t.get(&key, "hd").and_then(Cell::as_f64), Some(0.0));
            saw.0 += 1;
        } else if what.starts_with("removed") {
            assert_eq!(dice, 0.0, "class {id}");
            assert_eq!(
                t.get(&key, "hd").and_then(Cell::as_f64),
                Some(f64::INFINITY)
            );
            saw.1 += 1;
        }
    }
    assert!(saw.0 > 5 && saw.1 == 1, "{saw:?}");
}

#[test]
fn tables_are_written_as_csv_and_json() {
    let Some((dir, _)) = golden() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("out/m.csv");
    let inputs = || {
        Inputs::from([
            (
                "prediction".to_string(),
                labels(&dir.join("aniso_prediction.nii.gz")),
            ),
            (
                "reference".to_string(),
                labels(&dir.join("aniso_reference.nii.gz")),
            ),
        ])
    };
    let t = run(inputs(), json!({ "path": csv })).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("class_id,class_name,dice,hd95,nsd,voxels_prediction,voxels_reference")
    );
    assert_eq!(lines.count(), t.rows.len());
    let js = tmp.path().join("m.json");
    run(inputs(), json!({ "path": js, "classes": [2, 3] })).unwrap();
    let j: Json = serde_json::from_str(&std::fs::read_to_string(&js).unwrap()).unwrap();
    assert_eq!(j["rows"].as_array().unwrap().len(), 2);
    assert_eq!(j["rows"][0]["class_id"], 2);
    let bad = run(inputs(), json!({ "path": tmp.path().join("m.xlsx") })).unwrap_err();
    assert!(bad.contains(".csv or .json"), "{bad}");
    let unknown = run(inputs(), json!({ "classes": ["no such organ"] })).unwrap_err();
    assert!(
        unknown.contains("no class named `no such organ`"),
        "{unknown}"
    );
}

#[test]
fn quality_control_without_a_reference() {
    let Some((dir, g)) = golden() else { return };
    let t = run(
        Inputs::from([(
            "prediction".to_string(),
            labels(&dir.join("prediction.nii.gz")),
        )]),
        json!({}),
    )
    .unwrap();
    assert_eq!(t.columns[2..5], ["voxels", "volume_ml", "components"]);
    let real = g["real"]["classes"].as_object().unwrap();
    let mut fragmented = 0;
    for (id, want) in real {
        let key = Cell::Int(id.parse().unwrap());
        let n = want["pred_voxels"].as_f64().unwrap();
        let Some(v) = t.get(&key, "voxels").and_then(Cell::as_f64) else {
            assert_eq!(n, 0.0, "class {id} missing from QC");
            continue;
        };
        assert_eq!(v, n, "class {id}");
        // 3 mm isotropic: 0.027 ml a voxel.
        let ml = t.get(&key, "volume_ml").and_then(Cell::as_f64).unwrap();
        assert!((ml - n * 0.027).abs() < 1e-9, "class {id}: {ml} ml");
        let what = want["perturbation"].as_str().unwrap_or("");
        let comps = t.get(&key, "components").and_then(Cell::as_f64).unwrap();
        if what.contains("false-positive blob") {
            // The blob is disconnected from the organ: at least two components.
            assert!(comps >= 2.0, "class {id} ({what}): {comps} components");
        }
        if t.get(&key, "flags") == Some(&Cell::Text("fragmented".into())) {
            fragmented += 1;
        }
    }
    eprintln!("{fragmented} classes flagged fragmented");
}

/// A [2, 2, 4] label map of 1 mm voxels, one row of 4 per (k, j), with `classes`.
fn small_map(ids: [[i64; 4]; 4], classes: &[(u32, &str)]) -> Value {
    use vistaflow_nodes::value::{Geometry, LabelMap, Volume};
    let flat: Vec<i64> = ids.iter().flatten().copied().collect();
    let t = tch::Tensor::from_slice(&flat)
        .to_kind(tch::Kind::Int16)
        .view([2, 2, 4]);
    let v = Volume::new(t, Geometry::axis_aligned([1.0; 3], [0.0; 3])).unwrap();
    let table = classes.iter().map(|&(i, n)| (i, n.to_string())).collect();
    Value::Labels(LabelMap::new(v, table).unwrap())
}

#[test]
fn by_name_a_class_of_one_map_only_gets_a_row_of_its_own() {
    // The prediction has a PTV the reference lacks (an RT-STRUCT's planning structure, or
    // VISTA3D's `everything` against a few reference organs); the reference has an aorta
    // the prediction lacks. Ids differ: liver is 1 in one and 5 in the other.
    let pred = small_map(
        [[1, 1, 1, 0], [1, 1, 0, 0], [3, 3, 2, 2], [3, 3, 2, 0]],
        &[(1, "liver"), (2, "spleen"), (3, "PTV")],
    );
    let reference = small_map(
        [[5, 5, 0, 0], [5, 5, 5, 0], [0, 0, 1, 1], [0, 1, 0, 6]],
        &[(5, "liver"), (1, "spleen"), (6, "aorta")],
    );
    let inputs = || {
        Inputs::from([
            ("prediction".to_string(), pred.clone()),
            ("reference".to_string(), reference.clone()),
        ])
    };
    let t = run(
        inputs(),
        json!({ "match": "name", "metrics": ["dice", "iou", "hd"] }),
    )
    .unwrap();
    let row = |name: &str| {
        t.rows
            .iter()
            .find(|r| r[1] == Cell::Text(name.into()))
            .unwrap_or_else(|| panic!("no row for {name}: {:?}", t.rows))
    };
    let col = |name: &str| t.columns.iter().position(|c| c == name).unwrap();
    let num = |r: &[Cell], c: &str| r[col(c)].as_f64().unwrap();
    // liver: 5 predicted, 5 reference, 4 shared -> 8/10; spleen: 3 and 3, 2 shared.
    assert_eq!(num(row("liver"), "dice"), 0.8);
    assert!((num(row("spleen"), "dice") - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(num(row("spleen"), "iou"), 0.5);
    // Only in the prediction: 4 voxels against an empty reference (dice nan, as MONAI).
    let ptv = row("PTV");
    assert!(num(ptv, "dice").is_nan(), "{ptv:?}");
    assert_eq!(num(ptv, "voxels_prediction"), 4.0);
    assert_eq!(num(ptv, "voxels_reference"), 0.0);
    assert_eq!(num(ptv, "hd"), f64::INFINITY); // as MONAI 1.6 (golden `empty_reference`)
                                               // Only in the reference: nothing predicted (dice 0).
    let aorta = row("aorta");
    assert_eq!(num(aorta, "dice"), 0.0);
    assert_eq!(num(aorta, "voxels_reference"), 1.0);
    assert_eq!(num(aorta, "hd"), f64::INFINITY);
    assert!(num(row("liver"), "hd").is_finite());
    // Named in `classes`, the same.
    let t = run(
        inputs(),
        json!({ "match": "name", "classes": ["PTV", "liver"], "metrics": ["dice"] }),
    )
    .unwrap();
    assert_eq!(t.rows.len(), 2);
}
