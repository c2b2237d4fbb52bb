//! vistaflow-nodes: the values that flow through a workflow ([`Volume`], [`LabelMap`]), the
//! [`Node`] trait every step implements, the [`Registry`] of node kinds, and the nodes.
//!
//! This crate knows nothing of YAML, dagrs, the cache or telemetry: a node is a pure function
//! of its inputs and params on a device (see `design.md`).

// The derive macros name this crate by its path, also from inside it.
extern crate self as vistaflow_nodes;

pub mod cohort;
pub mod export;
pub mod io;
pub mod metrics;
pub mod node;
pub mod params;
pub mod registry;
pub mod spatial;
pub mod splitmix;
pub mod structures;
pub mod supervoxels;
pub mod text;
pub mod value;
pub mod viewer;
pub mod vista3d;

pub use node::{
    CancelToken, Ctx, InputTypes, Inputs, Node, NodeError, NodeSpec, Outputs, ProgressSink,
};
pub use params::{NodeParams, ParamChoice, ParamSpec, ParamType};
pub use registry::Registry;
pub use value::{ClassTable, Encoded, Geometry, LabelMap, PortType, Value, Volume};
