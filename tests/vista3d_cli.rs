//! VISTA3D from the command line: `convert-weights`, a workflow with `vista3d_auto` whose
//! cache key follows the weights' content, and workflow-time class-name errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vistaflow(args: &[&str], cwd: &Path, python: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vistaflow"));
    c.args(args).current_dir(cwd);
    if let Some(p) = python {
        c.env("VISTAFLOW_PYTHON", p);
    }
    c.output().expect("binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn small_weights() -> Option<PathBuf> {
    Some(common::data_dir()?.join("vista3d/small/weights.safetensors"))
}

fn same_tensors(a: &Path, b: &Path) {
    let a: std::collections::BTreeMap<_, _> = tch::Tensor::read_safetensors(a)
        .unwrap()
        .into_iter()
        .collect();
    let b: std::collections::BTreeMap<_, _> = tch::Tensor::read_safetensors(b)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, t) in &a {
        assert!(t.equal(&b[k]), "{k} differs");
    }
}

#[test]
fn convert_weights_reads_the_bundle_pickle_formats() {
    let Some(w) = small_weights() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // torch.save of an OrderedDict (what `model.state_dict()` gives, as in the bundle's
    // model.pt), of a plain dict, and of a checkpoint wrapping it under "model".
    let py = common::python();
    let o = Command::new(&py)
        .arg("-c")
        .arg(
            "import sys, torch, collections\n\
             from safetensors.torch import load_file\n\
             sd = load_file(sys.argv[1])\n\
             torch.save(collections.OrderedDict(sd), sys.argv[2] + '/ordered.pt')\n\
             torch.save(dict(sd), sys.argv[2] + '/plain.pt')\n\
             torch.save({'model': collections.OrderedDict(sd), 'epoch': 7}, sys.argv[2] + '/ckpt.pt')\n",
        )
        .arg(&w)
        .arg(d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    // A plain dict is read in-process: no Python needed.
    let nopy = Path::new("/nonexistent/python3");
    let o = vistaflow(
        &["convert-weights", "plain.pt", "plain.safetensors"],
        d,
        Some(nopy),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("217 tensors, 16 filters"), "{}", text(&o));
    same_tensors(&w, &d.join("plain.safetensors"));

    // An OrderedDict needs the Python converter; without one the error says what to do.
    let o = vistaflow(
        &["convert-weights", "ordered.pt", "ordered.safetensors"],
        d,
        Some(nopy),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("VISTAFLOW_PYTHON"), "{}", text(&o));
    assert!(!d.join("ordered.safetensors").exists());
    for name in ["ordered", "ckpt"] {
        let (src, dst) = (format!("{name}.pt"), format!("{name}.safetensors"));
        let o = vistaflow(&["convert-weights", &src, &dst], d, Some(&py));
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o));
        same_tensors(&w, &d.join(&dst));
    }

    // Refusals: an existing output, a wrong extension, a file that is not a model.
    let o = vistaflow(
        &["convert-weights", "plain.pt", "plain.safetensors"],
        d,
        Some(&py),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--force"));
    let o = vistaflow(&["convert-weights", "plain.pt", "plain.bin"], d, Some(&py));
    assert_eq!(o.status.code(), Some(2));
    std::fs::write(d.join("notes.pt"), "not a model").unwrap();
    let o = vistaflow(
        &["convert-weights", "notes.pt", "n.safetensors"],
        d,
        Some(&py),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("notes.pt"), "{}", text(&o));
}

fn workflow(d: &Path, classes: &str) {
    std::fs::write(
        d.join("seg.yaml"),
        format!(
            "version: 1\nname: seg\nsettings: {{ cache: cache }}\nnodes:\n  \
             ct: {{ kind: load_nifti, params: {{ path: ct.nii.gz }} }}\n  \
             seg:\n    kind: vista3d_auto\n    inputs: {{ image: ct.image }}\n    \
             params: {{ classes: {classes}, model: model.safetensors, network: small, patch: [64, 64, 64] }}\n  \
             out: {{ kind: save_nifti, inputs: {{ labels: seg.labels }}, params: {{ path: out/seg.nii.gz }} }}\n"
        ),
    )
    .unwrap();
}

#[test]
fn workflow_reruns_segmentation_when_the_weights_change() {
    let Some(w) = small_weights() else { return };
    let data = common::data_dir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(
        data.join("totalsegmentator/example_ct_sm.nii.gz"),
        d.join("ct.nii.gz"),
    )
    .unwrap();
    std::fs::copy(&w, d.join("model.safetensors")).unwrap();
    workflow(d, "[liver, kidney]");

    let o = vistaflow(&["run", "seg.yaml"], d, None);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let first = std::fs::read(d.join("out/seg.nii.gz")).unwrap();
    let o = vistaflow(&["plan", "seg.yaml"], d, None);
    assert!(!text(&o).contains("to run"), "all cached: {}", text(&o));

    // Same name, other bytes: one weight changed. The key follows the content.
    let mut t = tch::Tensor::read_safetensors(&w).unwrap();
    for (k, v) in t.iter_mut() {
        if k == "class_head.mlp.3.bias" {
            *v = &*v + 0.5;
        }
    }
    tch::Tensor::write_safetensors(&t, d.join("model.safetensors")).unwrap();
    let o = vistaflow(&["plan", "seg.yaml"], d, None);
    let plan = text(&o);
    let line = |kind: &str| {
        plan.lines()
            .find(|l| l.contains(kind))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        line("vista3d_auto").contains("to run"),
        "vista3d_auto must rerun: {plan}"
    );
    assert!(
        line("load_nifti").contains("cached"),
        "load_nifti stays cached: {plan}"
    );
    let o = vistaflow(&["run", "seg.yaml"], d, None);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_ne!(first, std::fs::read(d.join("out/seg.nii.gz")).unwrap());
}

#[test]
fn unknown_class_is_reported_where_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    workflow(d, "[liver, spleeen]");
    std::fs::write(d.join("ct.nii.gz"), b"").unwrap();
    std::fs::write(d.join("model.safetensors"), b"").unwrap();
    let o = vistaflow(&["validate", "seg.yaml"], d, None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("seg.yaml:9:24"), "{t}");
    assert!(t.contains("did you mean `spleen`"), "{t}");
}
