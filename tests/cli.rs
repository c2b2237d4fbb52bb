//! The `vistaflow` binary as a user runs it: exit codes, plan, traces, OTLP, Ctrl-C, kill -9.

mod common;

use common::{span_attr, text, trace_spans, vistaflow};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A folder with a real CT and a load -> save workflow.
fn setup() -> Option<(tempfile::TempDir, PathBuf)> {
    let data = common::data_dir()?;
    let dir = tempfile::tempdir().unwrap();
    let patient = dir.path().join("DOE_JOHN_1961");
    std::fs::create_dir(&patient).unwrap();
    std::fs::copy(
        data.join("totalsegmentator/example_ct_sm.nii.gz"),
        patient.join("ct.nii.gz"),
    )
    .unwrap();
    let wf = dir.path().join("wf.yaml");
    std::fs::write(
        &wf,
        "version: 1\nname: demo\nnodes:\n  ct: { kind: load_nifti, params: { path: \"${SUBJ}/ct.nii.gz\" } }\n  \
         out: { kind: save_nifti, inputs: { image: ct.image }, params: { path: \"out/${SUBJ}.nii.gz\" } }\n",
    )
    .unwrap();
    Some((dir, wf))
}

#[test]
fn validate_plan_run_and_exit_codes() {
    let Some((dir, _)) = setup() else { return };
    let d = dir.path();
    let o = vistaflow(&["validate", "wf.yaml"], d);
    assert_eq!(
        o.status.code(),
        Some(2),
        "unset ${{SUBJ}} is invalid: {}",
        text(&o)
    );
    assert!(text(&o).contains("`${SUBJ}` is not set"));

    let o = vistaflow(&["plan", "wf.yaml", "--set", "SUBJ=DOE_JOHN_1961"], d);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("ct") && t.contains("to run (not in cache)"),
        "{t}"
    );

    let o = vistaflow(
        &[
            "run",
            "wf.yaml",
            "--set",
            "SUBJ=DOE_JOHN_1961",
            "--trace",
            "trace.jsonl",
            "--device",
            "cpu",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("demo: 2 ran, 0 cached, 0 failed"),
        "{}",
        text(&o)
    );
    assert!(d.join("out/DOE_JOHN_1961.nii.gz").exists());

    let o = vistaflow(&["plan", "wf.yaml", "--set", "SUBJ=DOE_JOHN_1961"], d);
    assert_eq!(text(&o).matches(" cached").count(), 2, "{}", text(&o));

    // The trace: one run span and one span per node, OTLP JSON, with no patient data.
    let trace = std::fs::read_to_string(d.join("trace.jsonl")).unwrap();
    assert!(
        !trace.contains("DOE") && !trace.contains("JOHN"),
        "patient-named path leaked into the trace"
    );
    let spans = trace_spans(&d.join("trace.jsonl"));
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names.iter().filter(|n| **n == "vistaflow.node").count(), 2);
    assert_eq!(names.iter().filter(|n| **n == "vistaflow.run").count(), 1);
    let run_id = spans.iter().find(|s| s["name"] == "vistaflow.run").unwrap()["spanId"].clone();
    for s in spans.iter().filter(|s| s["name"] == "vistaflow.node") {
        assert_eq!(
            s["parentSpanId"], run_id,
            "node spans are children of the run span"
        );
        let keys: Vec<&str> = s["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["key"].as_str().unwrap())
            .collect();
        for k in [
            "vistaflow.node.id",
            "vistaflow.node.kind",
            "vistaflow.cache",
            "vistaflow.device",
            "vistaflow.duration_ms",
            "vistaflow.output_bytes",
        ] {
            assert!(keys.contains(&k), "span lacks {k}: {s}");
        }
    }

    // A warm run still has one span per node, saying it came from the cache.
    let o = vistaflow(
        &[
            "run",
            "wf.yaml",
            "--set",
            "SUBJ=DOE_JOHN_1961",
            "--trace",
            "warm.jsonl",
        ],
        d,
    );
    assert!(text(&o).contains("demo: 0 ran, 2 cached"), "{}", text(&o));
    let node_spans: Vec<serde_json::Value> = trace_spans(&d.join("warm.jsonl"))
        .into_iter()
        .filter(|s| s["name"] == "vistaflow.node")
        .collect();
    assert_eq!(node_spans.len(), 2, "{node_spans:?}");
    for s in &node_spans {
        assert_eq!(
            span_attr(s, "vistaflow.cache").as_deref(),
            Some("hit"),
            "{s}"
        );
    }

    // A failing node: exit 1 with the node id, kind and cause; the path is shown to the user.
    std::fs::remove_file(d.join("DOE_JOHN_1961/ct.nii.gz")).unwrap();
    let o = vistaflow(
        &[
            "run",
            "wf.yaml",
            "--set",
            "SUBJ=DOE_JOHN_1961",
            "--no-trace",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("node `ct` (load_nifti): cannot read `path`"),
        "{}",
        text(&o)
    );
}

#[test]
fn spans_reach_an_otlp_http_endpoint() {
    let Some((dir, _)) = setup() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(false).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut bodies = vec![];
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && bodies.len() < 3 {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let (mut len, mut line, mut path) = (0usize, String::new(), String::new());
                    r.read_line(&mut path).unwrap();
                    loop {
                        line.clear();
                        r.read_line(&mut line).unwrap();
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                        .unwrap();
                    bodies.push((path, String::from_utf8(body).unwrap()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        bodies
    });
    let url = format!("http://127.0.0.1:{port}");
    let o = vistaflow(
        &[
            "run",
            "wf.yaml",
            "--set",
            "SUBJ=DOE_JOHN_1961",
            "--otlp",
            &url,
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let bodies = server.join().unwrap();
    assert_eq!(bodies.len(), 3, "one POST per span (2 nodes + run)");
    for (path, body) in &bodies {
        assert!(path.starts_with("POST /v1/traces "), "{path}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "vistaflow"
        );
    }
}

/// A large volume so that load + save take seconds (time to interrupt).
fn big_volume(dir: &Path) -> PathBuf {
    let p = dir.join("big.nii");
    common::write_big_nifti(&p);
    std::fs::write(
        dir.join("big.yaml"),
        "version: 1\nnodes:\n  ct: { kind: load_nifti, params: { path: big.nii } }\n  out: { kind: save_nifti, inputs: { image: ct.image }, params: { path: out/big.nii.gz } }\n",
    )
    .unwrap();
    p
}

#[test]
fn ctrl_c_stops_cleanly_with_exit_130() {
    stops_cleanly(libc::SIGINT, 130, "interrupt");
}

/// SIGTERM (a scheduler's or a plain `kill`'s stop) cleans up as Ctrl-C does: it left hidden
/// `.NAME.XXXX.partial` files beside outputs.
#[test]
fn sigterm_stops_cleanly_with_exit_143() {
    stops_cleanly(libc::SIGTERM, 143, "terminate (SIGTERM)");
}

fn stops_cleanly(sig: i32, code: i32, says: &str) {
    if common::data_dir().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    big_volume(dir.path());
    let with_report = std::fs::read_to_string(dir.path().join("big.yaml")).unwrap()
        + "  report: { kind: export, params: { format: report, path: report.json } }\n";
    std::fs::write(dir.path().join("big-report.yaml"), with_report).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vistaflow"))
        .args(["run", "big-report.yaml", "--no-trace"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt while the gzip writer is busy (it takes seconds for 100 MB).
    std::thread::sleep(Duration::from_millis(1500));
    unsafe { libc::kill(child.id() as i32, sig) };
    let t = Instant::now();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(15), "stopped promptly");
    assert_eq!(status.code(), Some(code), "{err}");
    assert!(err.contains(says), "{err}");
    // No half-written output and no stray temp files beside it.
    let out = dir.path().join("out");
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "left in out/: {leftovers:?}");
    // The run's report is still written, and says what was cut short.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let cancelled: Vec<&serde_json::Value> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "cancelled")
        .map(|n| &n["id"])
        .collect();
    assert!(
        !cancelled.is_empty(),
        "no node recorded as cancelled: {report:#}"
    );
    let o = vistaflow(
        &["cache", "verify", "--dir", ".vistaflow/cache"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn runs_killed_mid_write_leave_a_cache_that_verifies() {
    if common::data_dir().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    big_volume(dir.path());
    for delay_ms in [400u64, 900, 1400, 2000, 3000] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vistaflow"))
            .args(["run", "big.yaml", "--no-trace", "--refresh", "ct"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
        if !dir.path().join(".vistaflow/cache").exists() {
            continue; // killed before the cache was created
        }
        let o = vistaflow(
            &["cache", "verify", "--dir", ".vistaflow/cache"],
            dir.path(),
        );
        assert!(
            o.status.success(),
            "after kill at {delay_ms} ms: {}",
            text(&o)
        );
    }
    let o = vistaflow(&["run", "big.yaml", "--no-trace"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    // The next write of the output removes what the killed writers left beside it.
    let o = vistaflow(
        &["run", "big.yaml", "--no-trace", "--refresh", "out"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let names: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["big.nii.gz"], "left in out/");
    let o = vistaflow(
        &[
            "cache",
            "gc",
            "--dir",
            ".vistaflow/cache",
            "--max-size",
            "10G",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = vistaflow(&["run", "big.yaml", "--no-trace"], dir.path());
    assert!(text(&o).contains("0 ran, 2 cached"), "{}", text(&o));
}

/// Two runs of one workflow on one cache: a node one of them is computing is waited for by
/// the other and taken from the cache, not computed twice (both computed every node).
#[test]
fn two_processes_compute_each_node_once() {
    if common::data_dir().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    big_volume(dir.path());
    let spawn = |trace: &str| {
        Command::new(env!("CARGO_BIN_EXE_vistaflow"))
            .args(["run", "big.yaml", "--trace", trace])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("a.jsonl"), spawn("b.jsonl"));
    for child in [a, b] {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    // Spans of `ct` (the 100 MB load, the node with a cache entry) that computed it.
    let computed = ["a.jsonl", "b.jsonl"]
        .iter()
        .flat_map(|t| trace_spans(&dir.path().join(t)))
        .filter(|s| {
            span_attr(s, "vistaflow.node.id").as_deref() == Some("ct")
                && span_attr(s, "vistaflow.cache").as_deref() == Some("miss")
        })
        .count();
    assert_eq!(computed, 1, "`ct` computed {computed} times");
    let o = vistaflow(
        &["cache", "verify", "--dir", ".vistaflow/cache"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn two_processes_share_one_cache_safely() {
    let Some((dir, _)) = setup() else { return };
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_vistaflow"))
            .args([
                "run",
                "wf.yaml",
                "--set",
                "SUBJ=DOE_JOHN_1961",
                "--no-trace",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = vistaflow(
        &["cache", "verify", "--dir", ".vistaflow/cache"],
        dir.path(),
    );
    assert!(
        o.status.success() && text(&o).contains("0 corrupt"),
        "{}",
        text(&o)
    );
    let o = vistaflow(
        &[
            "run",
            "wf.yaml",
            "--set",
            "SUBJ=DOE_JOHN_1961",
            "--no-trace",
        ],
        dir.path(),
    );
    assert!(text(&o).contains("0 ran, 2 cached"), "{}", text(&o));
}
