//! Evidence that is no detector's own, and the JSON view of any evidence.
use serde::Serialize;
use serde_json::Value;

use super::{Evidence, FaultId};
use crate::model::{FaultState, Subject};

/// The evidence of a `cleared` event the engine writes itself: why it closed the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Closed {
    pub reason: &'static str,
}

impl Evidence {
    /// A `cleared` event's evidence written by the engine, not a detector.
    pub fn closed(reason: &'static str) -> Evidence {
        Evidence::Closed(Closed { reason })
    }

    /// The evidence as the event carries it (keys sorted).
    pub fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The fault event's one-line `message`: the fault and its subject
    /// ([`crate::output::message::fault`]), then the evidence's own sentence (`detail()` of
    /// each `faults/<fault>/evidence.rs`).
    pub fn message(&self, fault: FaultId, state: FaultState, subject: &Subject) -> String {
        crate::output::message::fault(fault.as_str(), state, subject, &self.detail())
    }
}

impl Closed {
    pub fn detail(&self) -> String {
        format!("closed by guardian: {}", self.reason)
    }
}
