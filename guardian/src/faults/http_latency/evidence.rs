//! `http_latency` evidence: one service's p95 in the window against its baseline, and the
//! histogram it was read from.
//!
//! Serialized into the fault event (keys sorted, as every evidence object).
use serde::Serialize;

use super::latency::{from_ms, to_ms, Window};
use super::Config;
use crate::faults::http_5xx::round3 as round_ms;
use crate::faults::http_5xx::services::{Process, Service};

/// One non-empty latency bucket: requests with `from_ms` <= latency < `to_ms` (no `to_ms`:
/// the open last bucket).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Bucket {
    pub count: u64,
    pub from_ms: f64,
    pub to_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    pub baseline_ms: f64,
    pub buckets: Vec<Bucket>,
    pub factor: f64,
    pub min_increase_ms: u64,
    pub min_requests: u64,
    pub p95_from_ms: f64,
    pub p95_ms: f64,
    pub p95_to_ms: Option<f64>,
    pub processes: Vec<Process>,
    pub requests: u64,
    pub service: String,
    pub window_ms: u64,
}

impl Evidence {
    pub fn new(
        cfg: &Config,
        svc: Service,
        w: &Window,
        p95: f64,
        bucket: usize,
        baseline: f64,
    ) -> Self {
        Self {
            baseline_ms: round_ms(baseline),
            buckets: w
                .lat
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, &count)| Bucket {
                    count,
                    from_ms: from_ms(i),
                    to_ms: to_ms(i),
                })
                .collect(),
            factor: cfg.factor.0,
            min_increase_ms: cfg.min_increase_ms,
            min_requests: cfg.min_requests,
            p95_from_ms: from_ms(bucket),
            p95_ms: round_ms(p95),
            p95_to_ms: to_ms(bucket),
            processes: svc.processes,
            requests: w.requests(),
            service: svc.name,
            window_ms: cfg.window_ms,
        }
    }

    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        let to = self
            .p95_to_ms
            .map(|t| format!("{t} ms"))
            .unwrap_or_else(|| "more".into());
        format!(
            "p95 of {} requests to {} in {} ms is {} ms (bucket {} ms to {}), baseline {} ms (threshold {}x and +{} ms)",
            self.requests,
            self.service,
            self.window_ms,
            self.p95_ms,
            self.p95_from_ms,
            to,
            self.baseline_ms,
            self.factor,
            self.min_increase_ms
        )
    }
}
