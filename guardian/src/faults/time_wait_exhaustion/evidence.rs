//! `time_wait_exhaustion` evidence: TIME_WAIT sockets against the bucket limit or the port range.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

use crate::model::sample::DstSockets;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Evidence {
    /// The namespace's TIME_WAIT sockets near `tcp_max_tw_buckets`.
    Buckets {
        port_range: Option<[u16; 2]>,
        ratio: f64,
        tcp_max_tw_buckets: u64,
        tcp_tw_reuse: Option<u64>,
        time_wait: u64,
        top_dst: Option<DstSockets>,
        trigger_ratio: f64,
        tw_overflow_total: u64,
    },
    /// One destination's TIME_WAIT sockets near the size of the port range.
    Range {
        port_range: Option<[u16; 2]>,
        range_size: u64,
        ratio: f64,
        tcp_tw_reuse: Option<u64>,
        time_wait: Option<u64>,
        time_wait_to_dst: u64,
        trigger_ratio: f64,
    },
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        use crate::output::message::pct;
        match self {
            Evidence::Buckets {
                time_wait,
                tcp_max_tw_buckets,
                ratio,
                trigger_ratio,
                ..
            } => format!(
                "{time_wait} TIME_WAIT sockets of tcp_max_tw_buckets {tcp_max_tw_buckets} ({}, threshold {})",
                pct(*ratio),
                pct(*trigger_ratio)
            ),
            Evidence::Range {
                time_wait_to_dst,
                range_size,
                ratio,
                trigger_ratio,
                ..
            } => format!(
                "{time_wait_to_dst} TIME_WAIT sockets to one destination of a {range_size}-port range ({}, threshold {})",
                pct(*ratio),
                pct(*trigger_ratio)
            ),
        }
    }
}
