//! Checks a workflow document against the node registry and builds the [`Plan`].
//! Every problem is collected (not just the first) and located at file:line:column.

use super::locate::{join, Locations};
use super::prescan::{end_pos, too_deep, MAX_DEPTH};
use super::substitute::substitute;
use crate::diag::{nearest, Diagnostic, Diagnostics, Pos};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vistaflow_nodes::node::PortSpec;
use vistaflow_nodes::params::Params;
use vistaflow_nodes::{Node, ParamType, PortType, Registry};

/// Where a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The first CUDA device with room, else the CPU.
    Auto,
    Cpu,
    /// `cuda` (None: any CUDA device) or `cuda:N`.
    Cuda(Option<usize>),
}

impl DeviceSpec {
    pub fn parse(s: &str) -> Option<DeviceSpec> {
        match s {
            "auto" => Some(DeviceSpec::Auto),
            "cpu" => Some(DeviceSpec::Cpu),
            "cuda" | "gpu" => Some(DeviceSpec::Cuda(None)),
            _ => s
                .strip_prefix("cuda:")?
                .parse()
                .ok()
                .map(|n| DeviceSpec::Cuda(Some(n))),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(None) => f.write_str("cuda"),
            DeviceSpec::Cuda(Some(n)) => write!(f, "cuda:{n}"),
        }
    }
}

/// Workflow-wide settings (`settings:`), each with a default.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Cache folder; default `.vistaflow/cache` beside the workflow file.
    pub cache: PathBuf,
    pub device: DeviceSpec,
    /// Per-node time limit unless a node sets its own; default 1 hour.
    pub timeout: Duration,
}

/// One input of a planned node: which producer's port feeds it.
#[derive(Clone, Debug)]
pub struct InputEdge {
    pub port: String,
    /// Index of the producer in [`Plan::nodes`].
    pub from: usize,
    pub from_port: String,
    pub ty: PortType,
}

/// A node of the workflow after checking: params complete, edges resolved.
#[derive(Clone)]
pub struct PlannedNode {
    pub id: String,
    pub node: Arc<dyn Node>,
    /// Checked params: defaults filled in, numbers canonical, paths absolute.
    pub params: Params,
    pub inputs: Vec<InputEdge>,
    pub outputs: Vec<PortSpec>,
    pub device: DeviceSpec,
    /// `cache: false` on the node: always run, never store.
    pub cache: bool,
    pub timeout: Duration,
}

impl PlannedNode {
    pub fn kind(&self) -> &'static str {
        self.node.spec().kind
    }

    /// Absolute paths of the files this node reads (its `InputPath` params, with companions).
    pub fn source_paths(&self) -> Vec<(&'static str, PathBuf)> {
        self.paths_of(ParamType::InputPath)
    }

    /// Absolute paths of the files this node writes (its `OutputPath` params, with companions).
    pub fn written_paths(&self) -> Vec<(&'static str, PathBuf)> {
        self.paths_of(ParamType::OutputPath)
    }

    /// Each path param's file, then the companions the node names for it (read ones only
    /// where they exist: an absent model card is not an error).
    fn paths_of(&self, ty: ParamType) -> Vec<(&'static str, PathBuf)> {
        let mut out = Vec::new();
        for p in self.node.spec().params.iter().filter(|p| p.ty == ty) {
            let Some(path) = self.params.get(p.name).and_then(|v| v.as_str()) else {
                continue;
            };
            let path = PathBuf::from(path);
            let companions = self.node.companions(p.name, &path, &self.params);
            out.push((p.name, path));
            out.extend(
                companions
                    .into_iter()
                    .filter(|c| ty == ParamType::OutputPath || c.exists())
                    .map(|c| (p.name, c)),
            );
        }
        out
    }
}

/// A checked workflow, nodes in an order where producers come before consumers.
#[derive(Clone)]
pub struct Plan {
    pub name: String,
    pub file: PathBuf,
    pub settings: Settings,
    pub nodes: Vec<PlannedNode>,
}

impl Plan {
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }
}

/// Why a workflow could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read workflow {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads and checks the workflow at `path`, substituting `vars` into `${NAME}`.
pub fn load(
    path: &Path,
    vars: &BTreeMap<String, String>,
    registry: &Registry,
) -> Result<Plan, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => load_str(path, &text, vars, registry),
        Err(e) => {
            // Show the text up to the first bad byte, so the location can be seen.
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let text = String::from_utf8_lossy(good);
            let mut d = Diagnostics::new(path, &text);
            d.push(
                Diagnostic::new(
                    format!(
                        "not UTF-8 text: byte 0x{:02x} here (a binary file, or text in another \
                         encoding?)",
                        e.as_bytes()[good.len()]
                    ),
                    Some(end_pos(&text)),
                )
                .hint("a workflow is a YAML file in UTF-8; save it as UTF-8"),
            );
            Err(LoadError::Invalid(d))
        }
    }
}

/// As [`load`], with the text given; `path` names the file in messages and anchors relative paths.
pub fn load_str(
    path: &Path,
    text: &str,
    vars: &BTreeMap<String, String>,
    registry: &Registry,
) -> Result<Plan, LoadError> {
    if let Some(at) = too_deep(text) {
        let mut d = Diagnostics::new(path, text);
        d.push(
            Diagnostic::new(
                format!("brackets nested more than {MAX_DEPTH} deep"),
                Some(at),
            )
            .hint("a workflow needs a few levels; is this the right file?"),
        );
        return Err(LoadError::Invalid(d));
    }
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut c = Checker {
        locs: Locations::index(text),
        diags: Diagnostics::new(path, text),
        registry,
        dir,
    };
    let plan = c.check(path, text, vars);
    match (c.diags.into_result(), plan) {
        (Ok(()), Some(plan)) => Ok(plan),
        (Err(d), _) => Err(LoadError::Invalid(d)),
        (Ok(()), None) => unreachable!("a failed check always records a problem"),
    }
}

struct Checker<'a> {
    locs: Locations,
    diags: Diagnostics,
    registry: &'a Registry,
    dir: PathBuf,
}

const TOP_KEYS: [&str; 4] = ["version", "name", "settings", "nodes"];
const SETTINGS_KEYS: [&str; 3] = ["cache", "device", "timeout"];
const NODE_KEYS: [&str; 6] = ["kind", "inputs", "params", "device", "cache", "timeout"];

/// A node after the first pass (kind and params), before edges are resolved.
struct Draft {
    id: String,
    node: Arc<dyn Node>,
    params: Params,
    inputs: Vec<(String, String)>,
    device: DeviceSpec,
    cache: bool,
    timeout: Duration,
}

impl Checker<'_> {
    fn err_at(
        &mut self,
        msg: impl Into<String>,
        pos: Option<Pos>,
        width: usize,
        hint: Option<String>,
    ) {
        let mut d = Diagnostic::new(msg, pos).width(width);
        d.hint = hint;
        self.diags.push(d);
    }

    /// Problem with the value at `path` (underlined).
    fn bad_value(&mut self, path: &str, msg: impl Into<String>, hint: Option<String>) {
        let l = self.locs.get(path);
        self.err_at(msg, self.locs.value_pos(path), l.value_len, hint);
    }

    /// Problem with the key at `path` (e.g. an unknown field, a missing one inside it).
    fn bad_key(&mut self, path: &str, msg: impl Into<String>, hint: Option<String>) {
        let width = path.rsplit('.').next().map_or(1, str::len);
        self.err_at(msg, self.locs.key_pos(path), width, hint);
    }

    fn unknown_keys(
        &mut self,
        map: &serde_yaml::Mapping,
        path: &str,
        allowed: &[&str],
        what: &str,
    ) {
        for k in map.keys() {
            let key = k.as_str().unwrap_or("?");
            if !allowed.contains(&key) {
                let hint = match nearest(key, allowed.iter().copied()) {
                    Some(n) => format!("did you mean `{n}`?"),
                    None => format!("{what} may have: {}", allowed.join(", ")),
                };
                self.bad_key(
                    &join(path, key),
                    format!("unknown field `{key}` in {what}"),
                    Some(hint),
                );
            }
        }
    }

    fn check(&mut self, path: &Path, text: &str, vars: &BTreeMap<String, String>) -> Option<Plan> {
        if let Some(d) = self.locs.duplicates.first().cloned() {
            let what = if d.path == "nodes" { "node id" } else { "key" };
            self.err_at(
                format!("duplicate {what} `{}`", d.key),
                Some(d.second),
                d.key.len(),
                Some(format!(
                    "first defined at line {}; ids must be unique",
                    d.first.line
                )),
            );
            return None;
        }
        let mut doc: Yaml = match serde_yaml::from_str(text) {
            Ok(d) => d,
            Err(e) => {
                let pos = e.location().map(|l| Pos {
                    line: l.line(),
                    col: l.column(),
                });
                let line = pos
                    .and_then(|p| text.lines().nth(p.line.saturating_sub(1)))
                    .unwrap_or("");
                let hint = if line.contains("${") && line.contains('{') {
                    "inside `{ ... }` put `${NAME}` values in quotes: `path: \"${NAME}\"`"
                } else {
                    "check indentation, colons and brackets"
                };
                self.err_at(format!("not valid YAML: {e}"), pos, 1, Some(hint.into()));
                return None;
            }
        };
        substitute(&mut doc, vars, &self.locs, &mut self.diags);
        let Some(top) = doc.as_mapping() else {
            self.err_at(
                "a workflow must be a mapping with `version`, `name` and `nodes`",
                Some(Pos { line: 1, col: 1 }),
                1,
                None,
            );
            return None;
        };
        self.unknown_keys(top, "", &TOP_KEYS, "a workflow");
        match top.get("version") {
            Some(v) if v.as_u64() == Some(1) => {}
            Some(_) => self.bad_value(
                "version",
                "unsupported workflow version",
                Some("this vistaflow reads `version: 1`".into()),
            ),
            None => self.err_at(
                "missing `version: 1`",
                Some(Pos { line: 1, col: 1 }),
                1,
                Some("start the file with `version: 1`".into()),
            ),
        }
        let name = match top.get("name") {
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Some(Yaml::String(s)) => s.clone(),
            Some(_) => {
                self.bad_value("name", "`name` must be a string", None);
                String::new()
            }
        };
        let settings = self.settings(top.get("settings"));
        let Some(nodes) = top.get("nodes").and_then(Yaml::as_mapping) else {
            let pos = self.locs.key_pos("nodes").or(Some(Pos { line: 1, col: 1 }));
            self.err_at(
                "a workflow needs `nodes:`, a mapping of node id -> { kind, inputs, params }",
                pos,
                1,
                None,
            );
            return None;
        };
        let drafts: Vec<Draft> = nodes
            .iter()
            .filter_map(|(k, v)| self.draft(k.as_str().unwrap_or(""), v, &settings))
            .collect();
        if drafts.len() != nodes.len() {
            return None;
        }
        let links = self.link(&drafts)?;
        let order = self.topological_order(&drafts, &links)?;
        let nodes = self.type_edges(drafts, links, &order)?;
        Some(Plan {
            name,
            file: path.to_path_buf(),
            settings,
            nodes,
        })
    }

    fn settings(&mut self, v: Option<&Yaml>) -> Settings {
        let mut s = Settings {
            cache: self.dir.join(".vistaflow/cache"),
            device: DeviceSpec::Auto,
            timeout: Duration::from_secs(3600),
        };
        let Some(v) = v else { return s };
        let Some(m) = v.as_mapping() else {
            self.bad_value(
                "settings",
                "`settings` must be a mapping",
                Some("e.g. `settings: { cache: .vistaflow/cache, device: auto }`".into()),
            );
            return s;
        };
        self.unknown_keys(m, "settings", &SETTINGS_KEYS, "settings");
        if let Some(c) = m.get("cache") {
            match c.as_str() {
                Some(p) if !p.is_empty() => s.cache = normalize(&self.dir.join(p)),
                _ => self.bad_value("settings.cache", "`cache` must be a folder path", None),
            }
        }
        if let Some(d) = m.get("device") {
            if let Some(d) = self.device(d, "settings.device") {
                s.device = d;
            }
        }
        if let Some(t) = m.get("timeout") {
            if let Some(t) = self.duration(t, "settings.timeout") {
                s.timeout = t;
            }
        }
        s
    }

    fn device(&mut self, v: &Yaml, path: &str) -> Option<DeviceSpec> {
        let d = v.as_str().and_then(DeviceSpec::parse);
        if d.is_none() {
            self.bad_value(
                path,
                "unknown device",
                Some("use auto, cpu, cuda or cuda:N".into()),
            );
        }
        d
    }

    fn duration(&mut self, v: &Yaml, path: &str) -> Option<Duration> {
        let d = match v {
            Yaml::Number(n) => n.as_u64().map(Duration::from_secs),
            Yaml::String(s) => humantime::parse_duration(s).ok(),
            _ => None,
        };
        if d.is_none() {
            self.bad_value(
                path,
                "not a duration",
                Some("write e.g. `90s`, `10m` or `2h`".into()),
            );
        }
        d
    }

    /// First pass over one node: kind, params, device, cache, timeout; inputs kept as text.
    fn draft(&mut self, id: &str, v: &Yaml, settings: &Settings) -> Option<Draft> {
        let path = join("nodes", id);
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.bad_key(
                &path,
                format!("invalid node id `{id}`"),
                Some("ids use letters, digits, `_` and `-`".into()),
            );
        }
        let Some(m) = v.as_mapping() else {
            self.bad_value(
                &path,
                format!("node `{id}` must be a mapping"),
                Some("e.g. `ct: { kind: load_nifti, params: { path: ct.nii.gz } }`".into()),
            );
            return None;
        };
        self.unknown_keys(m, &path, &NODE_KEYS, "a node");
        let kind_path = join(&path, "kind");
        let Some(kind) = m.get("kind").and_then(Yaml::as_str) else {
            self.bad_key(
                &path,
                format!("node `{id}` has no `kind`"),
                Some("`vistaflow nodes` lists the kinds".into()),
            );
            return None;
        };
        let Some(node) = self.registry.get(kind).cloned() else {
            let hint = match nearest(kind, self.registry.kinds()) {
                Some(n) => format!("did you mean `{n}`? `vistaflow nodes` lists every kind"),
                None => "`vistaflow nodes` lists every kind".to_string(),
            };
            self.bad_value(
                &kind_path,
                format!("unknown node kind `{kind}`"),
                Some(hint),
            );
            return None;
        };
        let params = self.params(&node, m.get("params"), &join(&path, "params"), id)?;
        let mut inputs = vec![];
        match m.get("inputs") {
            None => {}
            Some(Yaml::Mapping(im)) => {
                for (k, v) in im {
                    let port = k.as_str().unwrap_or("").to_string();
                    match v.as_str() {
                        Some(s) => inputs.push((port, s.to_string())),
                        None => self.bad_value(
                            &join(&join(&path, "inputs"), &port),
                            "an input must be `node.port`",
                            Some("e.g. `image: ct.image`".into()),
                        ),
                    }
                }
            }
            Some(_) => self.bad_value(
                &join(&path, "inputs"),
                "`inputs` must be a mapping of port: node.port",
                None,
            ),
        }
        let device = match m.get("device") {
            Some(d) => self
                .device(d, &join(&path, "device"))
                .unwrap_or(settings.device),
            None => settings.device,
        };
        let cache = match m.get("cache") {
            None => true,
            Some(Yaml::Bool(b)) => *b,
            Some(_) => {
                self.bad_value(&join(&path, "cache"), "`cache` must be true or false", None);
                true
            }
        };
        let timeout = match m.get("timeout") {
            Some(t) => self
                .duration(t, &join(&path, "timeout"))
                .unwrap_or(settings.timeout),
            None => settings.timeout,
        };
        Some(Draft {
            id: id.to_string(),
            node,
            params,
            inputs,
            device,
            cache,
            timeout,
        })
    }

    fn params(
        &mut self,
        node: &Arc<dyn Node>,
        v: Option<&Yaml>,
        path: &str,
        id: &str,
    ) -> Option<Params> {
        let spec = node.spec();
        let given = match v {
            None => serde_yaml::Mapping::new(),
            Some(Yaml::Mapping(m)) => m.clone(),
            Some(_) => {
                self.bad_value(path, "`params` must be a mapping", None);
                return None;
            }
        };
        let mut out = Params::new();
        let mut ok = true;
        for (k, v) in &given {
            let name = k.as_str().unwrap_or("?");
            let ppath = join(path, name);
            let Some(ps) = spec.param(name) else {
                let names = spec.params.iter().map(|p| p.name);
                let hint = match nearest(name, names.clone()) {
                    Some(n) => format!("did you mean `{n}`?"),
                    None => format!(
                        "`{}` takes: {}",
                        spec.kind,
                        names.collect::<Vec<_>>().join(", ")
                    ),
                };
                self.bad_key(
                    &ppath,
                    format!("unknown param `{name}` for `{}`", spec.kind),
                    Some(hint),
                );
                ok = false;
                continue;
            };
            let json = match yaml_to_json(v) {
                Ok(j) => j,
                Err(e) => {
                    self.bad_value(&ppath, format!("param `{name}`: {e}"), None);
                    ok = false;
                    continue;
                }
            };
            if let Err(e) = ps.check(&json) {
                self.bad_value(
                    &ppath,
                    format!("param `{name}` of `{}`: {e}", spec.kind),
                    Some(ps.doc.to_string()),
                );
                ok = false;
                continue;
            }
            out.insert(name.to_string(), self.canonical(&ps.ty, json));
        }
        for ps in &spec.params {
            if out.contains_key(ps.name) || given.contains_key(ps.name) {
                continue;
            }
            match &ps.default {
                Some(d) => {
                    out.insert(ps.name.to_string(), self.canonical(&ps.ty, d.clone()));
                }
                None => {
                    self.bad_key(
                        &join("nodes", id),
                        format!(
                            "node `{id}` ({}) is missing required param `{}`",
                            spec.kind, ps.name
                        ),
                        Some(format!("add `params: {{ {}: ... }}` - {}", ps.name, ps.doc)),
                    );
                    ok = false;
                }
            }
        }
        if ok {
            // The node's own checks (across params, against its tables): still before
            // anything runs, at the value they concern.
            if let Err(e) = spec.params.check(&out) {
                let at = match &e.param {
                    Some(name) if given.contains_key(name.as_str()) => join(path, name),
                    _ => path.to_string(),
                };
                let hint = e
                    .param
                    .as_deref()
                    .and_then(|n| spec.param(n))
                    .map(|ps| ps.doc.to_string());
                let what = match &e.param {
                    Some(name) => format!("param `{name}` of `{}`", spec.kind),
                    None => format!("params of `{}`", spec.kind),
                };
                self.bad_value(&at, format!("{what}: {}", e.message), hint);
                ok = false;
            }
        }
        ok.then_some(out)
    }

    fn canonical(&self, ty: &ParamType, v: Json) -> Json {
        canonical(&self.dir, ty, v)
    }

    /// Second pass: resolves each `port: node.port` to a producer, checking that the port
    /// exists on this kind and the node exists. Types come later, in dependency order.
    fn link(&mut self, drafts: &[Draft]) -> Option<Vec<Vec<Link>>> {
        let index: HashMap<&str, usize> = drafts
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.as_str(), i))
            .collect();
        let mut all = vec![];
        let mut ok = true;
        for d in drafts {
            let spec = d.node.spec();
            let ipath = join(&join("nodes", &d.id), "inputs");
            let mut links = vec![];
            let mut ports_known = true;
            for (port, src) in &d.inputs {
                let ppath = join(&ipath, port);
                if spec.input(port).is_none() {
                    let names = spec.inputs.iter().map(|p| p.name);
                    let hint = match nearest(port, names.clone()) {
                        Some(n) => format!("did you mean `{n}`?"),
                        None if spec.inputs.is_empty() => {
                            format!("`{}` takes no inputs", spec.kind)
                        }
                        None => format!(
                            "`{}` has inputs: {}",
                            spec.kind,
                            names.collect::<Vec<_>>().join(", ")
                        ),
                    };
                    self.bad_key(
                        &ppath,
                        format!("unknown input port `{port}` for `{}`", spec.kind),
                        Some(hint),
                    );
                    ok = false;
                    ports_known = false;
                    continue;
                }
                let Some((from_id, from_port)) = src.split_once('.') else {
                    self.bad_value(
                        &ppath,
                        format!("input `{port}` must name `node.port`, found `{src}`"),
                        Some("e.g. `image: ct.image`".into()),
                    );
                    ok = false;
                    continue;
                };
                let Some(&from) = index.get(from_id) else {
                    let hint = match nearest(from_id, index.keys().copied()) {
                        Some(n) => format!("did you mean `{n}`?"),
                        None => format!(
                            "nodes in this workflow: {}",
                            drafts
                                .iter()
                                .map(|d| d.id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    self.bad_value(&ppath, format!("unknown node `{from_id}`"), Some(hint));
                    ok = false;
                    continue;
                };
                links.push(Link {
                    port: port.clone(),
                    from,
                    from_port: from_port.to_string(),
                });
            }
            let connected: Vec<&str> = d.inputs.iter().map(|(p, _)| p.as_str()).collect();
            // With a misspelt port, "missing input" would only repeat the same mistake.
            let required = spec
                .inputs
                .iter()
                .filter(|p| ports_known && p.required && !connected.contains(&p.name));
            for ps in required {
                self.bad_key(
                    &join("nodes", &d.id),
                    format!(
                        "node `{}` ({}) is missing input `{}`",
                        d.id, spec.kind, ps.name
                    ),
                    Some(format!(
                        "add `inputs: {{ {}: NODE.PORT }}` ({})",
                        ps.name,
                        ps.accepts_text()
                    )),
                );
                ok = false;
            }
            let group = &spec.exactly_one_input_of;
            let n = group.iter().filter(|g| connected.contains(g)).count();
            if ports_known && !group.is_empty() && n != 1 {
                self.bad_key(
                    &join("nodes", &d.id),
                    format!(
                        "node `{}` ({}) needs exactly one of the inputs {}, got {n}",
                        d.id,
                        spec.kind,
                        group.join(", ")
                    ),
                    None,
                );
                ok = false;
            }
            all.push(links);
        }
        ok.then_some(all)
    }

    /// Kahn's order (file order among equals), or a located `cycle` error.
    fn topological_order(&mut self, drafts: &[Draft], links: &[Vec<Link>]) -> Option<Vec<usize>> {
        let n = drafts.len();
        let mut indegree: Vec<usize> = links.iter().map(Vec::len).collect();
        let mut children = vec![vec![]; n];
        for (i, ls) in links.iter().enumerate() {
            for l in ls {
                children[l.from].push(i);
            }
        }
        let mut order = vec![];
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|&i| indegree[i] == 0).collect();
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &c in &children[i] {
                indegree[c] -= 1;
                if indegree[c] == 0 {
                    ready.insert(c);
                }
            }
        }
        if order.len() == n {
            return Some(order);
        }
        // Walk producers from a node left over until one repeats: that is a cycle.
        let mut at = (0..n).find(|&i| indegree[i] > 0).expect("a node is left");
        let mut seen = vec![];
        while !seen.contains(&at) {
            seen.push(at);
            at = links[at]
                .iter()
                .map(|l| l.from)
                .find(|&f| indegree[f] > 0)
                .expect("a left-over node has a left-over producer");
        }
        let start = seen.iter().position(|&x| x == at).unwrap_or(0);
        let mut cycle: Vec<&str> = seen[start..]
            .iter()
            .rev()
            .map(|&i| drafts[i].id.as_str())
            .collect();
        cycle.push(cycle[0]);
        let path = join(&join("nodes", &drafts[at].id), "inputs");
        self.bad_key(
            &path,
            format!("cycle: {}", cycle.join(" -> ")),
            Some("a workflow must be acyclic: remove one of these inputs".into()),
        );
        None
    }

    /// Third pass, producers first: each node's outputs follow from its params and the types
    /// connected to it, so a port's type is checked against what actually arrives.
    fn type_edges(
        &mut self,
        drafts: Vec<Draft>,
        links: Vec<Vec<Link>>,
        order: &[usize],
    ) -> Option<Vec<PlannedNode>> {
        let mut position = vec![0; drafts.len()];
        for (new, &old) in order.iter().enumerate() {
            position[old] = new;
        }
        let mut planned: Vec<PlannedNode> = vec![];
        let mut ok = true;
        for &i in order {
            let d = &drafts[i];
            let spec = d.node.spec();
            let ipath = join(&join("nodes", &d.id), "inputs");
            let mut edges = vec![];
            for l in &links[i] {
                let ppath = join(&ipath, &l.port);
                let producer = &planned[position[l.from]];
                let src = format!("{}.{}", producer.id, l.from_port);
                let Some(out) = producer.outputs.iter().find(|o| o.name == l.from_port) else {
                    let names: Vec<&str> = producer.outputs.iter().map(|o| o.name).collect();
                    let hint = if names.is_empty() {
                        format!("`{}` ({}) has no outputs", producer.id, producer.kind())
                    } else {
                        format!(
                            "`{}` ({}) has outputs: {}",
                            producer.id,
                            producer.kind(),
                            names.join(", ")
                        )
                    };
                    self.bad_value(
                        &ppath,
                        format!("node `{}` has no output `{}`", producer.id, l.from_port),
                        Some(hint),
                    );
                    ok = false;
                    continue;
                };
                let ps = spec.input(&l.port).expect("ports checked in link()");
                if !ps.accepts.contains(&out.ty) {
                    let other = spec
                        .inputs
                        .iter()
                        .find(|p| p.accepts.contains(&out.ty))
                        .map(|p| p.name);
                    let hint = match other {
                        Some(o) => format!("connect it to input `{o}` instead"),
                        None => format!("`{}` needs {} here", spec.kind, ps.accepts_text()),
                    };
                    self.bad_value(
                        &ppath,
                        format!(
                            "port type mismatch: `{src}` is {} but input `{}` of `{}` takes {}",
                            out.ty,
                            l.port,
                            spec.kind,
                            ps.accepts_text()
                        ),
                        Some(hint),
                    );
                    ok = false;
                    continue;
                }
                edges.push(InputEdge {
                    port: l.port.clone(),
                    from: position[l.from],
                    from_port: l.from_port.clone(),
                    ty: out.ty,
                });
            }
            edges.sort_by(|a, b| a.port.cmp(&b.port));
            let types = edges.iter().map(|e| (e.port.clone(), e.ty)).collect();
            planned.push(PlannedNode {
                id: d.id.clone(),
                node: d.node.clone(),
                params: d.params.clone(),
                outputs: d.node.outputs(&d.params, &types),
                inputs: edges,
                device: d.device,
                cache: d.cache,
                timeout: d.timeout,
            });
        }
        ok.then_some(planned)
    }
}

/// An input connection before types are checked: `port` fed by output `from_port` of node `from`.
struct Link {
    port: String,
    from: usize,
    from_port: String,
}

/// Same meaning -> same JSON, so that the cache key does not depend on spelling; paths are
/// made absolute from `dir` (the workflow's folder).
pub(super) fn canonical(dir: &Path, ty: &ParamType, v: Json) -> Json {
    match ty {
        ParamType::Float => v.as_f64().map_or(v, Json::from),
        ParamType::Floats { .. } => match v {
            Json::Array(a) => Json::Array(
                a.into_iter()
                    .map(|x| x.as_f64().map_or(x, Json::from))
                    .collect(),
            ),
            other => other,
        },
        ParamType::InputPath | ParamType::OutputPath => match v.as_str() {
            Some(p) => Json::String(normalize(&dir.join(p)).to_string_lossy().into_owned()),
            None => v,
        },
        _ => v,
    }
}

/// Removes `.` and `..` components without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn yaml_to_json(v: &Yaml) -> Result<Json, String> {
    Ok(match v {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(*b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Json::Number)
                    .ok_or("numbers must be finite")?
            }
        }
        Yaml::String(s) => Json::String(s.clone()),
        Yaml::Sequence(items) => {
            Json::Array(items.iter().map(yaml_to_json).collect::<Result<_, _>>()?)
        }
        Yaml::Mapping(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let k = k.as_str().ok_or("mapping keys must be strings")?;
                out.insert(k.to_string(), yaml_to_json(v)?);
            }
            Json::Object(out)
        }
        Yaml::Tagged(_) => return Err("YAML tags (`!name`) are not supported".into()),
    })
}
