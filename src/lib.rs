//! vistaflow's engine: workflow file -> checked plan -> dagrs graph -> run.
//! Knows nothing of DICOM or VISTA3D: nodes come from `vistaflow-nodes`.

pub mod cache;
pub mod cli;
pub mod cohort;
pub mod diag;
pub mod exec;
pub mod hash;
pub mod heap;
pub mod progress;
pub mod serve;
pub mod telemetry;
pub mod workflow;

pub use vistaflow_nodes as nodes;
