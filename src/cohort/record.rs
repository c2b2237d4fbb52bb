//! A subject's record: what its run did and its `metrics` tables, one JSON file per subject
//! under `RESULTS/subjects/`. The gather step reads only these, so a cohort run in one
//! process and one spread over a Slurm array gather the very same way.

use crate::exec::{NodeStatus, RunReport};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use vistaflow_nodes::value::Table;

pub const FORMAT: &str = "vistaflow.cohort.subject/1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    /// A node failed.
    Failed,
    /// Could not start: the workflow did not load for it, or a file it reads is missing.
    Invalid,
    /// Stopped by Ctrl-C, SIGTERM or `--fail-fast`.
    Cancelled,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeLine {
    pub id: String,
    pub kind: String,
    /// The node's cache key (its provenance record in the cache has the same key).
    pub key: String,
    pub status: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TableOf {
    pub node: String,
    pub table: Table,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub format: String,
    pub subject: String,
    /// Where the subject was defined (`subjects.csv:4`, or its path in a scanned folder).
    pub origin: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub seconds: f64,
    /// Where it ran: Slurm's node name in an array task, else this machine's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub ran: usize,
    pub cached: usize,
    pub nodes: Vec<NodeLine>,
    pub tables: Vec<TableOf>,
}

impl Record {
    /// A subject that did not get to run.
    pub fn not_run(subject: &str, origin: &str, status: Status, cause: String) -> Record {
        Record {
            format: FORMAT.into(),
            subject: subject.into(),
            origin: origin.into(),
            status,
            cause: Some(cause),
            seconds: 0.0,
            host: host(),
            ran: 0,
            cached: 0,
            nodes: vec![],
            tables: vec![],
        }
    }

    /// From a finished run (`tables` taken from the cache by the caller).
    pub fn of_run(subject: &str, origin: &str, r: &RunReport, tables: Vec<TableOf>) -> Record {
        let (status, cause) = match r.first_failure() {
            Some((id, kind, cause)) => (
                Status::Failed,
                Some(format!("node `{id}` ({kind}) failed: {cause}")),
            ),
            None if r.nodes.iter().any(|n| n.status == NodeStatus::Cancelled) => {
                (Status::Cancelled, Some("stopped before it finished".into()))
            }
            None => (Status::Done, None),
        };
        Record {
            format: FORMAT.into(),
            subject: subject.into(),
            origin: origin.into(),
            status,
            cause,
            seconds: r.duration.as_secs_f64(),
            host: host(),
            ran: r.ran().len(),
            cached: r.cached().len(),
            nodes: r
                .nodes
                .iter()
                .map(|n| NodeLine {
                    id: n.id.clone(),
                    kind: n.kind.to_string(),
                    key: n.key.to_string(),
                    status: crate::exec::provenance::status_name(&n.status).into(),
                })
                .collect(),
            tables,
        }
    }
}

/// `SLURMD_NODENAME` (what slurmd sets for a job's tasks), else the kernel's host name.
fn host() -> Option<String> {
    std::env::var("SLURMD_NODENAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

pub fn path_of(results: &Path, subject: &str) -> PathBuf {
    results.join("subjects").join(format!("{subject}.json"))
}

/// Writes the record atomically (a killed process leaves the old record or none, never half).
pub fn write(results: &Path, r: &Record) -> Result<(), String> {
    let path = path_of(results, &r.subject);
    let text = serde_json::to_string_pretty(r).map_err(|e| e.to_string())? + "\n";
    vistaflow_nodes::io::atomic::write_text(&path, &text).map_err(|e| e.to_string())
}

/// The record of `subject`, `None` when there is none yet (pending).
pub fn read(results: &Path, subject: &str) -> Result<Option<Record>, String> {
    let path = path_of(results, subject);
    match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
        Ok(text) => {
            let r: Record = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a subject record: {e}", path.display()))?;
            if r.format != FORMAT {
                return Err(format!(
                    "{}: format `{}`, expected {FORMAT}",
                    path.display(),
                    r.format
                ));
            }
            Ok(Some(r))
        }
    }
}
