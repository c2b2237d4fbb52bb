//! The values carried on a workflow's edges.

mod encode;
mod labels;
mod model;
mod table;
mod volume;

pub use encode::{EncodeError, Encoded};
pub use labels::{ClassTable, LabelMap};
pub use model::ModelFile;
pub use table::{csv_field, Cell, Table};
pub use volume::{Geometry, Volume};

use std::fmt;

/// The type of a port; an edge is legal only between ports of the same type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortType {
    /// A scalar image ([`Volume`]), e.g. CT in HU.
    Image,
    /// An integer label map with its class table ([`LabelMap`]).
    Labels,
    /// Rows of named columns ([`Table`]), e.g. metrics per class.
    Table,
    /// Trained weights and their card ([`ModelFile`]), from `vista3d_train`.
    Model,
}

impl PortType {
    pub fn name(self) -> &'static str {
        match self {
            PortType::Image => "image",
            PortType::Labels => "labels",
            PortType::Table => "table",
            PortType::Model => "model",
        }
    }
}

impl fmt::Display for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value on an edge. Cloning is cheap: tensors are shared, never copied.
#[derive(Debug)]
pub enum Value {
    Image(Volume),
    Labels(LabelMap),
    Table(Table),
    Model(ModelFile),
}

impl Value {
    pub fn port_type(&self) -> PortType {
        match self {
            Value::Image(_) => PortType::Image,
            Value::Labels(_) => PortType::Labels,
            Value::Table(_) => PortType::Table,
            Value::Model(_) => PortType::Model,
        }
    }

    /// The volume under this value (the label map's volume for labels); `None` for a table.
    pub fn as_volume(&self) -> Option<&Volume> {
        match self {
            Value::Image(v) => Some(v),
            Value::Labels(l) => Some(&l.volume),
            Value::Table(_) | Value::Model(_) => None,
        }
    }

    /// The volume under an image or label map. Call it only on values from `image` or
    /// `labels` ports (port types are checked before a run); a table panics.
    pub fn volume(&self) -> &Volume {
        self.as_volume()
            .expect("Value::volume called on a table; port types guarantee a volume here")
    }

    /// Voxels held (0 for a table), for telemetry.
    pub fn voxels(&self) -> i64 {
        self.as_volume().map_or(0, |v| v.data().numel() as i64)
    }

    /// Bytes of tensor data held, for telemetry and cache accounting.
    pub fn nbytes(&self) -> u64 {
        self.as_volume().map_or(0, Volume::nbytes)
    }
}

impl Clone for Value {
    fn clone(&self) -> Self {
        match self {
            Value::Image(v) => Value::Image(v.clone()),
            Value::Labels(l) => Value::Labels(l.clone()),
            Value::Table(t) => Value::Table(t.clone()),
            Value::Model(m) => Value::Model(m.clone()),
        }
    }
}
