//! `vista3d_zeroshot`: clicks on a new structure through the refine pipeline with a zero-shot
//! id, and the supervoxel snap (a supervoxel joins when most of it is inside).

mod common;

use serde_json::{json, Value as Json};
use tch::Kind;
use vistaflow_nodes::io::nifti;
use vistaflow_nodes::node::{Ctx, Node};
use vistaflow_nodes::supervoxels::Supervoxels;
use vistaflow_nodes::value::{LabelMap, Value};
use vistaflow_nodes::vista3d::refine::Vista3dRefine;
use vistaflow_nodes::vista3d::Vista3dZeroshot;
use vistaflow_nodes::Inputs;

fn run(node: &dyn Node, inputs: Inputs, params: Json) -> Result<LabelMap, String> {
    let p = common::with_defaults(node, params);
    let mut out = node
        .run(&Ctx::cpu(), inputs, &p)
        .map_err(|e| e.to_string())?;
    match out.remove("labels") {
        Some(Value::Labels(l)) => Ok(l),
        other => panic!("no labels: {other:?}"),
    }
}

#[test]
fn zero_shot_clicks_and_supervoxel_snap() {
    let Some(data) = common::data_dir() else {
        return;
    };
    tch::set_num_threads(2);
    let weights = data.join("vista3d/small/weights.safetensors");
    let ct = nifti::read(
        &data.join("totalsegmentator/example_ct_sm.nii.gz"),
        false,
        &Ctx::cpu(),
    )
    .unwrap();
    // With the small configuration's random weights the zero-shot logits are positive
    // around these clicks (not anatomy: parity and the snap rule are what is checked).
    let clicks = json!([
        { "voxel": [30, 40, 10], "label": "positive" },
        { "voxel": [34, 44, 12], "label": "positive" },
        { "voxel": [90, 65, 22], "label": "negative" }
    ]);
    let params = |extra: Json| {
        let mut p = json!({ "model": weights, "network": "small", "points": clicks,
                            "patch": [64, 64, 64], "id": 140, "name": "lesion" });
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    let image = || Inputs::from([("image".to_string(), ct.clone())]);
    let zs = run(&Vista3dZeroshot, image(), params(json!({}))).unwrap();
    assert_eq!(zs.classes.len(), 1);
    assert_eq!(zs.classes[&140], "lesion");
    let mask = zs.volume.data().eq(140);
    let n = mask.sum(Kind::Int64).int64_value(&[]);
    assert!(n > 100, "only {n} voxels");
    assert_eq!(zs.volume.data().ne(0).sum(Kind::Int64).int64_value(&[]), n);

    // The same clicks through vista3d_refine with class 140 (MONAI-parity tested there).
    let mut rp = json!({ "model": weights, "network": "small", "patch": [64, 64, 64] });
    rp["points"] = Json::Array(
        clicks
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c["class"] = json!(140);
                c
            })
            .collect(),
    );
    let refined = run(&Vista3dRefine, image(), rp).unwrap();
    assert!(refined.volume.data().eq(140).equal(&mask));

    // Snapped to supervoxels: the mask is a union of whole supervoxels, each of which the
    // raw mask covered more than half of.
    let sv = match Supervoxels
        .run(&Ctx::cpu(), image(), &{
            let mut p = vistaflow_nodes::params::Params::new();
            for spec in &Supervoxels.spec().params {
                if let Some(d) = &spec.default {
                    p.insert(spec.name.to_string(), d.clone());
                }
            }
            p
        })
        .unwrap()
        .remove("labels")
    {
        Some(Value::Labels(l)) => l,
        other => panic!("{other:?}"),
    };
    let mut inputs = image();
    inputs.insert("supervoxels".into(), Value::Labels(sv.clone()));
    let snapped = run(&Vista3dZeroshot, inputs, params(json!({}))).unwrap();
    let s = snapped.volume.data().eq(140).flatten(0, -1);
    let ids = sv.volume.data().flatten(0, -1).to_kind(Kind::Int64);
    let raw = mask.flatten(0, -1).to_kind(Kind::Double);
    let total = ids.bincount::<tch::Tensor>(None, 0).to_kind(Kind::Double);
    let inside_raw = ids.bincount(Some(&raw), 0);
    let inside_snapped = ids.bincount(Some(&s.to_kind(Kind::Double)), 0);
    let t = Vec::<f64>::try_from(&total).unwrap();
    let r = Vec::<f64>::try_from(&inside_raw).unwrap();
    let k = Vec::<f64>::try_from(&inside_snapped).unwrap();
    let mut joined = 0;
    for id in 1..t.len() {
        assert!(
            k[id] == 0.0 || k[id] == t[id],
            "supervoxel {id} split by the snapped mask"
        );
        assert_eq!(
            k[id] > 0.0,
            r[id] > 0.5 * t[id],
            "supervoxel {id}: majority rule"
        );
        joined += (k[id] > 0.0) as usize;
    }
    assert_eq!(k[0], 0.0, "air never joins");
    let ns = s.sum(Kind::Int64).int64_value(&[]);
    eprintln!("zero-shot mask {n} voxels; snapped to {joined} supervoxels: {ns} voxels");
    assert!(joined > 0);
}

#[test]
fn zero_shot_errors_are_clear() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let weights = data.join("vista3d/small/weights.safetensors");
    let ct = nifti::read(
        &data.join("totalsegmentator/example_ct_sm.nii.gz"),
        false,
        &Ctx::cpu(),
    )
    .unwrap();
    let image = || Inputs::from([("image".to_string(), ct.clone())]);
    let base = |points: Json, id: i64| json!({ "model": weights, "network": "small", "points": points, "patch": [64, 64, 64], "id": id });
    let neg = json!([{ "voxel": [81, 58, 19], "label": "negative" }]);
    let e = run(&Vista3dZeroshot, image(), base(neg, 140)).unwrap_err();
    assert!(e.contains("no positive click"), "{e}");
    let named = json!([{ "voxel": [81, 58, 19], "label": "positive", "class": "liver" }]);
    let e = run(&Vista3dZeroshot, image(), base(named, 140)).unwrap_err();
    assert!(e.contains("use vista3d_refine"), "{e}");
    let pos = json!([{ "voxel": [81, 58, 19], "label": "positive" }]);
    let e = run(&Vista3dZeroshot, image(), base(pos.clone(), 5)).unwrap_err();
    assert!(e.contains("not a zero-shot id"), "{e}");
    let outside = json!([{ "voxel": [500, 58, 19], "label": "positive" }]);
    let e = run(&Vista3dZeroshot, image(), base(outside, 140)).unwrap_err();
    assert!(e.contains("outside"), "{e}");
}
