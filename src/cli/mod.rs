//! The `vistaflow` command line.

/// `println!` for command output: a reader that went away (`vistaflow nodes | head -1`) ends
/// the command quietly, as cargo and ripgrep do, instead of panicking.
macro_rules! outln {
    () => {
        $crate::cli::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for command output; see [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

mod cache_cmd;
mod cohort_cmd;
mod model_cmd;
mod nodes_cmd;
mod run_cmd;
mod serve_cmd;

use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Exit codes: 0 success, 1 a node or the engine failed, 2 bad workflow or usage, 130 Ctrl-C,
/// 143 SIGTERM.
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INVALID: i32 = 2;
pub const EXIT_INTERRUPTED: i32 = 130;
pub const EXIT_TERMINATED: i32 = 143;

#[derive(Parser)]
#[command(
    name = "vistaflow",
    version,
    about = "VISTA3D segmentation workflows: YAML pipelines on dagrs with content-hash caching"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a workflow; nodes whose results are cached are not run again.
    Run(RunArgs),
    /// Check a workflow file and report every problem with its line and column.
    Validate(WorkflowArgs),
    /// Show, for each node, whether it is cached or will run, and its cache key.
    Plan(PlanArgs),
    /// List the node kinds with their ports and params, or show one kind.
    Nodes { kind: Option<String> },
    /// Inspect or clean a cache.
    Cache(cache_cmd::CacheArgs),
    /// Run a cohort on a Slurm cluster (submit, status, resume; shard and gather are the jobs').
    Cohort(cohort_cmd::CohortCmd),
    /// Open a workflow in a local web viewer; clicks there run its vista3d_refine node.
    Serve(serve_cmd::ServeArgs),
    /// Convert the VISTA3D bundle's pickled model.pt into a .safetensors file.
    ConvertWeights {
        /// The pickled state dict (`models/model.pt` of the MONAI bundle).
        src: PathBuf,
        /// The .safetensors file to write.
        dst: PathBuf,
        /// Replace `dst` if it exists.
        #[arg(long)]
        force: bool,
    },
    /// List VISTA3D's classes (names and ids for `classes:` of vista3d_auto).
    Classes,
}

#[derive(Args)]
pub struct WorkflowArgs {
    /// The workflow file (YAML).
    pub file: PathBuf,
    /// Substitute `${NAME}` in the workflow (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
}

impl WorkflowArgs {
    pub fn vars(&self) -> BTreeMap<String, String> {
        self.vars.iter().cloned().collect()
    }
}

#[derive(Args)]
pub struct CacheFlags {
    /// Ignore the cache: run every node, store nothing.
    #[arg(long)]
    pub no_cache: bool,
    /// Run this node and everything downstream of it again (repeatable).
    #[arg(long, value_name = "NODE")]
    pub refresh: Vec<String>,
}

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub cache: CacheFlags,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("cohort_input").args(["cohort", "cohort_dir"]))]
pub struct RunArgs {
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    #[command(flatten)]
    pub cache: CacheFlags,
    /// Device for every node: auto, cpu, cuda or cuda:N (overrides the workflow).
    #[arg(long)]
    pub device: Option<String>,
    /// Write spans as OTLP JSON lines to this file (default: traces/ beside the cache folder).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Send spans to an OTLP/HTTP endpoint (http://host:4318) instead of a file.
    #[arg(long, value_name = "URL", conflicts_with = "trace")]
    pub otlp: Option<String>,
    /// Record no spans.
    #[arg(long, conflicts_with_all = ["trace", "otlp"])]
    pub no_trace: bool,
    /// After a failure, let independent branches finish.
    #[arg(long)]
    pub keep_going: bool,
    /// No progress bars and no summary.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub cohort: CohortArgs,
}

/// Running one workflow over many subjects (README, "Cohorts").
#[derive(Args, Clone)]
pub struct CohortArgs {
    /// A manifest: CSV (a header of variable names with SUBJECT among them, a row per
    /// subject) or YAML (`subjects:` a list of {SUBJECT: id, VAR: value}, optional `defaults:`).
    #[arg(long, value_name = "FILE", conflicts_with = "cohort_dir")]
    pub cohort: Option<PathBuf>,
    /// One subject per NIfTI/NRRD file or DICOM series folder found under DIR (as IMAGE).
    #[arg(long, value_name = "DIR")]
    pub cohort_dir: Option<PathBuf>,
    /// Subjects run at once (default: the cores, at most one per 4 GiB of memory).
    #[arg(long, value_name = "N", requires = "cohort_input")]
    pub jobs: Option<usize>,
    /// Stop the cohort at the first failed subject (default: record it and go on).
    #[arg(long, requires = "cohort_input")]
    pub fail_fast: bool,
    /// Where the cohort's records, tables, plot and report go (default:
    /// cohort-results/<workflow name>).
    #[arg(long, value_name = "DIR", requires = "cohort_input")]
    pub results: Option<PathBuf>,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    crate::heap::keep_freed_memory();
    quiet_caught_panics();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(a) => run_cmd::run(a),
        Command::Validate(a) => run_cmd::validate(a),
        Command::Plan(a) => run_cmd::plan(a),
        Command::Nodes { kind } => nodes_cmd::nodes(kind.as_deref()),
        Command::Cache(a) => cache_cmd::cache(a),
        Command::Cohort(c) => cohort_cmd::cohort(c),
        Command::Serve(a) => serve_cmd::serve(a),
        Command::ConvertWeights { src, dst, force } => model_cmd::convert(&src, &dst, force),
        Command::Classes => model_cmd::list_classes(),
    }
}

/// The default panic hook prints every panic, also those a node catches and reports as a
/// clear error (see `vistaflow_nodes::node::catch_quietly`); those are left unprinted.
fn quiet_caught_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !vistaflow_nodes::node::panic_is_caught() {
            default(info)
        }
    }));
}

/// Writes command output to stdout. A closed pipe exits 0 at once (the reader has what it
/// wanted); any other write error exits 1 with the reason.
pub fn write_out(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|_| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(EXIT_FAILED);
    }
}
