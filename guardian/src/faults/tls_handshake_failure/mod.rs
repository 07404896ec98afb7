//! `tls_handshake_failure` (layer 6/7, observe only: the remedy is the report): a TLS listener
//! whose handshakes fail, over 10 % of them, at least one every 10 s over 60 s.
//!
//! Input: cumulative handshake outcomes per (namespace, role, listener, peer, process) from
//! the OpenSSL uprobes (`Input::Tls`, `guardian run --http`). A listener is one (namespace,
//! role, address:port) summed over its processes and peers. Over the window: ratio = new
//! failures / (new successes + new failures), rate = new failures / window. Aborts (the peer
//! closed before the end: TCP health checks, scanners) are reported but do not count: they are
//! not a TLS disagreement. Opens when ratio > `ratio` and rate >= `min_per_s`; the evidence
//! names the failing peers with their counts.
//!
//! Plaintext TLS alerts (any TLS stack, `alerts.rs`) are listed in the evidence, sent and
//! received. A listener without OpenSSL handshakes in the window (GnuTLS, Go, rustls...) is
//! judged on its fatal alerts instead (`basis: alerts`): each one ended a handshake; successes
//! are not seen there, so ratio is 1 and `min_per_s` decides.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::http_5xx::services::Process;
use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::window::Windows;
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::tls::{Role, TlsSample};
use crate::model::{Severity, Subject};

pub(crate) mod alerts;
pub mod evidence;

pub use evidence::Evidence;
use evidence::{Basis, Peer};

pub const FAULT: FaultId = FaultId::TlsHandshakeFailure;
/// Peers named in the evidence, at most.
pub const MAX_PEERS: usize = 10;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// Fraction of failed handshakes above which the listener is failing.
        pub ratio: f64,
        /// Fewer failures per second than this over the window: no judgement.
        pub min_per_s: f64,
        pub window_ms: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ratio: 0.1,
            min_per_s: 0.1,
            window_ms: 60_000,
            hysteresis: Hysteresis::new(0, 60_000, 10_000),
        }
    }
}


/// A series key, one kernel map entry's counter: (role, listener, peer, pid, counter), the
/// counter 0 ok, 1 failed, 2 aborted.
type Series = (Role, String, String, u32, u8);

pub struct TlsHandshakeFailure {
    cfg: Config,
    tracker: Tracker,
    by_ns: HashMap<u32, Windows<Series>>,
    alerts_by_ns: HashMap<u32, Windows<alerts::Series>>,
}

/// One listener of a sample: its processes and peers.
#[derive(Default)]
struct Listener {
    addr: String,
    port: u16,
    processes: Vec<Process>,
    /// The peers listed in the sample.
    peers: std::collections::BTreeSet<String>,
}

impl TlsHandshakeFailure {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(
            FaultMeta {
                fault: FAULT,
                layer: 7,
                severity: Severity::Error,
            },
            cfg.hysteresis,
        );
        Self {
            cfg,
            tracker,
            by_ns: HashMap::new(),
            alerts_by_ns: HashMap::new(),
        }
    }

    fn on_sample(&mut self, s: &TlsSample, now: Instant) -> Vec<Finding> {
        let window = Duration::from_millis(self.cfg.window_ms);
        if s.handshakes.is_empty() && s.alerts.is_empty() {
            // The sampler deleted the namespace's last entries: it is gone, or its alerts
            // had not moved for minutes, longer than any window. Entries made later count
            // in full, as a new namespace's do.
            self.by_ns.remove(&s.netns);
            self.alerts_by_ns.remove(&s.netns);
            return self.tracker.evaluate_netns(now, s.netns, Vec::new());
        }
        let mut listeners: HashMap<(Role, String), Listener> = HashMap::new();
        for h in &s.handshakes {
            let l = listeners.entry((h.role, h.listener())).or_default();
            l.addr.clone_from(&h.addr);
            l.port = h.port;
            l.processes.push(Process {
                comm: h.comm.clone(),
                pid: h.pid,
            });
            l.peers.insert(h.peer.clone());
        }
        // One series per kernel map entry (listener, peer, process) and counter: an entry
        // evicted and made again restarts from zero on its own, which a sum over entries
        // would hide. Peers and listeners add up their entries' growth.
        let values = s.handshakes.iter().flat_map(|h| {
            [h.ok, h.failed, h.aborted]
                .into_iter()
                .enumerate()
                .map(|(i, n)| ((h.role, h.listener(), h.peer.clone(), h.pid, i as u8), n))
        });
        for (role, name, addr, port) in alerts::listeners(&s.alerts) {
            listeners.entry((role, name)).or_insert_with(|| Listener {
                addr,
                port,
                ..Default::default()
            });
        }
        let keep = window + Duration::from_secs(1);
        let w = self.by_ns.entry(s.netns).or_insert_with(|| fresh(now, keep));
        w.observe(now, values, keep);
        let aw = self.alerts_by_ns.entry(s.netns).or_insert_with(|| fresh(now, keep));
        aw.observe(now, alerts::values(&s.alerts), keep);
        // Growth over the window per listener and per (listener, peer), from every series
        // still kept (an entry gone from this sample still counts for what it did).
        let mut totals: HashMap<(Role, &str), [u64; 3]> = HashMap::new();
        let mut by_peer: HashMap<(Role, &str, &str), [u64; 3]> = HashMap::new();
        for k in w.keys() {
            let v = w.delta(k, now, window).map_or(0, |(v, _)| v);
            let i = k.4 as usize;
            totals.entry((k.0, k.1.as_str())).or_default()[i] += v;
            by_peer.entry((k.0, k.1.as_str(), k.2.as_str())).or_default()[i] += v;
        }
        let mut holding = Vec::new();
        for ((role, name), mut l) in listeners {
            let d = |peer: &str| {
                by_peer
                    .get(&(role, name.as_str(), peer))
                    .copied()
                    .unwrap_or_default()
            };
            let [ok, failed, aborted] = totals
                .get(&(role, name.as_str()))
                .copied()
                .unwrap_or_default();
            let alerts = alerts::in_window(aw, role, &name, now, window);
            let (basis, ok, failed, aborted) = match ok + failed + aborted {
                0 => (Basis::Alerts, 0, alerts::fatal(&alerts), 0),
                _ => (Basis::Handshakes, ok, failed, aborted),
            };
            let ratio = match ok + failed {
                0 => 0.0,
                n => failed as f64 / n as f64,
            };
            let per_s = failed as f64 / window.as_secs_f64().max(0.001);
            if failed == 0 || ratio <= self.cfg.ratio || per_s < self.cfg.min_per_s {
                continue;
            }
            let mut peers: Vec<Peer> = match basis {
                Basis::Handshakes => l
                    .peers
                    .iter()
                    .map(|p| {
                        let [ok, failed, aborted] = d(p);
                        Peer {
                            aborted,
                            failed,
                            ok,
                            peer: p.clone(),
                        }
                    })
                    .filter(|p| p.failed + p.aborted > 0)
                    .collect(),
                Basis::Alerts => alerts::peers(&alerts),
            };
            peers.sort_by(|a, b| b.failed.cmp(&a.failed).then_with(|| a.peer.cmp(&b.peer)));
            let omitted = peers.len().saturating_sub(MAX_PEERS);
            peers.truncate(MAX_PEERS);
            let mut alerts = alerts;
            let alerts_omitted = alerts.len().saturating_sub(alerts::MAX_ALERTS);
            alerts.truncate(alerts::MAX_ALERTS);
            l.processes.sort();
            l.processes.dedup();
            holding.push(Holding {
                key: key(s.netns, role, &name),
                netns: Some(s.netns),
                subject: Subject {
                    addr: (!l.addr.is_empty()).then(|| l.addr.clone()),
                    port: (l.port != 0).then_some(l.port),
                    ..Default::default()
                },
                evidence: super::Evidence::TlsHandshakeFailure(Evidence {
                    aborted,
                    alerts,
                    alerts_omitted,
                    basis,
                    failed,
                    listener: name,
                    min_per_s: self.cfg.min_per_s,
                    ok,
                    per_s: round3(per_s),
                    peers,
                    peers_omitted: omitted,
                    processes: l.processes,
                    ratio: round3(ratio),
                    role,
                    threshold: self.cfg.ratio,
                    window_ms: self.cfg.window_ms,
                }),
            });
        }
        holding.sort_by(|a, b| a.key.cmp(&b.key));
        self.tracker.evaluate_netns(now, s.netns, holding)
    }
}

/// An empty window whose first sample counts in full: the kernel counts since attach. Its
/// keys are map entries, which the sampler prunes and LRU maps evict: restarts are counted.
fn fresh<K: std::hash::Hash + Eq + Clone>(now: Instant, keep: Duration) -> Windows<K> {
    let mut w = Windows::restarting();
    let before = now.checked_sub(Duration::from_millis(1)).unwrap_or(now);
    w.observe(before, std::iter::empty(), keep);
    w
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn key(netns: u32, role: Role, listener: &str) -> String {
    let role = match role {
        Role::Server => "server",
        Role::Client => "client",
    };
    format!("tls_handshake_failure:{netns}:{role}:{listener}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> TlsHandshakeFailure {
    TlsHandshakeFailure::new(cfg.clone())
}

impl Detector for TlsHandshakeFailure {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        match input {
            Input::Tls(s) => self.on_sample(s, now),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
