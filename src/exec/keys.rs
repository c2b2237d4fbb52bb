//! Cache keys, all known before anything runs (as Bazel and Nix do).
//!
//! key(node) = sha256(kind, version, canonical params without read-paths, the output id of
//! each input, the content digest of each file the node reads).
//! output id = sha256(key, port).

use crate::hash::{Digest, KeyHasher};
use crate::workflow::Plan;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use vistaflow_nodes::ParamType;

/// Keys of every node of a plan, by plan index.
#[derive(Clone, Debug)]
pub struct Keys {
    pub node: Vec<Digest>,
}

impl Keys {
    /// The identity of output `port` of node `index`.
    pub fn output(&self, index: usize, port: &str) -> Digest {
        output_id(&self.node[index], port)
    }
}

pub fn output_id(key: &Digest, port: &str) -> Digest {
    let mut h = KeyHasher::new("vistaflow.output.v1");
    h.field("key", &key.0).field("port", port.as_bytes());
    h.finish()
}

/// A source file that could not be digested.
#[derive(Debug, thiserror::Error)]
#[error("node `{node}` ({kind}): cannot read `{param}` = {}: {source}", path.display())]
pub struct SourceError {
    pub node: String,
    pub kind: &'static str,
    pub param: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Computes every key; `digest` gives the content digest of a file or folder.
pub fn compute(
    plan: &Plan,
    mut digest: impl FnMut(&Path) -> std::io::Result<Digest>,
) -> Result<Keys, SourceError> {
    let mut keys: Vec<Digest> = Vec::with_capacity(plan.nodes.len());
    for n in &plan.nodes {
        let spec = n.node.spec();
        let mut h = KeyHasher::new("vistaflow.node.v1");
        h.field("kind", spec.kind.as_bytes())
            .field("version", spec.version.as_bytes());
        let keyed: serde_json::Map<String, Json> = n
            .params
            .iter()
            .filter(|(name, _)| {
                spec.param(name)
                    .is_none_or(|p| p.ty != ParamType::InputPath)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        h.field("params", canonical_json(&Json::Object(keyed)).as_bytes());
        for e in &n.inputs {
            h.field(
                &format!("input:{}", e.port),
                &output_id(&keys[e.from], &e.from_port).0,
            );
        }
        for (param, path) in n.source_paths() {
            let d = digest(&path).map_err(|source| SourceError {
                node: n.id.clone(),
                kind: spec.kind,
                param,
                path: path.clone(),
                source,
            })?;
            h.field(&format!("source:{param}"), &d.0);
        }
        keys.push(h.finish());
    }
    Ok(Keys { node: keys })
}

/// JSON with object keys sorted at every level, whatever map type serde_json was built with.
pub fn canonical_json(v: &Json) -> String {
    match v {
        Json::Object(m) => {
            let mut items: Vec<(&String, &Json)> = m.iter().collect();
            items.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> = items
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Json::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Json::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let a = json!({"b": 1, "a": {"y": [1.5, {"q": 1, "p": 2}], "x": "s"}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":"s","y":[1.5,{"p":2,"q":1}]},"b":1}"#
        );
    }

    #[test]
    fn output_ids_differ_by_port_and_key() {
        let k1 = Digest::of(b"1");
        let k2 = Digest::of(b"2");
        assert_ne!(output_id(&k1, "image"), output_id(&k1, "labels"));
        assert_ne!(output_id(&k1, "image"), output_id(&k2, "image"));
        assert_eq!(output_id(&k1, "image"), output_id(&k1, "image"));
    }
}
