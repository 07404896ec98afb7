//! Detectors: one file per fault, each a pure state machine over [`NetEvent`]s.
//!
//! A detector does no I/O and reads no clock: it gets the event and an explicit `now`, and
//! returns findings. That makes every trigger and hysteresis a table in a unit test, and lets
//! a recorded event stream be replayed offline.
pub mod link_down;
pub mod route_lost;

use std::time::Instant;

use serde_json::Value;

use crate::netlink::NetEvent;
use crate::output::{FaultState, Severity, Subject};

pub use link_down::LinkDown;
pub use route_lost::RouteLost;

/// Something a detector noticed: a fault opened, updated or cleared on one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Stable fault name, e.g. `link_down`.
    pub fault: &'static str,
    /// OSI layer (2-4).
    pub layer: u8,
    pub severity: Severity,
    pub state: FaultState,
    pub subject: Subject,
    /// What the detector saw; remedies read their parameters from here.
    pub evidence: Value,
    /// Stable key of the subject within this fault (e.g. `link:3`), used to tie an opened
    /// finding to its updates and its clear.
    pub key: String,
}

pub trait Detector {
    /// The stable fault name this detector reports, e.g. `link_down`.
    fn name(&self) -> &'static str;
    fn observe(&mut self, ev: &NetEvent, now: Instant) -> Vec<Finding>;
}
