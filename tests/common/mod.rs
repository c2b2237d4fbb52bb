//! Test helpers: small nodes that exercise the engine (timeouts, failures, versions, cycles)
//! next to the real ones, and a workflow runner.
#![allow(
    dead_code,
    reason = "each test binary uses a part of the shared helpers"
)]

pub mod gluster;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vistaflow::cache::Store;
use vistaflow::exec::{self, Devices, Engine, RunOptions, RunReport};
use vistaflow::telemetry::{Telemetry, TraceSink};
use vistaflow::workflow::{self, Plan};
use vistaflow_nodes::node::{Compute, NodeSpec, PortSpec};
use vistaflow_nodes::params::{NodeParams, ParamSchema, Params};
use vistaflow_nodes::{Ctx, Inputs, Node, NodeError, Outputs, PortType, Registry, Value, Volume};

/// `scale`: image * factor (a real tensor op), with a version set per instance.
/// `scale`'s params (the engine tests' own node, written as every node is).
#[derive(serde::Deserialize, NodeParams)]
#[allow(
    dead_code,
    reason = "the node reads its params through the map, which the tests inspect"
)]
pub struct ScaleParams {
    /// multiplier
    #[param(default = 2.0)]
    factor: f64,
    /// pause first (polls cancel)
    #[param(default = 0, min = 0)]
    sleep_ms: i64,
    /// fail instead
    #[param(default = false)]
    fail: bool,
}

pub struct Scale {
    pub spec: NodeSpec,
}

impl Scale {
    pub fn new(version: &'static str) -> Self {
        Scale {
            spec: NodeSpec {
                kind: "scale",
                version,
                summary: "multiplies an image",
                inputs: vec![PortSpec::input("image", PortType::Image, "in")],
                exactly_one_input_of: vec![],
                outputs: vec![PortSpec::output("image", PortType::Image, "out")],
                params: ParamSchema::of::<ScaleParams>(),
                compute: Compute::Gpu,
            },
        }
    }
}

impl Node for Scale {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }
    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let sleep = params["sleep_ms"].as_u64().unwrap_or(0);
        for step in 0..sleep / 10 {
            ctx.check_cancelled()?;
            ctx.progress(step, sleep / 10, "ticks");
            std::thread::sleep(Duration::from_millis(10));
        }
        if params["fail"].as_bool() == Some(true) {
            return Err(NodeError::Invalid("asked to fail".into()));
        }
        let Some(Value::Image(v)) = inputs.get("image") else {
            return Err(NodeError::Invalid("no image".into()));
        };
        let f = params["factor"].as_f64().unwrap_or(1.0);
        let out = Volume::new(v.data() * f, *v.geometry()).map_err(NodeError::Invalid)?;
        Ok(Outputs::from([("image".to_string(), Value::Image(out))]))
    }
}

/// `pass`: hands on an image or a label map unchanged; its output port is named after (and
/// typed as) whatever arrives, as `resample` does.
pub struct Pass {
    pub spec: NodeSpec,
}

impl Pass {
    pub fn new() -> Self {
        Pass {
            spec: NodeSpec {
                kind: "pass",
                version: "1",
                summary: "hands its input on",
                inputs: vec![PortSpec::input("value", PortType::Image, "in")
                    .any_of(&[PortType::Image, PortType::Labels])],
                exactly_one_input_of: vec![],
                outputs: vec![
                    PortSpec::output("image", PortType::Image, "when an image arrives"),
                    PortSpec::output("labels", PortType::Labels, "when labels arrive"),
                ],
                params: ParamSchema::none(),
                compute: Compute::Cpu,
            },
        }
    }
}

impl Node for Pass {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }
    fn outputs(&self, _: &Params, inputs: &vistaflow_nodes::InputTypes) -> Vec<PortSpec> {
        let want = inputs.get("value").copied().unwrap_or(PortType::Image);
        self.spec
            .outputs
            .iter()
            .filter(|o| o.ty == want)
            .cloned()
            .collect()
    }
    fn run(&self, _: &Ctx, inputs: Inputs, _: &Params) -> Result<Outputs, NodeError> {
        let v = inputs
            .into_values()
            .next()
            .ok_or_else(|| NodeError::Invalid("no input".into()))?;
        Ok(Outputs::from([(v.port_type().name().to_string(), v)]))
    }
}

/// The built-in registry plus `scale` and `pass`.
pub fn registry() -> Registry {
    registry_with_scale_version("1")
}

pub fn registry_with_scale_version(v: &'static str) -> Registry {
    let mut r = Registry::builtin();
    r.register(Arc::new(Scale::new(v)));
    r.register(Arc::new(Pass::new()));
    r
}

pub fn load(path: &Path, registry: &Registry) -> Plan {
    match workflow::load(path, &BTreeMap::new(), registry) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// Runs a plan on the CPU with no trace, returning the report.
pub fn run(plan: Plan, opts: RunOptions) -> RunReport {
    let store = Arc::new(Store::open(&plan.settings.cache).expect("cache opens"));
    let engine = Engine {
        store,
        devices: Arc::new(Devices::cpu_only()),
        telemetry: Arc::new(Telemetry::new(TraceSink::None).unwrap()),
    };
    runtime()
        .block_on(exec::run(
            &engine,
            Arc::new(plan),
            &opts,
            CancellationToken::new(),
        ))
        .expect("run starts")
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Where fetched real data lives; `None` (and a printed reason) when it was never fetched.
pub fn data_dir() -> Option<std::path::PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    if d.join("totalsegmentator").exists() || d.join("nibabel").exists() {
        Some(d)
    } else {
        eprintln!("skipped: real data not fetched; run scripts/fetch-data.sh");
        None
    }
}

/// The oracle python (nibabel), from VISTAFLOW_PYTHON or scripts/setup-python.sh's venv.
pub fn python() -> std::path::PathBuf {
    let p = std::env::var_os("VISTAFLOW_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap())
                .join(".cache/vistaflow/venv/bin/python")
        });
    assert!(
        p.exists(),
        "{} not found: run scripts/setup-python.sh (or set VISTAFLOW_PYTHON)",
        p.display()
    );
    p
}

/// What nibabel reads from a NIfTI file: affine, shape, dtype, sha256 of the data bytes.
pub fn nibabel(path: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oracles/nifti_readback.py");
    let out = std::process::Command::new(python())
        .arg(script)
        .arg(path)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "nibabel failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("readback prints JSON")
}

/// Checks `text` as the workflow `wf.yaml` and returns the rendered diagnostics (panics if it
/// loads).
pub fn load_errors(text: &str) -> String {
    match workflow::load_str(Path::new("wf.yaml"), text, &BTreeMap::new(), &registry()) {
        Ok(_) => panic!("workflow unexpectedly valid:\n{text}"),
        Err(workflow::LoadError::Invalid(d)) => d.to_string(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

pub fn assert_has(out: &str, parts: &[&str]) {
    for p in parts {
        assert!(out.contains(p), "expected `{p}` in:\n{out}");
    }
}

/// True when the tests run as root (network namespaces, mounts).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Writes a 100 MB NIfTI of seeded random int16 (512x512x200) to `path` with nibabel: big
/// enough that loading it takes a while, for tests of concurrent runs.
pub fn write_big_nifti(path: &Path) {
    let script = "import sys,numpy as np,nibabel as nib\nrng=np.random.default_rng(0)\na=rng.integers(-1000,1000,size=(512,512,200),dtype=np.int16)\nnib.save(nib.Nifti1Image(a,np.diag([0.8,0.8,1.5,1.0])),sys.argv[1])\n";
    let o = std::process::Command::new(python())
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Runs the `vistaflow` binary in `cwd`.
pub fn vistaflow(args: &[&str], cwd: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_vistaflow"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("binary runs")
}

/// Its stdout and stderr together.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every span of an OTLP JSON-lines trace file.
pub fn trace_spans(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .flat_map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["resourceSpans"][0]["scopeSpans"]
                [0]["spans"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect()
}

/// A span's string attribute.
pub fn span_attr(span: &serde_json::Value, key: &str) -> Option<String> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"]["stringValue"].as_str().map(str::to_string))
}

/// A cheap cohort workflow over real data (tests/cohort.rs, tests/slurm_cohort.rs): each
/// subject's labels coarsened to 7 mm and back, scored against themselves.
pub const COHORT_WORKFLOW: &str = r#"version: 1
name: cohort-test
settings: { cache: cache }
nodes:
  truth:
    kind: load_nifti
    params:
      path: "${LABELS}"
      labels: true
      class_names: { "5": liver, "1": spleen, "2": right kidney, "6": stomach, "52": aorta }
  ct: { kind: load_nifti, params: { path: "${IMAGE}" } }
  coarse: { kind: resample, inputs: { image: truth.labels }, params: { spacing: [7, 7, 7] } }
  back: { kind: resample, inputs: { image: coarse.labels, reference: ct.image } }
  scores:
    kind: metrics
    inputs: { prediction: back.labels, reference: truth.labels }
    params:
      match: name
      classes: [liver, spleen, right kidney, stomach, aorta]
      metrics: [dice, hd95]
      path: "out/${SUBJECT}/metrics.csv"
"#;

/// Writes COHORT_WORKFLOW as `dir/w.yaml` and scripts/make-cohort.py's 12 subjects (+3 bad)
/// into `dir/cohort`; `None` when the sample data was never fetched.
pub fn make_cohort(dir: &Path) -> Option<()> {
    let data = data_dir()?;
    if !data.join("totalsegmentator/example_ct.nii.gz").exists() {
        return None;
    }
    std::fs::write(dir.join("w.yaml"), COHORT_WORKFLOW).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-cohort.py");
    let out = std::process::Command::new(python())
        .arg(script)
        .arg(dir.join("cohort"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    Some(())
}
