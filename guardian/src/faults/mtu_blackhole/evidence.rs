//! `mtu_blackhole` evidence: the worst flow's full-size RTO retransmits to one destination.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    pub backoff: u32,
    /// Flows to the destination.
    pub flows: usize,
    pub full_retransmits: u64,
    pub mss: u32,
    /// Consecutive full-size RTO retransmits of the worst flow.
    pub rto_retransmits: u32,
    pub segment_len: u32,
    pub small_retransmits: u64,
    pub small_rto_retransmits: u64,
    pub sport: u16,
    pub threshold: u32,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        format!(
            "{} consecutive timeout retransmits of {}-byte segments (mss {}, threshold {}) over {} flows",
            self.rto_retransmits, self.segment_len, self.mss, self.threshold, self.flows
        )
    }
}
