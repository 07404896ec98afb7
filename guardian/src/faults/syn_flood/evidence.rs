//! `syn_flood` evidence: the SYN rate to one port, how few completed, and the top sources.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

/// A source of SYNs and how many it sent in the window.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Source {
    pub addr: String,
    pub syns: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    /// Handshakes completed in the window.
    pub completed: u64,
    /// SYNs the kernel answered with a cookie because the SYN queue was full
    /// (`TCPReqQFullDoCookies`) in the window; None before the first MIB sample.
    pub cookies: Option<u64>,
    pub completion_ratio: f64,
    pub limit_per_sec: f64,
    pub max_completion_ratio: f64,
    pub span_ms: u64,
    pub syn_per_sec: f64,
    /// SYNs in the window.
    pub syns: u64,
    pub top_sources: Vec<Source>,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        let mut s = format!(
            "{} SYNs in {} ms ({:.0}/s, limit {:.0}/s), {} completed",
            self.syns,
            self.span_ms,
            self.syn_per_sec,
            self.limit_per_sec,
            crate::output::message::pct(self.completion_ratio)
        );
        if let Some(top) = self.top_sources.first() {
            s.push_str(&format!("; top source {} ({} SYNs)", top.addr, top.syns));
        }
        s
    }
}
