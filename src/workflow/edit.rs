//! Changes a program makes to a checked plan (not a file): `vistaflow serve` replaces its
//! refine node's clicks with the page's, and runs only the nodes a view needs.

use super::check::canonical;
use super::Plan;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;
use vistaflow_nodes::params::Params;

impl Plan {
    /// The nodes `targets` need (they and everything upstream of them), in plan order, as a
    /// plan of their own. Keys do not change: a node's key depends only on itself and its
    /// inputs, so the cache serves both plans alike.
    pub fn upstream_of(&self, targets: &[usize]) -> Plan {
        let mut keep = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = targets.to_vec();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut keep[i], true) {
                stack.extend(self.nodes[i].inputs.iter().map(|e| e.from));
            }
        }
        // Plan order is topological, so producers keep coming before their consumers.
        let new_index: BTreeMap<usize, usize> = (0..self.nodes.len())
            .filter(|&i| keep[i])
            .enumerate()
            .map(|(new, old)| (old, new))
            .collect();
        let nodes = new_index
            .keys()
            .map(|&old| {
                let mut n = self.nodes[old].clone();
                for e in &mut n.inputs {
                    e.from = new_index[&e.from];
                }
                n
            })
            .collect();
        Plan {
            name: self.name.clone(),
            file: self.file.clone(),
            settings: self.settings.clone(),
            nodes,
        }
    }

    /// This plan with params of node `index` replaced by `set` (values as a workflow file
    /// writes them; relative paths from the workflow's folder), each checked as the file's
    /// are, then the node's checks across its params.
    pub fn with_params(&self, index: usize, set: Params) -> Result<Plan, String> {
        let mut plan = self.clone();
        let dir = self
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        let node = &mut plan.nodes[index];
        let spec = node.node.spec();
        for (name, value) in set {
            let ps = spec
                .param(&name)
                .ok_or_else(|| format!("`{}` has no param `{name}`", spec.kind))?;
            // Null puts back a param whose default is "not given" (a file's omitted key).
            let unset = value.is_null() && ps.default.as_ref().is_some_and(Json::is_null);
            if !unset {
                ps.check(&value)
                    .map_err(|e| format!("param `{name}` of `{}`: {e}", spec.kind))?;
            }
            let value = canonical(&dir, &ps.ty, value);
            node.params.insert(name, value);
        }
        spec.params
            .check(&node.params)
            .map_err(|e| format!("params of `{}`: {}", spec.kind, e.message))?;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vistaflow_nodes::Registry;

    const WF: &str = r#"
version: 1
nodes:
  a: { kind: load_nifti, params: { path: a.nii.gz } }
  b: { kind: load_nifti, params: { path: b.nii.gz } }
  r: { kind: resample, inputs: { image: b.image }, params: { spacing: [2, 2, 2] } }
  m: { kind: resample, inputs: { image: a.image, reference: r.image } }
"#;

    fn plan() -> Plan {
        let vars = BTreeMap::new();
        super::super::load_str(Path::new("/w/wf.yaml"), WF, &vars, &Registry::builtin()).unwrap()
    }

    #[test]
    fn upstream_keeps_what_a_node_needs_with_edges_renumbered() {
        let p = plan();
        let r = p.index_of("r").unwrap();
        let sub = p.upstream_of(&[r]);
        let ids: Vec<&str> = sub.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["b", "r"]);
        assert_eq!(sub.nodes[1].inputs[0].from, 0);
        let all = p.upstream_of(&[p.index_of("m").unwrap()]);
        assert_eq!(all.nodes.len(), 4);
        let m = &all.nodes[3];
        let from: Vec<&str> = m
            .inputs
            .iter()
            .map(|e| all.nodes[e.from].id.as_str())
            .collect();
        assert_eq!(from.len(), 2);
        assert!(from.contains(&"a") && from.contains(&"r"));
    }

    #[test]
    fn params_set_are_checked_and_made_canonical() {
        let p = plan();
        let r = p.index_of("r").unwrap();
        let mut set = Params::new();
        set.insert("spacing".into(), serde_json::json!([3, 3, 1.5]));
        let q = p.with_params(r, set).unwrap();
        assert_eq!(
            q.nodes[r].params["spacing"],
            serde_json::json!([3.0, 3.0, 1.5])
        );
        let mut bad = Params::new();
        bad.insert("spacing".into(), serde_json::json!("wide"));
        assert!(p.with_params(r, bad).err().unwrap().contains("spacing"));
        let mut unknown = Params::new();
        unknown.insert("spacnig".into(), serde_json::json!([1, 1, 1]));
        assert!(p
            .with_params(r, unknown)
            .err()
            .unwrap()
            .contains("no param `spacnig`"));
        let a = p.index_of("a").unwrap();
        let mut path = Params::new();
        path.insert("path".into(), serde_json::json!("sub/../c.nii"));
        let q = p.with_params(a, path).unwrap();
        assert_eq!(q.nodes[a].params["path"], serde_json::json!("/w/c.nii"));
        // Null unsets a param whose default is null; one with another default stays refused.
        let mut unset = Params::new();
        unset.insert("fill".into(), Json::Null);
        assert_eq!(
            p.with_params(r, unset).unwrap().nodes[r].params["fill"],
            Json::Null
        );
        let mut refused = Params::new();
        refused.insert("interpolation".into(), Json::Null);
        assert!(p.with_params(r, refused).is_err());
    }
}
