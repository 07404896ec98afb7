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
