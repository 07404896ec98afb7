//! `http_latency` (layer 7, observe only: the remedy is the report in the event), "API
//! degradation": a service whose p95 request latency over 30 s is more than twice its own
//! baseline and at least 100 ms above it, with at least 20 requests in the window.
//!
//! Input: cumulative latency histograms per (namespace, process, local address:port) from the
//! syscall tracepoints (`Input::Http`, `guardian run --http`: request line read to status
//! line written, in the buckets of `guardian_common::http::LAT_BOUND_US`); a service is one
//! (namespace, address:port) summed over its processes. Each window's p95 is interpolated
//! inside the bucket of the request of rank ⌈0.95 n⌉. The baseline is the median p95 of the
//! service's last `baseline_windows` consecutive healthy windows (at least `min_requests`
//! requests, condition not holding, fault not open): a service is judged only against
//! itself, and only once its baseline is learned.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::http::HttpSample;
use crate::model::{Severity, Subject};

pub mod evidence;
pub mod latency;
#[cfg(test)]
mod tests;

pub use evidence::Evidence;
use latency::{Histograms, Learned};

pub const FAULT: FaultId = FaultId::HttpLatency;

/// How many times the baseline the p95 must exceed: a number above 1 (at most 1000).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Factor(pub f64);

impl super::ranges::Field for Factor {
    fn check(&self, table: &str, name: &str) -> Result<(), super::ranges::Invalid> {
        if self.0.is_finite() && self.0 > 1.0 && self.0 <= 1000.0 {
            return Ok(());
        }
        Err(super::ranges::invalid(
            format!("{table}.{name}"),
            format!(
                "{} is out of range; expected a factor greater than 1 and at most 1000",
                self.0
            ),
        ))
    }
}

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// The p95 must be more than `factor` times the baseline.
        pub factor: Factor,
        /// ... and at least this many milliseconds above it (the absolute floor).
        pub min_increase_ms: u64,
        /// Fewer requests than this in a window: no judgement, nothing learned.
        pub min_requests: u64,
        /// The baseline is the median p95 of this many healthy windows; judged once learned.
        pub baseline_windows: u64,
        pub window_ms: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            factor: Factor(2.0),
            min_increase_ms: 100,
            min_requests: 20,
            baseline_windows: 5,
            window_ms: 30_000,
            hysteresis: Hysteresis::new(0, 30_000, 10_000),
        }
    }
}

pub struct HttpLatency {
    cfg: Config,
    tracker: Tracker,
    histograms: Histograms,
    /// Baselines per (namespace, service).
    learned: HashMap<(u32, String), Learned>,
}

/// What one window of one service says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Too few requests: no judgement, nothing learned.
    TooFew,
    /// The baseline is not learned yet.
    Learning,
    Healthy,
    Degraded,
}

/// The decision for one window: `p95` and `baseline` in ms.
pub fn judge(cfg: &Config, requests: u64, p95: f64, baseline: Option<f64>) -> Verdict {
    if requests < cfg.min_requests {
        return Verdict::TooFew;
    }
    let Some(b) = baseline else {
        return Verdict::Learning;
    };
    if p95 > cfg.factor.0 * b && p95 - b >= cfg.min_increase_ms as f64 {
        Verdict::Degraded
    } else {
        Verdict::Healthy
    }
}

impl HttpLatency {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(
            FaultMeta {
                fault: FAULT,
                layer: 7,
                severity: Severity::Warning,
            },
            cfg.hysteresis,
        );
        Self {
            cfg,
            tracker,
            histograms: Histograms::default(),
            learned: HashMap::new(),
        }
    }

    fn on_sample(&mut self, s: &HttpSample, now: Instant) -> Vec<Finding> {
        let window = Duration::from_millis(self.cfg.window_ms);
        let need = self.cfg.baseline_windows.min(1000) as usize;
        let services = self.histograms.observe(s, now, window);
        // Services gone from the kernel's map forget their baseline.
        self.learned.retain(|(ns, name), _| {
            *ns != s.netns || services.iter().any(|(svc, _)| &svc.name == name)
        });
        let open: Vec<String> = self
            .tracker
            .open_keys()
            .into_iter()
            .map(String::from)
            .collect();
        let mut holding = Vec::new();
        for (svc, w) in services {
            let k = key(s.netns, &svc.name);
            let learned = self
                .learned
                .entry((s.netns, svc.name.clone()))
                .or_insert_with(|| Learned::new(now));
            let Some((p95, bucket)) = latency::p95(&w.lat) else {
                learned.skip(now, window);
                continue;
            };
            let baseline = learned.baseline(need);
            match judge(&self.cfg, w.requests(), p95, baseline) {
                Verdict::TooFew => learned.skip(now, window),
                Verdict::Learning | Verdict::Healthy if !open.contains(&k) => {
                    learned.learn(now, window, p95, need);
                }
                Verdict::Learning | Verdict::Healthy => learned.skip(now, window),
                Verdict::Degraded => {
                    learned.skip(now, window);
                    let baseline = baseline.unwrap_or_default();
                    holding.push(Holding {
                        key: k,
                        netns: Some(s.netns),
                        subject: Subject {
                            addr: (!svc.addr.is_empty()).then(|| svc.addr.clone()),
                            port: (svc.port != 0).then_some(svc.port),
                            ..Default::default()
                        },
                        evidence: super::Evidence::HttpLatency(Evidence::new(
                            &self.cfg, svc, &w, p95, bucket, baseline,
                        )),
                    });
                }
            }
        }
        self.tracker.evaluate_netns(now, s.netns, holding)
    }
}

pub fn key(netns: u32, service: &str) -> String {
    format!("http_latency:{netns}:{service}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> HttpLatency {
    HttpLatency::new(cfg.clone())
}

impl Detector for HttpLatency {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        match input {
            Input::Http(s) => self.on_sample(s, now),
            _ => Vec::new(),
        }
    }
}
