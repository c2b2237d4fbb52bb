//! The values carried on a workflow's edges.

mod encode;
mod labels;
mod volume;

pub use encode::{EncodeError, Encoded};
pub use labels::{ClassTable, LabelMap};
pub use volume::{Geometry, Volume};

use std::fmt;

/// The type of a port; an edge is legal only between ports of the same type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortType {
    /// A scalar image ([`Volume`]), e.g. CT in HU.
    Image,
    /// An integer label map with its class table ([`LabelMap`]).
    Labels,
}

impl PortType {
    pub fn name(self) -> &'static str {
        match self {
            PortType::Image => "image",
            PortType::Labels => "labels",
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
}

impl Value {
    pub fn port_type(&self) -> PortType {
        match self {
            Value::Image(_) => PortType::Image,
            Value::Labels(_) => PortType::Labels,
        }
    }

    /// The volume under this value (the label map's volume for labels).
    pub fn volume(&self) -> &Volume {
        match self {
            Value::Image(v) => v,
            Value::Labels(l) => &l.volume,
        }
    }

    /// Bytes of tensor data held, for telemetry and cache accounting.
    pub fn nbytes(&self) -> u64 {
        self.volume().nbytes()
    }
}

impl Clone for Value {
    fn clone(&self) -> Self {
        match self {
            Value::Image(v) => Value::Image(v.clone()),
            Value::Labels(l) => Value::Labels(l.clone()),
        }
    }
}
