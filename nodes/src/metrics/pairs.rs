//! Which class of the prediction is compared with which class of the reference: by id
//! (the default) or by name (two label maps with different id schemes, e.g. VISTA3D's
//! `liver` = 1 against TotalSegmentator's `liver` = 5).

use crate::text::edit_distance;
use crate::value::ClassTable;
use serde_json::Value as Json;

/// One row of the table: the classes compared (`-1`: absent from that map).
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub row_id: i32,
    pub name: String,
    pub pred: i32,
    pub reference: i32,
}

/// Names compare without case and with `_` as a space.
pub fn norm(name: &str) -> String {
    name.trim().to_lowercase().replace('_', " ")
}

fn find(table: &ClassTable, name: &str) -> Option<i32> {
    let n = norm(name);
    table
        .iter()
        .find(|(_, v)| norm(v) == n)
        .map(|(k, _)| *k as i32)
}

fn name_of(id: i32, tables: &[&ClassTable]) -> String {
    tables
        .iter()
        .find_map(|t| t.get(&(id as u32)).cloned())
        .unwrap_or_else(|| format!("class {id}"))
}

/// The pairs for `classes` (null: every class present in either map).
pub fn pairs(
    classes: &Json,
    by_name: bool,
    pred_table: &ClassTable,
    ref_table: &ClassTable,
    pred_present: &[i32],
    ref_present: &[i32],
) -> Result<Vec<Pair>, String> {
    let tables = [ref_table, pred_table];
    let by_id = |id: i32| Pair {
        row_id: id,
        name: name_of(id, &tables),
        pred: id,
        reference: id,
    };
    let named = |n: &str| -> Result<Pair, String> {
        let (p, r) = (find(pred_table, n), find(ref_table, n));
        if p.is_none() && r.is_none() {
            return Err(unknown(n, &tables));
        }
        Ok(Pair {
            row_id: r.or(p).unwrap_or(-1),
            name: n.to_string(),
            pred: p.unwrap_or(-1),
            reference: r.unwrap_or(-1),
        })
    };
    let items = match classes {
        Json::Null => {
            if !by_name {
                let mut ids: Vec<i32> = pred_present.iter().chain(ref_present).copied().collect();
                ids.sort_unstable();
                ids.dedup();
                return Ok(ids.into_iter().map(by_id).collect());
            }
            let mut names: Vec<String> = vec![];
            for (ids, t) in [(ref_present, ref_table), (pred_present, pred_table)] {
                for &id in ids {
                    let n = t.get(&(id as u32)).cloned().ok_or_else(|| {
                        format!(
                            "class id {id} has no name in its label map's class table, so \
                             `match: name` cannot pair it; name it or use `match: id`"
                        )
                    })?;
                    if !names.iter().any(|m| norm(m) == norm(&n)) {
                        names.push(n);
                    }
                }
            }
            let mut rows = names
                .iter()
                .map(|n| named(n))
                .collect::<Result<Vec<_>, _>>()?;
            rows.sort_by_key(|p| (p.reference < 0, p.row_id));
            return Ok(rows);
        }
        Json::Array(a) => a,
        _ => return Err("`classes` must be a list of class names or ids".into()),
    };
    items
        .iter()
        .map(|it| match it {
            Json::Number(n) => match n.as_u64() {
                Some(id) if id > 0 && id <= i32::MAX as u64 => {
                    let id = id as i32;
                    if by_name {
                        let name = name_of(id, &[ref_table]);
                        Ok(Pair {
                            row_id: id,
                            pred: find(pred_table, &name).unwrap_or(-1),
                            reference: id,
                            name,
                        })
                    } else {
                        Ok(by_id(id))
                    }
                }
                _ => Err(format!("class id {n} must be a positive integer")),
            },
            Json::String(s) if by_name => named(s),
            Json::String(s) => {
                let id = find(ref_table, s)
                    .or_else(|| find(pred_table, s))
                    .ok_or_else(|| unknown(s, &tables))?;
                Ok(by_id(id))
            }
            other => Err(format!("`classes` entries are names or ids, got {other}")),
        })
        .collect()
}

fn unknown(name: &str, tables: &[&ClassTable]) -> String {
    let n = norm(name);
    let best = tables
        .iter()
        .flat_map(|t| t.values())
        .min_by_key(|v| edit_distance(&norm(v), &n));
    let hint = match best {
        Some(b) if edit_distance(&norm(b), &n) <= 3 => format!("; did you mean `{b}`?"),
        _ => String::new(),
    };
    format!("no class named `{name}` in the label maps' class tables{hint}")
}

/// Checks `classes` at workflow load: null or a list of names / positive ids.
pub fn check_classes(v: &Json) -> Result<(), String> {
    match v {
        Json::Null => Ok(()),
        Json::Array(a) if !a.is_empty() => a.iter().try_for_each(|x| match x {
            Json::String(s) if !s.trim().is_empty() => Ok(()),
            Json::Number(n) if n.as_u64().is_some_and(|i| i > 0) => Ok(()),
            other => Err(format!(
                "`{other}` is neither a class name nor a positive class id"
            )),
        }),
        _ => Err("expected a non-empty list of class names or ids".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_matching_pairs_different_id_schemes() {
        let vista: ClassTable = [(1, "liver".to_string()), (3, "spleen".to_string())].into();
        let ts: ClassTable = [
            (5, "liver".to_string()),
            (1, "spleen".to_string()),
            (2, "kidney_right".to_string()),
        ]
        .into();
        let p = pairs(&Json::Null, true, &vista, &ts, &[1, 3], &[1, 2, 5]).unwrap();
        let got: Vec<(i32, i32, i32)> = p.iter().map(|p| (p.row_id, p.pred, p.reference)).collect();
        assert_eq!(got, vec![(1, 3, 1), (2, -1, 2), (5, 1, 5)]);
        let e = pairs(&serde_json::json!(["livr"]), true, &vista, &ts, &[], &[]).unwrap_err();
        assert!(e.contains("did you mean `liver`"), "{e}");
    }
}
