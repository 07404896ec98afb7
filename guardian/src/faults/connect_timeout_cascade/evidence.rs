//! `connect_timeout_cascade` evidence: failed connects to one destination in the window, and
//! how they ended: `sockopt_failfast` trusts only timeouts (ETIMEDOUT after SYN
//! retransmissions) from more than one uid, never connects the application abandoned.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    /// Of `failed_connects`, those the application closed itself while in SYN_SENT.
    pub abandoned: u64,
    pub failed_connects: u64,
    pub span_ms: u64,
    pub syn_retrans_total: u64,
    pub threshold: u64,
    /// Of `failed_connects`, those that ended with ETIMEDOUT: the network dropped the SYNs.
    pub timed_out: u64,
    /// The uids whose sockets timed out, ascending (known uids only).
    pub timeout_uids: Vec<u32>,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        format!(
            "{} connects failed in {} ms, {} of them timed out and {} abandoned (threshold {})",
            self.failed_connects, self.span_ms, self.timed_out, self.abandoned, self.threshold
        )
    }
}
