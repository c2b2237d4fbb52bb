//! Runs a cohort's subjects in one process: one engine (one cache, one set of loaded
//! networks, the device slots), `jobs` subjects at a time. A failing subject is recorded and
//! the others go on, unless `fail_fast`.

use super::manifest::Subject;
use super::prepare::Prepared;
use super::record::{self, Record, Status, TableOf};
use crate::cache::Lookup;
use crate::exec::{self, keys, Engine, RunOptions};
use crate::progress::CohortDisplay;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use vistaflow_nodes::{PortType, Value};

pub struct CohortOptions {
    pub jobs: usize,
    pub fail_fast: bool,
    pub run: RunOptions,
    /// Where subject records go (`RESULTS/subjects/ID.json`).
    pub results: PathBuf,
    pub progress: bool,
}

/// The default `--jobs`: the cores, but at most one subject per 4 GiB of memory (a CT
/// volume, its resampled copies and the network's activations), at least 1.
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(4, |kib| kib / (1 << 20));
    cores.min((mem_gib / 4) as usize).max(1)
}

/// Runs every ready subject and writes each one's record (invalid ones too). Returns the
/// records in manifest order.
pub async fn run_subjects(
    engine: Arc<Engine>,
    subjects: Vec<(Subject, Prepared)>,
    opts: &CohortOptions,
    cancel: CancellationToken,
) -> Vec<Record> {
    let display = Arc::new(CohortDisplay::new(opts.progress, subjects.len() as u64));
    let slots = Arc::new(Semaphore::new(opts.jobs.max(1)));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for (s, p) in subjects {
        let plan = match p {
            Prepared::Invalid(why) => {
                let r = Record::not_run(&s.id, &s.origin, Status::Invalid, why);
                failed.fetch_add(1, Ordering::SeqCst);
                display.finished(failed.load(Ordering::SeqCst));
                handles.push(tokio::spawn(async move { r }));
                continue;
            }
            Prepared::Ready(plan) => plan,
        };
        let (engine, slots, cancel, display, failed) = (
            engine.clone(),
            slots.clone(),
            cancel.clone(),
            display.clone(),
            failed.clone(),
        );
        let (run_opts, fail_fast) = (opts.run.clone(), opts.fail_fast);
        // Slots are taken here, in manifest order (`--jobs 1` runs the subjects in order and
        // `--fail-fast` stops at the first that fails); a stopped cohort starts no more.
        let slot = tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            p = slots.acquire_owned() => Some(p.expect("never closed")),
        };
        let Some(slot) = slot.filter(|_| !cancel.is_cancelled()) else {
            let r = Record::not_run(
                &s.id,
                &s.origin,
                Status::Cancelled,
                "not started: the cohort was stopped".into(),
            );
            handles.push(tokio::spawn(async move { r }));
            continue;
        };
        handles.push(tokio::spawn(async move {
            let _slot = slot;
            let line = display.start(&s.id);
            let run_opts = RunOptions {
                within: Some(line.clone()),
                ..run_opts
            };
            let r = match exec::run(&engine, plan.clone(), &run_opts, cancel.child_token()).await {
                Err(e) => Record::not_run(&s.id, &s.origin, Status::Failed, e.to_string()),
                Ok(report) => {
                    let tables = metrics_tables(&engine, &plan, &report);
                    Record::of_run(&s.id, &s.origin, &report, tables)
                }
            };
            line.finish();
            if r.status == Status::Failed {
                failed.fetch_add(1, Ordering::SeqCst);
                display.println(&format!(
                    "subject `{}` ({}) failed: {}",
                    s.id,
                    s.origin,
                    r.cause.as_deref().unwrap_or("")
                ));
                if fail_fast {
                    cancel.cancel();
                }
            }
            display.finished(failed.load(Ordering::SeqCst));
            r
        }));
    }
    let mut records = Vec::new();
    for h in handles {
        let r = match h.await {
            Ok(r) => r,
            Err(e) => Record::not_run("?", "?", Status::Failed, format!("internal: {e}")),
        };
        if let Err(e) = record::write(&opts.results, &r) {
            display.println(&format!(
                "error: cannot write the record of `{}`: {e}",
                r.subject
            ));
        }
        records.push(r);
    }
    display.finish();
    records
}

/// The tables of the run's `metrics` nodes, from the cache (where the run just put them).
fn metrics_tables(
    engine: &Engine,
    plan: &crate::workflow::Plan,
    report: &exec::RunReport,
) -> Vec<TableOf> {
    let mut out = Vec::new();
    for (n, r) in plan.nodes.iter().zip(&report.nodes) {
        if n.kind() != "metrics" || r.status.is_failure() {
            continue;
        }
        for port in n.outputs.iter().filter(|o| o.ty == PortType::Table) {
            let id = keys::output_id(&r.key, port.name);
            if let Ok(Lookup::Hit(Value::Table(table))) = engine.store.get(&id, PortType::Table) {
                out.push(TableOf {
                    node: n.id.clone(),
                    table,
                });
            }
        }
    }
    out
}
