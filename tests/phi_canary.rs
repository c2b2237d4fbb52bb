//! PHI canary: a real DICOM series whose identifiers, folder and file names carry unique
//! canaries goes through load -> resample -> VISTA3D (small) -> metrics -> every export format
//! and the report, twice (cold, then from the cache), with traces on. Then every byte that
//! vistaflow wrote (cache, traces, outputs, stdout and stderr) is searched for the canaries:
//! the only files allowed to hold them are the DICOM SEG and RT-STRUCT, which must carry the
//! patient module (and do); with `deidentify: true` not even those.

mod common;

use std::path::{Path, PathBuf};

const TAG: &str = "Q7ZX";

/// Each canary and where the series carries it.
fn canaries() -> Vec<(String, &'static str)> {
    vec![
        (format!("CANARYPN{TAG}"), "PatientName"),
        (format!("CANARYID{TAG}"), "PatientID"),
        ("19070311".to_string(), "PatientBirthDate"),
        (format!("CANARYAN{TAG}"), "AccessionNumber"),
        (format!("CANARYINST{TAG}"), "InstitutionName"),
        (format!("CANARYDIR_{TAG}"), "the folder name"),
        (format!("CANARYFILE_{TAG}"), "the file names"),
    ]
}

/// The series comes in through `--set CT=...`, as a cohort run would give it.
fn workflow(weights: &Path, deidentify: bool) -> String {
    format!(
        r#"version: 1
name: phi-canary
settings: {{ cache: cache }}
nodes:
  ct:   {{ kind: load_dicom, params: {{ path: "${{CT}}" }} }}
  iso:  {{ kind: resample, inputs: {{ image: ct.image }}, params: {{ spacing: [4, 4, 4] }} }}
  auto:
    kind: vista3d_auto
    inputs: {{ image: iso.image }}
    params: {{ classes: [liver, spleen], model: "{weights}", network: small, patch: [32, 32, 32] }}
  seg:  {{ kind: resample, inputs: {{ image: auto.labels, reference: ct.image }} }}
  qa:   {{ kind: metrics, inputs: {{ prediction: seg.labels, reference: seg.labels }}, params: {{ path: out/metrics.csv }} }}
  qc:   {{ kind: metrics, inputs: {{ prediction: seg.labels }}, params: {{ path: out/qc.json }} }}
  dcm:  {{ kind: export, inputs: {{ labels: seg.labels, image: ct.image }}, params: {{ format: dicom_seg, path: out/seg.dcm, deidentify: {deidentify} }} }}
  rt:   {{ kind: export, inputs: {{ labels: seg.labels, image: ct.image }}, params: {{ format: rtstruct, path: out/rt.dcm, deidentify: {deidentify} }} }}
  nii:  {{ kind: export, inputs: {{ labels: seg.labels, image: ct.image }}, params: {{ format: nifti, path: out/seg.nii.gz }} }}
  stl:  {{ kind: export, inputs: {{ labels: seg.labels }}, params: {{ format: stl, path: out/meshes, step: 2 }} }}
  png:  {{ kind: export, inputs: {{ labels: seg.labels, image: ct.image }}, params: {{ format: png, path: out/preview.png }} }}
  rep:  {{ kind: export, inputs: {{ labels: seg.labels }}, params: {{ format: report, path: out/report.json }} }}
"#,
        weights = weights.display()
    )
}

fn files_under(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p == skip {
            continue;
        }
        if p.is_dir() {
            files_under(&p, skip, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A DICOM output's kind and bytes.
type DicomOut = (&'static str, Vec<u8>);

/// Runs the workflow cold and warm; returns (where a canary was found outside the DICOM
/// outputs, the bytes of the SEG and of the RT-STRUCT).
fn run(deidentify: bool) -> Option<(Vec<String>, [DicomOut; 2])> {
    let data = common::data_dir()?;
    let weights = data.join("vista3d/small/weights.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let series = d.join(format!("CANARYDIR_{TAG}"));
    let made = std::process::Command::new(common::python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oracles/phi_canary_series.py"))
        .arg(data.join("totalsegmentator/example_ct_dicom"))
        .arg(&series)
        .arg(TAG)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", common::text(&made));
    std::fs::write(d.join("wf.yaml"), workflow(&weights, deidentify)).unwrap();
    let set = format!("CT={}", series.display());

    let mut outputs = Vec::new();
    for round in ["cold", "warm"] {
        let trace = format!("trace-{round}.jsonl");
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_vistaflow"))
            .args(["run", "wf.yaml", "--set", &set, "--trace", &trace])
            .env("VISTAFLOW_IDENTITY_KEY", d.join("identity.key"))
            .current_dir(d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{round}: {}", common::text(&o));
        outputs.push((round, o));
    }
    let sidecars = {
        let mut all = Vec::new();
        files_under(&d.join("cache/objects"), &series, &mut all);
        all.into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect::<Vec<_>>()
    };
    assert!(
        sidecars.iter().any(|s| s.contains("\"sealed\"")),
        "the image's identity is kept sealed in the cache"
    );

    let seg_path = d.join("out/seg.dcm");
    let rt_path = d.join("out/rt.dcm");
    let mut written = Vec::new();
    files_under(d, &series, &mut written);
    let mut found = Vec::new();
    for path in written.iter().filter(|p| **p != seg_path && **p != rt_path) {
        let bytes = std::fs::read(path).unwrap();
        for (c, what) in canaries() {
            if contains(&bytes, &c) {
                found.push(format!(
                    "{what} in {}",
                    path.strip_prefix(d).unwrap().display()
                ));
            }
        }
    }
    for (round, o) in &outputs {
        for (stream, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            for (c, what) in canaries() {
                if contains(bytes, &c) {
                    found.push(format!("{what} in the {round} run's {stream}"));
                }
            }
        }
    }
    assert!(written.len() > 20, "searched only {} files", written.len());
    let read = |p: &Path| std::fs::read(p).unwrap();
    Some((
        found,
        [("SEG", read(&seg_path)), ("RT-STRUCT", read(&rt_path))],
    ))
}

#[test]
fn identifiers_reach_only_the_dicom_seg_and_rtstruct() {
    let Some((found, dicom)) = run(false) else {
        return;
    };
    assert!(
        found.is_empty(),
        "canaries outside the DICOM SEG and RT-STRUCT: {found:#?}"
    );
    // Both must carry the source's patient and study identifiers (DICOM requires them).
    for (kind, bytes) in &dicom {
        for (c, what) in &canaries()[..4] {
            assert!(contains(bytes, c), "the {kind} lacks the source's {what}");
        }
    }
}

#[test]
fn deidentify_keeps_identifiers_out_of_the_dicom_seg_and_rtstruct_too() {
    let Some((found, dicom)) = run(true) else {
        return;
    };
    assert!(
        found.is_empty(),
        "canaries outside the DICOM SEG and RT-STRUCT: {found:#?}"
    );
    for (kind, bytes) in &dicom {
        for (c, what) in canaries() {
            assert!(
                !contains(bytes, &c),
                "the de-identified {kind} holds the {what}"
            );
        }
        assert!(contains(bytes, "YES"), "{kind}: PatientIdentityRemoved");
    }
}

/// A cache shared by two users: the second user's key cannot open the first one's seal, so
/// the loader runs again for them (and their export still gets the identity it needs);
/// their own entry is then used.
#[test]
fn another_users_key_reads_the_dicom_again() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("wf.yaml"),
        workflow(&data.join("vista3d/small/weights.safetensors"), false),
    )
    .unwrap();
    let set = format!(
        "CT={}",
        data.join("totalsegmentator/example_ct_dicom").display()
    );
    let ct_status = |key: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_vistaflow"))
            .args(["run", "wf.yaml", "--set", &set, "--no-trace", "-q"])
            .env("VISTAFLOW_IDENTITY_KEY", d.join(key))
            .current_dir(d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{key}: {}", common::text(&o));
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("out/report.json")).unwrap()).unwrap();
        let node = |id: &str| {
            report["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["id"] == id)
                .unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        };
        (node("ct"), node("dcm"))
    };
    assert_eq!(ct_status("alice.key").0, "ran");
    assert_eq!(ct_status("alice.key").0, "cached");
    // Bob's run: the image entry is sealed under Alice's key; only the loader runs again.
    let (ct, dcm) = ct_status("bob.key");
    assert_eq!((ct.as_str(), dcm.as_str()), ("ran", "cached"));
    assert!(d.join("out/seg.dcm").is_file());
}
