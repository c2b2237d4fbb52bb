//! Faults a long run meets on a real machine, each on the real CT sample through the real
//! binary: a full disk (a small tmpfs as cache and output folder), kill -9 at seeded random
//! points of a multi-node run, and four processes running overlapping workflows on one cache.

mod common;

use common::{span_attr, text, trace_spans, vistaflow};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// load -> resample -> VISTA3D (small) -> save, plus QC metrics and a PNG sheet: six nodes,
/// a few seconds in all. `${OUT}` is the output folder.
fn workflow(data: &Path, classes: &str) -> String {
    format!(
        r#"version: 1
name: faults
settings: {{ cache: "${{CACHE}}" }}
nodes:
  ct:   {{ kind: load_nifti, params: {{ path: "{ct}" }} }}
  iso:  {{ kind: resample, inputs: {{ image: ct.image }}, params: {{ spacing: [4, 4, 4] }} }}
  auto:
    kind: vista3d_auto
    inputs: {{ image: iso.image }}
    params: {{ classes: [{classes}], model: "{w}", network: small, patch: [32, 32, 32] }}
  seg:  {{ kind: save_nifti, inputs: {{ labels: auto.labels }}, params: {{ path: "${{OUT}}/seg.nii.gz" }} }}
  qc:   {{ kind: metrics, inputs: {{ prediction: auto.labels }}, params: {{ path: "${{OUT}}/qc.csv" }} }}
  png:  {{ kind: export, inputs: {{ labels: auto.labels, image: iso.image }}, params: {{ format: png, path: "${{OUT}}/preview.png" }} }}
"#,
        ct = data.join("totalsegmentator/example_ct_sm.nii.gz").display(),
        w = data.join("vista3d/small/weights.safetensors").display(),
    )
}

const OUTPUTS: [&str; 3] = ["seg.nii.gz", "qc.csv", "preview.png"];

/// The tests of this file one at a time: kill points are timed, and the tmpfs is sized.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn run_cmd(dir: &Path, wf: &str, cache: &Path, out: &Path, trace: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vistaflow"));
    c.args(["run", wf, "-q"])
        .args(["--set", &format!("CACHE={}", cache.display())])
        .args(["--set", &format!("OUT={}", out.display())])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match trace {
        Some(t) => c.args(["--trace", t]),
        None => c.arg("--no-trace"),
    };
    c
}

fn outputs(out: &Path) -> BTreeMap<&'static str, Vec<u8>> {
    OUTPUTS
        .iter()
        .map(|f| (*f, std::fs::read(out.join(f)).unwrap_or_default()))
        .collect()
}

fn verify(dir: &Path, cache: &Path) -> String {
    let o = vistaflow(&["cache", "verify", "--dir", cache.to_str().unwrap()], dir);
    let t = text(&o);
    assert!(o.status.success() && t.contains("0 corrupt"), "{t}");
    t
}

/// Files a killed writer may leave: temp files of the cache, `.partial` outputs.
fn leftovers(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_dir() {
            leftovers(&p, out);
        } else if name.ends_with(".partial") || name.ends_with(".tmp") {
            out.push(p);
        }
    }
}

/// A tiny deterministic generator (xorshift), so that the kill points are the same each run.
struct Seeded(u64);
impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A temp folder with `wf.yaml` and an uninterrupted run of it (cache `ref-cache`, outputs
/// `ref-out`); the run's wall time.
fn with_reference_run() -> Option<(tempfile::TempDir, Duration)> {
    let data = common::data_dir()?;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("wf.yaml"), workflow(&data, "liver, spleen")).unwrap();
    let t0 = Instant::now();
    let o = run_cmd(d, "wf.yaml", &d.join("ref-cache"), &d.join("ref-out"), None)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(outputs(&d.join("ref-out")).values().all(|b| !b.is_empty()));
    Some((dir, t0.elapsed()))
}

#[test]
fn kill_9_at_seeded_points_then_rerun_gives_the_same_bytes() {
    let _one = serial();
    let Some((dir, full)) = with_reference_run() else {
        return;
    };
    let d = dir.path();
    let reference = outputs(&d.join("ref-out"));

    let (cache, out) = (d.join("cache"), d.join("out"));
    let mut rng = Seeded(0x5EED_2026_1204);
    // Kill points are drawn within a window that starts at 80 % of the reference run's time
    // and shrinks whenever a run finished before its kill (the machine got faster): tries go
    // on until 20 kills have landed mid-run.
    let mut window_ms = full.as_millis() as u64 * 4 / 5 + 1;
    let (mut killed_mid_run, mut tries) = (0, 0);
    while killed_mid_run < 20 {
        tries += 1;
        assert!(
            tries <= 60,
            "only {killed_mid_run} of {tries} kills landed mid-run"
        );
        // A cold run each time (a warm one finishes before any kill).
        let _ = std::fs::remove_dir_all(&cache);
        let _ = std::fs::remove_dir_all(&out);
        let at = Duration::from_millis(rng.next() % window_ms);
        let mut child = run_cmd(d, "wf.yaml", &cache, &out, None).spawn().unwrap();
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        } else {
            window_ms = window_ms * 7 / 10 + 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if cache.exists() {
            verify(d, &cache); // (killed before it made the cache: nothing to verify)
        }
        let o = run_cmd(d, "wf.yaml", &cache, &out, None).output().unwrap();
        assert!(
            o.status.success(),
            "rerun after a kill at {at:?}: {}",
            text(&o)
        );
        assert!(
            outputs(&out) == reference,
            "try {tries}: outputs differ from the uninterrupted run after a kill at {at:?}"
        );
        let mut left = Vec::new();
        leftovers(d, &mut left);
        assert!(left.is_empty(), "left behind after the rerun: {left:?}");
    }
    eprintln!("{tries} tries, 20 kills mid-run (a full run: {full:?})");
}

#[test]
fn four_processes_on_overlapping_workflows_compute_each_node_once() {
    let _one = serial();
    let Some(data) = common::data_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two workflows sharing load and resample; each run twice at once.
    std::fs::write(d.join("a.yaml"), workflow(&data, "liver, spleen")).unwrap();
    std::fs::write(d.join("b.yaml"), workflow(&data, "aorta")).unwrap();
    let cache = d.join("cache");
    let runs = [
        ("a.yaml", "a1"),
        ("a.yaml", "a2"),
        ("b.yaml", "b1"),
        ("b.yaml", "b2"),
    ];
    let children: Vec<_> = runs
        .iter()
        .map(|(wf, name)| {
            run_cmd(d, wf, &cache, &d.join(name), Some(&format!("{name}.jsonl")))
                .spawn()
                .unwrap()
        })
        .collect();
    for (child, (_, name)) in children.into_iter().zip(runs) {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{name}: {}", text(&o));
    }
    assert!(outputs(&d.join("a1")) == outputs(&d.join("a2")));
    assert!(outputs(&d.join("b1")) == outputs(&d.join("b2")));
    assert!(outputs(&d.join("a1")) != outputs(&d.join("b1")));
    // Each node key computed (cache miss) by exactly one of the four processes.
    let mut computed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, name) in runs {
        for s in trace_spans(&d.join(format!("{name}.jsonl"))) {
            if span_attr(&s, "vistaflow.cache").as_deref() == Some("miss") {
                let key = span_attr(&s, "vistaflow.node.key").unwrap();
                let id = span_attr(&s, "vistaflow.node.id").unwrap();
                computed
                    .entry(format!("{id} {key}"))
                    .or_default()
                    .push(name.into());
            }
        }
    }
    eprintln!("computed: {computed:?}");
    for (node, by) in &computed {
        assert_eq!(by.len(), 1, "{node} computed by {by:?}");
    }
    // ct, iso (shared) + auto, seg, qc, png per workflow; sinks have no entry to share.
    assert!(computed.keys().filter(|k| k.starts_with("ct ")).count() == 1);
    assert!(computed.keys().filter(|k| k.starts_with("auto ")).count() == 2);
    verify(d, &cache);
}

fn du_kib(p: &Path) -> u64 {
    let mut files = Vec::new();
    fn walk(p: &Path, out: &mut Vec<u64>) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                walk(&e.path(), out);
            } else {
                out.push(m.len());
            }
        }
    }
    walk(p, &mut files);
    files.iter().map(|b| b.div_ceil(4096) * 4).sum()
}

/// A tmpfs of `kib` KiB at `at`, or None where this machine cannot mount one (not root).
fn tmpfs(at: &Path, kib: u64) -> Option<()> {
    std::fs::create_dir_all(at).unwrap();
    let o = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
        .arg(at)
        .output()
        .ok()?;
    if !o.status.success() {
        eprintln!("skipped: cannot mount a tmpfs: {}", text(&o));
        return None;
    }
    Some(())
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_a_rerun_after_freeing_space_completes() {
    let _one = serial();
    let Some((dir, _)) = with_reference_run() else {
        return;
    };
    let d = dir.path();
    let (ref_cache, ref_out) = (d.join("ref-cache"), d.join("ref-out"));
    let small = d.join("small");
    // Half of what the run writes: it must run out of space somewhere.
    let need_kib = du_kib(&ref_cache) + du_kib(&ref_out);
    if tmpfs(&small, need_kib / 2).is_none() {
        return;
    }
    let _unmount = Unmount(small.clone());
    let (cache, out) = (small.join("cache"), small.join("out"));
    let o = run_cmd(d, "wf.yaml", &cache, &out, None).output().unwrap();
    let t = text(&o);
    eprintln!("on a {} KiB disk:\n{t}", need_kib / 2);
    assert!(!o.status.success(), "a run on a full disk succeeded: {t}");
    assert!(
        t.contains("No space left on device") && t.contains(&small.display().to_string()),
        "the error names the cause and the folder: {t}"
    );
    assert!(t.contains("hint: free space"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    let mut left = Vec::new();
    leftovers(&small, &mut left);
    assert!(
        left.is_empty(),
        "partial files left on the full disk: {left:?}"
    );
    verify(d, &cache);

    // Space freed: the same run completes, with the uninterrupted run's bytes.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=200m"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(grown.success());
    let o = run_cmd(d, "wf.yaml", &cache, &out, None).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(outputs(&out) == outputs(&ref_out));
    verify(d, &cache);
}
