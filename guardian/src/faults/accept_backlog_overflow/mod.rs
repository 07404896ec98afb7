//! `accept_backlog_overflow` (layer 4): a listener's accept queue overflows — any overflow
//! every second for 3 s.
//!
//! Input: [`MibSample`]s. The namespace's `TcpExtListenOverflows` / `TcpExtListenDrops`
//! say that connections are being dropped at a listener; the sample's INET_DIAG listeners say
//! which one: a listener whose accept queue is full (`queued ≥ backlog`). The condition holds on
//! a sample when the counters grew by at least `min_per_s × rate_window_ms` over the last
//! `rate_window_ms` and a listener was seen full within `full_memory_ms`; the fault (one per
//! listener, subject its address and port) opens after `hold_ms`. If `ListenOverflows` grows
//! while no listener is ever seen full (the queue drains between samples), the fault is
//! reported for the namespace without a port.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::tracker::{FaultMeta, Holding, Hysteresis, Tracker};
use super::window::History;
use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{Severity, Subject};
use crate::model::sample::Listener;

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::AcceptBacklogOverflow;

crate::faults::config::with_hysteresis! {
    pub struct Config {
        /// Overflows (or listen drops) per second that count as "overflowing".
        pub min_per_s: f64,
        /// The rate is judged over this trailing window, milliseconds.
        pub rate_window_ms: u64,
        /// A listener seen with a full accept queue this recently is a suspect.
        pub full_memory_ms: u64,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_per_s: 1.0,
            rate_window_ms: 1000,
            full_memory_ms: 3000,
            hysteresis: Hysteresis::new(3000, 5000, 10_000),
        }
    }
}

const META: FaultMeta = FaultMeta {
    fault: FAULT,
    layer: 4,
    severity: Severity::Error,
};

pub struct AcceptBacklogOverflow {
    cfg: Config,
    tracker: Tracker,
    /// (ListenOverflows, ListenDrops) per namespace.
    hist: HashMap<u32, History<(u64, u64)>>,
    /// Listeners last seen full, per (namespace, addr, port).
    full: HashMap<(u32, String, u16), (Instant, Listener)>,
}

impl AcceptBacklogOverflow {
    pub fn new(cfg: Config) -> Self {
        let tracker = Tracker::new(META, cfg.hysteresis);
        Self {
            cfg,
            tracker,
            hist: HashMap::new(),
            full: HashMap::new(),
        }
    }
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> AcceptBacklogOverflow {
    AcceptBacklogOverflow::new(cfg.clone())
}

impl Detector for AcceptBacklogOverflow {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        vec![&mut self.tracker]
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let Input::Mib(m) = input else {
            return Vec::new();
        };
        let ns = m.netns;
        let window = Duration::from_millis(self.cfg.rate_window_ms);
        let base = self
            .hist
            .entry(ns)
            .or_insert_with(|| History::new(window))
            .push(now, (m.listen_overflows, m.listen_drops));
        for l in m.listeners.iter().filter(|l| l.full()) {
            self.full
                .insert((ns, l.addr.clone(), l.port), (now, l.clone()));
        }
        let memory = Duration::from_millis(self.cfg.full_memory_ms);
        self.full
            .retain(|_, (t, _)| now.saturating_duration_since(*t) <= memory);
        let mut holding = Vec::new();
        if let Some((span, (o0, d0))) = base {
            let overflows = m.listen_overflows.saturating_sub(o0);
            let drops = m.listen_drops.saturating_sub(d0);
            let need = (self.cfg.min_per_s * window.as_secs_f64()).max(1.0);
            let common = Evidence {
                overflows,
                drops,
                window_ms: span.as_millis() as u64,
                listen_overflows_total: m.listen_overflows,
                somaxconn: m.somaxconn,
                listener: None,
            };
            let mut suspects: Vec<&(Instant, Listener)> = self
                .full
                .iter()
                .filter(|((n, _, _), _)| *n == ns)
                .map(|(_, v)| v)
                .collect();
            suspects.sort_by(|a, b| (a.1.port, &a.1.addr).cmp(&(b.1.port, &b.1.addr)));
            if overflows as f64 >= need || drops as f64 >= need {
                for (seen, l) in &suspects {
                    let mut ev = common.clone();
                    ev.listener = Some(evidence::Listener {
                        addr: l.addr.clone(),
                        port: l.port,
                        queued: l.queued,
                        backlog: l.backlog,
                        uid: l.uid,
                        inode: l.inode,
                        seen_full_ms_ago: now.saturating_duration_since(*seen).as_millis() as u64,
                    });
                    holding.push(Holding {
                        key: format!("{ns}/{}:{}", l.addr, l.port),
                        netns: Some(ns),
                        subject: Subject {
                            addr: Some(l.addr.clone()),
                            port: Some(l.port),
                            ..Default::default()
                        },
                        evidence: super::Evidence::AcceptBacklogOverflow(ev),
                    });
                }
                if suspects.is_empty() && overflows as f64 >= need {
                    holding.push(Holding {
                        key: format!("{ns}/*"),
                        netns: Some(ns),
                        subject: Subject::default(),
                        evidence: super::Evidence::AcceptBacklogOverflow(common),
                    });
                }
            }
        }
        self.tracker.evaluate_netns(now, ns, holding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FaultState::{self, Cleared as C, Opened as O};
    use crate::model::sample::MibSample;

    fn listener(port: u16, queued: u32, backlog: u32) -> Listener {
        Listener {
            addr: "10.0.0.1".into(),
            port,
            queued,
            backlog,
            uid: 0,
            inode: 100 + port as u32,
        }
    }

    fn mib(ns: u32, overflows: u64, listeners: Vec<Listener>) -> Input {
        Input::Mib(MibSample {
            netns: ns,
            listen_overflows: overflows,
            listen_drops: overflows,
            listeners,
            ..Default::default()
        })
    }

    /// Samples every 500 ms in namespace 1: (overflows since the previous sample, listeners).
    fn run(steps: &[(u64, Vec<Listener>)]) -> Vec<Vec<(FaultState, String)>> {
        let mut d = AcceptBacklogOverflow::new(Config::default());
        let t0 = Instant::now();
        let mut total = 0;
        steps
            .iter()
            .enumerate()
            .map(|(i, (n, l))| {
                total += n;
                d.observe(
                    &mib(1, total, l.clone()),
                    t0 + Duration::from_millis(500 * i as u64),
                )
                .into_iter()
                .map(|f| (f.state, f.key))
                .collect()
            })
            .collect()
    }

    #[test]
    fn table() {
        let full = || vec![listener(80, 2, 1), listener(81, 0, 128)];
        let open = |k: &str| vec![(O, k.to_string())];
        let clear = |k: &str| vec![(C, k.to_string())];
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            &str,
            Vec<(u64, Vec<Listener>)>,
            Vec<Vec<(FaultState, String)>>,
        )> = vec![
            (
                "one overflow a second for 3 s opens on the full listener only",
                (0..8).map(|i| (i % 2, full())).collect(),
                {
                    let mut v = vec![vec![]; 8];
                    v[7] = open("1/10.0.0.1:80");
                    v
                },
            ),
            (
                "just below: one overflow every 1.5 s",
                (0..12).map(|i| (u64::from(i % 3 == 1), full())).collect(),
                vec![vec![]; 12],
            ),
            (
                "overflows for 2.5 s only",
                (0..10)
                    .map(|i| (u64::from((1..=5).contains(&i)) * 3, full()))
                    .collect(),
                vec![vec![]; 10],
            ),
            (
                "no full listener: reported for the namespace",
                (0..8)
                    .map(|i| (i % 2, vec![listener(81, 0, 128)]))
                    .collect(),
                {
                    let mut v = vec![vec![]; 8];
                    v[7] = open("1/*");
                    v
                },
            ),
            (
                "a full queue without overflows is not a fault",
                (0..10).map(|_| (0, full())).collect(),
                vec![vec![]; 10],
            ),
            (
                "clears 5 s after the overflows stop",
                (0..24).map(|i| (u64::from(i < 9) * 4, full())).collect(),
                {
                    // held from 0.5 s, opens at 3.5 s (tick 7); last growth at tick 8, still in
                    // the window at tick 9; absent from tick 10 (5 s), cleared at tick 20
                    let mut v = vec![vec![]; 24];
                    v[7] = open("1/10.0.0.1:80");
                    v[20] = clear("1/10.0.0.1:80");
                    v
                },
            ),
        ];
        for (name, steps, want) in cases {
            assert_eq!(run(&steps), want, "{name}");
        }
    }

    #[test]
    fn subject_and_evidence_name_the_listener_and_namespaces_are_separate() {
        let mut d = AcceptBacklogOverflow::new(Config::default());
        let t0 = Instant::now();
        let mut got = vec![];
        for i in 0..10u64 {
            let now = t0 + Duration::from_millis(500 * i);
            got.extend(d.observe(&mib(1, i * 5, vec![listener(80, 2, 1)]), now));
            // namespace 2: a full listener but no overflows
            got.extend(d.observe(&mib(2, 0, vec![listener(80, 2, 1)]), now));
        }
        assert_eq!(got.len(), 1, "{got:?}");
        let f = &got[0];
        assert_eq!((f.state, f.netns), (O, Some(1)));
        assert_eq!(f.subject.port, Some(80));
        assert_eq!(f.subject.addr.as_deref(), Some("10.0.0.1"));
        assert_eq!(f.evidence.json()["listener"]["backlog"], 1);
        assert_eq!(f.evidence.json()["listener"]["inode"], 180);
        assert_eq!(f.evidence.json()["overflows"], 10);
    }
}
