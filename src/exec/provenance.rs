//! The run's provenance record, for `export` with `format: report`: enough to run the same
//! workflow again and to show that a result is the same (keys, digests, versions).
//! Digests, and the paths of files written: no value read from an image, and no path of a
//! file read (input folders are often named after the patient), ever goes in.

use super::decide::{digest_path, Decision};
use super::report::NodeStatus;
use super::run_state::Shared;
use crate::workflow::PlannedNode;
use serde_json::{json, Value as Json};
use vistaflow_nodes::params::ParamType;

/// The record as of now: every node with its params, key, input digests and, for nodes that
/// finished, status and timing.
pub fn record(sh: &Shared) -> Json {
    let plan = &sh.plan;
    let digests = sh.store.file_digests();
    let workflow_sha256 = digests
        .digest_file(&plan.file)
        .map(|d| d.hex())
        .unwrap_or_default();
    let nodes: Vec<Json> = plan
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let spec = n.node.spec();
            let report = sh.reports[i].lock().ok().and_then(|r| r.clone());
            let error = match report.as_ref().map(|r| &r.status) {
                Some(NodeStatus::Failed(msg)) => Some(msg.clone()),
                _ => None,
            };
            let (status, device, seconds) = match (&report, &sh.decisions[i]) {
                (Some(r), _) => (
                    status_name(&r.status),
                    r.device.clone(),
                    r.duration.as_secs_f64(),
                ),
                (None, Decision::Cached) => ("cached", String::new(), 0.0),
                (None, Decision::Run(_)) => ("running", String::new(), 0.0),
            };
            let sources: Vec<Json> = n
                .source_paths()
                .into_iter()
                .map(|(param, path)| {
                    // No path: input folders and files are often named after the patient.
                    let d = digest_path(&sh.store, &path).map(|d| d.hex()).ok();
                    json!({ "param": param, "sha256": d })
                })
                .collect();
            // Files written by nodes that have finished (this report's own file is not yet).
            let written: Vec<Json> = if status == "ran" || status == "cached" {
                n.written_paths()
                    .into_iter()
                    .map(|(param, path)| {
                        let d = digest_path(&sh.store, &path).map(|d| d.hex()).ok();
                        json!({ "param": param, "path": path, "sha256": d })
                    })
                    .collect()
            } else {
                vec![]
            };
            let inputs: Vec<Json> = n
                .inputs
                .iter()
                .map(|e| {
                    json!({
                        "port": e.port,
                        "from": format!("{}.{}", plan.nodes[e.from].id, e.from_port),
                        "value_id": sh.keys.output(e.from, &e.from_port).hex(),
                    })
                })
                .collect();
            let outputs: Vec<Json> = n
                .outputs
                .iter()
                .map(|o| json!({ "port": o.name, "value_id": sh.keys.output(i, o.name).hex() }))
                .collect();
            json!({
                "id": n.id,
                "kind": spec.kind,
                "version": spec.version,
                "params": without_input_paths(n),
                "key": sh.keys.node[i].hex(),
                "inputs": inputs,
                "outputs": outputs,
                "reads": sources,
                "writes": written,
                "status": status,
                "error": error,
                "device": device,
                "seconds": seconds,
            })
        })
        .collect();
    json!({
        "format": "vistaflow.report.v1",
        "workflow": { "name": plan.name, "file": plan.file, "sha256": workflow_sha256 },
        "software": software(),
        "created_unix_s": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "nodes": nodes,
        "how_to_check": "a node's outputs are identified by value_id = sha256(key, port) and its key \
                         covers kind, version, params, input value ids and the sha256 of every \
                         file it reads: equal keys mean the same computation on the same bytes",
    })
}

/// The software that made a result, for reports.
pub(crate) fn software() -> Json {
    json!({
        "vistaflow": env!("CARGO_PKG_VERSION"),
        "libtorch": option_env!("VISTAFLOW_LIBTORCH_VERSION").unwrap_or("unknown"),
        "cuda_available": tch::Cuda::is_available(),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

/// The node's params with the files it reads replaced by a pointer to `reads` (their sha256).
fn without_input_paths(n: &PlannedNode) -> Json {
    let mut params = n.params.clone();
    for p in n.node.spec().params.iter() {
        if p.ty == ParamType::InputPath {
            if let Some(v) = params.get_mut(p.name).filter(|v| v.is_string()) {
                *v = json!("<a file read: its sha256 is under `reads`>");
            }
        }
    }
    json!(params)
}

pub(crate) fn status_name(s: &NodeStatus) -> &'static str {
    match s {
        NodeStatus::Ran => "ran",
        NodeStatus::Cached | NodeStatus::NotNeeded => "cached",
        NodeStatus::Failed(_) => "failed",
        NodeStatus::UpstreamFailed => "upstream failed",
        NodeStatus::Cancelled => "cancelled",
    }
}
