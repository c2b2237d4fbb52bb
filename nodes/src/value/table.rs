//! [`Table`]: rows of named columns (metrics per class, QC figures), written as CSV or JSON.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt::Write as _;

/// One cell. Non-finite numbers are kept (MONAI's conventions give `nan` and `inf`) and
/// written as the strings `"nan"`, `"inf"`, `"-inf"` in JSON, which has no such numbers.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    Empty,
}

impl Cell {
    /// The cell as CSV/display text (floats with up to 6 decimals, trailing zeros removed).
    pub fn text(&self) -> String {
        match self {
            Cell::Int(v) => v.to_string(),
            Cell::Float(v) => float_text(*v),
            Cell::Text(s) => s.clone(),
            Cell::Bool(b) => b.to_string(),
            Cell::Empty => String::new(),
        }
    }

    /// The value as a float when it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Int(v) => Some(*v as f64),
            Cell::Float(v) => Some(*v),
            _ => None,
        }
    }
}

fn float_text(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        // Full precision: readers compare these with other libraries' numbers.
        format!("{v}")
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Int(v) => s.serialize_i64(*v),
            Cell::Float(v) if v.is_finite() => s.serialize_f64(*v),
            Cell::Float(v) => s.serialize_str(&float_text(*v)),
            Cell::Text(t) => s.serialize_str(t),
            Cell::Bool(b) => s.serialize_bool(*b),
            Cell::Empty => s.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::Null => Cell::Empty,
            serde_json::Value::Bool(b) => Cell::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) if !n.is_f64() => Cell::Int(i),
                _ => Cell::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => match s.as_str() {
                "nan" => Cell::Float(f64::NAN),
                "inf" => Cell::Float(f64::INFINITY),
                "-inf" => Cell::Float(f64::NEG_INFINITY),
                _ => Cell::Text(s),
            },
            other => Cell::Text(other.to_string()),
        })
    }
}

/// A table: named columns, rows of cells, and notes (how it was made, what was assumed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Table {
    pub fn new(columns: Vec<String>) -> Self {
        Table {
            columns,
            rows: vec![],
            notes: vec![],
        }
    }

    /// Index of a column by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The cell of `column` in the first row whose first cell is `key` (e.g. a class id).
    pub fn get(&self, key: &Cell, column: &str) -> Option<&Cell> {
        let c = self.column(column)?;
        self.rows.iter().find(|r| r.first() == Some(key))?.get(c)
    }

    /// RFC 4180 CSV with a header row; notes are not part of CSV (see [`Table::to_json`]).
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, cells: &mut dyn Iterator<Item = String>| {
            let parts: Vec<String> = cells.map(|c| csv_field(&c)).collect();
            let _ = writeln!(out, "{}", parts.join(","));
        };
        line(&mut out, &mut self.columns.iter().cloned());
        for r in &self.rows {
            line(&mut out, &mut r.iter().map(Cell::text));
        }
        out
    }

    /// `{"columns": [...], "rows": [{column: value}], "notes": [...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                let m: serde_json::Map<String, serde_json::Value> = self
                    .columns
                    .iter()
                    .zip(r)
                    .map(|(c, v)| (c.clone(), serde_json::to_value(v).unwrap_or_default()))
                    .collect();
                serde_json::Value::Object(m)
            })
            .collect();
        serde_json::json!({ "columns": self.columns, "rows": rows, "notes": self.notes })
    }
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_non_finite_numbers() {
        let mut t = Table::new(vec!["class_name".into(), "hd95".into()]);
        t.rows.push(vec![
            Cell::Text("a, \"b\"".into()),
            Cell::Float(f64::INFINITY),
        ]);
        t.rows.push(vec![Cell::Text("c".into()), Cell::Float(0.25)]);
        assert_eq!(
            t.to_csv(),
            "class_name,hd95\n\"a, \"\"b\"\"\",inf\nc,0.25\n"
        );
        let j = t.to_json();
        assert_eq!(j["rows"][0]["hd95"], "inf");
        let back: Table = serde_json::from_value(serde_json::to_value(&t).unwrap()).unwrap();
        assert_eq!(back.rows[0][1], Cell::Float(f64::INFINITY));
        assert_eq!(back.rows[1][1], Cell::Float(0.25));
    }
}
