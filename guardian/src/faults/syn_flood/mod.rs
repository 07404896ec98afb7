//! `syn_flood` (layer 4): SYNs/s to a port over the limit while under 20 % of them complete the
//! handshake.
//!
//! SYNs come from the XDP counters (`--xdp IFACE`, reported in the daemon's own namespace's
//! `counters` as `xdp[].syn_by_port`, summed over the XDP interfaces); completed handshakes
//! (SYN_RECV -> ESTABLISHED) per local port come from the flow sample of the same namespace.
//! Both are cumulative; rates are deltas over `window_ms` against the detector's `now`.
//! Opens per (netns, port); evidence names the sources that sent the most SYNs in the window.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::window::Windows;
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{Severity, Subject};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::SynFlood;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// SYNs per second to one port above which the port is a flood candidate.
        pub syn_per_sec: f64,
        /// ... if fewer than this fraction of those SYNs completed a handshake.
        pub max_completion_ratio: f64,
        /// Rates are averaged over this window.
        pub window_ms: u64,
        /// Sources listed in the evidence.
        pub top_sources: usize,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            syn_per_sec: 1000.0,
            max_completion_ratio: 0.2,
            window_ms: 1000,
            top_sources: 5,
            hysteresis: Hysteresis::new(0, 10_000, 10_000),
        }
    }
}

pub struct SynFlood {
    cfg: Config,
    tracker: Tracker,
    /// netns -> SYNs per port (XDP).
    syns: HashMap<u32, Windows<u16>>,
    /// netns -> SYNs per source (XDP).
    sources: HashMap<u32, Windows<String>>,
    /// netns -> completed handshakes per port.
    done: HashMap<u32, Windows<u16>>,
}

impl SynFlood {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(
            FaultMeta {
                fault: FAULT,
                layer: 4,
                severity: Severity::Error,
            },
            cfg.hysteresis,
        );
        Self {
            cfg,
            tracker,
            syns: HashMap::new(),
            sources: HashMap::new(),
            done: HashMap::new(),
        }
    }

    fn keep(&self) -> Duration {
        Duration::from_millis(self.cfg.window_ms) * 2
    }
}

pub fn key(netns: u32, port: u16) -> String {
    format!("{netns}/port:{port}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> SynFlood {
    SynFlood::new(cfg.clone())
}

impl Detector for SynFlood {
    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let keep = self.keep();
        let window = Duration::from_millis(self.cfg.window_ms);
        match input {
            Input::Counters(c) if !c.xdp.is_empty() => {
                let mut ports: HashMap<u16, u64> = HashMap::new();
                let mut srcs: HashMap<String, u64> = HashMap::new();
                for x in &c.xdp {
                    for p in &x.syn_by_port {
                        *ports.entry(p.port).or_default() += p.count;
                    }
                    for s in &x.syn_by_source {
                        *srcs.entry(s.addr.clone()).or_default() += s.count;
                    }
                }
                self.syns
                    .entry(c.netns)
                    .or_insert_with(Windows::new)
                    .observe(now, ports, keep);
                self.sources
                    .entry(c.netns)
                    .or_insert_with(Windows::new)
                    .observe(now, srcs, keep);
                Vec::new()
            }
            Input::Flows(f) => {
                let done = self.done.entry(f.netns).or_insert_with(Windows::new);
                done.observe(
                    now,
                    f.handshakes_by_port.iter().map(|p| (p.port, p.count)),
                    keep,
                );
                let Some(syns) = self.syns.get(&f.netns) else {
                    return Vec::new();
                };
                let mut holding = Vec::new();
                let mut ports: Vec<u16> = syns.keys().copied().collect();
                ports.sort_unstable();
                for port in ports {
                    let Some((rate, n, span)) = syns.rate(&port, now, window) else {
                        continue;
                    };
                    if rate <= self.cfg.syn_per_sec || n == 0 {
                        continue;
                    }
                    let completed = done.delta(&port, now, window).map_or(0, |d| d.0);
                    let ratio = completed as f64 / n as f64;
                    if ratio >= self.cfg.max_completion_ratio {
                        continue;
                    }
                    let mut top: Vec<(String, u64)> = self
                        .sources
                        .get(&f.netns)
                        .map(|w| {
                            w.keys()
                                .filter_map(|a| Some((a.clone(), w.delta(a, now, window)?.0)))
                                .filter(|(_, d)| *d > 0)
                                .collect()
                        })
                        .unwrap_or_default();
                    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                    top.truncate(self.cfg.top_sources);
                    holding.push(Holding {
                        key: key(f.netns, port),
                        netns: Some(f.netns),
                        subject: Subject {
                            port: Some(port),
                            ..Default::default()
                        },
                        evidence: super::Evidence::SynFlood(Evidence {
                            syn_per_sec: (rate * 10.0).round() / 10.0,
                            syns: n,
                            completed,
                            completion_ratio: (ratio * 1000.0).round() / 1000.0,
                            span_ms: span.as_millis() as u64,
                            limit_per_sec: self.cfg.syn_per_sec,
                            max_completion_ratio: self.cfg.max_completion_ratio,
                            top_sources: top
                                .into_iter()
                                .map(|(addr, syns)| evidence::Source { addr, syns })
                                .collect(),
                        }),
                    });
                }
                self.tracker.evaluate_netns(now, f.netns, holding)
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AddrCount, Counters, FaultState, PortCount, XdpIface};
    use crate::model::sample::FlowSample;

    const NS: u32 = 4026531840;

    fn counters(syn_by_port: &[(u16, u64)], src: &[(&str, u64)]) -> Input {
        Input::Counters(Counters {
            netns: NS,
            xdp: vec![XdpIface {
                iface: "eth0".into(),
                ifindex: 2,
                syn_by_port: syn_by_port
                    .iter()
                    .map(|&(port, count)| PortCount { port, count })
                    .collect(),
                syn_by_source: src
                    .iter()
                    .map(|&(a, count)| AddrCount {
                        addr: a.into(),
                        count,
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    fn flows(done: &[(u16, u64)]) -> Input {
        Input::Flows(FlowSample {
            netns: NS,
            handshakes_by_port: done
                .iter()
                .map(|&(port, count)| PortCount { port, count })
                .collect(),
            ..Default::default()
        })
    }

    fn cfg() -> Config {
        Config {
            syn_per_sec: 100.0,
            window_ms: 1000,
            hysteresis: Hysteresis {
                clear_after_ms: 2000,
                update_every_ms: 60_000,
                ..Config::default().hysteresis
            },
            ..Default::default()
        }
    }

    /// Feeds (syns to port 80 per second, completions per second) for each 1 s step; returns
    /// the states found per step.
    fn run(steps: &[(u64, u64)]) -> Vec<Vec<FaultState>> {
        let mut d = SynFlood::new(cfg());
        let t0 = Instant::now();
        let (mut syn, mut done) = (0, 0);
        let mut out = Vec::new();
        d.observe(&counters(&[], &[]), t0);
        d.observe(&flows(&[]), t0);
        for (i, &(s, c)) in steps.iter().enumerate() {
            let now = t0 + Duration::from_secs(i as u64 + 1);
            syn += s;
            done += c;
            d.observe(&counters(&[(80, syn)], &[("10.0.0.9", syn)]), now);
            out.push(
                d.observe(&flows(&[(80, done)]), now)
                    .into_iter()
                    .map(|f| f.state)
                    .collect(),
            );
        }
        out
    }

    use FaultState::{Cleared as C, Opened as O};

    #[test]
    fn rate_just_below_and_just_above_the_limit() {
        assert!(run(&[(100, 0), (100, 0)]).iter().all(Vec::is_empty));
        assert_eq!(run(&[(101, 0)]), vec![vec![O]]);
    }

    #[test]
    fn completion_ratio_boundary() {
        // 1000 SYNs/s, 20 % completed: a busy server, not a flood.
        assert!(run(&[(1000, 200)]).iter().all(Vec::is_empty));
        assert_eq!(run(&[(1000, 199)]), vec![vec![O]]);
    }

    #[test]
    fn hysteresis_and_clearing() {
        // Dancing around the limit does not flap; 2 s below clears.
        let got = run(&[(500, 0), (90, 0), (500, 0), (90, 0), (0, 0), (0, 0)]);
        assert_eq!(got, vec![vec![O], vec![], vec![], vec![], vec![], vec![C]]);
    }

    #[test]
    fn subjects_are_separate_and_evidence_names_sources() {
        let mut d = SynFlood::new(cfg());
        let t0 = Instant::now();
        d.observe(&counters(&[], &[]), t0);
        d.observe(&flows(&[]), t0);
        let t1 = t0 + Duration::from_secs(1);
        d.observe(
            &counters(
                &[(80, 5000), (22, 10)],
                &[("10.0.0.9", 4990), ("10.0.0.7", 20)],
            ),
            t1,
        );
        let f = d.observe(&flows(&[(80, 3), (22, 10)]), t1);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].subject.port, Some(80));
        assert_eq!(f[0].netns, Some(NS));
        assert_eq!(f[0].key, key(NS, 80));
        assert_eq!(f[0].evidence.json()["top_sources"][0]["addr"], "10.0.0.9");
        assert_eq!(f[0].evidence.json()["syns"], 5000);
        assert_eq!(f[0].evidence.json()["completed"], 3);
    }

    #[test]
    fn no_xdp_no_finding() {
        let mut d = SynFlood::new(cfg());
        let t0 = Instant::now();
        assert!(d.observe(&flows(&[(80, 0)]), t0).is_empty());
        assert!(d
            .observe(&flows(&[(80, 0)]), t0 + Duration::from_secs(1))
            .is_empty());
    }

    #[test]
    fn windows_delta_uses_baseline_before_window() {
        let mut w: Windows<u8> = Windows::new();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        w.observe(t0, [], s(20));
        w.observe(t0 + s(1), [(1, 10)], s(20));
        w.observe(t0 + s(2), [(1, 30)], s(20));
        w.observe(t0 + s(3), [(1, 60)], s(20));
        // A new key counts from 0 at the previous sample.
        assert_eq!(w.delta(&1, t0 + s(3), s(10)), Some((60, s(3))));
        assert_eq!(w.delta(&1, t0 + s(3), s(1)), Some((30, s(1))));
        assert_eq!(w.delta(&1, t0 + s(3), s(2)), Some((50, s(2))));
    }

    #[test]
    fn config_parses_from_toml() {
        let c: super::super::DetectConfig =
            toml::from_str("[syn_flood]\nsyn_per_sec = 50.0\n").unwrap();
        assert_eq!(c.syn_flood.syn_per_sec, 50.0);
        assert_eq!(c.syn_flood.window_ms, Config::default().window_ms);
        assert!(toml::from_str::<super::super::DetectConfig>("[syn_flood]\nnope = 1\n").is_err());
    }
}
