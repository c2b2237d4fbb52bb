//! `vistaflow run --cohort`: subjects made from the real TotalSegmentator CT and labels by
//! scripts/make-cohort.py, a cheap workflow (labels coarsened to 7 mm and back, scored against
//! themselves), checked against single-subject runs and numpy/scipy.

mod common;

use std::path::{Path, PathBuf};

const WORKFLOW: &str = common::COHORT_WORKFLOW;

/// A folder with the workflow and the cohort of scripts/make-cohort.py in `cohort/`.
fn setup() -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    common::make_cohort(dir.path())?;
    Some(dir)
}

fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["run", "w.yaml", "-q", "--no-trace"];
    all.extend(args);
    let out = common::vistaflow(&all, dir);
    (out.status.code(), common::text(&out))
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// subject -> status, ran (from subjects.csv)
fn statuses(results: &Path) -> Vec<(String, String, String)> {
    read(results.join("subjects.csv"))
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[2].to_string(), f[4].to_string())
        })
        .collect()
}

#[test]
fn bad_subjects_are_named_the_good_ones_match_single_runs_and_the_summary_matches_numpy() {
    let Some(dir) = setup() else { return };
    let d = dir.path();
    let (code, text) = run(
        d,
        &["--cohort", "cohort/subjects-with-bad.csv", "--results", "r"],
    );
    assert_eq!(code, Some(1), "{text}");
    common::assert_has(
        &text,
        &[
            "subjects-with-bad.csv:8) cannot run: node `ct` (load_nifti) param `path`",
            "cohort/bad-missing/ct.nii.gz does not exist",
            "subject `bad-corrupt` (",
            "the data is shorter than the header says",
            "subject `bad-labels` (",
            "not a valid gzip stream",
        ],
    );
    let st = statuses(&d.join("r"));
    assert_eq!(st.len(), 15);
    let failed: Vec<&str> = st
        .iter()
        .filter(|s| s.1 != "done")
        .map(|s| s.0.as_str())
        .collect();
    assert_eq!(failed, ["bad-missing", "bad-corrupt", "bad-labels"]);

    // Two subjects alone, each in a cache of its own: their metrics tables are the rows of
    // the gathered long table, value for value.
    let long = read(d.join("r/metrics_long.csv"));
    assert_eq!(
        long.lines().count(),
        1 + 12 * 5 * 4,
        "12 subjects x 5 classes x 4 columns"
    );
    for s in ["s03", "s10"] {
        let single = d.join(format!("single-{s}"));
        std::fs::create_dir(&single).unwrap();
        std::fs::write(single.join("w.yaml"), WORKFLOW).unwrap();
        let image = d.join(format!("cohort/{s}/ct.nii.gz"));
        let labels = d.join(format!("cohort/{s}/labels.nii.gz"));
        let (code, text) = run(
            &single,
            &[
                "--set",
                &format!("SUBJECT={s}"),
                "--set",
                &format!("IMAGE={}", image.display()),
                "--set",
                &format!("LABELS={}", labels.display()),
            ],
        );
        assert_eq!(code, Some(0), "{text}");
        let table = read(single.join(format!("out/{s}/metrics.csv")));
        let mut header = Vec::new();
        let mut rows = 0;
        for line in table.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split(',').collect();
            if header.is_empty() {
                header = f.iter().map(|c| c.to_string()).collect();
                continue;
            }
            for (c, v) in f.iter().enumerate().skip(2) {
                let row = format!("{s},scores,{},{},{},{v}\n", f[0], f[1], header[c]);
                assert!(long.contains(&row), "{row} not in the long table");
                rows += 1;
            }
        }
        assert_eq!(rows, 5 * 4);
    }

    let oracle =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oracles/cohort_summary_numpy.py");
    let out = std::process::Command::new(common::python())
        .arg(oracle)
        .arg(d.join("r"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let md = read(d.join("r/summary.md"));
    common::assert_has(
        &md,
        &[
            "| scores | liver | dice | 12 |",
            "Failed subjects (no result): 3.",
        ],
    );
    let report: serde_json::Value =
        serde_json::from_str(&read(d.join("r/cohort_report.json"))).unwrap();
    assert_eq!(report["manifest"]["subjects"], 15);
    assert_eq!(report["subjects"].as_array().unwrap().len(), 15);
    let png = std::fs::read(d.join("r/summary.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");

    // Again: nothing of the good subjects runs again, the bad ones fail the same way.
    let (code, text) = run(
        d,
        &["--cohort", "cohort/subjects-with-bad.csv", "--results", "r"],
    );
    assert_eq!(code, Some(1), "{text}");
    for (s, status, ran) in statuses(&d.join("r")) {
        if status == "done" {
            assert_eq!(ran, "0", "{s} ran again");
        }
    }
    assert_eq!(read(d.join("r/metrics_long.csv")), long, "the same bytes");
}

#[test]
fn a_new_subject_is_the_only_one_that_runs_and_jobs_do_not_change_the_tables() {
    let Some(dir) = setup() else { return };
    let d = dir.path();
    let all = read(d.join("cohort/subjects.csv"));
    let first4: String = all.lines().take(5).map(|l| format!("{l}\n")).collect();
    std::fs::write(d.join("cohort/four.csv"), &first4).unwrap();
    let (code, text) = run(
        d,
        &[
            "--cohort",
            "cohort/four.csv",
            "--results",
            "a",
            "--jobs",
            "1",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    let five: String = all.lines().take(6).map(|l| format!("{l}\n")).collect();
    std::fs::write(d.join("cohort/five.csv"), &five).unwrap();
    let (code, text) = run(
        d,
        &[
            "--cohort",
            "cohort/five.csv",
            "--results",
            "b",
            "--jobs",
            "3",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    let ran: Vec<(String, String)> = statuses(&d.join("b"))
        .into_iter()
        .map(|(s, _, ran)| (s, ran))
        .collect();
    assert_eq!(
        ran,
        [
            ("s01", "0"),
            ("s02", "0"),
            ("s03", "0"),
            ("s04", "0"),
            ("s05", "5")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let (a, b) = (
        read(d.join("a/metrics_long.csv")),
        read(d.join("b/metrics_long.csv")),
    );
    assert!(
        b.starts_with(&a),
        "the first four subjects' rows are unchanged"
    );
    assert!(b.len() > a.len());
}

#[test]
fn a_manifest_or_workflow_that_would_lose_results_is_refused_before_anything_runs() {
    let Some(dir) = setup() else { return };
    let d = dir.path();
    std::fs::write(
        d.join("cohort/dup.csv"),
        "SUBJECT,IMAGE,LABELS\ns01,s01/ct.nii.gz,s01/labels.nii.gz\ns01,s02/ct.nii.gz,s02/labels.nii.gz\nx y,a,b\n",
    )
    .unwrap();
    let (code, text) = run(d, &["--cohort", "cohort/dup.csv"]);
    assert_eq!(code, Some(2), "{text}");
    common::assert_has(
        &text,
        &[
            "dup.csv:3: subject `s01` again (first on line 2)",
            "dup.csv:4: subject id `x y`",
            "nothing was run",
        ],
    );
    // Every subject writing the same metrics file.
    std::fs::write(
        d.join("w.yaml"),
        WORKFLOW.replace("out/${SUBJECT}/", "out/"),
    )
    .unwrap();
    let (code, text) = run(d, &["--cohort", "cohort/subjects.csv"]);
    assert_eq!(code, Some(2), "{text}");
    common::assert_has(
        &text,
        &[
            "node `scores` param `path` writes",
            "put ${SUBJECT} in the path",
        ],
    );
    assert!(
        !d.join("cache").exists() && !d.join("out").exists(),
        "nothing ran"
    );
    // An unset variable: that subject cannot run, named with its line.
    std::fs::write(d.join("w.yaml"), WORKFLOW).unwrap();
    std::fs::write(
        d.join("cohort/nolabels.csv"),
        "SUBJECT,IMAGE,LABELS\ns01,s01/ct.nii.gz,\n",
    )
    .unwrap();
    let (code, text) = run(d, &["--cohort", "cohort/nolabels.csv", "--fail-fast"]);
    assert_eq!(code, Some(2), "{text}");
    common::assert_has(&text, &["nolabels.csv:2) cannot run", "LABELS"]);
}

#[test]
fn fail_fast_stops_at_the_first_failed_subject_and_a_folder_is_a_cohort() {
    let Some(dir) = setup() else { return };
    let d = dir.path();
    std::fs::write(
        d.join("cohort/corrupt-first.csv"),
        "SUBJECT,IMAGE,LABELS\nbad,bad-corrupt/ct.nii.gz,s01/labels.nii.gz\ns01,s01/ct.nii.gz,s01/labels.nii.gz\ns02,s02/ct.nii.gz,s02/labels.nii.gz\n",
    )
    .unwrap();
    let (code, text) = run(
        d,
        &[
            "--cohort",
            "cohort/corrupt-first.csv",
            "--fail-fast",
            "--jobs",
            "1",
            "--results",
            "f",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    common::assert_has(&text, &["--fail-fast: the cohort stopped"]);
    let st = statuses(&d.join("f"));
    assert_eq!(st[0].1, "failed");
    assert!(st[1..].iter().all(|s| s.1 == "cancelled"), "{st:?}");

    // --cohort-dir: one subject per NIfTI file, IMAGE only; ids are path hashes.
    std::fs::create_dir_all(d.join("scan/a")).unwrap();
    std::fs::copy(d.join("cohort/s01/ct.nii.gz"), d.join("scan/a/ct.nii.gz")).unwrap();
    std::fs::copy(d.join("cohort/s02/ct.nii.gz"), d.join("scan/b.nii.gz")).unwrap();
    std::fs::write(
        d.join("w.yaml"),
        "version: 1\nname: scan\nsettings: { cache: cache }\nnodes:\n  ct: { kind: load_nifti, params: { path: \"${IMAGE}\" } }\n  small: { kind: resample, inputs: { image: ct.image }, params: { spacing: [9, 9, 9] } }\n  out: { kind: save_nifti, inputs: { image: small.image }, params: { path: \"out/${SUBJECT}.nii.gz\" } }\n",
    )
    .unwrap();
    let (code, text) = run(d, &["--cohort-dir", "scan", "--results", "s"]);
    assert_eq!(code, Some(0), "{text}");
    let st = statuses(&d.join("s"));
    assert_eq!(st.len(), 2, "{text}");
    for (id, status, _) in &st {
        assert!(
            id.len() == 13 && id.starts_with('s') && status == "done",
            "{st:?}"
        );
        assert!(d.join(format!("out/{id}.nii.gz")).exists());
    }
    let subjects = read(d.join("s/subjects.csv"));
    common::assert_has(&subjects, &[",a/ct.nii.gz,done,", ",b.nii.gz,done,"]);
}

#[test]
fn a_folder_holding_two_dicom_series_gives_one_subject_per_series() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The sample series twice in one folder, as two series (own SeriesInstanceUIDs, the
    // second 100 HU brighter), the way a PACS export puts a study's series together.
    let script = r#"
import sys, pathlib, pydicom
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
dst.mkdir(parents=True)
for s, shift in ((1, 0), (2, 100)):
    for n, f in enumerate(sorted(src.iterdir())):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.1.{s}"
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.1.{s}.{n + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.decompress()
        px = ds.pixel_array.astype("int32") + int(shift / float(ds.RescaleSlope))
        ds.PixelData = px.astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(dst / f"s{s}_{n:03d}.dcm")
"#;
    let out = std::process::Command::new(common::python())
        .args(["-c", script])
        .arg(data.join("totalsegmentator/example_ct_dicom"))
        .arg(d.join("scan/study"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let workflow = |select: &str| {
        format!(
            "version: 1\nname: series\nsettings: {{ cache: cache }}\nnodes:\n  ct: {{ kind: load_dicom, params: {{ path: \"${{IMAGE}}\"{select} }} }}\n  small: {{ kind: resample, inputs: {{ image: ct.image }}, params: {{ spacing: [9, 9, 9] }} }}\n  out: {{ kind: save_nifti, inputs: {{ image: small.image }}, params: {{ path: \"out/${{SUBJECT}}.nii.gz\" }} }}\n"
        )
    };
    // Without a series choice every subject would load the same series: refused.
    std::fs::write(d.join("w.yaml"), workflow("")).unwrap();
    let (code, text) = run(d, &["--cohort-dir", "scan", "--results", "r"]);
    assert_eq!(code, Some(2), "{text}");
    common::assert_has(
        &text,
        &[
            "study [series 1 of 2]) is one series of a folder holding several",
            "series_uid: ${SERIES_UID}",
        ],
    );
    std::fs::write(
        d.join("w.yaml"),
        workflow(", series_uid: \"${SERIES_UID}\""),
    )
    .unwrap();
    let (code, text) = run(d, &["--cohort-dir", "scan", "--results", "r"]);
    assert_eq!(code, Some(0), "{text}");
    let st = statuses(&d.join("r"));
    assert_eq!(st.len(), 2, "{text}");
    let subjects = read(d.join("r/subjects.csv"));
    common::assert_has(
        &subjects,
        &["study [series 1 of 2]", "study [series 2 of 2]"],
    );
    assert!(
        !subjects.contains("1.2.826.0.1.3680043.10.1"),
        "no UID in the table"
    );
    // Each subject loaded its own series: the second is 100 HU brighter.
    let mean = |id: &str| {
        let p = d.join(format!("out/{id}.nii.gz"));
        match vistaflow::nodes::io::nifti::read(&p, false, &vistaflow::nodes::node::Ctx::cpu())
            .unwrap()
        {
            vistaflow::nodes::value::Value::Image(v) => {
                v.data().mean(tch::Kind::Double).double_value(&[])
            }
            _ => panic!("not an image"),
        }
    };
    let means: Vec<f64> = st.iter().map(|(id, _, _)| mean(id)).collect();
    let diff = (means[0] - means[1]).abs();
    assert!((diff - 100.0).abs() < 1.0, "means {means:?}");
}
