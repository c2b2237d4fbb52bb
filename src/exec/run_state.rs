//! The state shared by every node task of one run: the plan and its keys, the cache, devices
//! and telemetry, and what the nodes report back. Its own module so that the node task, the
//! run record (provenance) and the memo all read it without importing each other.

use super::decide::Decision;
use super::devices::Devices;
use super::keys::Keys;
use super::report::{NodeReport, NodeStatus};
use crate::cache::Store;
use crate::progress::Display;
use crate::telemetry::{SpanHandle, Telemetry};
use crate::workflow::{DeviceSpec, Plan};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vistaflow_nodes::{CancelToken, Value};

/// State shared by every node of one run.
pub struct Shared {
    pub plan: Arc<Plan>,
    pub keys: Keys,
    pub decisions: Vec<Decision>,
    pub preloaded: HashMap<(usize, String), Value>,
    pub store: Arc<Store>,
    pub devices: Arc<Devices>,
    pub telemetry: Arc<Telemetry>,
    pub run_span: SpanHandle,
    pub display: Display,
    pub cancel: CancellationToken,
    pub tokens: Vec<CancelToken>,
    pub device_override: Option<DeviceSpec>,
    pub write_cache: bool,
    pub keep_going: bool,
    pub reports: Vec<Mutex<Option<NodeReport>>>,
    pub first_failed: Mutex<Option<usize>>,
    /// Cache writes still in flight.
    pub pending_stores: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    pub fn record(
        &self,
        i: usize,
        status: NodeStatus,
        device: &str,
        duration: Duration,
        bytes: u64,
    ) {
        let n = &self.plan.nodes[i];
        let reason = match &self.decisions[i] {
            Decision::Run(r) => r.clone(),
            Decision::Cached => String::new(),
        };
        let report = NodeReport {
            id: n.id.clone(),
            kind: n.kind(),
            key: self.keys.node[i],
            status,
            device: device.into(),
            duration,
            output_bytes: bytes,
            reason,
        };
        if let Ok(mut slot) = self.reports[i].lock() {
            *slot = Some(report);
        }
    }

    pub fn note_failure(&self, i: usize) {
        if let Ok(mut f) = self.first_failed.lock() {
            if f.is_none() {
                *f = Some(i);
            }
        }
        if !self.keep_going {
            self.cancel.cancel();
        }
    }
}
