//! The engine on real NIfTI files: results equal what nibabel reads, and the content-hash
//! cache reruns exactly the nodes whose inputs, params, versions or written files changed.

mod common;

use common::{load, run};
use std::path::{Path, PathBuf};
use vistaflow::exec::{CachePolicy, NodeStatus, RunOptions, RunReport};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A temp folder with copies of real files: `a.nii.gz` (CT), `b.nii.gz` (segmentation).
    fn new() -> Option<Fixture> {
        let data = common::data_dir()?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            data.join("totalsegmentator/example_ct_sm.nii.gz"),
            dir.path().join("a.nii.gz"),
        )
        .unwrap();
        std::fs::copy(
            data.join("totalsegmentator/example_seg.nii.gz"),
            dir.path().join("b.nii.gz"),
        )
        .unwrap();
        Some(Fixture { dir })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Two independent branches: a -> scale -> save_a, b (labels) -> save_b.
    fn write_workflow(&self, factor: f64) -> PathBuf {
        let text = format!(
            "version: 1\nname: two-branches\nsettings: {{ cache: cache, device: cpu }}\nnodes:\n  \
             a: {{ kind: load_nifti, params: {{ path: a.nii.gz }} }}\n  \
             s: {{ kind: scale, inputs: {{ image: a.image }}, params: {{ factor: {factor} }} }}\n  \
             save_a: {{ kind: save_nifti, inputs: {{ image: s.image }}, params: {{ path: out/a2.nii.gz }} }}\n  \
             b: {{ kind: load_nifti, params: {{ path: b.nii.gz, labels: true }} }}\n  \
             save_b: {{ kind: save_nifti, inputs: {{ labels: b.labels }}, params: {{ path: out/b.nii.gz }} }}\n"
        );
        let p = self.path("wf.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn run(
        &self,
        factor: f64,
        registry: &vistaflow_nodes::Registry,
        opts: RunOptions,
    ) -> RunReport {
        let wf = self.write_workflow(factor);
        let report = run(load(&wf, registry), opts);
        assert_eq!(report.first_failure(), None, "run failed");
        report
    }
}

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v
}

#[test]
fn load_save_equals_nibabel_and_second_run_is_all_hits() {
    let Some(f) = Fixture::new() else { return };
    let reg = common::registry();
    let first = f.run(1.0, &reg, RunOptions::default());
    assert_eq!(sorted(first.ran()), ["a", "b", "s", "save_a", "save_b"]);

    // What nibabel reads back from our files equals what it reads from the originals.
    let (orig_b, ours_b) = (
        common::nibabel(&f.path("b.nii.gz")),
        common::nibabel(&f.path("out/b.nii.gz")),
    );
    for k in ["sha256", "shape", "dtype", "affine"] {
        assert_eq!(
            orig_b[k], ours_b[k],
            "labels: nibabel's `{k}` differs after load -> save"
        );
    }
    let (orig_a, ours_a) = (
        common::nibabel(&f.path("a.nii.gz")),
        common::nibabel(&f.path("out/a2.nii.gz")),
    );
    assert_eq!(orig_a["affine"], ours_a["affine"]);
    assert_eq!(orig_a["shape"], ours_a["shape"]);

    let second = f.run(1.0, &reg, RunOptions::default());
    assert!(second.ran().is_empty(), "second run ran {:?}", second.ran());
    // Nothing needed loading: every node is a hit that no running node consumed.
    assert!(second
        .nodes
        .iter()
        .all(|n| n.status == NodeStatus::NotNeeded));
}

#[test]
fn a_param_change_reruns_exactly_the_affected_nodes() {
    let Some(f) = Fixture::new() else { return };
    let reg = common::registry();
    f.run(2.0, &reg, RunOptions::default());
    let r = f.run(3.0, &reg, RunOptions::default());
    assert_eq!(sorted(r.ran()), ["s", "save_a"]);
    // `a` was a hit whose output `s` needed: loaded from the cache.
    assert_eq!(
        r.nodes.iter().find(|n| n.id == "a").unwrap().status,
        NodeStatus::Cached
    );
    // Spelling the same value differently is the same key.
    let r = f.run(3.00, &reg, RunOptions::default());
    assert!(r.ran().is_empty());
}

#[test]
fn an_input_byte_change_reruns_exactly_its_branch() {
    let Some(f) = Fixture::new() else { return };
    let reg = common::registry();
    // Use an uncompressed copy so a single data byte can be changed.
    std::fs::write(
        f.path("wf0.yaml"),
        "version: 1\nsettings: { cache: cache }\nnodes:\n  a: { kind: load_nifti, params: { path: a.nii.gz } }\n  o: { kind: save_nifti, inputs: { image: a.image }, params: { path: a.nii } }\n",
    )
    .unwrap();
    run(load(&f.path("wf0.yaml"), &reg), RunOptions::default());
    std::fs::rename(f.path("a.nii"), f.path("raw.nii")).unwrap();
    let wf = f
        .write_workflow(2.0)
        .to_string_lossy()
        .replace("two-branches", "x");
    let text = std::fs::read_to_string(&wf)
        .unwrap()
        .replace("path: a.nii.gz", "path: raw.nii");
    std::fs::write(&wf, text).unwrap();
    let first = run(load(Path::new(&wf), &reg), RunOptions::default());
    assert_eq!(first.first_failure(), None);

    let mut bytes = std::fs::read(f.path("raw.nii")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(f.path("raw.nii"), &bytes).unwrap();
    let r = run(load(Path::new(&wf), &reg), RunOptions::default());
    assert_eq!(
        sorted(r.ran()),
        ["a", "s", "save_a"],
        "only the changed file's branch reruns"
    );
}

#[test]
fn a_node_version_change_reruns_it_and_its_consumers() {
    let Some(f) = Fixture::new() else { return };
    f.run(
        2.0,
        &common::registry_with_scale_version("1"),
        RunOptions::default(),
    );
    let r = f.run(
        2.0,
        &common::registry_with_scale_version("2"),
        RunOptions::default(),
    );
    assert_eq!(sorted(r.ran()), ["s", "save_a"]);
}

#[test]
fn written_files_missing_or_changed_are_written_again() {
    let Some(f) = Fixture::new() else { return };
    let reg = common::registry();
    f.run(2.0, &reg, RunOptions::default());
    std::fs::remove_file(f.path("out/b.nii.gz")).unwrap();
    let r = f.run(2.0, &reg, RunOptions::default());
    assert_eq!(r.ran(), ["save_b"]);
    assert!(r
        .nodes
        .iter()
        .any(|n| n.id == "save_b" && n.reason.contains("output file missing")));
    assert!(f.path("out/b.nii.gz").exists());

    std::fs::write(f.path("out/a2.nii.gz"), b"overwritten by someone").unwrap();
    let r = f.run(2.0, &reg, RunOptions::default());
    assert_eq!(r.ran(), ["save_a"]);
    assert!(r
        .nodes
        .iter()
        .any(|n| n.id == "save_a" && n.reason.contains("output file changed")));
}

#[test]
fn a_truncated_cache_entry_is_a_miss_and_is_recomputed() {
    let Some(f) = Fixture::new() else { return };
    let reg = common::registry();
    f.run(2.0, &reg, RunOptions::default());
    let expected = common::nibabel(&f.path("out/a2.nii.gz"));
    // Truncate every stored tensor, then force the consumer to run.
    for entry in walk(&f.path("cache/objects")) {
        if entry.extension().is_some_and(|e| e == "safetensors") {
            let len = std::fs::metadata(&entry).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&entry)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        }
    }
    std::fs::remove_file(f.path("out/a2.nii.gz")).unwrap();
    let r = f.run(2.0, &reg, RunOptions::default());
    assert_eq!(
        sorted(r.ran()),
        ["a", "s", "save_a"],
        "corrupt entries of s and then a are recomputed"
    );
    assert_eq!(
        common::nibabel(&f.path("out/a2.nii.gz"))["sha256"],
        expected["sha256"],
        "never a wrong answer"
    );
}

#[test]
fn refresh_and_no_cache() {
    let Some(f) = Fixture::new() else { return };
    let reg = common::registry();
    f.run(2.0, &reg, RunOptions::default());
    let refresh = RunOptions {
        cache: CachePolicy {
            refresh: vec!["s".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(sorted(f.run(2.0, &reg, refresh).ran()), ["s", "save_a"]);
    let entries_before = walk(&f.path("cache/objects")).len();
    let none = RunOptions {
        cache: CachePolicy {
            no_cache: true,
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(f.run(2.0, &reg, none).ran().len(), 5);
    assert_eq!(
        walk(&f.path("cache/objects")).len(),
        entries_before,
        "--no-cache stores nothing"
    );
}

#[test]
fn timeout_and_failure_name_the_node_and_stop_the_run() {
    let Some(f) = Fixture::new() else { return };
    let reg = common::registry();
    let wf = f.path("slow.yaml");
    std::fs::write(
        &wf,
        "version: 1\nsettings: { cache: cache }\nnodes:\n  a: { kind: load_nifti, params: { path: a.nii.gz } }\n  \
         slow: { kind: scale, inputs: { image: a.image }, params: { sleep_ms: 20000 }, timeout: 300ms }\n  \
         after: { kind: scale, inputs: { image: slow.image } }\n",
    )
    .unwrap();
    let t = std::time::Instant::now();
    let r = run(load(&wf, &reg), RunOptions::default());
    assert!(
        t.elapsed().as_secs_f64() < 10.0,
        "the timeout stopped the node"
    );
    let (id, kind, cause) = r.first_failure().expect("fails");
    assert_eq!((id, kind), ("slow", "scale"));
    assert!(cause.contains("timed out after 300ms"), "{cause}");
    assert_eq!(
        r.nodes.iter().find(|n| n.id == "after").unwrap().status,
        NodeStatus::UpstreamFailed
    );

    std::fs::write(
        &wf,
        "version: 1\nsettings: { cache: cache }\nnodes:\n  a: { kind: load_nifti, params: { path: a.nii.gz } }\n  \
         bad: { kind: scale, inputs: { image: a.image }, params: { fail: true } }\n  \
         other: { kind: scale, inputs: { image: a.image }, params: { sleep_ms: 3000 } }\n",
    )
    .unwrap();
    let r = run(load(&wf, &reg), RunOptions::default());
    assert_eq!(r.first_failure().map(|f| f.0), Some("bad"));
    assert_eq!(
        r.nodes.iter().find(|n| n.id == "other").unwrap().status,
        NodeStatus::Cancelled,
        "fail fast"
    );
    let r = run(
        load(&wf, &reg),
        RunOptions {
            keep_going: true,
            ..Default::default()
        },
    );
    assert_eq!(r.first_failure().map(|f| f.0), Some("bad"));
    assert_eq!(
        r.nodes.iter().find(|n| n.id == "other").unwrap().status,
        NodeStatus::Ran,
        "--keep-going"
    );
}

#[test]
fn independent_branches_run_in_parallel() {
    let Some(f) = Fixture::new() else { return };
    let reg = common::registry();
    let wf = f.path("par.yaml");
    std::fs::write(
        &wf,
        "version: 1\nsettings: { cache: cache }\nnodes:\n  a: { kind: load_nifti, params: { path: a.nii.gz } }\n  \
         p1: { kind: scale, inputs: { image: a.image }, params: { sleep_ms: 1500, factor: 1 }, cache: false }\n  \
         p2: { kind: scale, inputs: { image: a.image }, params: { sleep_ms: 1500, factor: 2 }, cache: false }\n  \
         p3: { kind: scale, inputs: { image: a.image }, params: { sleep_ms: 1500, factor: 3 }, cache: false }\n",
    )
    .unwrap();
    run(load(&wf, &reg), RunOptions::default()); // warm: `a` cached
    let r = run(load(&wf, &reg), RunOptions::default());
    assert_eq!(sorted(r.ran()), ["p1", "p2", "p3"]);
    let busy: f64 = r.nodes.iter().map(|n| n.duration.as_secs_f64()).sum();
    assert!(busy >= 4.5, "each node slept 1.5 s");
    assert!(
        r.duration.as_secs_f64() < 3.0,
        "three 1.5 s nodes took {:.2}s: not parallel",
        r.duration.as_secs_f64()
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
