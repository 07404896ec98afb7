//! `ephemeral_port_exhaustion` evidence: failed connects for lack of a local port, and the range's usage.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

/// How much of the range one destination holds.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Usage {
    pub addr: String,
    pub in_use: u64,
    pub port: u16,
    pub ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    pub failures: u64,
    pub last_comm: Option<String>,
    pub last_pid: Option<u32>,
    pub port_range: Option<[u16; 2]>,
    pub range_usage: Option<Vec<Usage>>,
    /// The largest share of the range one destination holds (socket table).
    pub range_used: Option<f64>,
    pub rate_per_s: f64,
    pub tcp_tw_reuse: Option<u64>,
    pub top_dst_failures: Option<usize>,
    pub total: u64,
    pub window_ms: u64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        let mut s = format!(
            "{} connects found no free local port ({:.1}/s over {} ms)",
            self.total, self.rate_per_s, self.window_ms
        );
        if let (Some(used), Some([lo, hi])) = (self.range_used, self.port_range) {
            s.push_str(&format!(
                "; one destination holds {} of the range {lo}-{hi}",
                crate::output::message::pct(used)
            ));
        }
        s
    }
}
