//! Param schemas: what a node accepts, with types and defaults, checked before anything runs.

use serde::de::DeserializeOwned;
use serde_json::Value as Json;

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

/// One declared param.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    /// `None`: required.
    pub default: Option<Json>,
    pub doc: &'static str,
}

impl ParamSpec {
    pub fn required(name: &'static str, ty: ParamType, doc: &'static str) -> Self {
        ParamSpec {
            name,
            ty,
            default: None,
            doc,
        }
    }

    pub fn optional(name: &'static str, ty: ParamType, default: Json, doc: &'static str) -> Self {
        ParamSpec {
            name,
            ty,
            default: Some(default),
            doc,
        }
    }
}

/// Deserializes checked params into a node's typed params struct.
pub fn parse<T: DeserializeOwned>(params: &Params) -> Result<T, crate::NodeError> {
    serde_json::from_value(Json::Object(params.clone()))
        .map_err(|e| crate::NodeError::Invalid(format!("params: {e}")))
}
