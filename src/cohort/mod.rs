//! Cohorts: one workflow over many subjects. A manifest (CSV, or a scanned folder) gives each
//! subject's variables; every subject is checked before anything runs; the subjects run in
//! one process sharing the cache, the loaded networks and the device slots; each leaves a
//! record, and the records are gathered into the cohort's tables, plot and report.

pub mod gather;
pub mod manifest;
pub mod prepare;
pub mod record;
pub mod run;
pub mod slurm;
pub mod spec;
