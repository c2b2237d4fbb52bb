//! What a new user runs into at the edges of the command line (issue 22's list): a closed
//! pipe, `--set` values with ` #`, workflow files that are binary or nest brackets without
//! end, and a GPU the machine lacks, refused by `validate` already.

mod common;

use common::{text, vistaflow};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    for args in [&["nodes"][..], &["nodes", "vista3d_train"], &["classes"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vistaflow"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // As `| head -1` once it has its line: the reader is gone before the command writes
        // (libtorch's start-up alone takes longer than this).
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_set_value_with_a_hash_stays_the_string_given() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wf.yaml"),
        "version: 1\nname: t\nnodes:\n  ct: { kind: load_nifti, params: { path: a.nii } }\n  \
         out: { kind: save_nifti, inputs: { image: ct.image }, params: { path: \"${O}\" } }\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("a.nii"), b"x").unwrap();
    let o = vistaflow(
        &["plan", "wf.yaml", "--set", "O=/x/scan.nii.gz #2.nii.gz"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    // The output path is part of the key: with the ` #2.nii.gz` cut off it would equal this.
    let cut = vistaflow(
        &["plan", "wf.yaml", "--set", "O=/x/scan.nii.gz"],
        dir.path(),
    );
    let key = |o: &Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.trim_start().starts_with("out "))
            .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
            .unwrap()
    };
    assert_ne!(key(&o), key(&cut));
}

#[test]
fn binary_and_endlessly_nested_files_are_refused_with_a_location() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bin.yaml"),
        b"version: 1\nname: \xff\xfe binary\nnodes: {}\n",
    )
    .unwrap();
    let o = vistaflow(&["validate", "bin.yaml"], d);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("not UTF-8 text: byte 0xff"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("bin.yaml:2:7"), "{}", text(&o));

    let line = "[".repeat(100_000);
    std::fs::write(
        d.join("deep.yaml"),
        format!("version: 1\nname: t\nnodes: {line}\n"),
    )
    .unwrap();
    let t = Instant::now();
    let o = vistaflow(&["validate", "deep.yaml"], d);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("nested more than 64 deep"), "{out}");
    assert!(out.contains("deep.yaml:3:72"), "{out}");
    // The 100 KB line is shown cut to a window around the column.
    assert!(out.len() < 1000, "{} bytes of output", out.len());
}

#[test]
fn validate_refuses_a_gpu_the_machine_lacks() {
    if tch::Cuda::device_count() > 7 {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wf.yaml"),
        "version: 1\nname: t\nnodes:\n  ct: { kind: load_nifti, device: \"cuda:7\", params: { path: a.nii } }\n",
    )
    .unwrap();
    let o = vistaflow(&["validate", "wf.yaml"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("node `ct`: device"), "{}", text(&o));
}
