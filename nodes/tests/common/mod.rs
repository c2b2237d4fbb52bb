//! Helpers shared by the integration tests: where the data and the python oracles are,
//! reading JSON from the oracles, checksums, unpacking read results, the small VISTA3D
//! configuration's fixed weights and a recorder of a node's warnings and progress.

// Each test binary uses only some of these.
#![allow(
    dead_code,
    reason = "each test binary uses a part of the shared helpers"
)]

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tch::Tensor;
use vistaflow_nodes::node::{Ctx, NodeError, ProgressSink};
use vistaflow_nodes::value::{LabelMap, Value, Volume};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// data/, or None (and a message) when it was never fetched.
pub fn data_dir() -> Option<PathBuf> {
    let d = std::env::var_os("VISTAFLOW_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("data"));
    if d.is_dir() {
        Some(d)
    } else {
        eprintln!(
            "skipped: {} is absent; run scripts/fetch-data.sh",
            d.display()
        );
        None
    }
}

pub fn python() -> PathBuf {
    let p = std::env::var_os("VISTAFLOW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap())
                .join(".cache/vistaflow/venv/bin/python")
        });
    assert!(
        p.exists(),
        "{} not found: run scripts/setup-python.sh (or set VISTAFLOW_PYTHON)",
        p.display()
    );
    p
}

/// The `files` object of a golden JSON file.
pub fn golden_files(json: &str) -> serde_json::Map<String, Json> {
    let g: Json = serde_json::from_str(json).unwrap();
    g["files"].as_object().unwrap().clone()
}

pub fn ctx() -> Ctx {
    Ctx::cpu()
}

/// A 4x4 matrix from JSON rows of numbers, or of decimal strings (the NRRD oracles write
/// strings: Rust's parser is correctly rounded, serde_json's float parsing may be 1 ulp off).
pub fn mat(j: &Json) -> [[f64; 4]; 4] {
    let mut m = [[0.0; 4]; 4];
    for (r, row) in j.as_array().unwrap().iter().enumerate() {
        for (c, v) in row.as_array().unwrap().iter().enumerate() {
            m[r][c] = match v.as_str() {
                Some(s) => s.parse().unwrap(),
                None => v.as_f64().unwrap(),
            };
        }
    }
    m
}

/// Asserts that every entry of `got` is within `tol` of `want`, which `oracle` says.
pub fn assert_affine(
    oracle: &str,
    what: &str,
    got: &[[f64; 4]; 4],
    want: &[[f64; 4]; 4],
    tol: f64,
) {
    for r in 0..4 {
        for c in 0..4 {
            assert!(
                (got[r][c] - want[r][c]).abs() <= tol,
                "{what}: affine[{r}][{c}] is {} but {oracle} says {}\n got  {got:?}\n want {want:?}",
                got[r][c],
                want[r][c]
            );
        }
    }
}

/// The tensor's bytes, in memory order of its contiguous form.
pub fn bytes_of(t: &Tensor) -> Vec<u8> {
    let t = t.contiguous();
    let n = t.numel();
    let mut b = vec![0u8; n * t.kind().elt_size_in_bytes()];
    t.copy_data_u8(&mut b, n);
    b
}

/// sha256 of `b`, in hex.
pub fn sha256_bytes(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// sha256 of the tensor's bytes, in hex.
pub fn sha256(t: &Tensor) -> String {
    sha256_bytes(&bytes_of(t))
}

/// The image a read of `p` must return.
pub fn image(p: &Path, read: Result<Value, NodeError>) -> Volume {
    match read {
        Ok(Value::Image(v)) => v,
        Ok(other) => panic!(
            "{}: expected an image, got {:?}",
            p.display(),
            other.port_type()
        ),
        Err(e) => panic!("{}: {e}", p.display()),
    }
}

/// The label map a read of `p` returned.
pub fn labels(p: &Path, value: Value) -> LabelMap {
    match value {
        Value::Labels(l) => l,
        other => panic!(
            "{}: expected labels, got {:?}",
            p.display(),
            other.port_type()
        ),
    }
}

/// The message of a read that must fail with NodeError::File naming `p`.
pub fn file_error<T>(p: &Path, read: Result<T, NodeError>) -> String {
    match read {
        Err(NodeError::File { path, msg }) => {
            assert_eq!(path, p, "the error names the wrong file: {msg}");
            msg
        }
        Err(e) => panic!("{}: expected a File error, got {e:?}", p.display()),
        Ok(_) => panic!("{}: expected an error, read fine", p.display()),
    }
}

/// `params` with the node's defaults filled in, as the engine fills them.
pub fn with_defaults(
    node: &dyn vistaflow_nodes::Node,
    params: Json,
) -> vistaflow_nodes::params::Params {
    let mut p: vistaflow_nodes::params::Params = serde_json::from_value(params).unwrap();
    for spec in &node.spec().params {
        if let Some(d) = &spec.default {
            p.entry(spec.name.to_string()).or_insert(d.clone());
        }
    }
    p
}

/// Records a node's warnings and its last progress report (done, total).
#[derive(Default)]
pub struct Recorder {
    pub warnings: Mutex<Vec<String>>,
    pub progress: Mutex<(u64, u64)>,
}

impl ProgressSink for Recorder {
    fn progress(&self, done: u64, total: u64, _unit: &str) {
        *self.progress.lock().unwrap() = (done, total);
    }
    fn warn(&self, message: &str) {
        self.warnings.lock().unwrap().push(message.to_string());
    }
}

/// The small VISTA3D configuration with fixed weights (scripts/oracles/vista3d_small.py).
pub struct SmallNet {
    /// The TotalSegmentator sample files.
    pub ts: PathBuf,
    pub weights: PathBuf,
    pub config: PathBuf,
}

/// `None` (the test skips) without the fetched data.
pub fn small_net() -> Option<SmallNet> {
    let data = data_dir()?;
    let small = data.join("vista3d/small");
    Some(SmallNet {
        weights: small.join("weights.safetensors"),
        config: small.join("config.json"),
        ts: data.join("totalsegmentator"),
    })
}
pub mod dicom_export;
