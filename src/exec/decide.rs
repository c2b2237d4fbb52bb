//! Which nodes run and which come from the cache, decided before anything runs.

use super::keys::Keys;
use crate::cache::Store;
use crate::hash::Digest;
use crate::workflow::Plan;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// What a run does with one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every output is in the cache (and every file it wrote is still what it wrote).
    Cached,
    /// Runs, for this reason.
    Run(String),
}

/// Why a node whose outputs were missing from the cache runs (the one reason to take them
/// from the cache after all, when another process stored them meanwhile).
pub const NOT_IN_CACHE: &str = "not in cache";
pub const ENTRY_LOST: &str = "cache entry corrupt or missing";

impl Decision {
    pub fn runs(&self) -> bool {
        matches!(self, Decision::Run(_))
    }

    /// Runs only because its outputs were not in the cache (not `--refresh`, `--no-cache`,
    /// `cache: false` or changed files): another run's entries for the same key will do.
    pub fn for_missing_entries(&self) -> bool {
        matches!(self, Decision::Run(why) if why.ends_with(NOT_IN_CACHE) || why == ENTRY_LOST)
    }
}

/// How the user asked the cache to be used.
#[derive(Clone, Debug, Default)]
pub struct CachePolicy {
    /// Neither read nor write the cache.
    pub no_cache: bool,
    /// Ids of nodes to run again, with everything downstream of them.
    pub refresh: Vec<String>,
}

/// The files a node wrote, recorded after it ran so that a later run can tell whether they
/// are still there and unchanged.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WrittenFiles {
    pub files: Vec<WrittenFile>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WrittenFile {
    pub param: String,
    pub path: PathBuf,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
#[error("--refresh `{0}`: no such node in this workflow{1}")]
pub struct UnknownNode(pub String, pub String);

/// Decides every node, producers first.
pub fn decide(
    plan: &Plan,
    keys: &Keys,
    store: &Store,
    policy: &CachePolicy,
) -> Result<Vec<Decision>, UnknownNode> {
    let refresh = refreshed(plan, &policy.refresh)?;
    Ok(plan
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if policy.no_cache {
                Decision::Run("--no-cache".into())
            } else if !n.cache {
                Decision::Run("cache: false".into())
            } else if n.node.finalises(&n.params) {
                Decision::Run("writes the run's report".into())
            } else if refresh.contains(&i) {
                Decision::Run("--refresh".into())
            } else if let Some(port) = n
                .outputs
                .iter()
                .find(|o| !store.contains(&keys.output(i, o.name)))
            {
                Decision::Run(if n.outputs.len() > 1 {
                    format!("`{}` {NOT_IN_CACHE}", port.name)
                } else {
                    NOT_IN_CACHE.into()
                })
            } else if let Some(why) =
                files_changed(store, &keys.node[i], n.written_paths().is_empty())
            {
                Decision::Run(why)
            } else {
                Decision::Cached
            }
        })
        .collect())
}

/// The refreshed nodes and everything downstream of them.
fn refreshed(plan: &Plan, ids: &[String]) -> Result<BTreeSet<usize>, UnknownNode> {
    let mut set = BTreeSet::new();
    for id in ids {
        let i = plan.index_of(id).ok_or_else(|| {
            let near = crate::diag::nearest(id, plan.nodes.iter().map(|n| n.id.as_str()));
            UnknownNode(
                id.clone(),
                near.map(|n| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default(),
            )
        })?;
        set.insert(i);
    }
    // Producers precede consumers, so one forward pass reaches every descendant.
    for (i, n) in plan.nodes.iter().enumerate() {
        if n.inputs.iter().any(|e| set.contains(&e.from)) {
            set.insert(i);
        }
    }
    Ok(set)
}

/// Why a node that writes files must run again, if it must.
fn files_changed(store: &Store, key: &Digest, writes_nothing: bool) -> Option<String> {
    if writes_nothing {
        return None;
    }
    let Some(record) = store.get_record(key) else {
        return Some("not in cache".into());
    };
    let Ok(record) = serde_json::from_value::<WrittenFiles>(record) else {
        return Some("cache record unreadable".into());
    };
    for f in &record.files {
        if !f.path.exists() {
            return Some(format!("output file missing: {}", f.path.display()));
        }
        match digest_path(store, &f.path) {
            Ok(d) if d.hex() == f.sha256 => {}
            _ => return Some(format!("output file changed: {}", f.path.display())),
        }
    }
    None
}

/// The digest of a written file, or of a written folder (e.g. one STL file per class).
pub fn digest_path(store: &Store, path: &std::path::Path) -> std::io::Result<Digest> {
    if path.is_dir() {
        store.file_digests().digest_dir(path)
    } else {
        store.file_digests().digest_file(path)
    }
}
