//! `retransmit_storm` evidence: the retransmitted share of the segments sent in the window.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    pub clear_ratio: f64,
    pub ratio: f64,
    pub retrans_segs: u64,
    pub sent_segs: u64,
    pub trigger_ratio: f64,
    pub window_ms: u64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        use crate::output::message::pct;
        format!(
            "{} of {} segments retransmitted in {} ms ({}, threshold {})",
            self.retrans_segs,
            self.sent_segs,
            self.window_ms,
            pct(self.ratio),
            pct(self.trigger_ratio)
        )
    }
}
