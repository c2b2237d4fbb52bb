//! `vista3d_auto` end to end against MONAI's own pipeline (scripts/oracles/vista3d_auto_monai.py:
//! CropForeground, ScaleIntensityRange, Orientation RAS, sliding_window_inference with gaussian
//! blending, VistaPostTransformd, Invertd) on the real TotalSegmentator CT sample, with the
//! small configuration's fixed weights from scripts/oracles/vista3d_small.py.

mod common;

use serde_json::{json, Value as Json};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};
use vistaflow_nodes::io::nifti;
use vistaflow_nodes::node::{CancelToken, Ctx, Node};
use vistaflow_nodes::value::{LabelMap, Value, Volume};
use vistaflow_nodes::vista3d::Vista3dAuto;
use vistaflow_nodes::Inputs;

fn load(p: &Path, labels: bool) -> Value {
    nifti::read(p, labels, &Ctx::cpu()).unwrap()
}

fn run_node(
    image: Value,
    params: Json,
) -> (
    Result<vistaflow_nodes::Outputs, String>,
    Arc<common::Recorder>,
) {
    let rec = Arc::new(common::Recorder::default());
    let ctx = Ctx::new(Device::Cpu, CancelToken::new(), rec.clone());
    let node = Vista3dAuto;
    let p = common::with_defaults(&node, params);
    let inputs = Inputs::from([("image".to_string(), image)]);
    (node.run(&ctx, inputs, &p).map_err(|e| e.to_string()), rec)
}

fn labels_of(out: &vistaflow_nodes::Outputs) -> &LabelMap {
    match out.get("labels") {
        Some(Value::Labels(l)) => l,
        other => panic!("no labels output: {other:?}"),
    }
}

/// MONAI's labels for `image` on its own grid.
fn monai(f: &common::SmallNet, image: &Path, ids: &[u32], patch: i64, tmp: &Path) -> Volume {
    let out = tmp.join("monai.nii.gz");
    let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
    let patch = format!("{patch},{patch},{patch}");
    let st = Command::new(common::python())
        .arg(common::repo().join("scripts/oracles/vista3d_auto_monai.py"))
        .args(["--image".as_ref(), image.as_os_str()])
        .args(["--weights".as_ref(), f.weights.as_os_str()])
        .args(["--config".as_ref(), f.config.as_os_str()])
        .args([
            "--classes",
            &ids.join(","),
            "--patch",
            &patch,
            "--overlap",
            "0.3",
        ])
        .args(["--out".as_ref(), out.as_os_str()])
        .status()
        .unwrap();
    assert!(st.success(), "the MONAI oracle failed");
    match load(&out, true) {
        Value::Labels(l) => l.volume,
        _ => unreachable!(),
    }
}

/// Fraction of voxels with the same label, and the label histogram of `a`.
fn agreement(a: &Volume, b: &Volume) -> (f64, Vec<(i64, i64)>) {
    assert_eq!(a.spatial_shape(), b.spatial_shape());
    let (x, y) = (a.data().to_kind(Kind::Int64), b.data().to_kind(Kind::Int64));
    let same = x
        .eq_tensor(&y)
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[]);
    let (vals, _, counts) = x.reshape([-1]).unique_dim(0, true, false, true);
    let hist = Vec::<i64>::try_from(&vals)
        .unwrap()
        .into_iter()
        .zip(Vec::<i64>::try_from(&counts).unwrap())
        .collect();
    (same, hist)
}

fn compare(case: &str, file: &str, classes: Json, ids: &[u32], patch: i64, min_classes: usize) {
    let Some(f) = common::small_net() else { return };
    let path = f.ts.join(file);
    compare_file(case, &f, &path, classes, ids, patch, min_classes);
}

fn compare_file(
    case: &str,
    f: &common::SmallNet,
    path: &Path,
    classes: Json,
    ids: &[u32],
    patch: i64,
    min_classes: usize,
) {
    tch::set_num_threads(2);
    let tmp = tempfile::tempdir().unwrap();
    let path = path.to_path_buf();
    let image = load(&path, false);
    let input = match &image {
        Value::Image(v) => v.clone(),
        _ => unreachable!(),
    };
    let t = std::time::Instant::now();
    let (out, rec) = run_node(
        image,
        json!({"classes": classes, "model": f.weights, "network": "small",
               "patch": [patch, patch, patch], "overlap": 0.3, "skip_empty": false}),
    );
    let secs = t.elapsed().as_secs_f64();
    let out = out.unwrap();
    let ours = labels_of(&out);
    // Same grid as the input, class table of the ids asked for.
    assert_eq!(ours.volume.spatial_shape(), input.spatial_shape());
    assert_eq!(ours.volume.geometry(), input.geometry());
    assert_eq!(ours.classes.keys().copied().collect::<Vec<_>>(), {
        let mut v = ids.to_vec();
        v.sort();
        v
    });
    let (done, total) = *rec.progress.lock().unwrap();
    assert!(total > 0 && done == total, "progress {done}/{total}");

    let theirs = monai(f, &path, ids, patch, tmp.path());
    let (same, hist) = agreement(&ours.volume, &theirs);
    eprintln!(
        "{case}: node {secs:.1} s, {total} windows; agreement with MONAI {:.6}; labels {hist:?}; \
         warnings {:?}",
        same,
        rec.warnings.lock().unwrap()
    );
    // Random-weight logits are not trivially all background or all one class.
    let fg: i64 = hist.iter().filter(|(v, _)| *v != 0).map(|(_, c)| c).sum();
    let n: i64 = hist.iter().map(|(_, c)| c).sum();
    assert!(
        hist.len() > min_classes,
        "{case}: too few classes in the output: {hist:?}"
    );
    assert!(fg > n / 100 && fg < n, "{case}: foreground {fg} of {n}");
    assert!(same >= 0.999, "{case}: label agreement {same} < 0.999");
}

#[test]
fn four_classes_match_monai_with_overlapping_windows() {
    // 4 classes <= 16 features: logits are blended, as MONAI does.
    compare(
        "4 classes, patch 64",
        "example_ct.nii.gz",
        json!(["liver", "spleen", "right kidney", 14]),
        &[1, 3, 5, 14],
        64,
        2,
    );
}

#[test]
fn cropped_and_reoriented_input_matches_monai() {
    // example_ct is RAS and has tissue up to its borders: make a copy that exercises the
    // foreground crop (air margins wider than the 10-voxel margin) and a reorientation with
    // an axis permutation (PIL -> RAS).
    let Some(f) = common::small_net() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Value::Image(v) = load(&f.ts.join("example_ct.nii.gz"), false) else {
        unreachable!()
    };
    let v = vistaflow_nodes::spatial::reorient(
        &v,
        vistaflow_nodes::spatial::Orientation::parse("PIL").unwrap(),
    )
    .unwrap();
    let (pk, pj, pi) = (17i64, 23i64, 29i64);
    let data = v
        .data()
        .pad([pi, pi + 5, pj, pj + 2, pk, pk + 7], "constant", -1024.0);
    let mut a = v.geometry().affine_lps;
    for row in &mut a[..3] {
        row[3] -= row[0] * pi as f64 + row[1] * pj as f64 + row[2] * pk as f64;
    }
    let padded = Volume::new(data, vistaflow_nodes::value::Geometry { affine_lps: a }).unwrap();
    let path = tmp.path().join("ct_pil_padded.nii.gz");
    nifti::write(&path, &Value::Image(padded), &Ctx::cpu()).unwrap();
    compare_file(
        "cropped + PIL, patch 64",
        &f,
        &path,
        json!(["liver", "spleen", "aorta"]),
        &[1, 3, 6],
        64,
        2,
    );
}

#[test]
fn everything_matches_monai_with_feature_blending() {
    // 117 classes > 16 features: the class-head features are blended instead of 117 maps.
    let ids = vistaflow_nodes::vista3d::classes::table()
        .everything_labels
        .clone();
    compare(
        "everything, patch 64",
        "example_ct.nii.gz",
        json!("everything"),
        &ids,
        64,
        4,
    );
}

#[test]
fn thin_slab_is_padded_like_monai() {
    // 30 slices with the default 128^3 patch: MONAI pads; so must we. Kidney expands to
    // left and right kidney.
    compare(
        "thin slab, patch 128",
        "example_ct_sm.nii.gz",
        json!(["liver", "kidney", "aorta"]),
        &[1, 14, 5, 6],
        128,
        2,
    );
}

#[test]
fn bad_inputs_are_clear_errors() {
    let Some(f) = common::small_net() else { return };
    let image = load(&f.ts.join("example_ct_sm.nii.gz"), false);
    let base = json!({"classes": ["liver"], "model": f.weights, "network": "small"});
    let with = |k: &str, v: Json| {
        let mut p = base.clone();
        p[k] = v;
        p
    };

    // Unknown class: the nearest name is suggested (also checked when the workflow loads).
    let err =
        vistaflow_nodes::vista3d::classes::check_param(&json!(["liver", "spleeen"])).unwrap_err();
    assert!(
        err.contains("unknown class `spleeen`") && err.contains("`spleen`"),
        "{err}"
    );
    let err = vistaflow_nodes::vista3d::classes::check_param(&json!(["adrenal"])).unwrap_err();
    assert!(err.contains("adrenal gland"), "{err}");
    let (r, _) = run_node(image.clone(), with("classes", json!(["pancreaz"])));
    assert!(r.unwrap_err().contains("did you mean `pancreas`"));

    // Missing weights file, and weights of another configuration.
    let (r, _) = run_node(
        image.clone(),
        with("model", json!("/nonexistent/vista3d.safetensors")),
    );
    let err = r.unwrap_err();
    assert!(
        err.contains("/nonexistent/vista3d.safetensors") && err.contains("convert-weights"),
        "{err}"
    );
    let (r, _) = run_node(image.clone(), with("network", json!("vista3d132")));
    let err = r.unwrap_err();
    assert!(
        err.contains("16 filters") && err.contains("`network`"),
        "{err}"
    );

    // A patch the network cannot take.
    let (r, _) = run_node(image.clone(), with("patch", json!([100, 128, 128])));
    assert!(r.unwrap_err().contains("multiple of 16"));

    // A 2D image.
    let Value::Image(v) = &image else {
        unreachable!()
    };
    let slice = Volume::new(v.data().narrow(0, 10, 1).contiguous(), *v.geometry()).unwrap();
    let (r, _) = run_node(Value::Image(slice), base.clone());
    let err = r.unwrap_err();
    assert!(err.contains("2D"), "{err}");

    // Not HU (an MR) and a coarse spacing: warnings, not errors.
    let (r, rec) = run_node(image.clone(), base.clone());
    r.unwrap();
    let w = rec.warnings.lock().unwrap().join("\n");
    assert!(
        w.contains("trained at 1.5 x 1.5 x 1.5 mm") && w.contains("resample"),
        "{w}"
    );
    let mr = load(&f.ts.join("example_mr_sm.nii.gz"), false);
    let (r, rec) = run_node(mr, base.clone());
    r.unwrap();
    let w = rec.warnings.lock().unwrap().join("\n");
    assert!(w.contains("Hounsfield"), "{w}");
}

#[test]
fn all_air_windows_are_skipped_and_labelled_background() {
    let Some(f) = common::small_net() else { return };
    // A 1.5 mm volume: a soft-tissue block in one corner, air elsewhere.
    let data = Tensor::full([96, 96, 160], -1000.0, (Kind::Float, Device::Cpu));
    let _ = data
        .narrow(0, 0, 40)
        .narrow(1, 0, 40)
        .narrow(2, 0, 40)
        .fill_(40.0);
    let _ = data
        .narrow(0, 90, 1)
        .narrow(1, 90, 1)
        .narrow(2, 150, 1)
        .fill_(40.0);
    let g = vistaflow_nodes::value::Geometry::axis_aligned([1.5, 1.5, 1.5], [0.0, 0.0, 0.0]);
    let img = Value::Image(Volume::new(data, g).unwrap());
    let (r, rec) = run_node(
        img,
        json!({"classes": ["liver"], "model": f.weights, "network": "small", "patch": [32, 32, 32]}),
    );
    let out = r.unwrap();
    let w = rec.warnings.lock().unwrap().join("\n");
    assert!(w.contains("were all air and skipped"), "{w}");
    let l = labels_of(&out);
    // Far from both blocks every window is air: background there.
    let far = l
        .volume
        .data()
        .narrow(0, 50, 20)
        .narrow(1, 50, 20)
        .narrow(2, 60, 40);
    assert_eq!(far.count_nonzero(None::<i64>).int64_value(&[]), 0);
}

#[test]
fn probabilities_agree_with_the_labels() {
    let Some(f) = common::small_net() else { return };
    let image = load(&f.ts.join("example_ct_sm.nii.gz"), false);
    let (r, _) = run_node(
        image,
        json!({"classes": ["liver", "spleen"], "model": f.weights, "network": "small",
               "patch": [64, 64, 64], "probabilities": true}),
    );
    let out = r.unwrap();
    let labels = labels_of(&out).volume.data().to_kind(Kind::Int64);
    let Some(Value::Image(p)) = out.get("probabilities") else {
        panic!("no probabilities output")
    };
    let p = p.data();
    let s = labels.size();
    assert_eq!(p.size(), [2, s[0], s[1], s[2]]);
    assert!(p.min().double_value(&[]) >= 0.0 && p.max().double_value(&[]) <= 1.0);
    let (p0, p1) = (p.get(0), p.get(1));
    let liver = labels.eq(1);
    let spleen = labels.eq(3);
    let bg = labels.eq(0);
    let count = |m: &Tensor| m.sum(Kind::Int64).int64_value(&[]);
    assert!(count(&liver) > 0 && count(&spleen) > 0);
    // Label c <=> probability of c above 0.5 and not below the other's.
    let bad = |m: &Tensor, a: Tensor, b: Tensor| count(&m.logical_and(&a.logical_or(&b)));
    assert_eq!(bad(&liver, p0.le(0.5), p0.lt_tensor(&p1)), 0);
    assert_eq!(bad(&spleen, p1.le(0.5), p1.lt_tensor(&p0)), 0);
    assert_eq!(bad(&bg, p0.gt(0.5), p1.gt(0.5)), 0);
}

#[test]
fn batched_windows_give_the_same_labels() {
    let Some(f) = common::small_net() else { return };
    let image = load(&f.ts.join("example_ct_sm.nii.gz"), false);
    let run = |b: i64| {
        let (r, rec) = run_node(
            image.clone(),
            json!({"classes": ["liver", "spleen", "aorta"], "model": f.weights,
                   "network": "small", "patch": [32, 32, 32], "sw_batch": b}),
        );
        let (done, total) = *rec.progress.lock().unwrap();
        assert_eq!(done, total);
        labels_of(&r.unwrap()).volume.clone()
    };
    let (one, three) = (run(1), run(3));
    let (same, hist) = agreement(&three, &one);
    eprintln!("sw_batch 3 vs 1: agreement {same:.6}, labels {hist:?}");
    // Batched convolutions may round differently in the last bit (MONAI's do too).
    assert!(same >= 0.9999, "{same}");
    assert!(hist.len() >= 3, "{hist:?}");
}

struct QuietHooks;
impl vistaflow_nodes::vista3d::stream::Hooks for QuietHooks {
    fn progress(&self, _: u64, _: u64) {}
    fn warn(&self, _: &str) {}
    fn cancelled(&self) -> bool {
        false
    }
}

/// The network in bf16 (what `precision: bf16` runs on a GPU; bf16 kernels exist on the CPU
/// too): windows and stitching must agree on dtypes, for both blending paths (three classes:
/// logits; `everything`: features), and give nearly fp32's labels. The first GPU check found
/// "expected mat1 and mat2 to have the same dtype" here.
#[test]
fn half_precision_network_stitches_and_agrees_with_fp32() {
    use vistaflow_nodes::vista3d::{classes, net::Config, preprocess, stream, weights};
    let Some(f) = common::small_net() else { return };
    let ct = common::image(
        Path::new("ct"),
        Ok(load(&f.ts.join("example_ct_sm.nii.gz"), false)),
    );
    let image = preprocess::prepare(&ct, None, &common::ctx())
        .unwrap()
        .image
        .unwrap();
    let run = |kind: Kind, ids: &[u32]| {
        let mut net = weights::load(&f.weights, &Config::small(), Device::Cpu).unwrap();
        if kind == Kind::BFloat16 {
            net.vs.bfloat16();
        }
        let opts = stream::Options {
            patch: [32, 32, 32],
            overlap: 0.25,
            sw_batch: 1,
            skip_empty: true,
            probabilities: false,
            kind,
        };
        stream::segment(&net, &image, ids, &opts, &QuietHooks)
            .unwrap_or_else(|e| panic!("{kind:?}, {} classes: {e}", ids.len()))
            .labels
    };
    let everything = classes::table().everything_labels.clone();
    // Thresholds: the small network's random weights leave many near-ties that bf16 flips.
    for (ids, min) in [(&[1u32, 3, 6][..], 0.95), (&everything[..], 0.9)] {
        let (full, half) = (run(Kind::Float, ids), run(Kind::BFloat16, ids));
        let same = full
            .eq_tensor(&half)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        let labelled = full
            .ne(0)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        eprintln!(
            "{} classes: bf16 vs fp32 agreement {same:.5}, labelled {labelled:.3}",
            ids.len()
        );
        assert!(labelled > 0.05, "{labelled}");
        assert!(same >= min, "{same}");
    }
}
