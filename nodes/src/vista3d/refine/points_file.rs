//! `points_file`: clicks from a file instead of the workflow, as JSON (the same list as
//! `points`) or CSV with a header naming the columns `space` (voxel | lps_mm | ras_mm), `x`,
//! `y`, `z`, `label` (positive | negative) and `class` (a name or id; not for zero-shot).
//! Both become the `points` list, so they are checked by the same rules.

use serde_json::{json, Map, Value as Json};
use std::path::Path;

/// The clicks in `path` as a `points` list, or what is wrong, with the line.
pub fn read(path: &Path) -> Result<Json, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the points file: {e}", path.display()))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_lowercase);
    match ext.as_deref() {
        Some("json") => serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}:{}:{}: not valid JSON: {e}; expected a list of clicks as in `points`",
                path.display(),
                e.line(),
                e.column()
            )
        }),
        Some("csv") => csv(&text).map_err(|e| format!("{}:{e}", path.display())),
        _ => Err(format!(
            "{}: a points file is .json (a list of clicks) or .csv (columns space, x, y, z, \
             label, class)",
            path.display()
        )),
    }
}

fn csv(text: &str) -> Result<Json, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let (hn, header) = lines.next().ok_or(
        "1: the file is empty; the first line names the columns space, x, y, z, label, class",
    )?;
    let cols: Vec<String> = header.split(',').map(|c| c.trim().to_lowercase()).collect();
    let col = |name: &str| cols.iter().position(|c| c == name);
    let (Some(space), Some(x), Some(y), Some(z), Some(label)) =
        (col("space"), col("x"), col("y"), col("z"), col("label"))
    else {
        return Err(format!(
            "{}: the header must name the columns space, x, y, z, label (and class), found `{header}`",
            hn + 1
        ));
    };
    let class = col("class");
    let mut out = vec![];
    for (n, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != cols.len() {
            return Err(format!(
                "{}: {} values where the header has {} columns",
                n + 1,
                cells.len(),
                cols.len()
            ));
        }
        let num = |i: usize| -> Result<f64, String> {
            cells[i]
                .parse::<f64>()
                .map_err(|_| format!("{}: `{}` is not a number", n + 1, cells[i]))
        };
        let at = [num(x)?, num(y)?, num(z)?];
        let key = match cells[space] {
            s @ ("voxel" | "lps_mm" | "ras_mm") => s,
            other => {
                return Err(format!(
                    "{}: space `{other}` is not voxel, lps_mm or ras_mm",
                    n + 1
                ))
            }
        };
        let place = if key == "voxel" && at.iter().all(|v| v.fract() == 0.0) {
            json!(at.map(|v| v as i64))
        } else {
            json!(at)
        };
        let mut o = Map::new();
        o.insert(key.into(), place);
        o.insert("label".into(), json!(cells[label]));
        if let Some(c) = class.filter(|&c| !cells[c].is_empty()) {
            o.insert(
                "class".into(),
                cells[c]
                    .parse::<u64>()
                    .map(|id| json!(id))
                    .unwrap_or_else(|_| json!(cells[c])),
            );
        }
        out.push(Json::Object(o));
    }
    Ok(Json::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_becomes_the_points_list() {
        let got = csv("space,x,y,z,label,class\nvoxel,1,2,3,positive,liver\n# note\nras_mm,1.5,-2,3,negative,5\n").unwrap();
        assert_eq!(
            got,
            json!([
                {"voxel": [1, 2, 3], "label": "positive", "class": "liver"},
                {"ras_mm": [1.5, -2.0, 3.0], "label": "negative", "class": 5}
            ])
        );
        let e = csv("space,x,y,z,label\nvoxel,1,2,positive\n").unwrap_err();
        assert!(e.starts_with("2: 4 values"), "{e}");
        let e = csv("space,x,y,z,label\nmm,1,2,3,positive\n").unwrap_err();
        assert!(e.contains("space `mm`"), "{e}");
        let e = csv("a,b\n").unwrap_err();
        assert!(e.starts_with("1: the header"), "{e}");
    }
}
