//! vistaflow's engine: workflow file -> checked plan -> dagrs graph -> run.
//! Knows nothing of DICOM or VISTA3D: nodes come from `vistaflow-nodes`.

pub mod cache;
pub mod diag;
pub mod hash;
pub mod workflow;
