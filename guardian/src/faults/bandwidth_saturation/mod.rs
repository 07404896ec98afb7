//! `bandwidth_saturation` (layer 2, observe only): an interface over 90 % of its capacity for
//! 10 s, in either direction.
//!
//! Rates come from consecutive `LinkStats` samples (bytes between two samples over the time
//! between them). Capacity: the configured one for the interface (`capacity_mbps`, by name)
//! wins over the driver's speed; an interface with neither is not watched. Each direction is
//! its own subject (`rx` / `tx`). Evidence carries the rate, the capacity and its source, and
//! the top SYN sources seen by XDP on the interface when XDP runs there (the only per-source
//! numbers guardian has).
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{Severity, Subject, XdpIface};
use crate::model::sample::LinkStatsSample;

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::BandwidthSaturation;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// Fraction of capacity above which an interface is saturated.
        pub utilization: f64,
        /// Capacity in Mbit/s per interface name, overriding the driver's speed (veth, tunnels
        /// and virtual NICs report none or a meaningless one).
        pub capacity_mbps: BTreeMap<String, f64>,
        /// Top talkers listed in the evidence.
        pub top_talkers: usize,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            utilization: 0.9,
            capacity_mbps: BTreeMap::new(),
            hysteresis: Hysteresis::new(10_000, 5_000, 10_000),
            top_talkers: 5,
        }
    }
}

struct Prev {
    at: Instant,
    rx: u64,
    tx: u64,
}

pub struct BandwidthSaturation {
    cfg: Config,
    tracker: Tracker,
    prev: HashMap<(u32, u32), Prev>,
    /// Latest XDP numbers per (netns, ifindex).
    xdp: HashMap<(u32, u32), XdpIface>,
}

impl BandwidthSaturation {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(
            FaultMeta {
                fault: FAULT,
                layer: 2,
                severity: Severity::Warning,
            },
            cfg.hysteresis,
        );
        Self {
            cfg,
            tracker,
            prev: HashMap::new(),
            xdp: HashMap::new(),
        }
    }

    fn on_sample(&mut self, s: &LinkStatsSample, now: Instant) -> Vec<Finding> {
        let mut holding = Vec::new();
        for l in &s.links {
            let (capacity, source) = match self.cfg.capacity_mbps.get(&l.iface) {
                Some(&c) => (Some(c), "configured"),
                None => (l.speed_mbps.map(|s| s as f64), "driver"),
            };
            let prev = self.prev.insert(
                (s.netns, l.ifindex),
                Prev {
                    at: now,
                    rx: l.rx_bytes,
                    tx: l.tx_bytes,
                },
            );
            let (Some(cap), Some(p)) = (capacity, prev) else {
                continue;
            };
            let secs = now.saturating_duration_since(p.at).as_secs_f64();
            if secs <= 0.0 || cap <= 0.0 {
                continue;
            }
            let cap_bps = cap * 1e6;
            for (dir, now_b, prev_b) in [("rx", l.rx_bytes, p.rx), ("tx", l.tx_bytes, p.tx)] {
                // A counter that went backwards (link re-created with the same index): skip.
                let Some(d) = now_b.checked_sub(prev_b) else {
                    continue;
                };
                let bps = d as f64 * 8.0 / secs;
                if bps <= self.cfg.utilization * cap_bps {
                    continue;
                }
                let talkers: Vec<_> = self
                    .xdp
                    .get(&(s.netns, l.ifindex))
                    .map(|x| {
                        x.syn_by_source
                            .iter()
                            .take(self.cfg.top_talkers)
                            .map(|a| evidence::Talker {
                                addr: a.addr.clone(),
                                syns: a.count,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                holding.push(Holding {
                    key: key(s.netns, l.ifindex, dir),
                    netns: Some(s.netns),
                    subject: Subject {
                        iface: Some(l.iface.clone()),
                        ifindex: Some(l.ifindex),
                        ..Default::default()
                    },
                    evidence: super::Evidence::BandwidthSaturation(Evidence {
                        direction: dir,
                        rate_bps: bps.round(),
                        capacity_bps: cap_bps.round(),
                        capacity_source: source,
                        utilization: (bps / cap_bps * 1000.0).round() / 1000.0,
                        threshold: self.cfg.utilization,
                        hold_ms: self.cfg.hysteresis.hold_ms,
                        top_talkers: talkers,
                    }),
                });
            }
        }
        self.tracker.evaluate_netns(now, s.netns, holding)
    }
}

pub fn key(netns: u32, ifindex: u32, dir: &str) -> String {
    format!("bw:{netns}:{ifindex}:{dir}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> BandwidthSaturation {
    BandwidthSaturation::new(cfg.clone())
}

impl Detector for BandwidthSaturation {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        match input {
            Input::LinkStats(s) => self.on_sample(s, now),
            Input::Counters(c) => {
                for x in &c.xdp {
                    self.xdp.insert((c.netns, x.ifindex), x.clone());
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AddrCount, Counters, FaultState};
    use crate::model::sample::LinkCounters;
    use std::time::Duration;

    const MBIT: u64 = 1_000_000 / 8; // bytes per second at 1 Mbit/s

    fn cfg() -> Config {
        Config {
            capacity_mbps: [("veth0".to_string(), 100.0)].into(),
            hysteresis: Hysteresis {
                hold_ms: 3_000,
                clear_after_ms: 2_000,
                ..Config::default().hysteresis
            },
            ..Default::default()
        }
    }

    /// One sample per second; `rates` are (rx, tx) in Mbit/s per second for veth0 (ifindex 2)
    /// and, when given, veth1 (ifindex 3, speed from the driver 1000 Mbit/s).
    fn run(cfg: Config, rates: &[(u64, u64, u64)]) -> Vec<(usize, FaultState, String)> {
        let mut d = BandwidthSaturation::new(cfg);
        let t0 = Instant::now();
        let (mut rx, mut tx, mut rx1) = (0u64, 0u64, 0u64);
        let mut out = vec![];
        for i in 0..=rates.len() {
            if i > 0 {
                rx += rates[i - 1].0 * MBIT;
                tx += rates[i - 1].1 * MBIT;
                rx1 += rates[i - 1].2 * MBIT;
            }
            let s = LinkStatsSample {
                netns: 7,
                links: vec![
                    LinkCounters {
                        iface: "veth0".into(),
                        ifindex: 2,
                        rx_bytes: rx,
                        tx_bytes: tx,
                        speed_mbps: Some(10_000),
                        ..Default::default()
                    },
                    LinkCounters {
                        iface: "veth1".into(),
                        ifindex: 3,
                        rx_bytes: rx1,
                        speed_mbps: Some(1000),
                        ..Default::default()
                    },
                    LinkCounters {
                        iface: "lo".into(),
                        ifindex: 1,
                        rx_bytes: rx1 * 100,
                        ..Default::default()
                    },
                ],
            };
            for f in d.observe(&Input::LinkStats(s), t0 + Duration::from_secs(i as u64)) {
                out.push((i, f.state, f.key));
            }
        }
        out
    }

    use FaultState::{Cleared as C, Opened as O};

    #[test]
    fn just_below_the_threshold_never_opens() {
        assert!(run(cfg(), &[(90, 0, 0); 10]).is_empty());
    }

    #[test]
    fn just_above_opens_after_hold_on_the_right_direction() {
        let got = run(cfg(), &[(0, 91, 0); 6]);
        // Rate known from sample 1; holds 3 s: opens at sample 4.
        assert_eq!(got, vec![(4, O, "bw:7:2:tx".into())]);
    }

    #[test]
    fn shorter_than_hold_never_opens() {
        assert!(run(cfg(), &[(95, 0, 0), (95, 0, 0), (10, 0, 0), (95, 0, 0)]).is_empty());
    }

    #[test]
    fn dips_shorter_than_clear_after_do_not_flap() {
        let mut r = vec![(95, 0, 0); 5];
        r.extend([(50, 0, 0), (95, 0, 0), (50, 0, 0), (95, 0, 0)]);
        r.extend([(0, 0, 0); 4]);
        let got = run(cfg(), &r);
        assert_eq!(
            got,
            vec![(4, O, "bw:7:2:rx".into()), (12, C, "bw:7:2:rx".into())]
        );
    }

    #[test]
    fn driver_speed_is_used_and_config_overrides_it() {
        // veth1: 1000 Mbit/s from the driver; 950 > 900 opens.
        let got = run(cfg(), &[(0, 0, 950); 5]);
        assert_eq!(got, vec![(4, O, "bw:7:3:rx".into())]);
        // veth0's driver speed (10 Gbit/s) is overridden by the configured 100 Mbit/s.
        assert_eq!(run(cfg(), &[(95, 0, 0); 5]).len(), 1);
        // Without configuration veth0 runs at 10 Gbit/s: 95 Mbit/s is nothing.
        assert!(run(Config::default(), &[(95, 0, 0); 15]).is_empty());
    }

    #[test]
    fn evidence_has_rate_capacity_direction_and_talkers() {
        let mut d = BandwidthSaturation::new(Config {
            hysteresis: Hysteresis {
                hold_ms: 0,
                ..cfg().hysteresis
            },
            ..cfg()
        });
        let t0 = Instant::now();
        let c = Counters {
            netns: 7,
            xdp: vec![XdpIface {
                iface: "veth0".into(),
                ifindex: 2,
                syn_by_source: vec![AddrCount {
                    addr: "10.0.0.9".into(),
                    count: 4,
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        d.observe(&Input::Counters(c), t0);
        let s = |b| {
            Input::LinkStats(LinkStatsSample {
                netns: 7,
                links: vec![LinkCounters {
                    iface: "veth0".into(),
                    ifindex: 2,
                    rx_bytes: b,
                    ..Default::default()
                }],
            })
        };
        d.observe(&s(0), t0);
        let f = d.observe(&s(99 * MBIT), t0 + Duration::from_secs(1));
        assert_eq!(f.len(), 1);
        let e = &f[0].evidence.json();
        assert_eq!(e["direction"], "rx");
        assert_eq!(e["rate_bps"], 99e6);
        assert_eq!(e["capacity_bps"], 100e6);
        assert_eq!(e["top_talkers"][0]["addr"], "10.0.0.9");
        assert_eq!(f[0].netns, Some(7));
        assert_eq!(f[0].subject.iface.as_deref(), Some("veth0"));
    }
}
