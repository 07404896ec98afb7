//! `ephemeral_port_exhaustion` (layer 4): connect(2) failing with EADDRNOTAVAIL (no local port
//! left for the destination) at ≥ 1 failure/s for 3 s, per namespace.
//!
//! Inputs: `Counters.connect_eaddrnotavail` (exact, from `sock_state`: a connect back to CLOSE
//! before any segment left, guardian-ebpf/src/tcp.rs) gives
//! the rate: the condition holds on a tick when at least `min_per_s × rate_window_ms` failures
//! happened in the last `rate_window_ms`, and the fault opens once it has held for `hold_ms`.
//! `connect_addrnotavail` observations name the process and the destination (the subject is
//! then the destination most failures went to; replays of older records may lack it); the latest
//! [`MibSample`] of the namespace gives the range and its usage per destination (evidence for
//! the remedy: widen the range, tw_reuse) and, failing the observations, the subject: the
//! destination that holds most of the range.
//!
//! EADDRNOTAVAIL alone is cheap to cause without exhausting anything (two SO_REUSEADDR
//! sockets bound to one port and connecting to one destination get it every time), so the
//! fault also needs the kernel's own numbers: the socket table must show one destination
//! (or the unconnected sockets) holding at least `min_range_used_ratio` of the range. Without
//! a socket-table sample the condition does not hold.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::window::History;
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{ObsKind, Observation, Severity, Subject};
use crate::model::sample::MibSample;

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::EphemeralPortExhaustion;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// Failures per second that count as "failing".
        pub min_per_s: f64,
        /// The rate is judged over this trailing window, milliseconds.
        pub rate_window_ms: u64,
        /// ... and the socket table shows one destination holding at least this fraction
        /// of the ephemeral range.
        pub min_range_used_ratio: f64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_per_s: 1.0,
            rate_window_ms: 1000,
            min_range_used_ratio: 0.9,
            hysteresis: Hysteresis::new(3000, 5000, 10_000),
        }
    }
}

const META: FaultMeta = FaultMeta {
    fault: FAULT,
    layer: 4,
    severity: Severity::Error,
};

/// Observations kept per namespace for the subject and evidence.
const RECENT: usize = 64;

pub struct EphemeralPortExhaustion {
    cfg: Config,
    tracker: Tracker,
    hist: HashMap<u32, History<u64>>,
    recent: HashMap<u32, Vec<(Instant, Observation)>>,
    mib: HashMap<u32, MibSample>,
}

impl EphemeralPortExhaustion {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(META, cfg.hysteresis);
        Self {
            cfg,
            tracker,
            hist: HashMap::new(),
            recent: HashMap::new(),
            mib: HashMap::new(),
        }
    }

    /// The destination most recent failures went to, with its count.
    fn top_dst(&self, ns: u32, since: Instant) -> Option<(String, u16, usize)> {
        let mut by: HashMap<(String, u16), usize> = HashMap::new();
        for (_, o) in self.recent.get(&ns)?.iter().filter(|(t, _)| *t >= since) {
            if let (Some(a), Some(p)) = (&o.addr, o.port) {
                *by.entry((a.clone(), p)).or_default() += 1;
            }
        }
        by.into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|((a, p), n)| (a, p, n))
    }
}

/// The largest share of the ephemeral range one destination holds, by the socket table;
/// None when the range or the table is unknown.
fn range_used(m: &MibSample) -> Option<f64> {
    let size = m.range_size().filter(|&s| s > 0)?;
    let most = m.ephemeral_by_dst.iter().map(|d| d.count).max().unwrap_or(0);
    Some(most as f64 / size as f64)
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> EphemeralPortExhaustion {
    EphemeralPortExhaustion::new(cfg.clone())
}

impl Detector for EphemeralPortExhaustion {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let c = match input {
            Input::Observation(o) if o.kind == ObsKind::ConnectAddrnotavail => {
                let v = self.recent.entry(o.netns).or_default();
                v.push((now, o.clone()));
                if v.len() > RECENT {
                    v.remove(0);
                }
                return Vec::new();
            }
            Input::Mib(m) => {
                self.mib.insert(m.netns, m.clone());
                return Vec::new();
            }
            Input::Counters(c) => c,
            _ => return Vec::new(),
        };
        let window = Duration::from_millis(self.cfg.rate_window_ms);
        let hist = self
            .hist
            .entry(c.netns)
            .or_insert_with(|| History::new(window));
        if hist.is_empty() {
            // The counters count from 0 since the probes attached and a namespace is reported
            // from the tick after its first count: it was at 0 one interval ago.
            if let Some(t) = now.checked_sub(Duration::from_millis(c.interval_ms)) {
                hist.seed(t, 0);
            }
        }
        let base = hist.push(now, c.connect_eaddrnotavail);
        let k = format!("{}", c.netns);
        let mut holding = Vec::new();
        if let Some((span, old)) = base {
            let failures = c.connect_eaddrnotavail.saturating_sub(old);
            let need = (self.cfg.min_per_s * window.as_secs_f64()).max(1.0);
            let used = self.mib.get(&c.netns).and_then(range_used);
            let exhausted = used.is_some_and(|u| u >= self.cfg.min_range_used_ratio);
            if failures as f64 >= need && exhausted {
                let since = now.checked_sub(span).unwrap_or(now);
                let top = self.top_dst(c.netns, since);
                let last = self
                    .recent
                    .get(&c.netns)
                    .and_then(|v| v.last())
                    .map(|(_, o)| o);
                let mib = self.mib.get(&c.netns);
                // The destination the failures went to; when the observations do not carry
                // it, the destination holding most of the range.
                let dst = top.as_ref().map(|(a, p, _)| (a.clone(), *p)).or_else(|| {
                    mib.and_then(|m| m.ephemeral_by_dst.first())
                        .map(|d| (d.addr.clone(), d.port))
                });
                let subject = match dst {
                    Some((a, p)) => Subject {
                        addr: Some(a),
                        port: Some(p),
                        ..Default::default()
                    },
                    None => Subject::default(),
                };
                let usage = mib.map(|m| {
                    let size = m.range_size().unwrap_or(0);
                    m.ephemeral_by_dst
                        .iter()
                        .take(5)
                        .map(|d| evidence::Usage {
                            addr: d.addr.clone(),
                            port: d.port,
                            in_use: d.count,
                            ratio: if size > 0 {
                                ((d.count as f64 / size as f64) * 1e3).round() / 1e3
                            } else {
                                0.0
                            },
                        })
                        .collect::<Vec<_>>()
                });
                holding.push(Holding {
                    key: k.clone(),
                    netns: Some(c.netns),
                    subject,
                    evidence: super::Evidence::EphemeralPortExhaustion(Evidence {
                        failures,
                        window_ms: span.as_millis() as u64,
                        rate_per_s: ((failures as f64 / span.as_secs_f64().max(1e-3)) * 10.0)
                            .round()
                            / 10.0,
                        total: c.connect_eaddrnotavail,
                        top_dst_failures: top.as_ref().map(|t| t.2),
                        last_pid: last.map(|o| o.pid),
                        last_comm: last.map(|o| o.comm.clone()),
                        port_range: mib.and_then(|m| m.port_range).map(|r| [r.lo, r.hi]),
                        tcp_tw_reuse: mib.and_then(|m| m.tcp_tw_reuse),
                        range_usage: usage,
                        range_used: used.map(|u| (u * 1e3).round() / 1e3),
                    }),
                });
            }
        }
        self.tracker.evaluate(now, holding, |key| key == k)
    }
}

#[cfg(test)]
mod tests;
