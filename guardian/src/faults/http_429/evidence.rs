//! `http_429` evidence: one service's responses in the window, the 429 ones.
//!
//! Serialized into the fault event (keys sorted, as every evidence object).
use serde::Serialize;

use crate::faults::http_5xx::services::Process;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    pub per_s: f64,
    pub min_per_s: f64,
    pub processes: Vec<Process>,
    pub ratio: f64,
    pub responses: u64,
    pub s429: u64,
    pub s4xx: u64,
    pub service: String,
    pub threshold: f64,
    pub window_ms: u64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        use crate::output::message::pct;
        format!(
            "{} of {} responses from {} were 429 in {} ms ({}, threshold {})",
            self.s429,
            self.responses,
            self.service,
            self.window_ms,
            pct(self.ratio),
            pct(self.threshold)
        )
    }
}
