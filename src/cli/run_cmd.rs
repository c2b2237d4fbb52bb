//! `vistaflow run|validate|plan FILE`.

use super::{
    PlanArgs, RunArgs, WorkflowArgs, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_TERMINATED,
};
use crate::cache::Store;
use crate::exec::{
    self, CachePolicy, Decision, Devices, Engine, NodeStatus, RunOptions, RunReport,
};
use crate::telemetry::{Telemetry, TraceSink};
use crate::workflow::{self, DeviceSpec, Plan};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use vistaflow_nodes::Registry;

fn load(a: &WorkflowArgs) -> Result<Plan, i32> {
    workflow::load(&a.file, &a.vars(), &Registry::builtin()).map_err(|e| {
        eprintln!("{e}");
        EXIT_INVALID
    })
}

pub fn validate(a: WorkflowArgs) -> i32 {
    let plan = match load(&a) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    if let Err(e) = exec::check_devices(&Devices::probe(1), &plan, None) {
        eprintln!("error: {e}\n  --> {}", a.file.display());
        return EXIT_INVALID;
    }
    outln!("{}: ok ({} nodes)", a.file.display(), plan.nodes.len());
    0
}

fn open_store(plan: &Plan) -> Result<Arc<Store>, i32> {
    Store::open(&plan.settings.cache)
        .map(Arc::new)
        .map_err(|e| {
            eprintln!("error: cache {}: {e}", plan.settings.cache.display());
            EXIT_FAILED
        })
}

fn policy(c: &super::CacheFlags) -> CachePolicy {
    CachePolicy {
        no_cache: c.no_cache,
        refresh: c.refresh.clone(),
    }
}

pub fn plan(a: PlanArgs) -> i32 {
    let plan = match load(&a.workflow) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let store = match open_store(&plan) {
        Ok(s) => s,
        Err(c) => return c,
    };
    match exec::plan_decisions(&store, &plan, &policy(&a.cache)) {
        Ok((keys, decisions)) => {
            outln!(
                "{} ({} nodes, cache {})",
                plan.name,
                plan.nodes.len(),
                plan.settings.cache.display()
            );
            for (i, n) in plan.nodes.iter().enumerate() {
                let what = match &decisions[i] {
                    Decision::Cached => "cached".to_string(),
                    Decision::Run(why) => format!("to run ({why})"),
                };
                outln!(
                    "  {:<16} {:<14} {}  {}",
                    n.id,
                    n.kind(),
                    keys.node[i].short(12),
                    what
                );
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}

pub fn run(a: RunArgs) -> i32 {
    if a.cohort.cohort.is_some() || a.cohort.cohort_dir.is_some() {
        return super::cohort_cmd::run(a);
    }
    let plan = match load(&a.workflow) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let (engine, opts, runtime) = match engine_for(&a, &plan) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let telemetry = engine.telemetry.clone();
    let cancel = CancellationToken::new();
    let stopped_by = Arc::new(std::sync::atomic::AtomicI32::new(EXIT_INTERRUPTED));
    let result = runtime.block_on(async {
        tokio::spawn(interrupt_handler(cancel.clone(), stopped_by.clone()));
        exec::run(&engine, Arc::new(plan), &opts, cancel.clone()).await
    });
    telemetry.shutdown();
    match result {
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
        Ok(report) => {
            if !a.quiet {
                print_summary(&report);
            }
            if let Some((id, kind, cause)) = report.first_failure() {
                eprintln!("error: node `{id}` ({kind}) failed: {cause}");
                EXIT_FAILED
            } else if cancel.is_cancelled() {
                eprintln!("interrupted: the run was stopped; finished nodes are cached");
                stopped_by.load(std::sync::atomic::Ordering::SeqCst)
            } else {
                0
            }
        }
    }
}

/// The engine, run options and async runtime of `vistaflow run` for `plan` (its cache and
/// trace settings): shared by a single run and a cohort.
pub(super) fn engine_for(
    a: &RunArgs,
    plan: &Plan,
) -> Result<(Engine, RunOptions, tokio::runtime::Runtime), i32> {
    let device = match a.device.as_deref().map(|d| DeviceSpec::parse(d).ok_or(d)) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(d)) => {
            eprintln!("error: --device `{d}`: use auto, cpu, cuda or cuda:N");
            return Err(EXIT_INVALID);
        }
    };
    let sink = if a.no_trace {
        TraceSink::None
    } else if let Some(url) = &a.otlp {
        TraceSink::Otlp(url.clone())
    } else {
        TraceSink::File(a.trace.clone().unwrap_or_else(|| default_trace_path(plan)))
    };
    let telemetry = Telemetry::new(sink).map(Arc::new).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_INVALID
    })?;
    let engine = Engine {
        store: open_store(plan)?,
        devices: Arc::new(Devices::probe(1)),
        telemetry,
    };
    let opts = RunOptions {
        cache: policy(&a.cache),
        device,
        keep_going: a.keep_going,
        progress: !a.quiet,
        within: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            EXIT_FAILED
        })?;
    Ok((engine, opts, runtime))
}

/// The first Ctrl-C (SIGINT) or SIGTERM (a scheduler's or a `kill`'s stop) stops the run
/// cleanly: nodes are cancelled, their temporary files removed, finished nodes stay cached;
/// the exit code is 130 or 143. A second signal exits at once.
pub(super) async fn interrupt_handler(
    cancel: CancellationToken,
    stopped_by: Arc<std::sync::atomic::AtomicI32>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    let code = tokio::select! {
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => EXIT_INTERRUPTED,
            Err(_) => return,
        },
        _ = term.recv() => EXIT_TERMINATED,
    };
    stopped_by.store(code, std::sync::atomic::Ordering::SeqCst);
    let what = if code == EXIT_TERMINATED {
        "terminate (SIGTERM)"
    } else {
        "interrupt"
    };
    eprintln!("\n{what}: stopping nodes (again to exit at once)");
    cancel.cancel();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    std::process::exit(code);
}

/// `traces/` beside the cache folder (`.vistaflow/traces` by default).
fn default_trace_path(plan: &Plan) -> std::path::PathBuf {
    let dir = plan.settings.cache.parent().unwrap_or(Path::new("."));
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    dir.join("traces")
        .join(format!("{}-{secs}.jsonl", plan.name))
}

fn print_summary(r: &RunReport) {
    let count = |f: fn(&NodeStatus) -> bool| r.nodes.iter().filter(|n| f(&n.status)).count();
    outln!(
        "{}: {} ran, {} cached, {} failed in {:.2}s",
        r.name,
        count(|s| *s == NodeStatus::Ran),
        count(|s| matches!(s, NodeStatus::Cached | NodeStatus::NotNeeded)),
        count(|s| matches!(s, NodeStatus::Failed(_))),
        r.duration.as_secs_f64()
    );
    for n in &r.nodes {
        let status = match &n.status {
            NodeStatus::Ran => format!("ran ({})", n.reason),
            NodeStatus::Cached => "cached (loaded for a node that ran)".into(),
            NodeStatus::NotNeeded => "cached".into(),
            NodeStatus::Failed(_) => "FAILED".into(),
            NodeStatus::UpstreamFailed => "skipped (an input failed)".into(),
            NodeStatus::Cancelled => "cancelled".into(),
        };
        let timing = if n.status == NodeStatus::Ran {
            format!(
                "{:>8.2}s {:<7} {}",
                n.duration.as_secs_f64(),
                n.device,
                vistaflow_nodes::text::human_bytes(n.output_bytes)
            )
        } else {
            String::new()
        };
        outln!("  {:<16} {:<14} {:<28} {}", n.id, n.kind, status, timing);
    }
}
