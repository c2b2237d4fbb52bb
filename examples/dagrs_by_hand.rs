//! A vistaflow node used directly in a hand-built dagrs graph, without the engine: no YAML,
//! no cache. Shows that nodes are plain functions of (inputs, params) on a device.
//!
//!     cargo run --release --example dagrs_by_hand -- data/totalsegmentator/example_ct_sm.nii.gz out.nii.gz

use dagrs::{
    async_trait::async_trait, Action, Content, DefaultNode, EnvVar, Graph, InChannels, Node as _,
    NodeTable, OutChannels, Output,
};
use serde_json::json;
use std::sync::Arc;
use vistaflow_nodes::params::Params;
use vistaflow_nodes::{Ctx, Inputs, Node, Registry};

/// Runs one vistaflow node: receives its single input (if any) from the parent, sends outputs on.
struct RunNode {
    node: Arc<dyn Node>,
    params: Params,
    input_port: Option<&'static str>,
    parent: Option<dagrs::NodeId>,
}

#[async_trait]
impl Action for RunNode {
    async fn run(&self, inc: &mut InChannels, out: &mut OutChannels, _: Arc<EnvVar>) -> Output {
        let mut inputs = Inputs::new();
        if let (Some(port), Some(parent)) = (self.input_port, self.parent) {
            let Some(value) = inc
                .recv_from(&parent)
                .await
                .ok()
                .and_then(|c| c.into_inner::<vistaflow_nodes::Value>())
            else {
                return Output::execution_failed("no input");
            };
            inputs.insert(port.to_string(), (*value).clone());
        }
        let (node, params) = (self.node.clone(), self.params.clone());
        // Node work is blocking: keep it off the async workers.
        let result =
            tokio::task::spawn_blocking(move || node.run(&Ctx::cpu(), inputs, &params)).await;
        match result {
            Ok(Ok(outputs)) => {
                for v in outputs.into_values() {
                    out.broadcast(Content::new(v)).await;
                }
                Output::empty()
            }
            Ok(Err(e)) => Output::execution_failed(e.to_string()),
            Err(e) => Output::execution_failed(e.to_string()),
        }
    }
}

fn params(v: serde_json::Value) -> Params {
    v.as_object().cloned().unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (src, dst) = match &args[..] {
        [_, s, d] => (s.clone(), d.clone()),
        _ => return Err("usage: dagrs_by_hand IN.nii.gz OUT.nii.gz".into()),
    };
    let registry = Registry::builtin();
    let mut table = NodeTable::new();
    let load = DefaultNode::with_action(
        "load".into(),
        RunNode {
            node: registry.get("load_nifti").unwrap().clone(),
            params: params(json!({"path": src, "labels": false})),
            input_port: None,
            parent: None,
        },
        &mut table,
    );
    let load_id = load.id();
    let save = DefaultNode::with_action(
        "save".into(),
        RunNode {
            node: registry.get("save_nifti").unwrap().clone(),
            params: params(json!({"path": dst})),
            input_port: Some("image"),
            parent: Some(load_id),
        },
        &mut table,
    );
    let save_id = save.id();
    let mut graph = Graph::new();
    graph.add_node(load)?;
    graph.add_node(save)?;
    graph.add_edge(load_id, vec![save_id])?;
    graph.set_env(EnvVar::new(table));
    let report = graph.async_start().await?;
    println!(
        "dagrs: {} nodes succeeded, {} failed; wrote {dst}",
        report.node_succeeded, report.node_failed
    );
    Ok(())
}
