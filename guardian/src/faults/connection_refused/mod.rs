//! `connection_refused` (layer 4): at least `refusals` connects to one destination (address
//! and port) were refused (RST to the SYN: SYN_SENT -> CLOSE with ECONNREFUSED) within
//! `window_ms`: a service down. Refusals are not timeouts: they never feed
//! `connect_timeout_cascade`, and no remedy applies; the fault event is the report.
//!
//! Input: `counters.connect_refused_by_dst` (cumulative, counted in the kernel per
//! destination). Opens per (netns, destination address, port).
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::window::Windows;
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{Severity, Subject};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::ConnectionRefused;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// Refused connects to one destination within the window that open the fault.
        pub refusals: u64,
        pub window_ms: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            refusals: 20,
            window_ms: 10_000,
            hysteresis: Hysteresis::new(0, 10_000, 10_000),
        }
    }
}

pub struct ConnectionRefused {
    cfg: Config,
    tracker: Tracker,
    dsts: HashMap<u32, Windows<(String, u16)>>,
}

impl ConnectionRefused {
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
            dsts: HashMap::new(),
        }
    }
}

pub fn key(netns: u32, addr: &str, port: u16) -> String {
    format!("{netns}/refused:{addr}:{port}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> ConnectionRefused {
    ConnectionRefused::new(cfg.clone())
}

impl Detector for ConnectionRefused {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let Input::Counters(c) = input else {
            return Vec::new();
        };
        let window = Duration::from_millis(self.cfg.window_ms);
        let w = self.dsts.entry(c.netns).or_insert_with(Windows::new);
        w.observe(
            now,
            c.connect_refused_by_dst
                .iter()
                .map(|d| ((d.addr.clone(), d.port), d.count)),
            window * 2,
        );
        let mut dsts: Vec<&(String, u16)> = w.keys().collect();
        dsts.sort_unstable();
        let holding = dsts
            .into_iter()
            .filter_map(|k| {
                let (n, span) = w.delta(k, now, window)?;
                (n >= self.cfg.refusals).then(|| Holding {
                    key: key(c.netns, &k.0, k.1),
                    netns: Some(c.netns),
                    subject: Subject {
                        addr: Some(k.0.clone()),
                        port: Some(k.1),
                        ..Default::default()
                    },
                    evidence: super::Evidence::ConnectionRefused(Evidence {
                        refused_connects: n,
                        span_ms: span.as_millis() as u64,
                        threshold: self.cfg.refusals,
                        refused_total: c.connect_refused,
                    }),
                })
            })
            .collect();
        self.tracker.evaluate_netns(now, c.netns, holding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Counters, DstCount, FaultState};

    const NS: u32 = 4026532100;

    fn dst(v: &[(&str, u16, u64)]) -> Vec<DstCount> {
        v.iter()
            .map(|&(a, port, count)| DstCount {
                addr: a.into(),
                port,
                count,
            })
            .collect()
    }

    fn sample(refused: &[(&str, u16, u64)], failed: &[(&str, u16, u64)]) -> Input {
        Input::Counters(Counters {
            netns: NS,
            connect_refused: refused.iter().map(|r| r.2).sum(),
            connect_refused_by_dst: dst(refused),
            connect_failures: failed.iter().map(|r| r.2).sum(),
            connect_failures_by_dst: dst(failed),
            ..Default::default()
        })
    }

    fn cfg() -> Config {
        Config {
            hysteresis: Hysteresis {
                clear_after_ms: 2000,
                update_every_ms: 60_000,
                ..Config::default().hysteresis
            },
            ..Default::default()
        }
    }

    #[test]
    fn thirty_refusals_open_it_nineteen_do_not() {
        for (n, opened) in [(19, false), (20, true), (30, true)] {
            let mut d = ConnectionRefused::new(cfg());
            let t0 = Instant::now();
            d.observe(&sample(&[], &[]), t0);
            let f = d.observe(
                &sample(&[("10.0.0.2", 5999, n)], &[]),
                t0 + Duration::from_secs(1),
            );
            assert_eq!(f.len(), usize::from(opened), "{n}");
            if opened {
                assert_eq!(f[0].state, FaultState::Opened);
                assert_eq!(f[0].key, key(NS, "10.0.0.2", 5999));
                assert_eq!(f[0].subject.port, Some(5999));
                let ev = f[0].evidence.json();
                assert_eq!(ev["refused_connects"], n);
                assert_eq!(ev["refused_total"], n);
                assert_eq!(ev["threshold"], 20);
            }
        }
    }

    #[test]
    fn timeouts_are_not_refusals_and_refusals_are_not_timeouts() {
        // Thirty timed-out connects: not this fault.
        let mut d = ConnectionRefused::new(cfg());
        let t0 = Instant::now();
        d.observe(&sample(&[], &[]), t0);
        let f = d.observe(
            &sample(&[], &[("10.0.0.2", 80, 30)]),
            t0 + Duration::from_secs(1),
        );
        assert!(f.is_empty(), "{f:?}");
        // Thirty refused connects: not a timeout cascade.
        let mut c = crate::faults::connect_timeout_cascade::ConnectTimeoutCascade::new(
            Default::default(),
        );
        c.observe(&sample(&[], &[]), t0);
        let f = c.observe(
            &sample(&[("10.0.0.2", 80, 30)], &[]),
            t0 + Duration::from_secs(1),
        );
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn clears_once_the_refusals_stop() {
        let mut d = ConnectionRefused::new(cfg());
        let t0 = Instant::now();
        d.observe(&sample(&[], &[]), t0);
        let mut states = Vec::new();
        for s in 1..=14u64 {
            let f = d.observe(
                &sample(&[("10.0.0.2", 80, 25)], &[]),
                t0 + Duration::from_secs(s),
            );
            states.extend(f.into_iter().map(|f| (s, f.state)));
        }
        // Opened at 1 s; in the 10 s window through 11 s, cleared 2 s after it left (as the
        // cascade does).
        assert_eq!(
            states,
            vec![(1, FaultState::Opened), (13, FaultState::Cleared)]
        );
    }
}
