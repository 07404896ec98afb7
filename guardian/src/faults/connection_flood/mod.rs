//! `connection_flood` (layer 4): one source opens more than `per_source_per_sec` new
//! connections per second (completed passive handshakes, SYN_RECV -> ESTABLISHED, counted in
//! the kernel per peer address; averaged over `window_ms`). Opens per (netns, source address).
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::window::Windows;
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{Severity, Subject};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::ConnectionFlood;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// New established connections per second from one source above which it floods.
        pub per_source_per_sec: f64,
        /// Rates are averaged over this window.
        pub window_ms: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            per_source_per_sec: 200.0,
            window_ms: 1000,
            hysteresis: Hysteresis::new(0, 10_000, 10_000),
        }
    }
}

pub struct ConnectionFlood {
    cfg: Config,
    tracker: Tracker,
    peers: HashMap<u32, Windows<String>>,
}

impl ConnectionFlood {
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
            peers: HashMap::new(),
        }
    }
}

pub fn key(netns: u32, addr: &str) -> String {
    format!("{netns}/src:{addr}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> ConnectionFlood {
    ConnectionFlood::new(cfg.clone())
}

impl Detector for ConnectionFlood {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let Input::Flows(f) = input else {
            return Vec::new();
        };
        let window = Duration::from_millis(self.cfg.window_ms);
        let w = self.peers.entry(f.netns).or_insert_with(Windows::new);
        w.observe(
            now,
            f.established_by_source
                .iter()
                .map(|a| (a.addr.clone(), a.count)),
            window * 2,
        );
        let mut addrs: Vec<&String> = w.keys().collect();
        addrs.sort_unstable();
        let holding = addrs
            .into_iter()
            .filter_map(|a| {
                let (rate, n, span) = w.rate(a, now, window)?;
                (rate > self.cfg.per_source_per_sec).then(|| Holding {
                    key: key(f.netns, a),
                    netns: Some(f.netns),
                    subject: Subject {
                        addr: Some(a.clone()),
                        ..Default::default()
                    },
                    evidence: super::Evidence::ConnectionFlood(Evidence {
                        connections_per_sec: (rate * 10.0).round() / 10.0,
                        connections: n,
                        span_ms: span.as_millis() as u64,
                        limit_per_sec: self.cfg.per_source_per_sec,
                    }),
                })
            })
            .collect();
        self.tracker.evaluate_netns(now, f.netns, holding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AddrCount, FaultState};
    use crate::model::sample::FlowSample;

    const NS: u32 = 4026532000;

    fn sample(v: &[(&str, u64)]) -> Input {
        Input::Flows(FlowSample {
            netns: NS,
            established_by_source: v
                .iter()
                .map(|&(a, count)| AddrCount {
                    addr: a.into(),
                    count,
                })
                .collect(),
            ..Default::default()
        })
    }

    fn cfg() -> Config {
        Config {
            per_source_per_sec: 100.0,
            hysteresis: Hysteresis {
                clear_after_ms: 2000,
                update_every_ms: 60_000,
                ..Config::default().hysteresis
            },
            ..Default::default()
        }
    }

    /// Per-second new connections from 10.0.0.1 for each 1 s step.
    fn run(steps: &[u64]) -> Vec<Vec<FaultState>> {
        let mut d = ConnectionFlood::new(cfg());
        let t0 = Instant::now();
        d.observe(&sample(&[]), t0);
        let mut total = 0;
        steps
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                total += n;
                d.observe(
                    &sample(&[("10.0.0.1", total)]),
                    t0 + Duration::from_secs(i as u64 + 1),
                )
                .into_iter()
                .map(|f| f.state)
                .collect()
            })
            .collect()
    }

    use FaultState::{Cleared as C, Opened as O};

    #[test]
    fn just_below_and_just_above() {
        assert!(run(&[100, 100, 100]).iter().all(Vec::is_empty));
        assert_eq!(run(&[101]), vec![vec![O]]);
    }

    #[test]
    fn no_flapping_then_clears() {
        let got = run(&[300, 50, 300, 50, 0, 0, 0]);
        assert_eq!(
            got,
            vec![vec![O], vec![], vec![], vec![], vec![], vec![C], vec![]]
        );
    }

    #[test]
    fn sources_and_namespaces_are_separate() {
        let mut d = ConnectionFlood::new(cfg());
        let t0 = Instant::now();
        d.observe(&sample(&[]), t0);
        let t1 = t0 + Duration::from_secs(1);
        let f = d.observe(&sample(&[("10.0.0.1", 500), ("10.0.0.2", 20)]), t1);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject.addr.as_deref(), Some("10.0.0.1"));
        assert_eq!(f[0].key, key(NS, "10.0.0.1"));
        assert_eq!(f[0].netns, Some(NS));
        assert_eq!(f[0].evidence.json()["connections"], 500);
        // A sample of another namespace neither opens nor clears anything here.
        let other = Input::Flows(FlowSample {
            netns: 1,
            ..Default::default()
        });
        assert!(d.observe(&other, t1 + Duration::from_secs(5)).is_empty());
    }
}
