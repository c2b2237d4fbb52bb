//! Running one node: gather inputs, hold a device, run off the async workers with a timeout
//! and the run's cancellation, fall back to the CPU on GPU out-of-memory, store the outputs.

use super::decide::{digest_path, WrittenFile, WrittenFiles};
use super::report::NodeStatus;
use super::run_state::Shared;
use crate::cache::{ComputeLock, EntryInfo, Lookup};
use crate::progress::NodeLine;
use crate::telemetry::SpanHandle;
use crate::workflow::{DeviceSpec, PlannedNode};
use opentelemetry::KeyValue;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tch::Device;
use vistaflow_nodes::node::Compute;
use vistaflow_nodes::{Ctx, Inputs, NodeError, Outputs, ProgressSink, Value};

/// What a node hands its consumers: its outputs, or the fact that it produced none.
pub type NodeResult = Result<Arc<Outputs>, Upstream>;

/// A producer failed, was cancelled or was skipped.
#[derive(Debug)]
pub struct Upstream;

/// Runs node `i`; `from_producers` holds the results of the producers that ran in this run.
pub async fn run_node(
    sh: Arc<Shared>,
    i: usize,
    from_producers: HashMap<usize, Option<Arc<NodeResult>>>,
) -> NodeResult {
    let n = &sh.plan.nodes[i];
    let finaliser = n.node.finalises(&n.params);
    let Some(inputs) = gather_inputs(&sh, n, &from_producers, finaliser) else {
        sh.record(i, NodeStatus::UpstreamFailed, "", Duration::ZERO, 0);
        return Err(Upstream);
    };
    // A failure elsewhere or Ctrl-C stops the run, but the run's report is still written: it
    // records what ran, what failed and what was cancelled (it takes milliseconds).
    if sh.cancel.is_cancelled() && !finaliser {
        sh.record(i, NodeStatus::Cancelled, "", Duration::ZERO, 0);
        return Err(Upstream);
    }
    let span = sh.telemetry.span(
        "vistaflow.node",
        Some(&sh.run_span),
        vec![
            KeyValue::new("vistaflow.node.id", n.id.clone()),
            KeyValue::new("vistaflow.node.kind", n.kind()),
            KeyValue::new("vistaflow.node.key", sh.keys.node[i].short(16)),
        ],
    );
    // Set when the node ends: `hit` when another process computed it meanwhile.
    let computed = KeyValue::new(
        "vistaflow.cache",
        if sh.write_cache && n.cache {
            "miss"
        } else {
            "off"
        },
    );
    let started = Instant::now();
    let line = Arc::new(sh.display.start(&n.id, n.kind()));
    let outcome = execute(&sh, i, inputs, &span, &line).await;
    line.finish();
    let elapsed = started.elapsed();
    match outcome {
        Ok(Executed::Elsewhere(outputs)) => {
            // Another process computed it while this one waited: taken from the cache.
            span.set(vec![
                KeyValue::new("vistaflow.cache", "hit"),
                KeyValue::new("vistaflow.cache.waited_ms", elapsed.as_millis() as i64),
            ]);
            span.end(None);
            sh.record(i, NodeStatus::Cached, "", elapsed, 0);
            Ok(Arc::new(outputs))
        }
        Ok(Executed::Here(outputs, device)) => {
            let bytes: u64 = outputs.values().map(Value::nbytes).sum();
            let voxels: i64 = outputs.values().map(Value::voxels).sum();
            span.set(vec![
                computed,
                KeyValue::new("vistaflow.device", device.clone()),
                KeyValue::new("vistaflow.duration_ms", elapsed.as_millis() as i64),
                KeyValue::new("vistaflow.output_bytes", bytes as i64),
                KeyValue::new("vistaflow.voxels", voxels),
            ]);
            span.end(None);
            sh.record(i, NodeStatus::Ran, &device, elapsed, bytes);
            Ok(Arc::new(outputs))
        }
        Err(err) => {
            let cancelled = matches!(err, NodeError::Cancelled);
            span.set(vec![computed]);
            span.end(Some(redact(&err.to_string(), n)));
            let status = if cancelled {
                NodeStatus::Cancelled
            } else {
                NodeStatus::Failed(err.to_string())
            };
            if !cancelled {
                sh.note_failure(i);
            }
            sh.record(i, status, "", elapsed, 0);
            Err(Upstream)
        }
    }
}

/// The node's inputs; `None` when a producer failed, except that a finaliser (`partial`)
/// runs with the inputs it can get.
fn gather_inputs(
    sh: &Shared,
    n: &PlannedNode,
    from_producers: &HashMap<usize, Option<Arc<NodeResult>>>,
    partial: bool,
) -> Option<Inputs> {
    let mut inputs = Inputs::new();
    for e in &n.inputs {
        let v = match from_producers.get(&e.from) {
            Some(Some(r)) => r
                .as_ref()
                .as_ref()
                .ok()
                .and_then(|o| o.get(&e.from_port))
                .cloned(),
            Some(None) => None,
            None => sh.preloaded.get(&(e.from, e.from_port.clone())).cloned(),
        };
        match v {
            Some(v) => {
                inputs.insert(e.port.clone(), v);
            }
            None if partial => {}
            None => return None,
        }
    }
    Some(inputs)
}

/// Resolves when the run is cancelled as node `i` sees it: never for a finaliser, which
/// only writes the run's record and must do so after a failure.
async fn run_cancelled(sh: &Shared, i: usize) {
    let n = &sh.plan.nodes[i];
    if n.node.finalises(&n.params) {
        std::future::pending::<()>().await
    } else {
        sh.cancel.cancelled().await
    }
}

/// How a node's outputs came to be.
enum Executed {
    /// Computed here, on this device.
    Here(Outputs, String),
    /// Computed by another process sharing the cache, while this one waited for it.
    Elsewhere(Outputs),
}

/// Runs the node (again on the CPU after a GPU out-of-memory when it allows), checks and
/// stores its outputs. A node another process is computing is waited for and taken from the
/// cache.
async fn execute(
    sh: &Arc<Shared>,
    i: usize,
    inputs: Inputs,
    span: &SpanHandle,
    line: &Arc<NodeLine>,
) -> Result<Executed, NodeError> {
    let n = &sh.plan.nodes[i];
    let compute_lock =
        if sh.decisions[i].for_missing_entries() && sh.write_cache && !n.outputs.is_empty() {
            match claim(sh, i, line).await? {
                Claim::Done(outputs) => return Ok(Executed::Elsewhere(outputs)),
                Claim::Mine(lock) => Some(lock),
            }
        } else {
            None
        };
    let spec = match n.node.spec().compute {
        Compute::Gpu => sh.device_override.unwrap_or(n.device),
        Compute::Cpu => DeviceSpec::Cpu,
    };
    let asked = Instant::now();
    let lease = tokio::select! {
        l = sh.devices.acquire(spec, n.node.spec().compute == Compute::Gpu) => l.map_err(|e| NodeError::Invalid(e.to_string()))?,
        _ = run_cancelled(sh, i) => return Err(NodeError::Cancelled),
    };
    if let Device::Cuda(_) = lease.device {
        // When the node got its GPU slot: the span's start counts the wait for it.
        span.event(
            "vistaflow.device.acquired",
            vec![
                KeyValue::new("device", device_name(lease.device)),
                KeyValue::new("waited_ms", asked.elapsed().as_millis() as i64),
            ],
        );
    }
    let mut device = lease.device;
    let first = attempt(sh, i, device, inputs.clone(), line).await;
    drop(lease);
    let outputs = match first {
        Err(NodeError::OutOfMemory { msg, .. })
            if fallback_to_cpu(device, n.node.spec().compute) =>
        {
            span.event(
                "vistaflow.fallback",
                vec![
                    KeyValue::new("from", device_name(device)),
                    KeyValue::new("to", "cpu"),
                    KeyValue::new("reason", msg.clone()),
                ],
            );
            sh.display.println(&format!(
                "warning: node `{}` ran out of GPU memory; running it again on the CPU",
                n.id
            ));
            device = Device::Cpu;
            attempt(sh, i, device, inputs, line).await?
        }
        other => other?,
    };
    check_outputs(n, &outputs)?;
    if sh.write_cache && n.cache {
        // Consumers start at once; the cache write overlaps their work and the run waits
        // for it before it ends.
        let (sh2, outs) = (sh.clone(), outputs.clone());
        let handle = tokio::spawn(async move {
            store_outputs(&sh2, i, &outs).await;
            // Waiters elsewhere find the entries once this goes.
            drop(compute_lock);
        });
        if let Ok(mut pending) = sh.pending_stores.lock() {
            pending.push(handle);
        }
    }
    Ok(Executed::Here(outputs, device_name(device)))
}

enum Claim {
    /// This process computes the node, holding the lock until its outputs are stored.
    Mine(ComputeLock),
    /// Another process computed it meanwhile: its outputs, from the cache.
    Done(Outputs),
}

/// Takes the node's compute lock, waiting while another process holds it (two runs of one
/// workflow on one cache compute each node once); then takes the outputs from the cache when
/// they are there by now. A cache that cannot be locked leaves the node to compute.
async fn claim(sh: &Arc<Shared>, i: usize, line: &Arc<NodeLine>) -> Result<Claim, NodeError> {
    let key = sh.keys.node[i];
    let mut waited = false;
    let lock = loop {
        let (store, k) = (sh.store.clone(), key);
        let tried = tokio::task::spawn_blocking(move || store.try_compute_lock(&k))
            .await
            .map_err(|e| NodeError::Invalid(e.to_string()))?;
        match tried {
            Ok(Some(lock)) => break lock,
            Ok(None) => {}
            Err(e) => {
                sh.display
                    .println(&format!("warning: cannot lock the cache for a node: {e}"));
                return Err(NodeError::Invalid(e.to_string()));
            }
        }
        if !waited {
            waited = true;
            line.status("waiting for another process computing this node");
            // Also a line in the log: a job stalled on another host's lock says so.
            sh.display.println(&format!(
                "node `{}`: another run sharing the cache (a subject of this cohort, another \
                 process or another host) is computing it; waiting to take its outputs from the \
                 cache",
                sh.plan.nodes[i].id
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = run_cancelled(sh, i) => return Err(NodeError::Cancelled),
        }
    };
    // Planned to run, but another process may have stored it since: one stat per output.
    let n = &sh.plan.nodes[i];
    let stored = n
        .outputs
        .iter()
        .all(|p| sh.store.contains(&sh.keys.output(i, p.name)));
    if !stored {
        return Ok(Claim::Mine(lock));
    }
    let mut outputs = Outputs::new();
    for port in &n.outputs {
        let (store, id, ty) = (sh.store.clone(), sh.keys.output(i, port.name), port.ty);
        let got = tokio::task::spawn_blocking(move || store.get(&id, ty))
            .await
            .map_err(|e| NodeError::Invalid(e.to_string()))?;
        match got {
            Ok(Lookup::Hit(v)) => {
                outputs.insert(port.name.to_string(), v);
            }
            // The other process failed or was stopped: compute it here.
            _ => return Ok(Claim::Mine(lock)),
        }
    }
    Ok(Claim::Done(outputs))
}

/// One try on one device, off the async workers, bounded by the node's timeout.
async fn attempt(
    sh: &Arc<Shared>,
    i: usize,
    device: Device,
    inputs: Inputs,
    line: &Arc<NodeLine>,
) -> Result<Outputs, NodeError> {
    let n = sh.plan.nodes[i].clone();
    let token = sh.tokens[i].clone();
    let sink: Arc<dyn ProgressSink> = Arc::new(NodeSink {
        sh: sh.clone(),
        i,
        line: line.clone(),
    });
    let mut ctx = Ctx::new(device, token.clone(), sink);
    if n.node.finalises(&n.params) {
        let sh = sh.clone();
        ctx = ctx.with_run_record(Arc::new(move || super::provenance::record(&sh)));
    }
    if sh.write_cache && n.cache {
        ctx = ctx.with_memo(Arc::new(super::memo::StoreMemo::of(sh, i)));
    }
    let timeout = n.timeout;
    let job = tokio::task::spawn_blocking(move || {
        let inputs: Inputs = inputs
            .into_iter()
            .map(|(k, v)| (k, to_device(v, device)))
            .collect();
        n.node.run(&ctx, inputs, &n.params)
    });
    tokio::select! {
        r = tokio::time::timeout(timeout, job) => match r {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(match join.try_into_panic() {
                // A CUDA out of memory in a panicking tch op still lets the node fall back.
                Ok(p) => NodeError::from_panic("node panicked", &*p),
                Err(e) => NodeError::Invalid(format!("node panicked: {e}")),
            }),
            Err(_) => {
                token.cancel();
                Err(NodeError::Invalid(format!(
                    "timed out after {} (set `timeout:` on the node or in settings to allow longer)",
                    humantime::format_duration(timeout)
                )))
            }
        },
        _ = run_cancelled(sh, i) => {
            token.cancel();
            Err(NodeError::Cancelled)
        }
    }
}

/// Whether an out-of-memory error on `device` is retried on the CPU.
fn fallback_to_cpu(device: Device, compute: Compute) -> bool {
    device != Device::Cpu && compute == Compute::Gpu
}

fn to_device(v: Value, device: Device) -> Value {
    if v.as_volume().is_none_or(|vol| vol.device() == device) {
        return v;
    }
    match v {
        Value::Image(vol) => Value::Image(vol.to_device(device)),
        Value::Labels(mut l) => {
            l.volume = l.volume.to_device(device);
            Value::Labels(l)
        }
        other @ (Value::Table(_) | Value::Model(_)) => other,
    }
}

/// A node must return exactly the outputs it declared, with their types.
fn check_outputs(n: &PlannedNode, outputs: &Outputs) -> Result<(), NodeError> {
    for o in &n.outputs {
        match outputs.get(o.name) {
            Some(v) if v.port_type() == o.ty => {}
            Some(v) => {
                return Err(NodeError::Invalid(format!(
                    "bug in node kind `{}`: output `{}` is {} but declared {}",
                    n.kind(),
                    o.name,
                    v.port_type(),
                    o.ty
                )))
            }
            None => {
                return Err(NodeError::Invalid(format!(
                    "bug in node kind `{}`: declared output `{}` missing",
                    n.kind(),
                    o.name
                )))
            }
        }
    }
    Ok(())
}

/// Stores outputs and the digests of written files. A failed write (e.g. a full disk) is a
/// warning: the run's results are still right, only the next run cannot reuse them.
async fn store_outputs(sh: &Arc<Shared>, i: usize, outputs: &Outputs) {
    let n = &sh.plan.nodes[i];
    let key = sh.keys.node[i];
    let items: Vec<(String, Value)> = outputs
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let written = n.written_paths();
    let (store, keys, id, kind) = (sh.store.clone(), sh.keys.clone(), n.id.clone(), n.kind());
    let result = tokio::task::spawn_blocking(move || -> Result<(), String> {
        for (port, value) in &items {
            let info = EntryInfo {
                key,
                kind: kind.to_string(),
                node: id.clone(),
                port: port.clone(),
            };
            store
                .put(&keys.output(i, port), &info, value)
                .map_err(|e| e.to_string())?;
        }
        if !written.is_empty() {
            let mut files = vec![];
            for (param, path) in written {
                let d =
                    digest_path(&store, &path).map_err(|e| format!("{}: {e}", path.display()))?;
                files.push(WrittenFile {
                    param: param.to_string(),
                    path,
                    sha256: d.hex(),
                });
            }
            let record = serde_json::to_value(WrittenFiles { files }).map_err(|e| e.to_string())?;
            store.put_record(&key, &record).map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .await;
    let err = match result {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(e) => e.to_string(),
    };
    sh.display.println(&format!("warning: node `{}`: could not write its cache entry ({err}); the next run will compute it again", n.id));
}

pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Replaces the node's file paths in a message, so spans never carry patient-named paths.
fn redact(msg: &str, n: &PlannedNode) -> String {
    let mut out = msg.to_string();
    for (param, path) in n.source_paths().into_iter().chain(n.written_paths()) {
        out = redact_path(&out, &path.to_string_lossy(), &format!("<{param}>"));
    }
    out
}

/// `path` in `msg` becomes `name`, and so does anything below it: a file inside an input
/// folder (`<path>/DOE_JOHN_003.dcm: ...`) keeps no name, as file names inside a DICOM
/// export often carry the patient's.
fn redact_path(msg: &str, path: &str, name: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(i) = rest.find(path) {
        out.push_str(&rest[..i]);
        out.push_str(name);
        rest = &rest[i + path.len()..];
        if let Some(below) = rest.strip_prefix('/') {
            // The file's name runs to the message's next `: ` or the end of the line.
            let end = below
                .find(": ")
                .into_iter()
                .chain(below.find('\n'))
                .min()
                .unwrap_or(below.len());
            out.push_str("/<file>");
            rest = &below[end..];
        }
    }
    out.push_str(rest);
    out
}

/// A node's progress and warnings: its terminal line and its span.
struct NodeSink {
    sh: Arc<Shared>,
    i: usize,
    line: Arc<NodeLine>,
}

impl ProgressSink for NodeSink {
    fn progress(&self, done: u64, total: u64, unit: &str) {
        self.line.progress(done, total, unit);
    }
    fn warn(&self, message: &str) {
        let n = &self.sh.plan.nodes[self.i];
        self.sh.display.println(&format!(
            "warning: node `{}` ({}): {message}",
            n.id,
            n.kind()
        ));
        self.sh.run_span.event(
            "vistaflow.warning",
            vec![
                KeyValue::new("vistaflow.node.id", n.id.clone()),
                KeyValue::new("message", redact(message, n)),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gpu_oom_with_a_declared_fallback_goes_to_cpu() {
        assert!(fallback_to_cpu(Device::Cuda(0), Compute::Gpu));
        assert!(!fallback_to_cpu(Device::Cuda(1), Compute::Cpu));
        assert!(
            !fallback_to_cpu(Device::Cpu, Compute::Gpu),
            "no retry on the device that failed"
        );
    }

    #[test]
    fn torch_oom_is_recognised() {
        let e: NodeError =
            tch::TchError::Torch("CUDA out of memory. Tried to allocate 2.00 GiB".into()).into();
        assert!(matches!(e, NodeError::OutOfMemory { .. }));
        let e: NodeError = tch::TchError::Torch("shape mismatch".into()).into();
        assert!(matches!(e, NodeError::Torch(_)));
    }

    #[test]
    fn redaction_hides_paths() {
        let plan = crate::workflow::load_str(
            std::path::Path::new("/w/wf.yaml"),
            "version: 1\nnodes:\n  ct: { kind: load_nifti, params: { path: DOE_JOHN/ct.nii } }\n",
            &Default::default(),
            &vistaflow_nodes::Registry::builtin(),
        )
        .unwrap();
        let msg = redact("/w/DOE_JOHN/ct.nii: truncated file", &plan.nodes[0]);
        assert_eq!(msg, "<path>: truncated file");
        // Files inside an input folder lose their names too.
        let msg = redact_path(
            "skipped an unreadable DICOM file: /w/DOE_JOHN/DOE_JOHN 003.dcm: truncated\nnext",
            "/w/DOE_JOHN",
            "<path>",
        );
        assert_eq!(
            msg,
            "skipped an unreadable DICOM file: <path>/<file>: truncated\nnext"
        );
    }
}
