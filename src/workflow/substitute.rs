//! `${NAME}` substitution from `--set NAME=VALUE`, inside string values only.

use super::locate::{join, Locations};
use crate::diag::{Diagnostic, Diagnostics};
use serde_yaml::Value;
use std::collections::BTreeMap;

/// Replaces `${NAME}` in every string of `doc`. A string that is exactly one `${NAME}` takes
/// the value's YAML type (`--set SP=[1.5,1.5,1.5]` gives a list); otherwise text is spliced.
pub fn substitute(
    doc: &mut Value,
    vars: &BTreeMap<String, String>,
    locs: &Locations,
    diags: &mut Diagnostics,
) {
    walk(doc, "", vars, locs, diags);
}

fn walk(
    v: &mut Value,
    path: &str,
    vars: &BTreeMap<String, String>,
    locs: &Locations,
    diags: &mut Diagnostics,
) {
    match v {
        Value::String(s) if s.contains("${") => match expand(s, vars) {
            Ok(Expanded::Whole(text)) => *v = typed(text),
            Ok(Expanded::Text(text)) => *s = text,
            Err(name) => diags.push(
                Diagnostic::new(format!("`${{{name}}}` is not set"), locs.value_pos(path))
                    .width(locs.get(path).value_len)
                    .hint(format!("pass `--set {name}=VALUE` on the command line")),
            ),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &join(path, &i.to_string()), vars, locs, diags);
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let key = k.as_str().unwrap_or_default().to_string();
                walk(item, &join(path, &key), vars, locs, diags);
            }
        }
        _ => {}
    }
}

/// A whole-value `--set` as YAML when it reads as a list, a number, a bool or a mapping
/// (`SP=[1.5,1.5,1.5]`); anything that reads as text stays the text given, so that YAML does
/// not take ` #...` as a comment or strip quotes (`O=/x/scan.nii.gz #2.nii.gz`).
fn typed(text: String) -> Value {
    let comment = text.starts_with('#') || text.contains(" #") || text.contains("\t#");
    match serde_yaml::from_str::<Value>(&text) {
        Ok(Value::String(_)) | Err(_) => Value::String(text),
        Ok(_) if comment => Value::String(text),
        Ok(v) => v,
    }
}

enum Expanded {
    Whole(String),
    Text(String),
}

/// Expands every `${NAME}`; `Err(NAME)` for the first unset one. `$${` escapes a literal `${`.
fn expand(s: &str, vars: &BTreeMap<String, String>) -> Result<Expanded, String> {
    let trimmed = s.trim();
    if let Some(name) = trimmed.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        if !name.contains(['{', '}', '$']) {
            return vars
                .get(name)
                .cloned()
                .map(Expanded::Whole)
                .ok_or_else(|| name.to_string());
        }
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        out.push_str(vars.get(name).ok_or_else(|| name.to_string())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Expanded::Text(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("SUBJ", "s01"), ("SP", "[1.5, 1.5, 2]")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn splices_and_types() {
        let mut doc: Value =
            serde_yaml::from_str("a: data/${SUBJ}/ct.nii\nb: ${SP}\nc: cost $${X}\n").unwrap();
        let mut d = Diagnostics::new("w".as_ref(), "");
        substitute(&mut doc, &vars(), &Locations::default(), &mut d);
        assert!(d.is_empty());
        assert_eq!(doc["a"], Value::String("data/s01/ct.nii".into()));
        assert_eq!(doc["b"].as_sequence().unwrap().len(), 3);
        assert_eq!(doc["b"][2].as_f64(), Some(2.0));
        assert_eq!(doc["c"], Value::String("cost ${X}".into()));
    }

    #[test]
    fn a_whole_value_that_reads_as_text_stays_the_text_given() {
        let vars: BTreeMap<String, String> = [
            ("O", "/x/scan.nii.gz #2.nii.gz"),
            ("Q", "\"quoted\""),
            ("N", "3 # three"),
            ("L", "[1, 2]"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut doc: Value = serde_yaml::from_str("o: ${O}\nq: ${Q}\nn: ${N}\nl: ${L}\n").unwrap();
        let mut d = Diagnostics::new("w".as_ref(), "");
        substitute(&mut doc, &vars, &Locations::default(), &mut d);
        assert!(d.is_empty());
        assert_eq!(doc["o"], Value::String("/x/scan.nii.gz #2.nii.gz".into()));
        assert_eq!(doc["q"], Value::String("\"quoted\"".into()));
        assert_eq!(doc["n"], Value::String("3 # three".into()));
        assert_eq!(doc["l"], serde_yaml::from_str::<Value>("[1, 2]").unwrap());
    }

    #[test]
    fn unset_variable_is_located() {
        let text = "nodes:\n  a: { path: \"${NOPE}/x\" }\n";
        let locs = Locations::index(text);
        let mut doc: Value = serde_yaml::from_str(text).unwrap();
        let mut d = Diagnostics::new("w".as_ref(), text);
        substitute(&mut doc, &vars(), &locs, &mut d);
        assert_eq!(d.items.len(), 1);
        assert_eq!(d.items[0].message, "`${NOPE}` is not set");
        assert_eq!(d.items[0].pos.unwrap().line, 2);
    }
}
