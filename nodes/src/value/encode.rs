//! A value taken apart into named tensors plus JSON, and put back together: the form in which
//! the engine stores values (the engine owns the file format; this owns the meaning).

use super::{ClassTable, Geometry, LabelMap, ModelFile, PortType, Table, Value, Volume};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::{Device, Tensor};

/// Named CPU tensors plus JSON metadata that together rebuild a [`Value`].
pub struct Encoded {
    pub tensors: Vec<(String, Tensor)>,
    pub meta: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("stored value has no tensor named `{0}`")]
    MissingTensor(&'static str),
    #[error("stored metadata is not a {ty} value: {source}")]
    BadMeta {
        ty: PortType,
        source: serde_json::Error,
    },
    #[error("stored {ty} value is invalid: {msg}")]
    Invalid { ty: PortType, msg: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VolumeMeta {
    affine_lps: [[f64; 4]; 4],
    meta: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    classes: Option<ClassTable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<serde_json::Value>,
}

impl Value {
    /// Takes the value apart; tensors are moved to the CPU and made contiguous.
    pub fn encode(&self) -> Encoded {
        let (vol, classes) = match self {
            Value::Image(v) => (v, None),
            Value::Labels(l) => (&l.volume, Some(l.classes.clone())),
            Value::Table(t) => {
                return Encoded {
                    tensors: vec![],
                    meta: serde_json::to_value(t).expect("a table is always JSON"),
                }
            }
            Value::Model(m) => {
                return Encoded {
                    tensors: vec![],
                    meta: serde_json::to_value(m).expect("a model reference is always JSON"),
                }
            }
        };
        let meta = VolumeMeta {
            affine_lps: vol.geometry().affine_lps,
            meta: vol.meta.clone(),
            classes,
            identity: vol.identity.as_deref().cloned(),
        };
        Encoded {
            tensors: vec![(
                "data".to_string(),
                vol.data().to_device(Device::Cpu).contiguous(),
            )],
            meta: serde_json::to_value(meta).expect("volume metadata is always JSON"),
        }
    }

    /// Rebuilds a value of type `ty` from [`Value::encode`]'s parts.
    pub fn decode(ty: PortType, parts: Encoded) -> Result<Value, EncodeError> {
        if ty == PortType::Table {
            let t: Table = serde_json::from_value(parts.meta)
                .map_err(|source| EncodeError::BadMeta { ty, source })?;
            return Ok(Value::Table(t));
        }
        if ty == PortType::Model {
            let m: ModelFile = serde_json::from_value(parts.meta)
                .map_err(|source| EncodeError::BadMeta { ty, source })?;
            return Ok(Value::Model(m));
        }
        let meta: VolumeMeta = serde_json::from_value(parts.meta)
            .map_err(|source| EncodeError::BadMeta { ty, source })?;
        let data = parts
            .tensors
            .into_iter()
            .find(|(n, _)| n == "data")
            .map(|(_, t)| t)
            .ok_or(EncodeError::MissingTensor("data"))?;
        let invalid = |msg: String| EncodeError::Invalid { ty, msg };
        let mut vol = Volume::new(
            data,
            Geometry {
                affine_lps: meta.affine_lps,
            },
        )
        .map_err(invalid)?;
        vol.meta = meta.meta;
        vol.identity = meta.identity.map(std::sync::Arc::new);
        match ty {
            PortType::Image => Ok(Value::Image(vol)),
            PortType::Labels => {
                let classes = meta.classes.unwrap_or_default();
                Ok(Value::Labels(LabelMap::new(vol, classes).map_err(invalid)?))
            }
            PortType::Table | PortType::Model => unreachable!("decoded above"),
        }
    }
}
