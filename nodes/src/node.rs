//! The [`Node`] trait: a pure function of (inputs, params) on a device.

use crate::params::{ParamSchema, ParamSpec, ParamType, Params};
use crate::value::{PortType, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tch::{Device, Tensor};

/// Values arriving on a node's input ports, by port name.
pub type Inputs = BTreeMap<String, Value>;
/// The types of the values connected to a node's input ports, known before anything runs.
pub type InputTypes = BTreeMap<String, PortType>;
/// Values a node produces, by output port name.
pub type Outputs = BTreeMap<String, Value>;

/// A typed port.
#[derive(Clone, Debug)]
pub struct PortSpec {
    pub name: &'static str,
    /// An output's type; an input's first accepted type.
    pub ty: PortType,
    /// Inputs only: every type the port takes (`[ty]` unless built with `any_of`).
    pub accepts: Vec<PortType>,
    /// Inputs only: must be connected.
    pub required: bool,
    pub doc: &'static str,
}

impl PortSpec {
    pub fn input(name: &'static str, ty: PortType, doc: &'static str) -> Self {
        PortSpec {
            name,
            ty,
            accepts: vec![ty],
            required: true,
            doc,
        }
    }
    pub fn optional_input(name: &'static str, ty: PortType, doc: &'static str) -> Self {
        PortSpec {
            name,
            ty,
            accepts: vec![ty],
            required: false,
            doc,
        }
    }
    pub fn output(name: &'static str, ty: PortType, doc: &'static str) -> Self {
        PortSpec {
            name,
            ty,
            accepts: vec![ty],
            required: false,
            doc,
        }
    }
    /// An input taking any of `types` (e.g. an image or a label map to resample).
    pub fn any_of(mut self, types: &[PortType]) -> Self {
        self.accepts = types.to_vec();
        self.ty = types[0];
        self
    }
    /// The accepted types as written in messages: `image|labels`.
    pub fn accepts_text(&self) -> String {
        self.accepts
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join("|")
    }
}

/// Where a node computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compute {
    /// On the CPU only (readers, writers, metrics, export): it is given the CPU whatever its
    /// `device`, so that it never holds a GPU slot while a GPU node waits.
    Cpu,
    /// On the device it is given; after a GPU out-of-memory error, again on the CPU.
    Gpu,
}

/// Everything the engine needs to know about a node kind before running it.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub kind: &'static str,
    /// Changes whenever the node's results for the same inputs and params would change.
    pub version: &'static str,
    pub summary: &'static str,
    pub inputs: Vec<PortSpec>,
    /// Exactly one of these input ports must be connected (empty: no such rule).
    pub exactly_one_input_of: Vec<&'static str>,
    /// Every output the kind can have; see [`Node::outputs`] for those a given use has.
    pub outputs: Vec<PortSpec>,
    /// From the node's params struct: `ParamSchema::of::<MyParams>()`.
    pub params: ParamSchema,
    pub compute: Compute,
}

impl NodeSpec {
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
    pub fn input(&self, name: &str) -> Option<&PortSpec> {
        self.inputs.iter().find(|p| p.name == name)
    }
    /// Names of params that name files this node writes.
    pub fn output_path_params(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.params
            .iter()
            .filter(|p| p.ty == ParamType::OutputPath)
            .map(|p| p.name)
    }
}

/// One step of a workflow.
pub trait Node: Send + Sync {
    fn spec(&self) -> &NodeSpec;

    /// The outputs this node has with these (checked) params and the types connected to its
    /// inputs (e.g. a resampled label map stays a label map); by default all of the spec's.
    fn outputs(&self, _params: &Params, _inputs: &InputTypes) -> Vec<PortSpec> {
        self.spec().outputs.clone()
    }

    /// Whether this use of the node (these params) is a run's finaliser: it runs after every
    /// other node of the run, is never taken from the cache, and reads the run's record
    /// through [`Ctx::run_record`] (e.g. `export` with `format: report`).
    fn finalises(&self, _params: &Params) -> bool {
        false
    }

    /// Other files behind the file a path param names, which the engine digests along with
    /// it: a model's card, a detached NRRD's data files, a NIfTI export's sidecars. Read ones
    /// join the cache key (those that do not exist are left out); written ones are checked
    /// like the file itself, so deleting one reruns the node. By default none.
    fn companions(&self, _param: &str, _path: &Path, _params: &Params) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Computes the outputs. Must not mutate input tensors in place.
    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError>;
}

/// Why a node failed. Messages say what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Inputs or params the node cannot work with.
    #[error("{0}")]
    Invalid(String),
    /// A file that could not be read or written.
    #[error("{}: {msg}", path.display())]
    File { path: PathBuf, msg: String },
    /// The device ran out of memory; the engine may retry on the node's fallback.
    #[error("out of memory on {device}: {msg}")]
    OutOfMemory { device: String, msg: String },
    #[error("cancelled")]
    Cancelled,
    /// An error inside libtorch.
    #[error("libtorch: {0}")]
    Torch(String),
}

impl NodeError {
    /// The error for a panic inside `what` (tch's infallible ops panic on a libtorch error,
    /// with the message and a C++ backtrace in a Debug string): the first line of libtorch's
    /// message; CUDA out of memory becomes [`NodeError::OutOfMemory`] so that the caller or
    /// the engine can fall back.
    pub fn from_panic(what: &str, payload: &(dyn std::any::Any + Send)) -> NodeError {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown error".into());
        let torch = msg.split_once("Torch(\"").map(|(_, m)| m);
        let first = torch
            .unwrap_or(&msg)
            .split("\\n")
            .next()
            .and_then(|l| l.lines().next())
            .unwrap_or("")
            .to_string();
        if msg.contains("out of memory") {
            NodeError::OutOfMemory {
                device: "cuda".into(),
                msg: format!("{what}: {first}"),
            }
        } else if torch.is_some() {
            NodeError::Torch(format!("{what}: {first}"))
        } else {
            NodeError::Invalid(format!("{what}: {first}"))
        }
    }

    pub fn file(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        NodeError::File {
            path: path.into(),
            msg: msg.to_string(),
        }
    }
}

impl From<tch::TchError> for NodeError {
    fn from(e: tch::TchError) -> Self {
        let msg = e.to_string();
        if msg.contains("out of memory") {
            NodeError::OutOfMemory {
                device: "cuda".into(),
                msg: first_line(&msg),
            }
        } else {
            NodeError::Torch(first_line(&msg))
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// A flag that the engine sets to stop a run; long nodes poll it between chunks of work.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Where a node reports progress and warnings; the engine draws bars and records events.
pub trait ProgressSink: Send + Sync {
    /// `done` of `total` units (`unit` e.g. "slices", "windows") finished.
    fn progress(&self, done: u64, total: u64, unit: &str);
    /// Something the user should know that does not stop the node.
    fn warn(&self, message: &str);
}

/// A sink that drops everything (examples, embedding without a display).
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn progress(&self, _: u64, _: u64, _: &str) {}
    fn warn(&self, _: &str) {}
}

/// Intermediate tensors a node keeps between runs (e.g. VISTA3D's encoder features per
/// window, so that a new click in a window already seen runs only the point head). The
/// engine keeps them in its content-hash cache: an entry's identity covers the node kind and
/// version, the identities of the input ports named in `scope`, the digests of the files the
/// node reads (weights), and `key`, which must name everything else the tensor depends on
/// (params, the window). Nodes still never see the cache itself.
pub trait Memo: Send + Sync {
    fn get(&self, scope: &[&str], key: &str) -> Option<Tensor>;
    fn put(&self, scope: &[&str], key: &str, tensor: &Tensor);
}

/// Builds the record of the run so far (what ran, with which params, keys, digests and
/// timings); given by the engine to finalising nodes only.
pub type RunRecord = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What a node gets besides its inputs and params.
#[derive(Clone)]
pub struct Ctx {
    pub device: Device,
    pub cancel: CancelToken,
    sink: Arc<dyn ProgressSink>,
    record: Option<RunRecord>,
    memo: Option<Arc<dyn Memo>>,
}

impl Ctx {
    pub fn new(device: Device, cancel: CancelToken, sink: Arc<dyn ProgressSink>) -> Self {
        Ctx {
            device,
            cancel,
            sink,
            record: None,
            memo: None,
        }
    }

    /// Lets the node keep intermediate tensors between runs (see [`Memo`]).
    pub fn with_memo(mut self, memo: Arc<dyn Memo>) -> Self {
        self.memo = Some(memo);
        self
    }

    /// A tensor kept by an earlier run (on the CPU), or `None` (also without a cache).
    pub fn memo_get(&self, scope: &[&str], key: &str) -> Option<Tensor> {
        self.memo.as_ref()?.get(scope, key)
    }

    /// Keeps `tensor` for later runs; does nothing without a cache (e.g. `--no-cache`).
    pub fn memo_put(&self, scope: &[&str], key: &str, tensor: &Tensor) {
        if let Some(m) = &self.memo {
            m.put(scope, key, tensor)
        }
    }

    /// Gives a finalising node (see [`Node::finalises`]) the run's record.
    pub fn with_run_record(mut self, record: RunRecord) -> Self {
        self.record = Some(record);
        self
    }

    /// The record of the run so far; `None` outside an engine run or for other nodes.
    pub fn run_record(&self) -> Option<serde_json::Value> {
        self.record.as_ref().map(|f| f())
    }

    /// A CPU context with no progress display.
    pub fn cpu() -> Self {
        Ctx::new(Device::Cpu, CancelToken::new(), Arc::new(NoProgress))
    }

    pub fn progress(&self, done: u64, total: u64, unit: &str) {
        self.sink.progress(done, total, unit)
    }

    pub fn warn(&self, message: &str) {
        self.sink.warn(message)
    }

    /// `Err(Cancelled)` once the run was cancelled; call between chunks of work.
    pub fn check_cancelled(&self) -> Result<(), NodeError> {
        if self.cancel.is_cancelled() {
            Err(NodeError::Cancelled)
        } else {
            Ok(())
        }
    }
}

thread_local! {
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, whose panics the caller turns into an error (a third-party decoder on damaged
/// data, a libtorch op out of memory); while it runs, [`panic_is_caught`] is true on this
/// thread, so that the process's panic hook does not print a "thread panicked" line above
/// the clear error the user gets.
pub fn catch_quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    let before = CATCHING.with(|c| c.replace(true));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(before));
    out
}

/// True inside [`catch_quietly`] on this thread: a panic here becomes an error.
pub fn panic_is_caught() -> bool {
    CATCHING.with(|c| c.get())
}
