//! `vista3d_train` through the CLI: a run killed (SIGKILL) after a checkpoint resumes from it
//! and ends with the same weights, byte for byte, as a run that was never stopped; a finished
//! training is served from the cache the next time.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn workflow(dir: &Path, data: &Path, name: &str) -> std::path::PathBuf {
    let ts = data.join("totalsegmentator");
    let text = format!(
        r#"version: 1
name: {name}
settings: {{ cache: cache-{name} }}
nodes:
  ct: {{ kind: load_nifti, params: {{ path: "{ct}" }} }}
  seg: {{ kind: load_nifti, params: {{ path: "{seg}", labels: true }} }}
  train:
    kind: vista3d_train
    inputs: {{ image: ct.image, labels: seg.labels }}
    params:
      classes: {{ "5": liver, "1": spleen }}
      config: tiny
      patch: [32, 32, 32]
      steps: 24
      ema: 0.9                  # the average must resume too
      background_patches: true
      max_backprompt: 2
      augment: {{ contrast: 0.05 }}
      checkpoint_every: 4
      path: {name}.safetensors
"#,
        ct = ts.join("example_ct.nii.gz").display(),
        seg = ts.join("example_seg_fast_force_split.nii.gz").display(),
    );
    let wf = dir.join(format!("{name}.yaml"));
    std::fs::write(&wf, text).unwrap();
    wf
}

fn vistaflow(wf: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vistaflow"));
    c.arg("run")
        .arg(wf)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

fn checkpoint_step(dir: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join("state.json")).ok()?;
    let j: serde_json::Value = serde_json::from_str(&text).ok()?;
    j["step"].as_i64()
}

#[test]
fn a_killed_training_resumes_to_the_same_weights() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();

    // Uninterrupted.
    let whole = workflow(d, &data, "whole");
    let o = vistaflow(&whole).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reference = std::fs::read(d.join("whole.safetensors")).unwrap();

    // Killed once the checkpoint at step 12 or later is on disk (after the first log row, at
    // step 10), then run again.
    let killed = workflow(d, &data, "killed");
    let ckpt = d.join("killed.safetensors.ckpt");
    let mut child = vistaflow(&killed).spawn().unwrap();
    let t0 = Instant::now();
    let at = loop {
        if let Some(s) = checkpoint_step(&ckpt).filter(|&s| s >= 12) {
            break s;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be killed"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "no checkpoint in 10 min"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !d.join("killed.safetensors").exists(),
        "a killed run left a model"
    );
    assert!(at < 24);

    let o = vistaflow(&killed).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("resuming from the checkpoint at step"),
        "{err}"
    );
    let resumed = std::fs::read(d.join("killed.safetensors")).unwrap();
    assert!(
        resumed == reference,
        "resumed weights differ from an uninterrupted run"
    );
    assert!(
        !ckpt.exists(),
        "checkpoints left after the model was written"
    );
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("killed.json")).unwrap()).unwrap();
    let from = card["training"]["resumed_from_step"].as_i64().unwrap();
    assert!(from >= 12 && from % 4 == 0, "resumed from {from}");
    assert_eq!(card["training"]["params"]["steps"], 24);
    // The clock goes on across the kill: the total is the killed process's time at its last
    // log row before the checkpoint plus the resumed process's own (steps / its rate).
    let training = &card["training"];
    let rows = training["log"].as_array().unwrap();
    let before: f64 = rows
        .iter()
        .filter(|r| r["step"].as_i64().unwrap() <= from)
        .map(|r| r["seconds"].as_f64().unwrap())
        .next_back()
        .expect("a log row before the checkpoint");
    let resumed_seconds = (24 - from) as f64 / training["steps_per_second"].as_f64().unwrap();
    let total = training["seconds"].as_f64().unwrap();
    assert!(
        (total - (before + resumed_seconds)).abs() < 1e-6 * total.max(1.0),
        "total {total} s, killed run {before} s + resumed {resumed_seconds} s"
    );
    let seconds: Vec<f64> = rows
        .iter()
        .map(|r| r["seconds"].as_f64().unwrap())
        .collect();
    assert!(
        seconds.windows(2).all(|w| w[1] >= w[0]),
        "log seconds go back: {seconds:?}"
    );

    // Again: nothing to train, the model is what the cache knows.
    let o = vistaflow(&killed).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout) + String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success());
    assert!(out.contains("0 ran"), "{out}");
}

/// Train in two stages and segment in one workflow: a `model` output feeds the next stage's
/// `init` input and vista3d_auto's `model` input;
/// a second run takes both from the cache; more steps retrain and segment again.
#[test]
fn a_trained_model_flows_into_vista3d_auto() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ts = data.join("totalsegmentator");
    let write = |steps: i64| {
        let text = format!(
            r#"version: 1
name: train-and-segment
settings: {{ cache: cache }}
nodes:
  ct: {{ kind: load_nifti, params: {{ path: "{ct}" }} }}
  seg: {{ kind: load_nifti, params: {{ path: "{seg}", labels: true }} }}
  small_ct: {{ kind: load_nifti, params: {{ path: "{sm}" }} }}
  train:
    kind: vista3d_train
    inputs: {{ image: ct.image, labels: seg.labels }}
    params: {{ classes: {{ "5": liver }}, config: tiny, patch: [32, 32, 32], steps: {steps}, path: m.safetensors }}
  tune:                     # a second stage from the first one's model
    kind: vista3d_train
    inputs: {{ image: ct.image, labels: seg.labels, init: train.model }}
    params: {{ classes: {{ "5": liver }}, config: tiny, patch: [32, 32, 32], steps: 2, lr: 0.0001, path: m2.safetensors }}
  auto:
    kind: vista3d_auto
    inputs: {{ image: small_ct.image, model: tune.model }}
    params: {{ patch: [32, 32, 32] }}
  out:
    kind: export
    inputs: {{ labels: auto.labels }}
    params: {{ format: nifti, path: auto.nii.gz }}
"#,
            ct = ts.join("example_ct.nii.gz").display(),
            seg = ts.join("example_seg_fast_force_split.nii.gz").display(),
            sm = ts.join("example_ct_sm.nii.gz").display(),
        );
        let wf = d.join("wf.yaml");
        std::fs::write(&wf, text).unwrap();
        wf
    };
    let summary = |wf: &Path| {
        let o = vistaflow(wf).output().unwrap();
        let all =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{all}");
        all
    };
    let wf = write(3);
    let first = summary(&wf);
    assert!(first.contains("7 ran"), "{first}");
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("m2.json")).unwrap()).unwrap();
    let first_sha = sha256_file(&d.join("m.safetensors"));
    assert_eq!(
        card["init_sha256"],
        serde_json::json!(first_sha),
        "stage 2 starts from stage 1"
    );
    assert!(d.join("auto.nii.gz").is_file());
    let second = summary(&wf);
    assert!(second.contains("0 ran"), "{second}");
    let wf = write(4);
    let third = summary(&wf);
    assert!(
        third.contains("4 ran"),
        "train, tune, auto and out again: {third}"
    );
}
