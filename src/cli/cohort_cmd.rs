//! `vistaflow run WORKFLOW --cohort subjects.csv | --cohort-dir DIR`: the workflow once per
//! subject in this process, then the cohort's tables, plot and report.

use super::run_cmd::{engine_for, interrupt_handler};
use super::{RunArgs, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID};
use crate::cohort::gather::gather;
use crate::cohort::manifest::{self, Manifest};
use crate::cohort::prepare::{prepare, Prepared};
use crate::cohort::record::Status;
use crate::cohort::run::{default_jobs, run_subjects, CohortOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

fn read_manifest(a: &RunArgs) -> Result<Manifest, i32> {
    let m = match (&a.cohort.cohort, &a.cohort.cohort_dir) {
        (Some(csv), _) => manifest::read_csv(csv),
        (None, Some(dir)) => manifest::scan_dir(dir).map_err(|e| vec![e]),
        (None, None) => unreachable!("called for a cohort"),
    };
    m.map_err(|errors| {
        for e in &errors {
            eprintln!("error: {e}");
        }
        eprintln!(
            "{} problem(s) in the cohort's subjects; nothing was run",
            errors.len()
        );
        EXIT_INVALID
    })
}

pub fn run(a: RunArgs) -> i32 {
    let started = Instant::now();
    if a.cache.no_cache {
        eprintln!(
            "error: --no-cache with a cohort: the cohort's tables are gathered from the cache; \
             use --refresh NODE to run a node again"
        );
        return EXIT_INVALID;
    }
    let manifest = match read_manifest(&a) {
        Ok(m) => m,
        Err(c) => return c,
    };
    let vars = a.workflow.vars();
    let subjects = match prepare(&a.workflow.file, &manifest, &vars) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} problem(s) in the cohort; nothing was run", errors.len());
            return EXIT_INVALID;
        }
    };
    let invalid: Vec<_> = subjects
        .iter()
        .filter_map(|(s, p)| match p {
            Prepared::Invalid(why) => Some((s, why)),
            Prepared::Ready(_) => None,
        })
        .collect();
    for (s, why) in &invalid {
        eprintln!("error: subject `{}` ({}) cannot run: {why}", s.id, s.origin);
    }
    if a.cohort.fail_fast && !invalid.is_empty() {
        eprintln!(
            "--fail-fast: {} subject(s) cannot run; nothing was run",
            invalid.len()
        );
        return EXIT_INVALID;
    }
    let Some(first) = subjects.iter().find_map(|(_, p)| match p {
        Prepared::Ready(plan) => Some(plan.clone()),
        Prepared::Invalid(_) => None,
    }) else {
        eprintln!("error: no subject of the cohort can run (see above); nothing was run");
        return EXIT_INVALID;
    };
    let results = a
        .cohort
        .results
        .clone()
        .unwrap_or_else(|| PathBuf::from("cohort-results").join(&first.name));
    let (engine, mut run_opts, runtime) = match engine_for(&a, &first) {
        Ok(x) => x,
        Err(c) => return c,
    };
    run_opts.progress = false; // one line per subject instead (CohortDisplay)
    let telemetry = engine.telemetry.clone();
    let opts = CohortOptions {
        jobs: a.cohort.jobs.unwrap_or_else(default_jobs),
        fail_fast: a.cohort.fail_fast,
        run: run_opts,
        results: results.clone(),
        progress: !a.quiet,
    };
    let total = subjects.len();
    let cancel = CancellationToken::new();
    let stopped_by = Arc::new(AtomicI32::new(EXIT_INTERRUPTED));
    let records = runtime.block_on(async {
        tokio::spawn(interrupt_handler(cancel.clone(), stopped_by.clone()));
        run_subjects(Arc::new(engine), subjects, &opts, cancel.clone()).await
    });
    telemetry.shutdown();
    let gathered = match gather(&results, &manifest, &a.workflow.file, &vars, &first.name) {
        Ok(g) => g,
        Err(e) => {
            eprintln!(
                "error: gathering the cohort's results in {}: {e}",
                results.display()
            );
            return EXIT_FAILED;
        }
    };
    let (ran, cached): (usize, usize) = records
        .iter()
        .fold((0, 0), |(r, c), x| (r + x.ran, c + x.cached));
    if !a.quiet {
        outln!(
            "{}: {total} subjects, {} done, {} failed, in {:.1}s ({} jobs; nodes: {ran} ran, \
             {cached} cached)",
            first.name,
            gathered.done,
            gathered.failed.len(),
            started.elapsed().as_secs_f64(),
            opts.jobs
        );
        for (id, origin, cause) in &gathered.failed {
            outln!(
                "  FAILED {id} ({origin}): {}",
                cause.lines().next().unwrap_or("")
            );
        }
        outln!(
            "results: {} (summary.md, summary.csv, metrics_long.csv, summary.png, subjects.csv, \
             cohort_report.json)",
            results.display()
        );
    }
    if cancel.is_cancelled() && records.iter().any(|r| r.status == Status::Cancelled) {
        if a.cohort.fail_fast && !gathered.failed.is_empty() {
            eprintln!("--fail-fast: the cohort stopped at the first failed subject");
            return EXIT_FAILED;
        }
        eprintln!("interrupted: finished subjects are recorded and cached");
        return stopped_by.load(Ordering::SeqCst);
    }
    if gathered.failed.is_empty() {
        0
    } else {
        EXIT_FAILED
    }
}
