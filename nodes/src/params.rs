//! Param schemas: what a node accepts, with types and defaults, checked before anything runs.

use serde::de::DeserializeOwned;
use serde_json::Value as Json;
pub use vistaflow_nodes_derive::{NodeParams, ParamChoice};

/// A node's params after checking: every declared param present (defaults filled in),
/// input/output paths absolute.
pub type Params = serde_json::Map<String, Json>;

/// The type of one param, as a workflow author writes it.
#[derive(Clone, Debug)]
pub enum ParamType {
    Bool,
    Int,
    Float,
    Str,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
    /// A list of numbers, of exactly `len` items when given.
    Floats {
        len: Option<usize>,
    },
    /// A list of integers, of exactly `len` items when given.
    Ints {
        len: Option<usize>,
    },
    /// A value a node checks itself (e.g. class names against its class table); `describe`
    /// says what is expected.
    Custom {
        describe: &'static str,
        check: fn(&Json) -> Result<(), String>,
    },
    /// A file or folder the node reads. Resolved against the workflow's folder; its content
    /// digest, not its name, goes into the cache key.
    InputPath,
    /// A file the node writes. Resolved against the workflow's folder; the node runs again
    /// when the file is missing or no longer what it wrote.
    OutputPath,
}

/// Custom checks compare by what they describe (function addresses are not meaningful).
impl PartialEq for ParamType {
    fn eq(&self, other: &Self) -> bool {
        use ParamType::*;
        match (self, other) {
            (Custom { describe: a, .. }, Custom { describe: b, .. }) => a == b,
            (Choice(a), Choice(b)) => a == b,
            (Floats { len: a }, Floats { len: b }) | (Ints { len: a }, Ints { len: b }) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl ParamType {
    /// How the type reads in messages and `vistaflow nodes`.
    pub fn describe(&self) -> String {
        match self {
            ParamType::Bool => "bool".into(),
            ParamType::Int => "integer".into(),
            ParamType::Float => "number".into(),
            ParamType::Str => "string".into(),
            ParamType::Choice(c) if c.len() > 8 => {
                format!("one of {} codes ({}, ...)", c.len(), c[..4].join("|"))
            }
            ParamType::Choice(c) => format!("one of {}", c.join("|")),
            ParamType::Floats { len: Some(n) } => format!("list of {n} numbers"),
            ParamType::Floats { len: None } => "list of numbers".into(),
            ParamType::Ints { len: Some(n) } => format!("list of {n} integers"),
            ParamType::Ints { len: None } => "list of integers".into(),
            ParamType::Custom { describe, .. } => describe.to_string(),
            ParamType::InputPath => "path to read".into(),
            ParamType::OutputPath => "path to write".into(),
        }
    }

    /// Checks a given value; the error says what was expected.
    pub fn check(&self, v: &Json) -> Result<(), String> {
        let ok = match self {
            // Custom checks say themselves what was wrong.
            ParamType::Custom { check, .. } => return check(v),
            ParamType::Ints { len } => v.as_array().is_some_and(|a| {
                a.iter().all(|x| x.is_i64() || x.is_u64()) && len.is_none_or(|n| a.len() == n)
            }),
            ParamType::Bool => v.is_boolean(),
            ParamType::Int => v.is_i64() || v.is_u64(),
            ParamType::Float => v.is_number(),
            ParamType::Str | ParamType::InputPath | ParamType::OutputPath => {
                v.as_str().is_some_and(|s| !s.is_empty())
            }
            ParamType::Choice(c) => v.as_str().is_some_and(|s| c.contains(&s)),
            ParamType::Floats { len } => v
                .as_array()
                .is_some_and(|a| a.iter().all(Json::is_number) && len.is_none_or(|n| a.len() == n)),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "expected {}, found {}",
                self.describe(),
                short_json(v)
            ))
        }
    }
}

fn short_json(v: &Json) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}...", &s[..57])
    } else {
        s
    }
}

/// Limits on a number param, or on each number of a list param; shown by `vistaflow nodes`
/// and checked at load, so a bad value fails in `vistaflow validate`, not minutes into a run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bounds {
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Greater than zero.
    pub positive: bool,
    pub multiple_of: Option<u64>,
}

impl Bounds {
    /// Unsigned integers.
    pub const NON_NEGATIVE: Bounds = Bounds {
        min: Some(0.0),
        max: None,
        positive: false,
        multiple_of: None,
    };

    pub fn is_none(&self) -> bool {
        *self == Bounds::default()
    }

    /// How the bounds read after the type: `> 0`, `in 1..=64`, `multiple of 16`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => parts.push(format!("in {}..={}", num(lo), num(hi))),
            (Some(lo), None) if !(self.positive && lo <= 0.0) => {
                parts.push(format!(">= {}", num(lo)))
            }
            (None, Some(hi)) => parts.push(format!("<= {}", num(hi))),
            _ => {}
        }
        if self.positive {
            parts.push("> 0".into());
        }
        if let Some(m) = self.multiple_of {
            parts.push(format!("a multiple of {m}"));
        }
        parts.join(", ")
    }

    /// Checks every number in `v` (a number or a list of them; null passes).
    pub fn check(&self, v: &Json) -> Result<(), String> {
        if self.is_none() {
            return Ok(());
        }
        let numbers: Vec<&Json> = match v {
            Json::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for n in numbers {
            let Some(x) = n.as_f64() else { continue };
            let ok = self.min.is_none_or(|lo| x >= lo)
                && self.max.is_none_or(|hi| x <= hi)
                && (!self.positive || x > 0.0)
                && self
                    .multiple_of
                    .is_none_or(|m| m > 0 && x.fract() == 0.0 && (x as i128) % (m as i128) == 0);
            if !ok {
                return Err(format!("{} is not {}", short_json(n), self.describe()));
            }
        }
        Ok(())
    }
}

/// `3` rather than `3.0` in messages.
fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

/// One declared param. Made by `#[derive(NodeParams)]` from a field of a node's params
/// struct; nodes do not write these by hand.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    /// `None`: required.
    pub default: Option<Json>,
    pub doc: &'static str,
    pub bounds: Bounds,
}

impl ParamSpec {
    /// Checks a given value against the type and bounds; the error says what was expected.
    pub fn check(&self, v: &Json) -> Result<(), String> {
        self.ty.check(v)?;
        self.bounds.check(v)
    }

    /// The type with its bounds, as `vistaflow nodes` shows it.
    pub fn describe(&self) -> String {
        let b = self.bounds.describe();
        if b.is_empty() {
            self.ty.describe()
        } else {
            format!("{}, {b}", self.ty.describe())
        }
    }
}

/// A value that fails a node's own checks: which param (`None`: several together) and why.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamError {
    pub param: Option<String>,
    pub message: String,
}

impl ParamError {
    /// A problem with one param.
    pub fn at(param: &str, message: impl Into<String>) -> Self {
        ParamError {
            param: Some(param.to_string()),
            message: message.into(),
        }
    }
    /// A problem of several params together.
    pub fn general(message: impl Into<String>) -> Self {
        ParamError {
            param: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.param {
            Some(p) => write!(f, "param `{p}`: {}", self.message),
            None => write!(f, "params: {}", self.message),
        }
    }
}

impl From<ParamError> for crate::NodeError {
    fn from(e: ParamError) -> Self {
        crate::NodeError::Invalid(e.to_string())
    }
}

/// How a Rust type reads as a param: its [`ParamType`] and the bounds all its values have.
pub trait ParamKind {
    fn param_type() -> ParamType;
    fn bounds() -> Bounds {
        Bounds::default()
    }
}

impl<T: ParamKind> ParamKind for Option<T> {
    fn param_type() -> ParamType {
        T::param_type()
    }
    fn bounds() -> Bounds {
        T::bounds()
    }
}

macro_rules! kind {
    ($ty:expr, $bounds:expr; $($t:ty),*) => {$(
        impl ParamKind for $t {
            fn param_type() -> ParamType { $ty }
            fn bounds() -> Bounds { $bounds }
        }
    )*};
}
kind!(ParamType::Bool, Bounds::default(); bool);
kind!(ParamType::Int, Bounds::default(); i32, i64);
kind!(ParamType::Int, Bounds::NON_NEGATIVE; u8, u16, u32, u64, usize);
kind!(ParamType::Float, Bounds::default(); f32, f64);
kind!(ParamType::Str, Bounds::default(); String);
kind!(ParamType::Floats { len: None }, Bounds::default(); Vec<f32>, Vec<f64>);
kind!(ParamType::Ints { len: None }, Bounds::default(); Vec<i32>, Vec<i64>);
kind!(ParamType::Ints { len: None }, Bounds::NON_NEGATIVE; Vec<u32>, Vec<u64>, Vec<usize>);

/// Fixed-length lists take their element's kind: `[f64; 3]` is a list of 3 numbers.
impl<T: ParamKind, const N: usize> ParamKind for [T; N] {
    fn param_type() -> ParamType {
        match T::param_type() {
            ParamType::Float => ParamType::Floats { len: Some(N) },
            ParamType::Int => ParamType::Ints { len: Some(N) },
            other => panic!("no list param of {}", other.describe()),
        }
    }
    fn bounds() -> Bounds {
        T::bounds()
    }
}

/// A node's params struct: the single source of its schema (`#[derive(NodeParams)]`).
pub trait NodeParams: DeserializeOwned {
    /// One spec per param, in the struct's order (flattened groups in place).
    fn specs() -> Vec<ParamSpec>;
    /// Checks that bounds cannot express (across params, or against a table).
    fn check(&self) -> Result<(), ParamError>;
}

/// The params of one node kind: the specs, and the check of a whole set of values.
#[derive(Clone, Debug)]
pub struct ParamSchema {
    specs: Vec<ParamSpec>,
    check: fn(&Params) -> Result<(), ParamError>,
}

impl ParamSchema {
    /// The schema of a params struct.
    pub fn of<P: NodeParams>() -> Self {
        ParamSchema {
            specs: P::specs(),
            check: |params| load::<P>(params).map(|_| ()),
        }
    }

    /// A node without params.
    pub fn none() -> Self {
        ParamSchema {
            specs: Vec::new(),
            check: |_| Ok(()),
        }
    }

    /// Every check a node makes of its params before it runs: for `vistaflow validate`.
    pub fn check(&self, params: &Params) -> Result<(), ParamError> {
        (self.check)(params)
    }
}

impl std::ops::Deref for ParamSchema {
    type Target = [ParamSpec];
    fn deref(&self) -> &[ParamSpec] {
        &self.specs
    }
}

/// A default written in the params struct, as the JSON the cache key sees.
pub fn default_json<T: serde::Serialize, V: Into<T>>(v: V) -> Json {
    serde_json::to_value(v.into()).expect("param defaults serialise to JSON")
}

/// Checks params (each value against its spec, then the struct's own checks) and gives the
/// typed struct. Params missing from the map take their defaults, so a program calling a node
/// with only some params gets what a workflow would.
pub fn load<P: NodeParams>(params: &Params) -> Result<P, ParamError> {
    let specs = P::specs();
    if let Some(k) = params.keys().find(|k| !specs.iter().any(|s| s.name == *k)) {
        return Err(ParamError::at(k, "unknown param"));
    }
    let mut full = params.clone();
    for spec in specs {
        match full.get(spec.name) {
            // An optional param left out (its default, null, is no value to check).
            Some(Json::Null) if spec.default == Some(Json::Null) => {}
            Some(v) => spec.check(v).map_err(|e| ParamError::at(spec.name, e))?,
            None => {
                let d = spec
                    .default
                    .clone()
                    .ok_or_else(|| ParamError::at(spec.name, format!("required: {}", spec.doc)))?;
                full.insert(spec.name.to_string(), d);
            }
        }
    }
    let p = read::<P>(&full)?;
    p.check()?;
    Ok(p)
}

/// The typed struct of params the engine has already checked (every param present), without
/// checking again: for the questions asked of a node many times per run (its outputs, whether
/// it finalises, its companion files), where the node's own checks may read files.
pub fn read<P: NodeParams>(params: &Params) -> Result<P, ParamError> {
    serde_json::from_value(Json::Object(params.clone()))
        .map_err(|e| ParamError::general(e.to_string()))
}

/// A `ParamType::Custom` check that a value deserialises as `T` (whose own `Deserialize`
/// says what was wrong).
pub fn check_by_serde<T: DeserializeOwned>(v: &Json) -> Result<(), String> {
    serde_json::from_value::<T>(v.clone())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl<'a> IntoIterator for &'a ParamSchema {
    type Item = &'a ParamSpec;
    type IntoIter = std::slice::Iter<'a, ParamSpec>;
    fn into_iter(self) -> Self::IntoIter {
        self.specs.iter()
    }
}
