//! A run: keys -> decisions -> cached inputs loaded -> the rest on dagrs -> a report.

use super::dagrs_graph::{self, Task, WorkFuture};
use super::decide::{decide, CachePolicy, Decision, UnknownNode, ENTRY_LOST};
use super::devices::{DeviceError, Devices};
use super::keys::{self, Keys, SourceError};
use super::node_task::{run_node, NodeResult};
use super::report::{NodeReport, NodeStatus, RunReport};
use super::run_state::Shared;
use crate::cache::{CacheError, Lookup, Store};
use crate::progress::Display;
use crate::telemetry::{SpanHandle, Telemetry};
use crate::workflow::{DeviceSpec, Plan};
use opentelemetry::KeyValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use vistaflow_nodes::{CancelToken, Value};

/// How to run a plan.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub cache: CachePolicy,
    /// Overrides every node's device.
    pub device: Option<DeviceSpec>,
    /// Let independent branches finish after a failure (default: stop at the first).
    pub keep_going: bool,
    /// Draw progress bars (only on a terminal).
    pub progress: bool,
    /// Show the nodes on this line (a cohort subject's) instead of lines of their own.
    pub within: Option<crate::progress::NodeLine>,
}

/// Why a run did not get to run its nodes, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("node `{node}`: {source}")]
    Device { node: String, source: DeviceError },
    #[error(transparent)]
    UnknownNode(#[from] UnknownNode),
    #[error(transparent)]
    Graph(#[from] dagrs_graph::GraphError),
    #[error("internal: {0}")]
    Internal(String),
}

/// Everything a run needs from outside: where the cache is, the devices, the tracer.
pub struct Engine {
    pub store: Arc<Store>,
    pub devices: Arc<Devices>,
    pub telemetry: Arc<Telemetry>,
}

/// Computes the keys and what each node will do, without running anything.
pub fn plan_decisions(
    store: &Store,
    plan: &Plan,
    policy: &CachePolicy,
) -> Result<(Keys, Vec<Decision>), RunError> {
    let digests = store.file_digests();
    let keys = keys::compute(plan, |p| {
        if p.is_dir() {
            digests.digest_dir(p)
        } else {
            digests.digest_file(p)
        }
    })?;
    let decisions = decide(plan, &keys, store, policy)?;
    Ok((keys, decisions))
}

/// Runs `plan`. Node failures are in the report (`first_failure`); `Err` means the run could
/// not start or the engine itself failed. `cancel` stops the run (Ctrl-C).
pub async fn run(
    engine: &Engine,
    plan: Arc<Plan>,
    opts: &RunOptions,
    cancel: CancellationToken,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let run_span = engine.telemetry.span(
        "vistaflow.run",
        None,
        vec![
            KeyValue::new("vistaflow.workflow", plan.name.clone()),
            KeyValue::new("vistaflow.nodes", plan.nodes.len() as i64),
        ],
    );
    check_devices(&engine.devices, &plan, opts.device)?;
    let (keys, mut decisions) = {
        let (policy, plan, store) = (opts.cache.clone(), plan.clone(), engine.store.clone());
        tokio::task::spawn_blocking(move || plan_decisions(&store, &plan, &policy))
            .await
            .map_err(|e| RunError::Internal(e.to_string()))??
    };
    let (preloaded, load_times) = load_cached_inputs(engine, &plan, &keys, &mut decisions).await?;
    cached_spans(engine, &plan, &keys, &decisions, &load_times, &run_span);

    let reports: Vec<Mutex<Option<NodeReport>>> =
        plan.nodes.iter().map(|_| Mutex::new(None)).collect();
    let tokens: Vec<CancelToken> = plan.nodes.iter().map(|_| CancelToken::new()).collect();
    let shared = Arc::new(Shared {
        plan: plan.clone(),
        keys: keys.clone(),
        decisions: decisions.clone(),
        preloaded,
        store: engine.store.clone(),
        devices: engine.devices.clone(),
        telemetry: engine.telemetry.clone(),
        run_span: run_span.clone(),
        display: Display::new(opts.progress, opts.within.clone()),
        cancel: cancel.clone(),
        tokens: tokens.clone(),
        device_override: opts.device,
        write_cache: !opts.cache.no_cache,
        keep_going: opts.keep_going,
        reports,
        first_failed: Mutex::new(None),
        pending_stores: Mutex::new(vec![]),
    });

    // Ctrl-C (or a failure without --keep-going) reaches nodes through their tokens.
    let watcher = {
        let (cancel, tokens) = (cancel.clone(), tokens.clone());
        tokio::spawn(async move {
            cancel.cancelled().await;
            tokens.iter().for_each(CancelToken::cancel);
        })
    };

    let finalises = |i: usize| plan.nodes[i].node.finalises(&plan.nodes[i].params);
    let mut to_run: Vec<usize> = (0..plan.nodes.len())
        .filter(|&i| decisions[i].runs())
        .collect();
    // Finalisers last (a stable sort keeps producers before consumers in each group).
    to_run.sort_by_key(|&i| finalises(i));
    let task_of: HashMap<usize, usize> = to_run.iter().enumerate().map(|(t, &i)| (i, t)).collect();
    let tasks: Vec<Task<NodeResult>> = to_run
        .iter()
        .map(|&i| {
            let mut producers: Vec<usize> = plan.nodes[i]
                .inputs
                .iter()
                .filter_map(|e| task_of.get(&e.from).map(|_| e.from))
                .collect();
            producers.sort_unstable();
            producers.dedup();
            let mut deps: Vec<usize> = producers.iter().map(|p| task_of[p]).collect();
            // A finaliser (the run's report) waits for every other node; its producers'
            // results come first in `deps`, the rest only order it.
            if finalises(i) {
                deps.extend(
                    to_run
                        .iter()
                        .filter(|&&j| !finalises(j) && !producers.contains(&j))
                        .map(|j| task_of[j]),
                );
            }
            let sh = shared.clone();
            Task {
                name: plan.nodes[i].id.clone(),
                deps,
                work: Box::new(move |results| -> WorkFuture<NodeResult> {
                    Box::pin(async move {
                        let by_producer = producers.into_iter().zip(results).collect();
                        Arc::new(run_node(sh, i, by_producer).await)
                    })
                }),
            }
        })
        .collect();
    let graph_result = dagrs_graph::run(tasks).await;
    watcher.abort();
    let pending = std::mem::take(
        &mut *shared
            .pending_stores
            .lock()
            .map_err(|_| RunError::Internal("poisoned".into()))?,
    );
    for store in pending {
        let _ = store.await;
    }

    let first_failed = *shared
        .first_failed
        .lock()
        .map_err(|_| RunError::Internal("poisoned".into()))?;
    let nodes = plan
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let taken = shared.reports[i].lock().ok().and_then(|mut r| r.take());
            taken.unwrap_or_else(|| NodeReport {
                id: n.id.clone(),
                kind: n.kind(),
                key: keys.node[i],
                status: match &decisions[i] {
                    Decision::Cached if shared.preloaded.keys().any(|(p, _)| *p == i) => {
                        NodeStatus::Cached
                    }
                    Decision::Cached => NodeStatus::NotNeeded,
                    Decision::Run(_) if cancel.is_cancelled() => NodeStatus::Cancelled,
                    Decision::Run(_) => NodeStatus::UpstreamFailed,
                },
                device: String::new(),
                duration: Duration::ZERO,
                output_bytes: 0,
                reason: String::new(),
            })
        })
        .collect();
    let report = RunReport {
        name: plan.name.clone(),
        nodes,
        duration: started.elapsed(),
        first_failed,
    };
    let failure = report
        .first_failure()
        .map(|(id, kind, _)| format!("node `{id}` ({kind}) failed"));
    run_span.set(vec![
        KeyValue::new("vistaflow.ran", report.ran().len() as i64),
        KeyValue::new("vistaflow.cached", report.cached().len() as i64),
    ]);
    run_span.end(failure);
    graph_result?;
    Ok(report)
}

/// Loads the cached outputs that nodes about to run need. A corrupt entry is a logged miss:
/// its producer is switched to run, which may need its own inputs, so repeat until stable.
/// The cached outputs that nodes about to run need, and how long loading each node's took.
type Preloaded = (HashMap<(usize, String), Value>, HashMap<usize, Duration>);

async fn load_cached_inputs(
    engine: &Engine,
    plan: &Arc<Plan>,
    keys: &Keys,
    decisions: &mut [Decision],
) -> Result<Preloaded, RunError> {
    let mut loaded: HashMap<(usize, String), Value> = HashMap::new();
    let mut times: HashMap<usize, Duration> = HashMap::new();
    loop {
        let mut corrupt = false;
        let wanted: Vec<(usize, String, vistaflow_nodes::PortType)> = plan
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| decisions[*i].runs())
            .flat_map(|(_, n)| n.inputs.iter())
            .filter(|e| {
                !decisions[e.from].runs() && !loaded.contains_key(&(e.from, e.from_port.clone()))
            })
            .map(|e| (e.from, e.from_port.clone(), e.ty))
            .collect();
        for (from, port, ty) in wanted {
            if loaded.contains_key(&(from, port.clone())) {
                continue;
            }
            let id = keys.output(from, &port);
            let store = engine.store.clone();
            let started = Instant::now();
            let lookup = tokio::task::spawn_blocking(move || store.get(&id, ty))
                .await
                .map_err(|e| RunError::Internal(e.to_string()))??;
            *times.entry(from).or_default() += started.elapsed();
            match lookup {
                Lookup::Hit(v) => {
                    loaded.insert((from, port), v);
                }
                Lookup::Miss | Lookup::Corrupt(_) => {
                    if let Lookup::Corrupt(why) = &lookup {
                        eprintln!(
                            "warning: cache entry for `{}.{port}` was corrupt ({why}); it was removed and `{}` runs again",
                            plan.nodes[from].id, plan.nodes[from].id
                        );
                    }
                    decisions[from] = Decision::Run(ENTRY_LOST.into());
                    loaded.retain(|(p, _), _| *p != from);
                    corrupt = true;
                }
            }
        }
        if !corrupt {
            return Ok((loaded, times));
        }
    }
}

/// Every node's device (or `over`, from `--device`) against this machine: a GPU the machine
/// lacks is refused before anything runs (also by `vistaflow validate`).
pub fn check_devices(
    devices: &Devices,
    plan: &Plan,
    over: Option<DeviceSpec>,
) -> Result<(), RunError> {
    for n in &plan.nodes {
        devices
            .check(over.unwrap_or(n.device))
            .map_err(|source| RunError::Device {
                node: n.id.clone(),
                source,
            })?;
    }
    Ok(())
}

/// One span per node taken from the cache, as for the nodes that run: `vistaflow.cache` is
/// `hit`, the duration is what loading its outputs took (0 when no node needed them).
fn cached_spans(
    engine: &Engine,
    plan: &Plan,
    keys: &Keys,
    decisions: &[Decision],
    load_times: &HashMap<usize, Duration>,
    run_span: &SpanHandle,
) {
    for (i, n) in plan.nodes.iter().enumerate() {
        if decisions[i].runs() {
            continue;
        }
        let took = load_times.get(&i).copied();
        let span = engine.telemetry.span(
            "vistaflow.node",
            Some(run_span),
            vec![
                KeyValue::new("vistaflow.node.id", n.id.clone()),
                KeyValue::new("vistaflow.node.kind", n.kind()),
                KeyValue::new("vistaflow.node.key", keys.node[i].short(16)),
                KeyValue::new("vistaflow.cache", "hit"),
                KeyValue::new("vistaflow.cache.loaded", took.is_some()),
                KeyValue::new(
                    "vistaflow.duration_ms",
                    took.unwrap_or_default().as_millis() as i64,
                ),
            ],
        );
        span.end(None);
    }
}
