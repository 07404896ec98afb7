//! `connection_flood` evidence: the rate of established connections from one source.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    pub connections: u64,
    pub connections_per_sec: f64,
    pub limit_per_sec: f64,
    pub span_ms: u64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        format!(
            "{} connections in {} ms ({:.0}/s, limit {:.0}/s)",
            self.connections, self.span_ms, self.connections_per_sec, self.limit_per_sec
        )
    }
}
