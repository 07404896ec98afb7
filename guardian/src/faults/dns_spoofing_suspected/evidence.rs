//! `dns_spoofing_suspected` evidence: answers from one source that matched no outstanding
//! query, within the window.
//!
//! Serialized into the fault event (keys sorted, as every evidence object).
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    /// The source the answers came from (a resolver that was asked, or not).
    pub source: String,
    pub ifindex: u32,
    /// Unmatched answers within `span_ms`.
    pub unmatched: u64,
    pub span_ms: u64,
    pub threshold: u64,
    /// Unmatched answers from this source since attach.
    pub total: u64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        format!(
            "{} DNS answers from {} matched no outstanding query in {} ms (threshold {})",
            self.unmatched, self.source, self.span_ms, self.threshold
        )
    }
}
