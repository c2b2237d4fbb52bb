//! Node params come from one typed struct per node (`#[derive(NodeParams)]`): their values
//! are checked when the workflow loads (so `vistaflow validate` catches them, at the value's
//! line and column), and the defaults it fills in give the cache keys they gave before the
//! params were typed.

mod common;

use common::{assert_has, load_errors as errors};
use std::path::Path;
use std::process::Command;

const HEAD: &str =
    "version: 1\nname: t\nnodes:\n  ct: { kind: load_nifti, params: { path: a.nii } }\n";

#[test]
fn a_patch_the_network_cannot_halve_fails_at_load() {
    // Named architecture: known without reading anything.
    let out = errors(&format!(
        "{HEAD}  seg:\n    kind: vista3d_auto\n    inputs: {{ image: ct.image }}\n    params: {{ model: w.safetensors, network: small, patch: [100, 128, 128] }}\n"
    ));
    assert_has(
        &out,
        &[
            "param `patch` of `vista3d_auto`",
            "multiple of 16",
            "--> wf.yaml:8:60",
        ],
    );
    // `network: auto` reads the architecture off the weights' card at load.
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/vista3d-demo.safetensors");
    let out = errors(&format!(
        "{HEAD}  seg:\n    kind: vista3d_refine\n    inputs: {{ image: ct.image }}\n    params:\n      model: {}\n      patch: [64, 64, 36]\n      points: [{{ voxel: [1, 2, 3], label: positive, class: liver }}]\n",
        demo.display()
    ));
    assert_has(
        &out,
        // The demo model has four levels: multiples of 8, not the published model's 16.
        &[
            "param `patch` of `vista3d_refine`",
            "multiple of 8",
            "--> wf.yaml:10:14",
        ],
    );
}

#[test]
fn bounds_and_cross_param_checks_fail_at_load() {
    for (node, at, want) in [
        (
            "{ kind: resample, inputs: { image: ct.image }, params: { spacing: [1, -1, 1] } }",
            "wf.yaml:6:72",
            "param `spacing` of `resample`: -1 is not > 0",
        ),
        (
            "{ kind: resample, inputs: { image: ct.image }, params: { spacing: [0, 1, 1] } }",
            "wf.yaml:6:72",
            "0 is not > 0",
        ),
        (
            "{ kind: export, inputs: { labels: m.labels }, params: { format: stl, path: o, step: 0 } }",
            "wf.yaml:6:",
            "param `step` of `export`: 0 is not >= 1",
        ),
        (
            "{ kind: vista3d_auto, inputs: { image: ct.image }, params: { network: small, overlap: 1.0 } }",
            "wf.yaml:6:",
            "overlap 1 must be at least 0 and below 1",
        ),
        (
            "{ kind: load_dicom, params: { path: d, description: \"(unclosed\" } }",
            "wf.yaml:6:",
            "param `description` of `load_dicom`: not a valid regex",
        ),
        (
            "{ kind: vista3d_zeroshot, inputs: { image: ct.image }, params: { id: 5, points: [{ voxel: [1, 2, 3], label: positive }] } }",
            "wf.yaml:6:",
            "`id` 5 is not a zero-shot id",
        ),
    ] {
        let text = format!(
            "{HEAD}  m: {{ kind: load_nifti, params: {{ path: s.nii, labels: true }} }}\n  x: {node}\n"
        );
        let out = errors(&text);
        assert_has(&out, &[want, at]);
    }
}

/// The keys `vistaflow plan` showed for this workflow before params were typed (commit
/// 9b6baf3, hand-written ParamSpec lists): every kind with its defaults filled in. The files
/// hold fixed bytes (keys digest them, nothing parses them at plan time); the folder is fixed
/// because output paths are part of a writing node's key.
#[test]
fn defaults_filled_from_the_typed_params_keep_the_cache_keys() {
    let dir = Path::new("/tmp/vistaflow-param-keys");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("dicom")).unwrap();
    for (name, bytes) in [
        ("ct.nii.gz", "ct bytes"),
        ("seg.nii.gz", "seg bytes"),
        ("ct.nrrd", "nrrd bytes"),
        ("dicom/1.dcm", "dicom bytes"),
        ("w.safetensors", "weights bytes"),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::fs::write(dir.join("keys.yaml"), KEYS_WORKFLOW).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vistaflow"))
        .arg("plan")
        .arg(dir.join("keys.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: Vec<(String, String)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].to_string(), w[2].to_string())
        })
        .collect();
    let want = [
        ("ct", "ddee19ced32d"),
        ("seg", "d5efca8ed996"),
        ("dcm", "5692cb2ed083"),
        ("nrrd", "1a3702276d70"),
        ("iso", "abd8e9a9d392"),
        ("crop", "8405f61ec129"),
        ("auto", "078e703e5b31"),
        ("refine", "2ffea6e41a13"),
        ("zs", "b9c6d256c260"),
        ("sv", "f01538c8c96e"),
        ("m", "13e86b449e5e"),
        ("train", "52f5e58542e0"),
        // export: its `deidentify` param (default false), then `names` and `structures`
        // (rtstruct, default null) joined the key in wave 2.
        ("out", "4f05601141b6"),
        ("stl", "f4f9d8a8f9f1"),
        ("sn", "9e0330a39685"),
        ("sr", "53f798073881"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(keys, want, "{text}");
}

const KEYS_WORKFLOW: &str = r#"version: 1
name: param-keys
settings: { cache: cache }
nodes:
  ct:     { kind: load_nifti, params: { path: ct.nii.gz } }
  seg:    { kind: load_nifti, params: { path: seg.nii.gz, labels: true } }
  dcm:    { kind: load_dicom, params: { path: dicom } }
  nrrd:   { kind: load_nrrd, params: { path: ct.nrrd } }
  iso:    { kind: resample, inputs: { image: ct.image }, params: { spacing: [1.5, 1.5, 1.5] } }
  crop:   { kind: crop_foreground, inputs: { image: iso.image } }
  auto:   { kind: vista3d_auto, inputs: { image: crop.image }, params: { model: w.safetensors } }
  refine:
    kind: vista3d_refine
    inputs: { image: crop.image, labels: auto.labels }
    params: { model: w.safetensors, points: [{ voxel: [1, 2, 3], label: positive, class: liver }] }
  zs:
    kind: vista3d_zeroshot
    inputs: { image: crop.image }
    params: { model: w.safetensors, points: [{ voxel: [1, 2, 3], label: positive }] }
  sv:     { kind: supervoxels, inputs: { image: crop.image } }
  m:      { kind: metrics, inputs: { prediction: auto.labels, reference: seg.labels } }
  train:
    kind: vista3d_train
    inputs: { image: ct.image, labels: seg.labels }
    params: { classes: { "1": liver }, path: out/m.safetensors }
  out:    { kind: export, inputs: { labels: refine.labels }, params: { format: nifti, path: out/seg.nii.gz } }
  stl:    { kind: export, inputs: { labels: zs.labels }, params: { format: stl, path: out/stl } }
  sn:     { kind: save_nifti, inputs: { image: dcm.image }, params: { path: out/ct.nii.gz } }
  sr:     { kind: save_nrrd, inputs: { labels: sv.labels }, params: { path: out/seg.nrrd } }
"#;
