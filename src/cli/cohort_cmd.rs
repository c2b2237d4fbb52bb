//! `vistaflow run WORKFLOW --cohort subjects.csv | --cohort-dir DIR`: the workflow once per
//! subject in this process, then the cohort's tables, plot and report; and `vistaflow
//! cohort submit|shard|gather|status|resume`: the same on a Slurm cluster.

use super::run_cmd::{engine_for, interrupt_handler};
use super::{CacheFlags, CohortArgs, RunArgs, WorkflowArgs};
use super::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID};
use crate::cohort::gather::gather;
use crate::cohort::manifest::Manifest;
use crate::cohort::prepare::{prepare, Prepared};
use crate::cohort::record::{self, Status};
use crate::cohort::run::{default_jobs, run_subjects, CohortOptions};
use crate::cohort::slurm::{self, SlurmOptions, SlurmState, Submission};
use crate::cohort::spec::CohortSpec;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

fn print_problems(errors: &[String], what: &str) -> i32 {
    for e in errors {
        eprintln!("error: {e}");
    }
    eprintln!("{} problem(s) in {what}; nothing was run", errors.len());
    EXIT_INVALID
}

/// The workflow's `name:` (read without substituting variables), else its file stem.
fn workflow_name(workflow: &Path) -> String {
    std::fs::read_to_string(workflow)
        .ok()
        .and_then(|t| serde_yaml::from_str::<serde_yaml::Value>(&t).ok())
        .and_then(|y| y.get("name")?.as_str().map(String::from))
        .filter(|n| !n.is_empty() && !n.contains(['/', '\\']))
        .unwrap_or_else(|| {
            workflow
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "cohort".into())
        })
}

/// The default results folder: cohort-results/<workflow name> here.
fn default_results(workflow: &Path) -> PathBuf {
    PathBuf::from("cohort-results").join(workflow_name(workflow))
}

fn spec_of(w: &WorkflowArgs, c: &CohortArgs) -> CohortSpec {
    let results = c
        .results
        .clone()
        .unwrap_or_else(|| default_results(&w.file));
    CohortSpec::new(
        &w.file,
        c.cohort.as_deref(),
        c.cohort_dir.as_deref(),
        w.vars(),
        &results,
    )
}

/// `vistaflow run ... --cohort`.
pub fn run(a: RunArgs) -> i32 {
    let spec = spec_of(&a.workflow, &a.cohort);
    execute(&a, &spec, None, true)
}

/// Runs the subjects of `spec` (only those in `only`, when given: a Slurm shard), writes
/// their records, and gathers the cohort's files when `gather`.
fn execute(a: &RunArgs, spec: &CohortSpec, only: Option<&[String]>, gather_after: bool) -> i32 {
    let started = Instant::now();
    if a.cache.no_cache {
        eprintln!(
            "error: --no-cache with a cohort: the cohort's tables are gathered from the cache; \
             use --refresh NODE to run a node again"
        );
        return EXIT_INVALID;
    }
    let manifest = match spec.manifest() {
        Ok(m) => m,
        Err(errors) => return print_problems(&errors, "the cohort's subjects"),
    };
    let mut subjects = match prepare(&spec.workflow, &manifest, &spec.set) {
        Ok(s) => s,
        Err(errors) => return print_problems(&errors, "the cohort"),
    };
    if let Some(only) = only {
        subjects.retain(|(s, _)| only.contains(&s.id));
    }
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
        // Nothing to run: the records still say why, for `cohort status` and the gather.
        for (s, why) in &invalid {
            let r = record::Record::not_run(&s.id, &s.origin, Status::Invalid, why.to_string());
            if let Err(e) = record::write(&spec.results, &r) {
                eprintln!("error: {e}");
            }
        }
        if gather_after {
            gather_and_tell(spec, &manifest, &workflow_name(&spec.workflow), a.quiet).err();
        }
        eprintln!("error: no subject of the cohort can run (see above)");
        return EXIT_FAILED;
    };
    let (engine, mut run_opts, runtime) = match engine_for(a, &first) {
        Ok(x) => x,
        Err(c) => return c,
    };
    run_opts.progress = false; // one line per subject instead (CohortDisplay)
    let telemetry = engine.telemetry.clone();
    let jobs = a.cohort.jobs.unwrap_or_else(default_jobs);
    let mut engine = engine;
    // Without a GPU, the subjects share the cores: each network gets cores / jobs of
    // libtorch's threads, and `jobs` of them run at once (12 demo subjects: 16.8 s against
    // 19.4 s with one network at a time on every core; the tables are the same bytes).
    let heavy_slots = if engine.devices.gpu_count() == 0 && jobs > 1 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tch::set_num_threads((cores / jobs).max(1) as i32);
        jobs.min(cores)
    } else {
        1
    };
    engine.devices = Arc::new(engine.devices.with_cpu_heavy_slots(heavy_slots));
    let opts = CohortOptions {
        jobs,
        fail_fast: a.cohort.fail_fast,
        run: run_opts,
        results: spec.results.clone(),
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
    let failed: Vec<_> = records
        .iter()
        .filter(|r| r.status != Status::Done)
        .collect();
    let (ran, cached) = records
        .iter()
        .fold((0, 0), |(r, c), x| (r + x.ran, c + x.cached));
    if !a.quiet || !gather_after {
        outln!(
            "{}: {total} subjects, {} done, {} failed, in {:.1}s ({} jobs; nodes: {ran} ran, \
             {cached} cached)",
            first.name,
            total - failed.len(),
            failed.len(),
            started.elapsed().as_secs_f64(),
            opts.jobs
        );
        for r in &failed {
            let cause = r
                .cause
                .as_deref()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("");
            outln!("  {:?} {} ({}): {cause}", r.status, r.subject, r.origin);
        }
    }
    if gather_after {
        if let Err(c) = gather_and_tell(spec, &manifest, &first.name, a.quiet) {
            return c;
        }
    }
    if cancel.is_cancelled() && records.iter().any(|r| r.status == Status::Cancelled) {
        if a.cohort.fail_fast && !failed.is_empty() {
            eprintln!("--fail-fast: the cohort stopped at the first failed subject");
            return EXIT_FAILED;
        }
        eprintln!("interrupted: finished subjects are recorded and cached");
        return stopped_by.load(Ordering::SeqCst);
    }
    if failed.is_empty() {
        0
    } else {
        EXIT_FAILED
    }
}

fn gather_and_tell(
    spec: &CohortSpec,
    manifest: &Manifest,
    name: &str,
    quiet: bool,
) -> Result<(), i32> {
    match gather(&spec.results, manifest, &spec.workflow, &spec.set, name) {
        Ok(g) => {
            if !quiet {
                outln!(
                    "results: {} ({} done, {} failed, {} pending: summary.md, summary.csv, \
                     metrics_long.csv, summary.png, subjects.csv, cohort_report.json)",
                    spec.results.display(),
                    g.done,
                    g.failed.len(),
                    g.pending.len()
                );
            }
            Ok(())
        }
        Err(e) => {
            eprintln!(
                "error: gathering the cohort's results in {}: {e}",
                spec.results.display()
            );
            Err(EXIT_FAILED)
        }
    }
}

#[derive(Args)]
pub struct CohortCmd {
    #[command(subcommand)]
    pub op: CohortOp,
}

#[derive(Subcommand)]
pub enum CohortOp {
    /// Submit the cohort to Slurm: an sbatch array of shards, then a gather job after it.
    Submit(Box<SubmitArgs>),
    /// Run one array task's shard (what the array script runs).
    Shard {
        /// The --results folder of the submission.
        results: PathBuf,
        #[arg(long, default_value_t = 0)]
        submission: usize,
        /// The array task (default: $SLURM_ARRAY_TASK_ID).
        #[arg(long)]
        task: Option<usize>,
    },
    /// Build the cohort's tables, plot and report from the subject records (the gather job).
    Gather { results: PathBuf },
    /// Done, failed and pending subjects of a submitted cohort, and its jobs' states.
    Status { results: PathBuf },
    /// Submit again only the subjects that are not done (failed, cancelled or never run).
    Resume {
        results: PathBuf,
        /// Tasks of the new array (default: as the first submission, at most one per subject).
        #[arg(long)]
        tasks: Option<usize>,
    },
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("cohort_input").args(["cohort", "cohort_dir"]).required(true))]
pub struct SubmitArgs {
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub cohort: CohortArgs,
    /// Submit with Slurm's sbatch (the one scheduler vistaflow submits to).
    #[arg(long, required = true)]
    pub slurm: bool,
    /// Array tasks, each running a shard of the subjects (default: one per 4 subjects, at most 64).
    #[arg(long, value_name = "N")]
    pub tasks: Option<usize>,
    /// Array tasks running at once (`--array=...%K`).
    #[arg(long, value_name = "K")]
    pub array_max: Option<usize>,
    #[arg(long)]
    pub partition: Option<String>,
    /// Generic resources per task, e.g. gpu:1.
    #[arg(long)]
    pub gres: Option<String>,
    /// Time limit per task (Slurm's format, e.g. 02:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// Memory per task (e.g. 32G).
    #[arg(long)]
    pub mem: Option<String>,
    #[arg(long)]
    pub cpus_per_task: Option<usize>,
    /// Any other sbatch option for the array (repeatable), e.g. --sbatch-arg=--account=lab.
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Device for every node: auto, cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Write the scripts and print the sbatch commands, submit nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn cohort(c: CohortCmd) -> i32 {
    let result = match c.op {
        CohortOp::Submit(a) => submit(*a),
        CohortOp::Shard {
            results,
            submission,
            task,
        } => shard(&results, submission, task),
        CohortOp::Gather { results } => gather_cmd(&results),
        CohortOp::Status { results } => status(&results),
        CohortOp::Resume { results, tasks } => resume(&results, tasks),
    };
    result.unwrap_or_else(|c| c)
}

/// Everything a shard's `execute` needs, as `vistaflow run` flags would give it.
fn run_args(state: &SlurmState, jobs: Option<usize>) -> RunArgs {
    RunArgs {
        workflow: WorkflowArgs {
            file: state.spec.workflow.clone(),
            vars: state.spec.set.clone().into_iter().collect(),
        },
        cache: CacheFlags {
            no_cache: false,
            refresh: vec![],
        },
        device: state.options.device.clone(),
        trace: None,
        otlp: None,
        no_trace: false,
        keep_going: false,
        quiet: true,
        cohort: CohortArgs {
            cohort: state.spec.cohort.clone(),
            cohort_dir: state.spec.cohort_dir.clone(),
            jobs,
            fail_fast: false,
            results: Some(state.spec.results.clone()),
        },
    }
}

fn submit(a: SubmitArgs) -> Result<i32, i32> {
    let spec = spec_of(&a.workflow, &a.cohort);
    let manifest = spec
        .manifest()
        .map_err(|e| print_problems(&e, "the cohort's subjects"))?;
    let subjects = prepare(&spec.workflow, &manifest, &spec.set)
        .map_err(|e| print_problems(&e, "the cohort"))?;
    for (s, p) in &subjects {
        if let Prepared::Invalid(why) = p {
            eprintln!(
                "warning: subject `{}` ({}) cannot run: {why}",
                s.id, s.origin
            );
        }
    }
    let ids: Vec<String> = subjects.iter().map(|(s, _)| s.id.clone()).collect();
    let state = SlurmState {
        format: slurm::FORMAT.into(),
        spec,
        binary: std::env::current_exe().map_err(|e| {
            eprintln!("error: cannot tell where this vistaflow binary is: {e}");
            EXIT_FAILED
        })?,
        options: SlurmOptions {
            partition: a.partition,
            gres: a.gres,
            array_max: a.array_max,
            time: a.time,
            mem: a.mem,
            cpus_per_task: a.cpus_per_task,
            extra: a.sbatch_args,
            device: a.device,
        },
        submissions: vec![],
    };
    let tasks = a.tasks.unwrap_or(ids.len().div_ceil(4).min(64));
    submit_subjects(state, ids, tasks, a.dry_run)
}

/// Writes the scripts of a new submission of `subjects` in `tasks` tasks and submits them.
fn submit_subjects(
    mut state: SlurmState,
    subjects: Vec<String>,
    tasks: usize,
    dry_run: bool,
) -> Result<i32, i32> {
    let tasks = tasks.clamp(1, subjects.len().max(1));
    let k = state.submissions.len();
    let name = workflow_name(&state.spec.workflow);
    let dir = state.spec.results.join("slurm");
    let fail = |e: String| {
        eprintln!("error: {e}");
        EXIT_FAILED
    };
    std::fs::create_dir_all(dir.join("logs"))
        .map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    let array = dir.join(format!("array-{k}.sh"));
    let gather = dir.join(format!("gather-{k}.sh"));
    let put = |p: &Path, text: String| {
        vistaflow_nodes::io::atomic::write_text(p, &text).map_err(|e| fail(e.to_string()))
    };
    put(&array, slurm::array_script(&state, k, tasks, &name))?;
    put(&gather, slurm::gather_script(&state, &name))?;
    // Recorded before sbatch: a task may start (and read it) before sbatch returns.
    state.submissions.push(Submission {
        array_job: String::new(),
        gather_job: String::new(),
        tasks,
        subjects: subjects.clone(),
        submitted_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    });
    state.write().map_err(fail)?;
    if dry_run {
        outln!(
            "sbatch --parsable {} {}",
            state.options.extra.join(" "),
            array.display()
        );
        outln!(
            "sbatch --parsable --dependency=afterany:<array job> {}",
            gather.display()
        );
        return Ok(0);
    }
    let array_job = slurm::sbatch(&array, &state.options.extra).map_err(fail)?;
    let gather_job =
        slurm::sbatch(&gather, &[format!("--dependency=afterany:{array_job}")]).map_err(fail)?;
    let last = state.submissions.last_mut().expect("pushed above");
    last.array_job = array_job.clone();
    last.gather_job = gather_job.clone();
    state.write().map_err(fail)?;
    outln!(
        "submitted: array job {array_job} ({} subjects in {tasks} tasks), gather job {gather_job} \
         (after it)\n  status: vistaflow cohort status {}",
        subjects.len(),
        state.spec.results.display()
    );
    Ok(0)
}

fn shard(results: &Path, k: usize, task: Option<usize>) -> Result<i32, i32> {
    let state = SlurmState::read(results).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_INVALID
    })?;
    let task = match task.or_else(|| std::env::var("SLURM_ARRAY_TASK_ID").ok()?.parse().ok()) {
        Some(t) => t,
        None => {
            eprintln!("error: no --task and no SLURM_ARRAY_TASK_ID: which task is this?");
            return Err(EXIT_INVALID);
        }
    };
    let only = state.shard(k, task).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_INVALID
    })?;
    outln!(
        "task {task} of submission {k}: {} subject(s): {}",
        only.len(),
        only.join(" ")
    );
    let a = run_args(&state, state.options.cpus_per_task);
    Ok(execute(&a, &state.spec, Some(&only), false))
}

fn gather_cmd(results: &Path) -> Result<i32, i32> {
    let state = SlurmState::read(results).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_INVALID
    })?;
    let manifest = state
        .spec
        .manifest()
        .map_err(|e| print_problems(&e, "the cohort's subjects"))?;
    let name = workflow_name(&state.spec.workflow);
    gather_and_tell(&state.spec, &manifest, &name, false)?;
    Ok(0)
}

/// Done subject ids, the others with why (`pending` when they have no record), and per host
/// where subjects ran, how many were done and how many not.
type Progress = (
    Vec<String>,
    Vec<(String, String)>,
    std::collections::BTreeMap<String, (usize, usize)>,
);

/// The subjects of the submission's cohort, per their records.
fn progress(state: &SlurmState) -> Result<Progress, i32> {
    let manifest = state
        .spec
        .manifest()
        .map_err(|e| print_problems(&e, "the cohort's subjects"))?;
    let mut done = Vec::new();
    let mut missing = Vec::new();
    let mut hosts = std::collections::BTreeMap::<String, (usize, usize)>::new();
    for s in &manifest.subjects {
        let record = record::read(&state.spec.results, &s.id);
        if let Ok(Some(r)) = &record {
            let tally = hosts
                .entry(r.host.clone().unwrap_or_else(|| "unknown host".into()))
                .or_default();
            if r.status == Status::Done {
                tally.0 += 1;
            } else {
                tally.1 += 1;
            }
        }
        match record {
            Ok(Some(r)) if r.status == Status::Done => done.push(s.id.clone()),
            Ok(Some(r)) => missing.push((
                s.id.clone(),
                format!(
                    "{}{}: {}",
                    format!("{:?}", r.status).to_lowercase(),
                    r.host
                        .as_deref()
                        .map(|h| format!(" on {h}"))
                        .unwrap_or_default(),
                    r.cause
                        .as_deref()
                        .unwrap_or("")
                        .lines()
                        .next()
                        .unwrap_or("")
                ),
            )),
            Ok(None) => missing.push((s.id.clone(), "pending".into())),
            Err(e) => missing.push((s.id.clone(), format!("unreadable record: {e}"))),
        }
    }
    Ok((done, missing, hosts))
}

fn status(results: &Path) -> Result<i32, i32> {
    let state = SlurmState::read(results).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_INVALID
    })?;
    let (done, missing, hosts) = progress(&state)?;
    let pending = missing.iter().filter(|m| m.1 == "pending").count();
    outln!(
        "{}: {} subjects: {} done, {} failed, {pending} pending",
        state.spec.results.display(),
        done.len() + missing.len(),
        done.len(),
        missing.len() - pending
    );
    for (id, why) in &missing {
        outln!("  {id}: {why}");
    }
    // Where they ran: failures piling up on one node point at the node.
    if !hosts.is_empty() {
        let per_host: Vec<String> = hosts
            .iter()
            .map(|(h, (d, f))| format!("{h}: {d} done, {f} not done"))
            .collect();
        outln!("  ran on: {}", per_host.join("; "));
    }
    let jobs: Vec<&str> = state
        .submissions
        .iter()
        .flat_map(|s| [s.array_job.as_str(), s.gather_job.as_str()])
        .filter(|j| !j.is_empty())
        .collect();
    let queued = slurm::queue_states(&jobs);
    for (k, s) in state.submissions.iter().enumerate() {
        let of = |j: &str| queued.get(j).cloned().unwrap_or_else(|| "finished".into());
        outln!(
            "  submission {k}: array {} ({}), gather {} ({})",
            s.array_job,
            of(&s.array_job),
            s.gather_job,
            of(&s.gather_job)
        );
    }
    Ok(0)
}

fn resume(results: &Path, tasks: Option<usize>) -> Result<i32, i32> {
    let state = SlurmState::read(results).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_INVALID
    })?;
    let (_, missing, _) = progress(&state)?;
    if missing.is_empty() {
        outln!("every subject is done; nothing to resubmit");
        return Ok(0);
    }
    let tasks = tasks
        .or_else(|| state.submissions.first().map(|s| s.tasks))
        .unwrap_or(1);
    let ids = missing.into_iter().map(|(id, _)| id).collect();
    submit_subjects(state, ids, tasks, false)
}
