//! `ephemeral_port_exhaustion` (layer 4): connect(2) failing with EADDRNOTAVAIL (no local port
//! left for the destination) at ≥ 1 failure/s for 3 s, per namespace.
//!
//! Inputs: `Counters.connect_eaddrnotavail` (exact, from the `sys_exit_connect` tracepoint) gives
//! the rate: the condition holds on a tick when at least `min_per_s × rate_window_ms` failures
//! happened in the last `rate_window_ms`, and the fault opens once it has held for `hold_ms`.
//! `connect_addrnotavail` observations name the process (and the destination when the probe
//! read it: the subject is then the destination most failures went to); the latest
//! [`MibSample`] of the namespace gives the range and its usage per destination (evidence for
//! the remedy: widen the range, tw_reuse) and, failing the observations, the subject: the
//! destination that holds most of the range.
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
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_per_s: 1.0,
            rate_window_ms: 1000,
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

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> EphemeralPortExhaustion {
    EphemeralPortExhaustion::new(cfg.clone())
}

impl Detector for EphemeralPortExhaustion {
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
            if failures as f64 >= need {
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
                    }),
                });
            }
        }
        self.tracker.evaluate(now, holding, |key| key == k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use crate::model::{
        Counters,
        FaultState::{self, Cleared as C, Opened as O},
    };
    use crate::model::sample::{DstSockets, PortRange};

    fn counters(ns: u32, total: u64) -> Input {
        Input::Counters(Counters {
            netns: ns,
            interval_ms: 500,
            connect_eaddrnotavail: total,
            ..Default::default()
        })
    }

    fn obs(ns: u32, addr: &str, port: u16) -> Input {
        Input::Observation(Observation {
            netns: ns,
            kind: ObsKind::ConnectAddrnotavail,
            error: "EADDRNOTAVAIL".into(),
            pid: 42,
            tid: 43,
            comm: "client".into(),
            family: Some("ipv4".into()),
            addr: Some(addr.into()),
            port: Some(port),
        })
    }

    /// Ticks every 500 ms; `steps` are failures since the previous tick in namespace 1.
    fn run(cfg: Config, steps: &[u64]) -> Vec<Vec<FaultState>> {
        let mut d = EphemeralPortExhaustion::new(cfg);
        let t0 = Instant::now();
        let mut total = 0;
        steps
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                total += n;
                d.observe(
                    &counters(1, total),
                    t0 + Duration::from_millis(500 * i as u64),
                )
                .into_iter()
                .map(|f| {
                    assert_eq!(f.key, "1");
                    f.state
                })
                .collect()
            })
            .collect()
    }

    #[test]
    fn table() {
        let e = Vec::<FaultState>::new;
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Vec<u64>, Vec<Vec<FaultState>>)> = vec![
            (
                "one failure a second for 3 s opens (held from 0.5 s, opens at 3.5 s)",
                vec![0, 1, 0, 1, 0, 1, 0, 1],
                vec![e(), e(), e(), e(), e(), e(), e(), vec![O]],
            ),
            (
                "a namespace first reported with failures holds from that first tick",
                vec![2, 0, 2, 0, 2, 0, 2],
                vec![e(), e(), e(), e(), e(), e(), vec![O]],
            ),
            (
                "just below: a failure every 1.5 s never holds for 3 s",
                vec![0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1],
                vec![e(); 11],
            ),
            (
                "a burst shorter than the hold does not open",
                vec![0, 50, 50, 50, 50, 0, 0, 0],
                vec![e(); 8],
            ),
            (
                "clears 5 s after the failures stop",
                {
                    let mut v = vec![0];
                    v.extend(std::iter::repeat_n(5, 8));
                    v.extend(std::iter::repeat_n(0, 13));
                    v
                },
                {
                    // holds from tick 1 (0.5 s) -> opens at tick 7 (3.5 s); the last failures
                    // at tick 8 stay in the 1-s window through tick 9; absent from tick 10
                    // (5.0 s), cleared at tick 20 (10.0 s)
                    let mut v = vec![e(); 22];
                    v[7] = vec![O];
                    v[20] = vec![C];
                    v
                },
            ),
        ];
        for (name, steps, want) in cases {
            assert_eq!(run(Config::default(), &steps), want, "{name}");
        }
    }

    #[test]
    fn subject_is_the_destination_and_evidence_has_the_range_usage() {
        let mut d = EphemeralPortExhaustion::new(Config::default());
        let t0 = Instant::now();
        d.observe(
            &Input::Mib(MibSample {
                netns: 1,
                port_range: Some(PortRange {
                    lo: 40000,
                    hi: 40009,
                }),
                ephemeral_by_dst: vec![DstSockets {
                    addr: "10.0.0.2".into(),
                    port: 80,
                    count: 10,
                }],
                ..Default::default()
            }),
            t0,
        );
        let mut total = 0;
        let mut open = vec![];
        for i in 0..10u64 {
            let now = t0 + Duration::from_millis(500 * i);
            d.observe(&obs(1, "10.0.0.2", 80), now);
            d.observe(&obs(1, "10.0.0.2", 80), now);
            d.observe(&obs(1, "10.0.0.3", 443), now);
            // another namespace fails too, but only once: its own key, never opened
            d.observe(&counters(2, i / 5), now);
            total += 3;
            open.extend(d.observe(&counters(1, total), now));
        }
        assert_eq!(open.len(), 1, "{open:?}");
        let f = &open[0];
        assert_eq!(f.state, O);
        assert_eq!(f.netns, Some(1));
        assert_eq!(f.subject.addr.as_deref(), Some("10.0.0.2"));
        assert_eq!(f.subject.port, Some(80));
        assert_eq!(f.evidence.json()["port_range"], json!([40000, 40009]));
        assert_eq!(f.evidence.json()["range_usage"][0]["ratio"], 1.0);
        assert_eq!(f.evidence.json()["last_comm"], "client");
        assert_eq!(d.tracker.open_keys(), vec!["1"]);
    }

    #[test]
    fn without_addresses_the_subject_is_the_destination_using_the_range() {
        let mut d = EphemeralPortExhaustion::new(Config::default());
        let t0 = Instant::now();
        d.observe(
            &Input::Mib(MibSample {
                netns: 1,
                ephemeral_by_dst: vec![DstSockets {
                    addr: "10.0.0.9".into(),
                    port: 5022,
                    count: 10,
                }],
                ..Default::default()
            }),
            t0,
        );
        let mut open = vec![];
        for i in 0..8u64 {
            let now = t0 + Duration::from_millis(500 * i);
            let mut o = obs(1, "x", 0);
            if let Input::Observation(x) = &mut o {
                x.addr = None;
                x.port = None;
            }
            d.observe(&o, now);
            open.extend(d.observe(&counters(1, i * 2), now));
        }
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].subject.addr.as_deref(), Some("10.0.0.9"));
        assert_eq!(open[0].subject.port, Some(5022));
    }
}
