//! The demo model shipped in models/ (trained by workflows/train-demo.yaml) on the held-out
//! TotalSegmentator DICOM series, on the model's 3 mm grid: its automatic Dice against
//! TotalSegmentator's labels, and positive clicks that mend deliberately broken masks (an
//! organ deleted, half an organ cut away). The Dice on the series' own grid, through the
//! `metrics` node, is tests/engine_demo.rs.

mod common;

use serde_json::{json, Value as Json};
use std::path::PathBuf;
use tch::{Kind, Tensor};
use vistaflow_nodes::io::dicom::LoadDicom;
use vistaflow_nodes::io::nifti;
use vistaflow_nodes::node::{Ctx, Node};
use vistaflow_nodes::spatial::Resample;
use vistaflow_nodes::value::{LabelMap, Value, Volume};
use vistaflow_nodes::vista3d::refine::Vista3dRefine;
use vistaflow_nodes::vista3d::Vista3dAuto;
use vistaflow_nodes::Inputs;

/// TotalSegmentator id -> VISTA3D id of the classes in the held-out slab.
const CLASSES: [(&str, i64, i64); 4] = [
    ("liver", 5, 1),
    ("spleen", 1, 3),
    ("stomach", 6, 12),
    ("aorta", 52, 6),
];

fn model() -> PathBuf {
    common::repo().join("models/vista3d-demo.safetensors")
}

fn run(node: &dyn Node, inputs: Vec<(&str, Value)>, params: Json) -> vistaflow_nodes::Outputs {
    let inputs: Inputs = inputs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    node.run(&Ctx::cpu(), inputs, &common::with_defaults(node, params))
        .unwrap_or_else(|e| panic!("{}: {e}", node.spec().kind))
}

struct Case {
    image: Value,
    truth: LabelMap,
    auto: LabelMap,
}

/// The series at 3 mm, TotalSegmentator's labels on that grid, and the demo model's result.
fn case() -> Option<Case> {
    let data = common::data_dir()?.join("totalsegmentator");
    let ct = run(
        &LoadDicom,
        vec![],
        json!({"path": data.join("example_ct_dicom")}),
    )
    .remove("image")
    .unwrap();
    let iso = run(
        &Resample,
        vec![("image", ct)],
        json!({"spacing": [3, 3, 3]}),
    )
    .remove("image")
    .unwrap();
    let truth = nifti::read(&data.join("example_seg_dicom.nii.gz"), true, &Ctx::cpu()).unwrap();
    let truth = match run(
        &Resample,
        vec![("image", truth), ("reference", iso.clone())],
        json!({}),
    )
    .remove("labels")
    {
        Some(Value::Labels(l)) => l,
        _ => panic!("no labels"),
    };
    let auto = match run(
        &Vista3dAuto,
        vec![("image", iso.clone())],
        json!({"model": model(), "patch": [64, 64, 48], "overlap": 0.5}),
    )
    .remove("labels")
    {
        Some(Value::Labels(l)) => l,
        _ => panic!("no labels"),
    };
    Some(Case {
        image: iso,
        truth,
        auto,
    })
}

fn dice(pred: &Tensor, truth: &Tensor) -> f64 {
    let (p, t) = (pred.to_kind(Kind::Float), truth.to_kind(Kind::Float));
    let inter = (&p * &t).sum(Kind::Double).double_value(&[]);
    2.0 * inter / (p.sum(Kind::Double).double_value(&[]) + t.sum(Kind::Double).double_value(&[]))
}

/// A voxel [i, j, k] of `mask` ([k, j, i]) nearest the centre of its voxels.
fn inner_voxel(mask: &Tensor) -> [i64; 3] {
    let idx = mask.nonzero(); // [n, 3] as (k, j, i)
    let centre = idx.to_kind(Kind::Float).mean_dim(0, false, Kind::Float);
    let d = (idx.to_kind(Kind::Float) - centre)
        .square()
        .sum_dim_intlist(1, false, Kind::Float);
    let best = idx.get(d.argmin(0, false).int64_value(&[]));
    let v: Vec<i64> = Vec::try_from(&best).unwrap();
    [v[2], v[1], v[0]]
}

fn with_voxels(l: &LabelMap, t: &Tensor) -> LabelMap {
    let v = Volume::new(t.shallow_clone(), *l.volume.geometry()).unwrap();
    LabelMap::new(v, l.classes.clone()).unwrap()
}

fn refine(c: &Case, prior: &LabelMap, click: [i64; 3], class: &str) -> Tensor {
    let o = run(
        &Vista3dRefine,
        vec![
            ("image", c.image.clone()),
            ("labels", Value::Labels(prior.clone())),
        ],
        json!({"model": model(), "patch": [64, 64, 48],
               "points": [{"voxel": click, "label": "positive", "class": class}]}),
    );
    match o.get("labels") {
        Some(Value::Labels(l)) => l.volume.data().shallow_clone(),
        _ => panic!("no labels"),
    }
}

#[test]
fn demo_model_segments_and_clicks_mend_broken_masks() {
    let Some(c) = case() else { return };
    let (auto, truth) = (c.auto.volume.data(), c.truth.volume.data());
    let mut scores = Vec::new();
    for (name, ts, v) in CLASSES {
        let d = dice(&auto.eq(v), &truth.eq(ts));
        eprintln!("{name}: Dice {d:.3} (3 mm grid)");
        scores.push(d);
    }
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    eprintln!("mean Dice {mean:.3}");
    assert!(mean >= 0.8, "mean Dice {mean:.3} over {CLASSES:?}");

    // The spleen deleted from the automatic result: one positive click brings it back.
    let spleen_truth = truth.eq(1);
    let broken = auto * auto.ne(3);
    let prior = with_voxels(&c.auto, &broken);
    let before = dice(&broken.eq(3), &spleen_truth);
    let fixed = refine(&c, &prior, inner_voxel(&spleen_truth), "spleen");
    let after = dice(&fixed.eq(3), &spleen_truth);
    eprintln!("spleen deleted: Dice {before:.3} -> {after:.3} after one click");
    assert!(before == 0.0 && after > 0.7, "{before} -> {after}");
    // Other classes are kept where the click's object does not reach.
    let liver_kept = dice(&fixed.eq(1), &auto.eq(1));
    assert!(liver_kept > 0.98, "liver changed: {liver_kept}");

    // The liver's left-most half (image columns) cut away: a click there mends it.
    let liver_truth = truth.eq(5);
    let liver = auto.eq(1);
    let cols = liver.nonzero().select(1, 2); // i of each liver voxel
    let mid = cols.to_kind(Kind::Float).median().double_value(&[]) as i64;
    let n = auto.size()[2];
    let cut = Tensor::arange(n, (Kind::Int64, tch::Device::Cpu))
        .ge(mid)
        .view([1, 1, n]);
    let broken = auto * auto.ne(1).logical_or(&cut.logical_not());
    let prior = with_voxels(&c.auto, &broken);
    let before = dice(&broken.eq(1), &liver_truth);
    let lost = liver_truth.logical_and(&cut).logical_and(&broken.ne(1));
    let fixed = refine(&c, &prior, inner_voxel(&lost), "liver");
    let after = dice(&fixed.eq(1), &liver_truth);
    eprintln!("liver half cut: Dice {before:.3} -> {after:.3} after one click");
    assert!(after > before + 0.1, "{before} -> {after}");
}
