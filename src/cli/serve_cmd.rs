//! `vistaflow serve WORKFLOW`: the local viewer (src/serve).

use super::{WorkflowArgs, EXIT_FAILED, EXIT_INVALID};
use crate::exec::{CachePolicy, Devices, Engine, RunOptions};
use crate::serve::{self, ServeOptions, Workflow};
use crate::telemetry::{Telemetry, TraceSink};
use crate::workflow::{self, DeviceSpec};
use clap::Args;
use std::sync::Arc;
use vistaflow_nodes::Registry;

/// What the server keeps of the cache in memory (see `cache::Store::keep_recent`).
const RECENT_BYTES: u64 = 1 << 30;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub workflow: WorkflowArgs,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// The vista3d_refine node the clicks go to (default: the workflow's only one).
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Device for every node: auto, cpu, cuda or cuda:N (overrides the workflow).
    #[arg(long)]
    pub device: Option<String>,
}

pub fn serve(a: ServeArgs) -> i32 {
    let plan = match workflow::load(&a.workflow.file, &a.workflow.vars(), &Registry::builtin()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    let device = match a.device.as_deref().map(|d| DeviceSpec::parse(d).ok_or(d)) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(d)) => {
            eprintln!("error: --device `{d}`: use auto, cpu, cuda or cuda:N");
            return EXIT_INVALID;
        }
    };
    let cache = plan.settings.cache.clone();
    // Beside the cache, as traces/ is: .vistaflow/serve/<workflow name>.
    let dir = cache
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("serve")
        .join(&plan.name);
    let wf = match Workflow::new(plan, a.node.as_deref()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}\n  --> {}", a.workflow.file.display());
            return EXIT_INVALID;
        }
    };
    let store = match crate::cache::Store::open(&cache) {
        Ok(s) => {
            // Every click reads the same image and writes a label map the server reads back.
            s.keep_recent(RECENT_BYTES);
            Arc::new(s)
        }
        Err(e) => {
            eprintln!("error: cache {}: {e}", cache.display());
            return EXIT_FAILED;
        }
    };
    let telemetry = match Telemetry::new(TraceSink::None) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    let engine = Engine {
        store,
        devices: Arc::new(Devices::probe(1)),
        telemetry,
    };
    let opts = RunOptions {
        cache: CachePolicy::default(),
        device,
        keep_going: false,
        progress: false,
        within: None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_FAILED;
        }
    };
    let port = a.port;
    match runtime.block_on(serve::serve(wf, engine, opts, ServeOptions { port, dir })) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}
