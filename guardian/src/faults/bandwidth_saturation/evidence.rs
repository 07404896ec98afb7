//! `bandwidth_saturation` evidence: the rate of one direction of a link against its capacity.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

/// A source of SYNs seen by XDP on the link.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Talker {
    pub addr: String,
    pub syns: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    pub capacity_bps: f64,
    pub capacity_source: &'static str,
    pub direction: &'static str,
    pub hold_ms: u64,
    pub rate_bps: f64,
    pub threshold: f64,
    pub top_talkers: Vec<Talker>,
    pub utilization: f64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        use crate::output::message::{bits, pct};
        format!(
            "{} {} of {} ({}, threshold {}) for {} ms",
            self.direction,
            bits(self.rate_bps),
            bits(self.capacity_bps),
            pct(self.utilization),
            pct(self.threshold),
            self.hold_ms
        )
    }
}
