//! Running a checked plan: cache keys, decisions, the dagrs graph, devices, node execution.

pub mod dagrs_graph;
pub mod decide;
pub mod devices;
pub mod keys;
mod memo;
mod node_task;
pub(crate) mod provenance;
pub mod report;
mod run;
mod run_state;

pub use decide::{CachePolicy, Decision};
pub use devices::Devices;
pub use report::{NodeReport, NodeStatus, RunReport};
pub use run::{check_devices, plan_decisions, run, Engine, RunError, RunOptions};
