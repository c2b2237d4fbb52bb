//! `vistaflow nodes [KIND]`.

use super::EXIT_INVALID;
use crate::diag::nearest;
use vistaflow_nodes::{Node, Registry};

pub fn nodes(kind: Option<&str>) -> i32 {
    let registry = Registry::builtin();
    match kind {
        None => {
            for n in registry.iter() {
                out!("{}", describe(n.as_ref()));
                outln!();
            }
            0
        }
        Some(k) => match registry.get(k) {
            Some(n) => {
                out!("{}", describe(n.as_ref()));
                0
            }
            None => {
                let hint = nearest(k, registry.kinds())
                    .map(|n| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default();
                eprintln!("error: unknown node kind `{k}`{hint}; `vistaflow nodes` lists them all");
                EXIT_INVALID
            }
        },
    }
}

/// A kind's card: summary, ports, params with defaults.
pub fn describe(n: &dyn Node) -> String {
    let s = n.spec();
    let mut out = format!("{} (version {})\n  {}\n", s.kind, s.version, s.summary);
    if !s.inputs.is_empty() {
        out.push_str("  inputs:\n");
        for p in &s.inputs {
            let req = if p.required { "required" } else { "optional" };
            out.push_str(&format!(
                "    {:<12} {:<13} {:<9} {}\n",
                p.name,
                p.accepts_text(),
                req,
                p.doc
            ));
        }
        if !s.exactly_one_input_of.is_empty() {
            out.push_str(&format!(
                "    (exactly one of: {})\n",
                s.exactly_one_input_of.join(", ")
            ));
        }
    }
    if !s.outputs.is_empty() {
        out.push_str("  outputs:\n");
        for p in &s.outputs {
            out.push_str(&format!(
                "    {:<12} {:<13} {}\n",
                p.name,
                p.ty.name(),
                p.doc
            ));
        }
    }
    if !s.params.is_empty() {
        out.push_str("  params:\n");
        for p in &s.params {
            let default = p
                .default
                .as_ref()
                .map_or("required".to_string(), |d| format!("default {d}"));
            out.push_str(&format!(
                "    {:<16} {:<16} {:<16} {}\n",
                p.name,
                p.describe(),
                default,
                p.doc
            ));
        }
    }
    out
}
