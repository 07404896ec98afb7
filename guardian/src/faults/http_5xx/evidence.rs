//! `http_5xx` evidence: one service's responses in the window, the 5xx ones by code.
//!
//! Serialized into the fault event (keys sorted, as every evidence object).
use serde::Serialize;

use super::services::Process;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    /// 5xx responses other than 500, 502, 503 and 504.
    pub other_5xx: u64,
    pub per_s: f64,
    pub min_per_s: f64,
    pub processes: Vec<Process>,
    pub ratio: f64,
    pub responses: u64,
    pub s500: u64,
    pub s502: u64,
    pub s503: u64,
    pub s504: u64,
    pub s5xx: u64,
    pub service: String,
    pub threshold: f64,
    pub window_ms: u64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        use crate::output::message::pct;
        format!(
            "{} of {} responses from {} were 5xx in {} ms ({}, threshold {}): 500 {}, 502 {}, 503 {}, 504 {}, other {}",
            self.s5xx,
            self.responses,
            self.service,
            self.window_ms,
            pct(self.ratio),
            pct(self.threshold),
            self.s500,
            self.s502,
            self.s503,
            self.s504,
            self.other_5xx
        )
    }
}
