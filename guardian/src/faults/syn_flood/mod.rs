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
    /// netns -> SYNs per source (XDP), all ports: only when the counters have no
    /// per-(source, port) counts (older recordings).
    sources: HashMap<u32, Windows<String>>,
    /// netns -> SYNs per (source, port) (XDP).
    source_ports: HashMap<u32, Windows<(String, u16)>>,
    /// netns -> completed handshakes per port.
    done: HashMap<u32, Windows<u16>>,
    /// netns -> `TCPReqQFullDoCookies` (one key).
    cookies: HashMap<u32, Windows<()>>,
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
            source_ports: HashMap::new(),
            done: HashMap::new(),
            cookies: HashMap::new(),
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
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

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
                let mut src_ports: HashMap<(String, u16), u64> = HashMap::new();
                for x in &c.xdp {
                    for s in &x.syn_by_source_port {
                        *src_ports.entry((s.addr.clone(), s.port)).or_default() += s.count;
                    }
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
                self.source_ports
                    .entry(c.netns)
                    .or_insert_with(Windows::new)
                    .observe(now, src_ports, keep);
                Vec::new()
            }
            Input::Mib(m) => {
                // One MIB counter, which restarts from zero in a new namespace that reuses
                // the inode of a deleted one.
                self.cookies
                    .entry(m.netns)
                    .or_insert_with(Windows::restarting)
                    .observe(now, [((), m.req_q_full_do_cookies)], keep);
                Vec::new()
            }
            Input::Flows(f) => {
                let done = self.done.entry(f.netns).or_insert_with(Windows::new);
                let cookies = self
                    .cookies
                    .get(&f.netns)
                    .and_then(|w| w.delta(&(), now, window))
                    .map(|d| d.0);
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
                    // The port's own sources: a heavy sender to another port does not make
                    // this port's flood look concentrated.
                    let pairs = self
                        .source_ports
                        .get(&f.netns)
                        .filter(|w| w.keys().next().is_some());
                    let mut top: Vec<(String, u64)> = match pairs {
                        Some(w) => w
                            .keys()
                            .filter(|(_, p)| *p == port)
                            .filter_map(|k| Some((k.0.clone(), w.delta(k, now, window)?.0)))
                            .filter(|(_, d)| *d > 0)
                            .collect(),
                        None => self
                            .sources
                            .get(&f.netns)
                            .map(|w| {
                                w.keys()
                                    .filter_map(|a| Some((a.clone(), w.delta(a, now, window)?.0)))
                                    .filter(|(_, d)| *d > 0)
                                    .collect()
                            })
                            .unwrap_or_default(),
                    };
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
                            cookies,
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
mod tests;
