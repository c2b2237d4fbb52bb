//! The `config` and `classes` parameters of `vista3d_train`.

use crate::vista3d::classes::table;
use crate::vista3d::net::Config;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// Named configurations: `full` (vista3d132), `small` (the test configuration), `demo` (the
/// shipped demo model: 16 filters, 4 levels, 11 MB) and `tiny` (training tests).
pub fn config_of(v: &Json) -> Result<Config, String> {
    match v {
        Json::String(s) => match s.as_str() {
            "full" | "vista3d132" => Ok(Config::vista3d132()),
            "small" => Ok(Config::small()),
            "demo" => Ok(Config {
                blocks_down: vec![1, 2, 1, 1],
                ..Config::small()
            }),
            "tiny" => Ok(Config {
                encoder_embed_dim: 8,
                blocks_down: vec![1, 1, 1],
                ..Config::small()
            }),
            other => Err(format!(
                "config `{other}`: use full, small, demo, tiny or an object \
                 {{encoder_embed_dim: 16, blocks_down: [1, 2, 1, 1]}}"
            )),
        },
        Json::Object(_) => {
            let mut o = v.clone();
            // Only the sizes that shape the encoder; the heads stay vista3d132's.
            let base = serde_json::to_value(Config::small()).expect("config serialises");
            for (k, d) in base.as_object().expect("object") {
                o.as_object_mut()
                    .expect("object")
                    .entry(k)
                    .or_insert(d.clone());
            }
            let c: Config = serde_json::from_value(o).map_err(|e| format!("config: {e}"))?;
            if c.encoder_embed_dim < 4 || c.encoder_embed_dim % 2 != 0 {
                return Err("config: encoder_embed_dim must be an even number >= 4".into());
            }
            if c.blocks_down.is_empty() || c.blocks_down.iter().any(|&b| b < 1) {
                return Err("config: blocks_down needs one or more levels of >= 1 block".into());
            }
            Ok(c)
        }
        _ => Err("config: a name (full, small, demo, tiny) or an object".into()),
    }
}

pub fn check_config(v: &Json) -> Result<(), String> {
    config_of(v).map(|_| ())
}

/// One pair's mapping from its label ids to VISTA3D ids.
pub type ClassMap = BTreeMap<i64, i64>;

/// `classes`: one mapping for every pair, or a list with one mapping per pair. Keys are the
/// dataset's label ids, values VISTA3D class names or ids (ids above 132 are zero-shot
/// classes for new structures).
pub fn class_maps(v: &Json, pairs: usize) -> Result<Vec<ClassMap>, String> {
    match v {
        Json::Object(_) => {
            let m = class_map(v)?;
            Ok(vec![m; pairs])
        }
        Json::Array(items) => {
            if items.len() != pairs {
                return Err(format!(
                    "classes: {} mappings for {pairs} (image, labels) pairs; give one per pair \
                     or a single mapping for all",
                    items.len()
                ));
            }
            items.iter().map(class_map).collect()
        }
        _ => Err("classes: a mapping {dataset id: VISTA3D class} or a list of them".into()),
    }
}

fn class_map(v: &Json) -> Result<ClassMap, String> {
    let Json::Object(o) = v else {
        return Err("classes: each mapping is an object {dataset id: VISTA3D class}".into());
    };
    if o.is_empty() {
        return Err("classes: a mapping with no class".into());
    }
    let t = table();
    let mut m = ClassMap::new();
    for (k, val) in o {
        let from: i64 = k
            .trim()
            .parse()
            .ok()
            .filter(|&i| i > 0)
            .ok_or_else(|| format!("classes: key `{k}` is not a label id (an integer > 0)"))?;
        let to = match val {
            Json::Number(n) => n
                .as_i64()
                .filter(|&i| i > 0 && i < t.num_class_embeddings as i64)
                .ok_or_else(|| {
                    format!(
                        "classes: {k} -> {n}: a VISTA3D id is 1..{}",
                        t.num_class_embeddings - 1
                    )
                })?,
            Json::String(name) => t.id_of(name).map(i64::from).ok_or_else(|| {
                format!(
                    "classes: {k} -> `{name}` is not a VISTA3D class; did you mean `{}`?",
                    t.nearest(name)
                )
            })?,
            _ => return Err(format!("classes: {k} -> a class name or id")),
        };
        m.insert(from, to);
    }
    Ok(m)
}

pub fn check_classes(v: &Json) -> Result<(), String> {
    match v {
        Json::Array(items) => items.iter().try_for_each(|i| class_map(i).map(|_| ())),
        _ => class_map(v).map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classes_by_name_and_id() {
        let m = class_maps(&json!({"5": "liver", "1": 3, "52": "aorta"}), 2).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0], ClassMap::from([(5, 1), (1, 3), (52, 6)]));
        let e = class_maps(&json!({"5": "livr"}), 1).unwrap_err();
        assert!(e.contains("did you mean `liver`"), "{e}");
        assert!(class_maps(&json!([{"1": 1}]), 2)
            .unwrap_err()
            .contains("one per pair"));
        assert!(class_maps(&json!({"x": 1}), 1).is_err());
    }

    #[test]
    fn named_configs() {
        assert_eq!(config_of(&json!("demo")).unwrap().levels(), 4);
        let c = config_of(&json!({"encoder_embed_dim": 8, "blocks_down": [1, 1]})).unwrap();
        assert_eq!((c.encoder_embed_dim, c.levels()), (8, 2));
        assert!(config_of(&json!("huge")).is_err());
    }
}
