//! `dns_failure` evidence: the answers of one resolver in the window.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    pub failed: u64,
    pub failure_ratio: f64,
    pub ifaces: Vec<String>,
    pub nxdomain: u64,
    pub queries: u64,
    pub refused: u64,
    pub resolver: String,
    pub servfail: u64,
    pub threshold: f64,
    pub timeout_ms: u64,
    pub unanswered: u64,
    pub window_ms: u64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        use crate::output::message::pct;
        format!(
            "{} of {} queries to {} failed in {} ms ({}, threshold {}): {} SERVFAIL, {} REFUSED, {} NXDOMAIN, {} unanswered",
            self.failed,
            self.queries,
            self.resolver,
            self.window_ms,
            pct(self.failure_ratio),
            pct(self.threshold),
            self.servfail,
            self.refused,
            self.nxdomain,
            self.unanswered
        )
    }
}
