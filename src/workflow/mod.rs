//! Workflow files: YAML text -> a checked [`Plan`], with every problem located.

mod check;
mod edit;
mod locate;
mod prescan;
mod substitute;

pub use check::{load, load_str, DeviceSpec, InputEdge, LoadError, Plan, PlannedNode, Settings};
pub use locate::{join as join_path, Locations};
