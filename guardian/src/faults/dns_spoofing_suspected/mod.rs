//! `dns_spoofing_suspected` (layer 4): at least `min_unmatched` DNS answers from one source
//! within `window_ms` matched no outstanding query: the source was not asked, or the
//! transaction id and port match nothing asked of it. This is what off-path cache-poisoning
//! attempts (forged answers racing the real one) look like from the client. Report only:
//! dropping answers by source would also drop the real resolver's (the forger spoofs it).
//!
//! Input: `Input::DnsSpoof` (cumulative per (interface, source), from the tcx DNS programs
//! on the interfaces named by `--xdp`).
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::window::Windows;
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{Severity, Subject};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::DnsSpoofingSuspected;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// Unmatched answers from one source within the window that open the fault.
        pub min_unmatched: u64,
        pub window_ms: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_unmatched: 5,
            window_ms: 10_000,
            hysteresis: Hysteresis::new(0, 10_000, 10_000),
        }
    }
}

pub struct DnsSpoofingSuspected {
    cfg: Config,
    tracker: Tracker,
    w: HashMap<u32, Windows<(String, u32)>>,
}

impl DnsSpoofingSuspected {
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
            w: HashMap::new(),
        }
    }
}

pub fn key(netns: u32, addr: &str, ifindex: u32) -> String {
    format!("{netns}/dns_spoof:{addr}%{ifindex}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> DnsSpoofingSuspected {
    DnsSpoofingSuspected::new(cfg.clone())
}

impl Detector for DnsSpoofingSuspected {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let Input::DnsSpoof(d) = input else {
            return Vec::new();
        };
        let window = Duration::from_millis(self.cfg.window_ms);
        let w = self.w.entry(d.netns).or_insert_with(Windows::new);
        w.observe(
            now,
            d.sources
                .iter()
                .map(|s| ((s.addr.clone(), s.ifindex), s.count)),
            window * 2,
        );
        let holding = d
            .sources
            .iter()
            .filter_map(|s| {
                let (n, span) = w.delta(&(s.addr.clone(), s.ifindex), now, window)?;
                (n >= self.cfg.min_unmatched).then(|| Holding {
                    key: key(d.netns, &s.addr, s.ifindex),
                    netns: Some(d.netns),
                    subject: Subject {
                        addr: Some(s.addr.clone()),
                        ifindex: Some(s.ifindex),
                        port: Some(53),
                        ..Default::default()
                    },
                    evidence: super::Evidence::DnsSpoofingSuspected(Evidence {
                        source: s.addr.clone(),
                        ifindex: s.ifindex,
                        unmatched: n,
                        span_ms: span.as_millis() as u64,
                        threshold: self.cfg.min_unmatched,
                        total: s.count,
                    }),
                })
            })
            .collect();
        self.tracker.evaluate_netns(now, d.netns, holding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::shadows::{DnsSpoofSample, UnmatchedAnswers};
    use crate::model::FaultState;

    const NS: u32 = 4026532100;

    fn sample(v: &[(&str, u64)]) -> Input {
        Input::DnsSpoof(DnsSpoofSample {
            netns: NS,
            sources: v
                .iter()
                .map(|&(a, count)| UnmatchedAnswers {
                    addr: a.into(),
                    ifindex: 2,
                    count,
                })
                .collect(),
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
    fn five_unmatched_answers_open_it_four_do_not() {
        for (n, opened) in [(4, false), (5, true)] {
            let mut d = DnsSpoofingSuspected::new(cfg());
            let t0 = Instant::now();
            d.observe(&sample(&[]), t0);
            let f = d.observe(&sample(&[("10.0.0.53", n)]), t0 + Duration::from_secs(1));
            assert_eq!(f.len(), usize::from(opened), "{n}");
            if opened {
                assert_eq!(f[0].state, FaultState::Opened);
                assert_eq!(f[0].subject.addr.as_deref(), Some("10.0.0.53"));
                let ev = f[0].evidence.json();
                assert_eq!((ev["unmatched"].as_u64(), ev["total"].as_u64()), (Some(5), Some(5)));
            }
        }
    }

    #[test]
    fn clears_when_the_forged_answers_stop() {
        let mut d = DnsSpoofingSuspected::new(cfg());
        let t0 = Instant::now();
        d.observe(&sample(&[]), t0);
        let states: Vec<(u64, FaultState)> = (1..=14u64)
            .flat_map(|s| {
                d.observe(&sample(&[("10.0.0.53", 9)]), t0 + Duration::from_secs(s))
                    .into_iter()
                    .map(move |f| (s, f.state))
            })
            .collect();
        assert_eq!(
            states,
            vec![(1, FaultState::Opened), (13, FaultState::Cleared)]
        );
    }
}
