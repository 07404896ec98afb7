//! `reset_storm` (layer 4): TCP resets sent or received on one service port rise above the
//! port's learned baseline: at least `min_resets` within `window_ms`, at a rate at least
//! `over_baseline` times the rate learned (slowly, over `baseline_ms`) while no storm held.
//! Keep-alive timeouts, WebSocket drops, aborts on close and refused connects to a dead
//! service all end in a RST. Report only: a reset is the end of a connection the application
//! or its peer chose; nothing at layer 2 to 4 undoes it safely.
//!
//! Input: `Input::Resets` (cumulative per (netns, port, direction, side), counted in the
//! kernel by the `tcp:tcp_send_reset` and `tcp:tcp_receive_reset` programs).
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::window::Windows;
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::shadows::RstDirection;
use crate::model::{Severity, Subject};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::ResetStorm;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// Resets on one port and direction within the window that may open the fault.
        pub min_resets: u64,
        pub window_ms: u64,
        /// How many times the learned rate the window's rate must be.
        pub over_baseline: f64,
        /// Time constant of the learned rate (an exponential average).
        pub baseline_ms: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_resets: 20,
            window_ms: 10_000,
            over_baseline: 5.0,
            baseline_ms: 600_000,
            hysteresis: Hysteresis::new(0, 10_000, 10_000),
        }
    }
}

/// (port, direction, remote side).
type Key = (u16, RstDirection, bool);

struct Scope {
    w: Windows<Key>,
    /// Learned rate per key (resets per second) and when it was last updated.
    base: HashMap<Key, (f64, Instant)>,
}

pub struct ResetStorm {
    cfg: Config,
    tracker: Tracker,
    scopes: HashMap<u32, Scope>,
}

impl Default for Scope {
    fn default() -> Self {
        Self {
            w: Windows::new(),
            base: HashMap::new(),
        }
    }
}

impl ResetStorm {
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
            scopes: HashMap::new(),
        }
    }
}

pub fn key(netns: u32, k: &Key) -> String {
    let side = if k.2 { "remote" } else { "local" };
    format!("{netns}/rst:{}:{}:{side}", k.0, k.1.as_str())
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> ResetStorm {
    ResetStorm::new(cfg.clone())
}

impl Detector for ResetStorm {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let Input::Resets(r) = input else {
            return Vec::new();
        };
        let window = Duration::from_millis(self.cfg.window_ms);
        let tau = Duration::from_millis(self.cfg.baseline_ms).as_secs_f64();
        let s = self.scopes.entry(r.netns).or_default();
        s.w.observe(
            now,
            r.ports
                .iter()
                .map(|p| ((p.port, p.direction, p.remote), p.count)),
            window * 2,
        );
        let totals: HashMap<Key, u64> = r
            .ports
            .iter()
            .map(|p| ((p.port, p.direction, p.remote), p.count))
            .collect();
        let mut keys: Vec<Key> = s.w.keys().copied().collect();
        keys.sort_unstable();
        let mut holding = Vec::new();
        for k in keys {
            let Some((rate, n, span)) = s.w.rate(&k, now, window) else {
                continue;
            };
            let (base, last) = *s.base.entry(k).or_insert((0.0, now));
            let storm = n >= self.cfg.min_resets && rate >= self.cfg.over_baseline * base;
            if !storm {
                // Learn only outside storms, so that a storm does not become the norm.
                let a = (now.saturating_duration_since(last).as_secs_f64() / tau).min(1.0);
                s.base.insert(k, (base + (rate - base) * a, now));
                continue;
            }
            s.base.insert(k, (base, now));
            holding.push(Holding {
                key: key(r.netns, &k),
                netns: Some(r.netns),
                subject: Subject {
                    port: Some(k.0),
                    ..Default::default()
                },
                evidence: super::Evidence::ResetStorm(Evidence {
                    direction: k.1.as_str(),
                    side: if k.2 { "remote" } else { "local" },
                    resets: n,
                    span_ms: span.as_millis() as u64,
                    rate_per_s: (rate * 100.0).round() / 100.0,
                    baseline_per_s: (base * 1000.0).round() / 1000.0,
                    threshold: self.cfg.min_resets,
                    over_baseline: self.cfg.over_baseline,
                    total: totals.get(&k).copied().unwrap_or(0),
                }),
            });
        }
        self.tracker.evaluate_netns(now, r.netns, holding)
    }
}

#[cfg(test)]
mod tests;
