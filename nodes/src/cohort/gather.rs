//! Every subject's `metrics` tables as one long table: one row per (subject, node, class,
//! metric) with its value, the form statistics packages and plotting libraries read.

use crate::value::{Cell, Table};
use std::fmt::Write as _;

#[derive(Clone, Debug, PartialEq)]
pub struct LongRow {
    pub subject: String,
    /// The `metrics` node the value comes from (a workflow may have several).
    pub node: String,
    pub class_id: i64,
    pub class_name: String,
    pub metric: String,
    /// `nan` where MONAI's conventions give no value (an empty reference class).
    pub value: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LongTable {
    pub rows: Vec<LongRow>,
}

impl LongTable {
    /// Adds one `metrics` table of `subject`: every numeric column but `class_id` becomes a
    /// metric. Rows keep the table's order; call [`LongTable::sort`] once all are in.
    pub fn add(&mut self, subject: &str, node: &str, table: &Table) -> Result<(), String> {
        let col = |name: &str| table.columns.iter().position(|c| c == name);
        let (Some(id_col), Some(name_col)) = (col("class_id"), col("class_name")) else {
            return Err(format!(
                "node `{node}`: not a metrics table (no class_id and class_name columns)"
            ));
        };
        for row in &table.rows {
            let class_id = match row.get(id_col) {
                Some(Cell::Int(i)) => *i,
                other => return Err(format!("node `{node}`: class_id {other:?} is not a number")),
            };
            let class_name = row.get(name_col).map(Cell::text).unwrap_or_default();
            for (c, column) in table.columns.iter().enumerate() {
                if c == id_col || c == name_col {
                    continue;
                }
                let Some(value) = row.get(c).and_then(Cell::as_f64) else {
                    continue;
                };
                self.rows.push(LongRow {
                    subject: subject.to_string(),
                    node: node.to_string(),
                    class_id,
                    class_name: class_name.clone(),
                    metric: column.clone(),
                    value,
                });
            }
        }
        Ok(())
    }

    /// Subject, node, class id, then metric in the order the tables gave them: the same bytes
    /// however the subjects were scheduled.
    pub fn sort(&mut self) {
        self.rows.sort_by(|a, b| {
            (&a.subject, &a.node, a.class_id).cmp(&(&b.subject, &b.node, b.class_id))
        });
    }

    pub fn to_csv(&self) -> String {
        let mut s = String::from("subject,node,class_id,class_name,metric,value\n");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{}",
                csv_field(&r.subject),
                csv_field(&r.node),
                r.class_id,
                csv_field(&r.class_name),
                csv_field(&r.metric),
                Cell::Float(r.value).text()
            );
        }
        s
    }
}

pub use crate::value::csv_field;

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new(
            [
                "class_id",
                "class_name",
                "dice",
                "hd95",
                "voxels_prediction",
            ]
            .map(String::from)
            .to_vec(),
        );
        t.rows = vec![
            vec![
                Cell::Int(3),
                Cell::Text("liver, left".into()),
                Cell::Float(0.5),
                Cell::Float(f64::NAN),
                Cell::Int(10),
            ],
            vec![
                Cell::Int(1),
                Cell::Text("spleen".into()),
                Cell::Float(0.25),
                Cell::Float(2.0),
                Cell::Int(0),
            ],
        ];
        t
    }

    #[test]
    fn each_numeric_cell_is_a_row_sorted_by_subject_and_class() {
        let mut l = LongTable::default();
        l.add("s2", "scores", &table()).unwrap();
        l.add("s1", "scores", &table()).unwrap();
        l.sort();
        assert_eq!(l.rows.len(), 12);
        assert_eq!((l.rows[0].subject.as_str(), l.rows[0].class_id), ("s1", 1));
        let csv = l.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[1], "s1,scores,1,spleen,dice,0.25");
        assert_eq!(lines[3], "s1,scores,1,spleen,voxels_prediction,0");
        assert_eq!(lines[5], "s1,scores,3,\"liver, left\",hd95,nan");
        let mut bad = table();
        bad.columns[0] = "id".into();
        assert!(l
            .add("s3", "qc", &bad)
            .unwrap_err()
            .contains("not a metrics table"));
    }
}
