//! Files behind a path param's file (a model's card, a detached NRRD's data file, a NIfTI
//! export's class tables) count like the file itself: a changed one read changes the cache
//! key, a deleted one written reruns its node.

mod common;

use common::{load, run};
use std::path::{Path, PathBuf};
use vistaflow::exec::{CachePolicy, RunOptions, RunReport};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run_ok(wf: &Path) -> RunReport {
    let r = run(load(wf, &common::registry()), RunOptions::default());
    assert_eq!(r.first_failure(), None, "run failed");
    r
}

/// A temp folder with the TotalSegmentator sample segmentation as `b.nii.gz`.
fn labels_dir() -> Option<tempfile::TempDir> {
    let data = common::data_dir()?;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        data.join("totalsegmentator/example_seg.nii.gz"),
        dir.path().join("b.nii.gz"),
    )
    .unwrap();
    Some(dir)
}

#[test]
fn a_deleted_nifti_sidecar_reruns_the_export() {
    let Some(dir) = labels_dir() else { return };
    let wf = write(
        dir.path(),
        "wf.yaml",
        "version: 1\nname: sidecars\nsettings: { cache: cache, device: cpu }\nnodes:\n  \
         b: { kind: load_nifti, params: { path: b.nii.gz, labels: true } }\n  \
         out: { kind: export, inputs: { labels: b.labels }, params: { format: nifti, path: out/seg.nii.gz } }\n",
    );
    run_ok(&wf);
    assert!(run_ok(&wf).ran().is_empty(), "second run is all hits");
    let ctbl = dir.path().join("out/seg.ctbl");
    std::fs::remove_file(&ctbl).unwrap();
    let r = run_ok(&wf);
    assert_eq!(r.ran(), ["out"]);
    let reason = &r.nodes.iter().find(|n| n.id == "out").unwrap().reason;
    assert!(
        reason.contains("output file missing") && reason.contains("seg.ctbl"),
        "{reason}"
    );
    assert!(ctbl.exists());
}

#[test]
fn a_detached_nrrd_data_file_is_part_of_both_nodes() {
    let Some(dir) = labels_dir() else { return };
    let save = write(
        dir.path(),
        "save.yaml",
        "version: 1\nname: save\nsettings: { cache: cache, device: cpu }\nnodes:\n  \
         b: { kind: load_nifti, params: { path: b.nii.gz, labels: true } }\n  \
         s: { kind: save_nrrd, inputs: { labels: b.labels }, params: { path: out/b.nhdr, compress: false } }\n",
    );
    let read = write(
        dir.path(),
        "read.yaml",
        "version: 1\nname: read\nsettings: { cache: cache, device: cpu }\nnodes:\n  \
         l: { kind: load_nrrd, params: { path: out/b.nhdr, labels: true } }\n  \
         w: { kind: save_nifti, inputs: { labels: l.labels }, params: { path: out/c.nii.gz } }\n",
    );
    run_ok(&save);
    let data = dir.path().join("out/b.raw");
    assert!(data.exists(), "save_nrrd writes b.raw beside b.nhdr");

    // Written: the data file gone -> save_nrrd writes it again.
    std::fs::remove_file(&data).unwrap();
    assert_eq!(run_ok(&save).ran(), ["s"]);
    assert!(data.exists());

    // Read: the header unchanged but one voxel of the data changed -> load_nrrd reruns and
    // the change reaches the file written downstream.
    run_ok(&read);
    assert!(run_ok(&read).ran().is_empty());
    let mut bytes = std::fs::read(&data).unwrap();
    let at = bytes
        .iter()
        .position(|&b| b != 0)
        .expect("some labelled voxel");
    bytes[at] = 0;
    std::fs::write(&data, &bytes).unwrap();
    let r = run_ok(&read);
    assert_eq!(r.ran(), ["l", "w"]);
}

#[test]
fn a_model_card_is_in_the_cache_key_of_the_nodes_that_read_it() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        data.join("vista3d/small/weights.safetensors"),
        dir.path().join("m.safetensors"),
    )
    .unwrap();
    std::fs::copy(
        data.join("totalsegmentator/example_ct_sm.nii.gz"),
        dir.path().join("ct.nii.gz"),
    )
    .unwrap();
    let wf = write(
        dir.path(),
        "wf.yaml",
        "version: 1\nname: card\nsettings: { cache: cache, device: cpu }\nnodes:\n  \
         ct: { kind: load_nifti, params: { path: ct.nii.gz } }\n  \
         seg: { kind: vista3d_auto, inputs: { image: ct.image }, params: { model: m.safetensors, network: small, classes: [liver] } }\n",
    );
    let key = || {
        let plan = load(&wf, &common::registry());
        let store = vistaflow::cache::Store::open(&dir.path().join("cache")).unwrap();
        let (keys, _) =
            vistaflow::exec::plan_decisions(&store, &plan, &CachePolicy::default()).unwrap();
        (
            keys.node[plan.index_of("ct").unwrap()],
            keys.node[plan.index_of("seg").unwrap()],
        )
    };
    let (ct0, seg0) = key();
    // A card appears, then changes: the model node's key follows, the loader's does not.
    write(dir.path(), "m.json", "{\"classes\": {\"1\": \"liver\"}}\n");
    let (ct1, seg1) = key();
    write(dir.path(), "m.json", "{\"classes\": {\"1\": \"spleen\"}}\n");
    let (ct2, seg2) = key();
    assert_eq!((ct0, ct0), (ct1, ct2));
    assert_ne!(seg0, seg1);
    assert_ne!(seg1, seg2);
    assert_ne!(seg0, seg2);
}

#[test]
fn an_exported_nifti_loads_back_with_its_class_names() {
    let Some(dir) = labels_dir() else { return };
    let export = write(
        dir.path(),
        "export.yaml",
        "version: 1\nname: export\nsettings: { cache: cache, device: cpu }\nnodes:\n  \
         b: { kind: load_nifti, params: { path: b.nii.gz, labels: true, class_names: { \"5\": liver, \"1\": spleen } } }\n  \
         out: { kind: export, inputs: { labels: b.labels }, params: { format: nifti, path: out/seg.nii.gz } }\n",
    );
    let reload = write(
        dir.path(),
        "reload.yaml",
        "version: 1\nname: reload\nsettings: { cache: cache, device: cpu }\nnodes:\n  \
         l: { kind: load_nifti, params: { path: out/seg.nii.gz, labels: true } }\n  \
         q: { kind: metrics, inputs: { prediction: l.labels }, params: { classes: [liver, spleen], path: out/q.csv } }\n",
    );
    run_ok(&export);
    // `metrics` finds the classes by name only if the names came back from seg.json.
    run_ok(&reload);
    let table = std::fs::read_to_string(dir.path().join("out/q.csv")).unwrap();
    assert!(
        table.contains(",liver,") && table.contains(",spleen,"),
        "{table}"
    );

    // The table is part of the loader's key: renamed there, renamed here.
    let sidecar = dir.path().join("out/seg.json");
    let text = std::fs::read_to_string(&sidecar).unwrap();
    std::fs::write(&sidecar, text.replace("\"spleen\"", "\"milz\"")).unwrap();
    let r = run(load(&reload, &common::registry()), RunOptions::default());
    assert!(r.ran().contains(&"l"), "{:?}", r.ran());
    let failure = format!("{:?}", r.first_failure());
    assert!(
        failure.contains("spleen"),
        "metrics no longer finds `spleen`: {failure}"
    );

    // Ours but broken: an error naming the file, not names made up.
    std::fs::write(&sidecar, "{\"labels\": \"seg.nii.gz\", \"classes\": {}}").unwrap();
    let r = run(load(&reload, &common::registry()), RunOptions::default());
    let failure = format!("{:?}", r.first_failure());
    assert!(
        failure.contains("seg.json") && failure.contains("list of {id, name}"),
        "{failure}"
    );

    // Not ours (names another file): ignored, the ids stay unnamed.
    std::fs::write(&sidecar, "{\"labels\": \"other.nii.gz\", \"classes\": []}").unwrap();
    let r = run(load(&reload, &common::registry()), RunOptions::default());
    let failure = format!("{:?}", r.first_failure());
    assert!(failure.contains("liver"), "{failure}");
}
