//! `reset_storm` evidence: resets on one service port, in one direction, over the window and
//! against the port's learned baseline.
//!
//! Serialized into the fault event (keys sorted, as every evidence object).
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    /// `sent` (this host reset the connections) or `received` (its sockets were reset).
    pub direction: &'static str,
    /// `local` when the port is this host's (a service it runs), `remote` when it is the
    /// peer's (a service this host calls).
    pub side: &'static str,
    /// Resets within `span_ms`.
    pub resets: u64,
    pub span_ms: u64,
    pub rate_per_s: f64,
    /// The port's learned rate (resets per second) before the storm.
    pub baseline_per_s: f64,
    /// The configured `min_resets` and `over_baseline`.
    pub threshold: u64,
    pub over_baseline: f64,
    /// Resets on this port and direction since attach.
    pub total: u64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        format!(
            "{} resets {} in {} ms ({:.1}/s against a learned {:.1}/s; threshold {} and {}×)",
            self.resets,
            self.direction,
            self.span_ms,
            self.rate_per_s,
            self.baseline_per_s,
            self.threshold,
            self.over_baseline
        )
    }
}
