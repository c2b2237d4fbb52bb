//! What a run did, node by node.

use crate::hash::Digest;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeStatus {
    /// Ran and succeeded.
    Ran,
    /// Outputs taken from the cache.
    Cached,
    /// Cached and not needed by any node that ran.
    NotNeeded,
    Failed(String),
    /// Did not run because a producer failed.
    UpstreamFailed,
    Cancelled,
}

impl NodeStatus {
    /// Did not produce its outputs.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            NodeStatus::Failed(_) | NodeStatus::UpstreamFailed | NodeStatus::Cancelled
        )
    }
}

#[derive(Clone, Debug)]
pub struct NodeReport {
    pub id: String,
    pub kind: &'static str,
    pub key: Digest,
    pub status: NodeStatus,
    /// Device it ran on ("cpu", "cuda:0"); empty when it did not run.
    pub device: String,
    pub duration: Duration,
    pub output_bytes: u64,
    /// Why it ran (or empty).
    pub reason: String,
}

#[derive(Clone, Debug)]
pub struct RunReport {
    pub name: String,
    pub nodes: Vec<NodeReport>,
    pub duration: Duration,
    /// Index in `nodes` of the node that failed first (in time), if any.
    pub first_failed: Option<usize>,
}

impl RunReport {
    pub fn ran(&self) -> Vec<&str> {
        self.ids_with(|s| *s == NodeStatus::Ran)
    }
    pub fn cached(&self) -> Vec<&str> {
        self.ids_with(|s| matches!(s, NodeStatus::Cached | NodeStatus::NotNeeded))
    }
    fn ids_with(&self, f: impl Fn(&NodeStatus) -> bool) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|n| f(&n.status))
            .map(|n| n.id.as_str())
            .collect()
    }
    /// The node that failed first: (id, kind, cause).
    pub fn first_failure(&self) -> Option<(&str, &str, &str)> {
        let n = &self.nodes[self.first_failed?];
        match &n.status {
            NodeStatus::Failed(c) => Some((n.id.as_str(), n.kind, c.as_str())),
            _ => None,
        }
    }
}
