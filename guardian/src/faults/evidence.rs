//! Evidence that is no detector's own, and the JSON view of any evidence.
use serde::Serialize;
use serde_json::Value;

use super::Evidence;

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
}
