//! VISTA3D's class table (`vista3d_labels.json`, from the model-zoo bundle v0.5.4): names,
//! the "everything" set, subclass expansion and the preprocessing constants.

use crate::text::edit_distance;
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The parsed table.
#[derive(Debug, Deserialize)]
pub struct LabelTable {
    /// Id -> name (0 = background).
    pub classes: BTreeMap<u32, String>,
    /// The bundle's "everything" prompt: 117 ids.
    pub everything_labels: Vec<u32>,
    /// Classes that the model segments through their parts (kidney, lung, bone).
    pub subclass: BTreeMap<u32, Vec<u32>>,
    /// Ids in the table that the model was not trained to segment automatically.
    pub unsupported: Vec<u32>,
    pub last_supported: u32,
    pub num_class_embeddings: u32,
    pub preprocess: Preprocess,
}

/// The bundle's preprocessing constants.
#[derive(Debug, Deserialize)]
pub struct Preprocess {
    pub spacing_mm: [f64; 3],
    pub hu_min: f64,
    pub hu_max: f64,
    pub crop_foreground_margin: i64,
}

/// The table, parsed once.
pub fn table() -> &'static LabelTable {
    static T: OnceLock<LabelTable> = OnceLock::new();
    T.get_or_init(|| {
        serde_json::from_str(include_str!("vista3d_labels.json"))
            .expect("the embedded vista3d_labels.json is valid")
    })
}

/// Classes resolved from a `classes` param.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// Ids to prompt the network with, after subclass expansion, without repeats.
    pub ids: Vec<u32>,
    /// Things the user should know (untrained ids).
    pub warnings: Vec<String>,
}

fn normalize(name: &str) -> String {
    name.trim().to_lowercase().replace(['_', '-'], " ")
}

impl LabelTable {
    /// The id of a class name (case, `_` and `-` ignored).
    pub fn id_of(&self, name: &str) -> Option<u32> {
        let n = normalize(name);
        self.classes
            .iter()
            .find(|(_, v)| normalize(v) == n)
            .map(|(k, _)| *k)
    }

    /// The closest class name, for "did you mean".
    pub fn nearest(&self, name: &str) -> &str {
        let n = normalize(name);
        self.classes
            .values()
            .skip(1)
            .min_by_key(|v| {
                let v = normalize(v);
                // A name containing the input (e.g. `adrenal`) is the best guess; then the
                // smallest edit distance.
                if v.contains(&n) {
                    (0, v.len() - n.len())
                } else {
                    (1, edit_distance(&n, &v))
                }
            })
            .map(String::as_str)
            .unwrap_or("liver")
    }

    /// The class table of a label map with these ids.
    pub fn class_table(&self, ids: &[u32]) -> BTreeMap<u32, String> {
        ids.iter()
            .map(|i| {
                let name = self
                    .classes
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("class {i}"));
                (*i, name)
            })
            .collect()
    }

    fn one(&self, v: &Json) -> Result<u32, String> {
        let id = match v {
            Json::String(s) => match s.trim().parse::<u32>() {
                Ok(i) => i,
                Err(_) => self.id_of(s).ok_or_else(|| {
                    format!(
                        "unknown class `{s}`; did you mean `{}`? (`vistaflow classes` lists them)",
                        self.nearest(s)
                    )
                })?,
            },
            Json::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("class id {n} is not a whole number from 1 to 511"))?,
            other => return Err(format!("a class is a name or an id, found {other}")),
        };
        if id == 0 {
            return Err("class 0 is background; it cannot be prompted".into());
        }
        if id >= self.num_class_embeddings {
            return Err(format!(
                "class id {id} is out of range: the model has {} class embeddings (ids 1 to {})",
                self.num_class_embeddings,
                self.num_class_embeddings - 1
            ));
        }
        Ok(id)
    }

    /// Resolves `everything`, or a list of names and ids, expanding kidney, lung and bone to
    /// their parts as the bundle does.
    pub fn resolve(&self, v: &Json) -> Result<Resolved, String> {
        let raw: Vec<u32> = match v {
            Json::String(s) if normalize(s) == "everything" => self.everything_labels.clone(),
            Json::Array(items) if !items.is_empty() => items
                .iter()
                .map(|x| self.one(x))
                .collect::<Result<_, _>>()?,
            Json::Array(_) => return Err("the class list is empty".into()),
            other => vec![self.one(other)?],
        };
        let mut ids = Vec::new();
        let mut warnings = Vec::new();
        for id in raw {
            let parts = self.subclass.get(&id).cloned().unwrap_or_else(|| vec![id]);
            for p in parts {
                if !ids.contains(&p) {
                    ids.push(p);
                }
            }
            if self.unsupported.contains(&id) {
                warnings.push(format!(
                    "class {id} ({}) was not trained for automatic segmentation; expect a poor \
                     or empty result (use clicks instead)",
                    self.classes[&id]
                ));
            } else if id > self.last_supported {
                warnings.push(format!(
                    "class id {id} is above the last trained class ({}): its embedding is \
                     untrained, the result is meaningless for automatic segmentation",
                    self.last_supported
                ));
            }
        }
        Ok(Resolved { ids, warnings })
    }
}

/// The `classes` param check, run when the workflow is loaded.
pub fn check_param(v: &Json) -> Result<(), String> {
    table().resolve(v).map(|_| ())
}
