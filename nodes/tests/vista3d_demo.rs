//! The demo model shipped in models/ (trained by workflows/train-demo.yaml) on the held-out
//! TotalSegmentator DICOM series, on the model's 3 mm grid: its automatic Dice against
//! TotalSegmentator's labels, and positive clicks on a partly missed organ and on deliberately
//! broken masks. The Dice on the series' own grid, through the `metrics` node, is
//! tests/engine_demo.rs.

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

/// Per class of CLASSES, the Dice the committed demo model reaches here, less 0.02 (seen:
/// liver 0.882, spleen 0.798, stomach 0.323, aorta 0.727; both grids filled by `border`).
const MIN_DICE: [f64; 4] = [0.86, 0.77, 0.30, 0.70];

/// What one positive click must add to its class's Dice on a deliberately broken mask, at
/// least (seen: deleted spleen 0.000 -> 0.731, liver cut in half 0.621 -> 0.754; before the
/// point-head stage the same clicks changed nothing).
const CLICK_GAIN: f64 = 0.1;

/// What one positive click in the largest part of the liver the automatic result misses
/// must add, at least (seen: 0.882 -> 0.900).
const MISSED_GAIN: f64 = 0.01;

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
        json!({"spacing": [3, 3, 3], "fill": "border"}),
    )
    .remove("image")
    .unwrap();
    let truth = nifti::read(&data.join("example_seg_dicom.nii.gz"), true, &Ctx::cpu()).unwrap();
    let truth = match run(
        &Resample,
        vec![("image", truth), ("reference", iso.clone())],
        json!({"fill": "border"}),
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
fn demo_model_segments_and_one_click_mends_broken_masks() {
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
    // What the committed model gives (seen values minus 0.02): a model or pipeline change that
    // does worse fails here. The 0.8 target of the issue is not met (README, "The demo model").
    for ((name, _, _), (d, min)) in CLASSES.iter().zip(scores.iter().zip(MIN_DICE)) {
        assert!(*d >= min, "{name}: Dice {d:.3} below {min}");
    }

    // The liver the automatic result misses in part: one positive click in the missed part
    // (workflows/demo-click.yaml's click) adds to it and leaves the other classes alone.
    let liver_truth = truth.eq(5);
    let missed = liver_truth.logical_and(&auto.ne(1));
    let before = dice(&auto.eq(1), &liver_truth);
    let fixed = refine(&c, &c.auto, inner_voxel(&missed), "liver");
    let after = dice(&fixed.eq(1), &liver_truth);
    eprintln!("liver: Dice {before:.3} -> {after:.3} after one click in its missed part");
    assert!(after > before + MISSED_GAIN, "{before} -> {after}");
    for v in [3, 6, 12] {
        let kept = dice(&fixed.eq(v), &auto.eq(v));
        assert!(kept > 0.99, "class {v} changed: {kept}");
    }
    // The same for the spleen does not help with this model: its object spreads into the
    // stomach next to it (README, "The demo model"). Printed, not asserted.
    let spleen_truth = truth.eq(1);
    let missed = spleen_truth.logical_and(&auto.ne(3));
    let fixed = refine(&c, &c.auto, inner_voxel(&missed), "spleen");
    let stomach_truth = truth.eq(6);
    eprintln!(
        "spleen: Dice {:.3} -> {:.3} after one click in its missed part; stomach {:.3} -> {:.3}",
        dice(&auto.eq(3), &spleen_truth),
        dice(&fixed.eq(3), &spleen_truth),
        dice(&auto.eq(12), &stomach_truth),
        dice(&fixed.eq(12), &stomach_truth)
    );

    // Deliberately broken masks: the spleen deleted from the automatic result, and the half
    // of the liver beyond its centre (along x) cut away. One positive click in what was
    // removed (the test).
    let no_spleen = auto * auto.ne(3);
    let before = dice(&no_spleen.eq(3), &spleen_truth);
    let fixed = refine(
        &c,
        &with_voxels(&c.auto, &no_spleen),
        inner_voxel(&spleen_truth),
        "spleen",
    );
    let after = dice(&fixed.eq(3), &spleen_truth);
    eprintln!("deleted spleen: Dice {before:.3} -> {after:.3} after one click at its centre");
    assert!(
        after > before + CLICK_GAIN,
        "deleted spleen: {before} -> {after}"
    );

    let centre_x = inner_voxel(&auto.eq(1))[0];
    // [k, j, i] voxels: i is the last axis.
    let size = auto.size();
    let beyond = Tensor::arange(size[2], (Kind::Int64, auto.device()))
        .gt(centre_x)
        .view([1, 1, size[2]])
        .expand_as(auto);
    let cut = auto * auto.eq(1).logical_and(&beyond).logical_not();
    let before = dice(&cut.eq(1), &liver_truth);
    let removed = liver_truth.logical_and(&beyond);
    let fixed = refine(
        &c,
        &with_voxels(&c.auto, &cut),
        inner_voxel(&removed),
        "liver",
    );
    let after = dice(&fixed.eq(1), &liver_truth);
    eprintln!("liver cut in half: Dice {before:.3} -> {after:.3} after one click in the cut part");
    assert!(
        after > before + CLICK_GAIN,
        "cut liver: {before} -> {after}"
    );
}
