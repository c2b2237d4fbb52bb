//! [`Memo`] for nodes, kept in the run's content-hash store: intermediate tensors (encoder
//! features per window) that later runs with other params reuse. An entry's identity is
//! sha256(kind, version, the scoped inputs' value ids, the digests of the files the node
//! reads, the node's own key string), so it is found again exactly when those are the same.

use super::decide::digest_path;
use super::run_state::Shared;
use crate::cache::{EntryInfo, Lookup, Store};
use crate::hash::{Digest, KeyHasher};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tch::Tensor;
use vistaflow_nodes::node::Memo;
use vistaflow_nodes::{Geometry, PortType, Value, Volume};

/// Where a tensor's own shape is kept (entries hold it flattened).
const META_SHAPE: &str = "memo_shape";

pub struct StoreMemo {
    store: Arc<Store>,
    kind: &'static str,
    version: &'static str,
    node: String,
    node_key: Digest,
    /// Value id of each connected input port.
    inputs: BTreeMap<String, Digest>,
    /// The files the node reads, digested on first use (most nodes never use their memo).
    source_paths: Vec<PathBuf>,
    sources: OnceLock<Option<Vec<Digest>>>,
}

impl StoreMemo {
    /// The memo of node `i` of the run.
    pub fn of(sh: &Shared, i: usize) -> StoreMemo {
        let n = &sh.plan.nodes[i];
        let spec = n.node.spec();
        let inputs = n
            .inputs
            .iter()
            .map(|e| (e.port.clone(), sh.keys.output(e.from, &e.from_port)))
            .collect();
        StoreMemo {
            store: sh.store.clone(),
            kind: spec.kind,
            version: spec.version,
            node: n.id.clone(),
            node_key: sh.keys.node[i],
            inputs,
            source_paths: n.source_paths().into_iter().map(|(_, p)| p).collect(),
            sources: OnceLock::new(),
        }
    }

    /// The entry's identity; `None` when a file the node reads cannot be digested.
    fn id(&self, scope: &[&str], key: &str) -> Option<Digest> {
        let sources = self
            .sources
            .get_or_init(|| {
                self.source_paths
                    .iter()
                    .map(|p| digest_path(&self.store, p).ok())
                    .collect()
            })
            .as_ref()?;
        let mut h = KeyHasher::new("vistaflow.memo.v1");
        h.field("kind", self.kind.as_bytes())
            .field("version", self.version.as_bytes());
        let mut ports: Vec<&str> = scope.to_vec();
        ports.sort_unstable();
        for p in ports {
            // An unconnected port hashes as absent, distinct from any value id.
            let id = self.inputs.get(p).map(|d| d.0.to_vec()).unwrap_or_default();
            h.field(&format!("input:{p}"), &id);
        }
        for s in sources {
            h.field("source", &s.0);
        }
        h.field("key", key.as_bytes());
        Some(h.finish())
    }
}

impl Memo for StoreMemo {
    fn get(&self, scope: &[&str], key: &str) -> Option<Tensor> {
        match self.store.get(&self.id(scope, key)?, PortType::Image) {
            Ok(Lookup::Hit(Value::Image(v))) => {
                let shape: Vec<i64> = v
                    .meta
                    .get(META_SHAPE)?
                    .split(',')
                    .map(|x| x.parse().ok())
                    .collect::<Option<_>>()?;
                v.data().f_reshape(&shape).ok()
            }
            _ => None,
        }
    }

    fn put(&self, scope: &[&str], key: &str, tensor: &Tensor) {
        let Some(id) = self.id(scope, key) else {
            return;
        };
        let shape: Vec<String> = tensor.size().iter().map(i64::to_string).collect();
        let flat = tensor.reshape([1, 1, 1, -1]);
        let Ok(vol) = Volume::new(flat, Geometry::axis_aligned([1.0; 3], [0.0; 3])) else {
            return;
        };
        let value = Value::Image(vol.with_meta(META_SHAPE, shape.join(",")));
        let info = EntryInfo {
            key: self.node_key,
            kind: self.kind.to_string(),
            node: self.node.clone(),
            port: format!("memo:{key}"),
        };
        // A failed write only costs a recomputation later.
        let _ = self.store.put(&id, &info, &value);
    }
}
