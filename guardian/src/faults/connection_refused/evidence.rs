//! `connection_refused` evidence: refused connects to one destination in the window.
//!
//! Serialized into the fault event (keys sorted, as every evidence object).
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    /// Connects to the destination refused (RST to the SYN) within `span_ms`.
    pub refused_connects: u64,
    pub span_ms: u64,
    pub threshold: u64,
    /// The namespace's refused connects since attach (all destinations).
    pub refused_total: u64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        format!(
            "{} connects refused in {} ms (threshold {})",
            self.refused_connects, self.span_ms, self.threshold
        )
    }
}
