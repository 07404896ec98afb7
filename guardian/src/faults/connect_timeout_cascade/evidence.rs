//! `connect_timeout_cascade` evidence: failed connects to one destination in the window.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    pub failed_connects: u64,
    pub span_ms: u64,
    pub syn_retrans_total: u64,
    pub threshold: u64,
}
