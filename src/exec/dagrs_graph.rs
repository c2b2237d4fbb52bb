//! The one module that calls dagrs (its API breaks every release; see reference/dagrs.md).
//!
//! A run is handed over as [`Task`]s: each names the tasks it depends on and an async `work`
//! function that receives their results and returns its own. Every task always broadcasts a
//! result, failed or not, so a child never waits forever (trap 1); results travel on the
//! edges as `Arc`s (zero-copy fan-out) and nodes return `Output::empty()` so nothing large
//! stays in the graph (trap 5). Failure, timeout and cancellation are decided inside `work`
//! by the engine, which is why no dagrs retry or error path is used (traps 2-4).

use dagrs::{
    async_trait::async_trait, Action, Content, DefaultNode, EnvVar, Graph, InChannels, Node,
    NodeId, NodeTable, OutChannels, Output,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// A boxed future returned by a task's work.
pub type WorkFuture<T> = Pin<Box<dyn Future<Output = Arc<T>> + Send>>;

/// The work of one task: gets each dependency's result (`None` if it never arrived).
pub type Work<T> = Box<dyn FnOnce(Vec<Option<Arc<T>>>) -> WorkFuture<T> + Send>;

/// One unit of the graph.
pub struct Task<T> {
    pub name: String,
    /// Indices of the tasks whose results this one needs, in the order `work` receives them.
    pub deps: Vec<usize>,
    pub work: Work<T>,
}

struct TaskAction<T> {
    deps: Vec<NodeId>,
    work: Mutex<Option<Work<T>>>,
}

#[async_trait]
impl<T: Send + Sync + 'static> Action for TaskAction<T> {
    async fn run(
        &self,
        inputs: &mut InChannels,
        outputs: &mut OutChannels,
        _env: Arc<EnvVar>,
    ) -> Output {
        let mut got = Vec::with_capacity(self.deps.len());
        for id in &self.deps {
            // A closed channel (a parent that died) arrives as None; `work` decides what it means.
            got.push(
                inputs
                    .recv_from(id)
                    .await
                    .ok()
                    .and_then(|c| c.into_inner::<T>()),
            );
        }
        let work = self.work.lock().ok().and_then(|mut w| w.take());
        if let Some(work) = work {
            let result = work(got).await;
            outputs.broadcast(Content::from_arc(result)).await;
        }
        Output::empty()
    }
}

/// Why the graph itself could not run (not a node failure: those are in the task results).
#[derive(Debug, thiserror::Error)]
#[error("workflow graph: {0}")]
pub struct GraphError(String);

/// Runs the tasks on dagrs, independent ones concurrently; returns when all have finished.
pub async fn run<T: Send + Sync + 'static>(tasks: Vec<Task<T>>) -> Result<(), GraphError> {
    if tasks.is_empty() {
        return Ok(());
    }
    let mut table = NodeTable::new();
    let mut graph = Graph::new();
    let mut ids: Vec<NodeId> = Vec::with_capacity(tasks.len());
    let mut edges = vec![];
    for (i, task) in tasks.into_iter().enumerate() {
        // Tasks come producers first, so every dependency already has its id.
        if let Some(&bad) = task.deps.iter().find(|&&d| d >= i) {
            return Err(GraphError(format!(
                "task `{}` depends on a later task ({bad})",
                task.name
            )));
        }
        let deps: Vec<NodeId> = task.deps.iter().map(|&d| ids[d]).collect();
        let action = TaskAction {
            deps: deps.clone(),
            work: Mutex::new(Some(task.work)),
        };
        let node = DefaultNode::with_action(task.name.clone(), action, &mut table);
        let id = node.id();
        ids.push(id);
        edges.extend(deps.into_iter().map(|d| (d, id)));
        graph
            .add_node(node)
            .map_err(|e| GraphError(e.to_string()))?;
    }
    for (from, to) in edges {
        graph
            .add_edge(from, vec![to])
            .map_err(|e| GraphError(e.to_string()))?;
    }
    graph.set_env(EnvVar::new(table));
    graph
        .async_start()
        .await
        .map_err(|e| GraphError(e.to_string()))?;
    Ok(())
}
