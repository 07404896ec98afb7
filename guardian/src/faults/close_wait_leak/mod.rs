//! `close_wait_leak` (layer 4): the CLOSE_WAIT sockets of one local port keep growing: at
//! least `min_sockets`, grown by at least `min_growth` within `window_ms`. The peers closed
//! and the application never closes its end: a server-side connection pool (or fd) leak,
//! heading for exhaustion. Open while the count stays at or above `min_sockets`. Report only:
//! destroying an application's sockets behind its back is not safe (it still holds the fds
//! and may still write to them); the evidence names the process to fix or restart.
//!
//! Input: `Input::CloseWait` (entered minus left per (netns, port), from
//! `sock:inet_sock_set_state`; the owners looked up from `/proc/*/fd` once it matters).
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::window::Windows;
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{Severity, Subject};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::CloseWaitLeak;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// CLOSE_WAIT sockets of one port that may open the fault (and keep it open).
        pub min_sockets: u64,
        /// Growth within the window that opens it.
        pub min_growth: u64,
        pub window_ms: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_sockets: 32,
            min_growth: 8,
            window_ms: 60_000,
            hysteresis: Hysteresis::new(0, 10_000, 30_000),
        }
    }
}

pub struct CloseWaitLeak {
    cfg: Config,
    tracker: Tracker,
    /// Per namespace: the gauge's history per port (as a counter: never decreasing values
    /// are what `Windows` expects, so the growth is computed from it directly).
    hist: HashMap<u32, Windows<u16>>,
    /// Ports whose fault is open, per namespace.
    open: HashMap<u32, HashSet<u16>>,
    /// When the previous input (of any namespace) came: a namespace first sampled later than
    /// that had nothing in CLOSE_WAIT then (the gauges count from attach).
    last_input: Option<Instant>,
}

impl CloseWaitLeak {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(
            FaultMeta {
                fault: FAULT,
                layer: 4,
                severity: Severity::Warning,
            },
            cfg.hysteresis,
        );
        Self {
            cfg,
            tracker,
            hist: HashMap::new(),
            open: HashMap::new(),
            last_input: None,
        }
    }
}

pub fn key(netns: u32, port: u16) -> String {
    format!("{netns}/close_wait:{port}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> CloseWaitLeak {
    CloseWaitLeak::new(cfg.clone())
}

impl Detector for CloseWaitLeak {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let Input::CloseWait(c) = input else {
            return Vec::new();
        };
        let window = Duration::from_millis(self.cfg.window_ms);
        let w = self.hist.entry(c.netns).or_insert_with(|| {
            // The gauges count from attach (sockets already in CLOSE_WAIT then are not in
            // them): whatever a namespace holds when first sampled entered CLOSE_WAIT since,
            // so its whole pile-up is growth. From zero at the previous tick for a namespace
            // that joins later (a new pod, or one the namespace index found late); on the
            // daemon's first tick, from zero now (a leak faster than the first tick, which
            // is no baseline: the counts it sees are since attach, not since boot).
            let mut w = Windows::new();
            w.observe(self.last_input.unwrap_or(now), std::iter::empty(), window * 2);
            w
        });
        w.observe(now, c.ports.iter().map(|p| (p.port, p.count)), window * 2);
        self.last_input = Some(now);
        let open = self.open.entry(c.netns).or_default();
        let mut holding = Vec::new();
        for p in &c.ports {
            if p.count < self.cfg.min_sockets {
                continue;
            }
            // A gauge, not a counter: `delta` saturates when it fell.
            let (grew, span) = w.delta(&p.port, now, window).unwrap_or_default();
            if grew < self.cfg.min_growth && !open.contains(&p.port) {
                continue;
            }
            holding.push(Holding {
                key: key(c.netns, p.port),
                netns: Some(c.netns),
                subject: Subject {
                    port: Some(p.port),
                    ..Default::default()
                },
                evidence: super::Evidence::CloseWaitLeak(Evidence {
                    close_wait: p.count,
                    grew_by: grew,
                    span_ms: span.as_millis() as u64,
                    threshold: self.cfg.min_sockets,
                    min_growth: self.cfg.min_growth,
                    owners: p.owners.clone(),
                }),
            });
        }
        *open = holding.iter().filter_map(|h| h.subject.port).collect();
        self.tracker.evaluate_netns(now, c.netns, holding)
    }
}

#[cfg(test)]
mod tests;
