//! `port_conflict` (layer 4): bind(2) failing with EADDRINUSE.
//!
//! An event fault: every `bind_conflict` observation (the cgroup bind programs of
//! guardian-ebpf/src/binds.rs, or the `sys_exit_bind` fallback) opens a fault keyed
//! by (namespace, port) at once, or counts toward the open one, which reports an `updated`
//! finding at most once per `update_every_ms`. Evidence: the failing binder (pid, comm, address)
//! and, from the namespace's latest INET_DIAG listeners, the holder (address, uid, socket
//! inode). If the holder was not known when the fault opened, the first sample that shows it
//! adds it in an `updated` finding. The fault clears once no conflict on that port has been seen
//! for `clear_after_ms`.
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::model::{FaultState, ObsKind, Observation, Severity, Subject};
use crate::model::sample::Listener;

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::PortConflict;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// At most one `updated` finding per port this often.
    pub update_every_ms: u64,
    /// The fault clears after this long without a conflict on the port.
    pub clear_after_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            update_every_ms: 10_000,
            clear_after_ms: 30_000,
        }
    }
}

#[derive(Debug)]
struct Open {
    last_conflict: Instant,
    last_report: Instant,
    /// Conflicts since the fault opened.
    count: u64,
    /// Conflicts not yet reported in a finding.
    unreported: u64,
    last: Observation,
    holders: Vec<Listener>,
}

pub struct PortConflict {
    cfg: Config,
    /// Open faults by (netns, port).
    open: BTreeMap<(u32, u16), Open>,
    /// Latest listeners per namespace.
    listeners: HashMap<u32, Vec<Listener>>,
}

impl PortConflict {
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            open: BTreeMap::new(),
            listeners: HashMap::new(),
        }
    }

    fn holders(&self, ns: u32, port: u16, addr: Option<&str>) -> Vec<Listener> {
        let wild = |a: &str| a == "0.0.0.0" || a == "::";
        self.listeners
            .get(&ns)
            .into_iter()
            .flatten()
            .filter(|l| l.port == port)
            .filter(|l| addr.is_none_or(|a| wild(a) || wild(&l.addr) || l.addr == a))
            .cloned()
            .collect()
    }
}

fn finding(state: FaultState, ns: u32, port: u16, o: &Open) -> Finding {
    let holders: Vec<evidence::Holder> = o
        .holders
        .iter()
        .map(|l| evidence::Holder {
            addr: l.addr.clone(),
            port: l.port,
            uid: l.uid,
            inode: l.inode,
            state: "listen",
        })
        .collect();
    Finding {
        fault: FAULT,
        layer: 4,
        severity: Severity::Warning,
        state,
        subject: Subject {
            addr: o.last.addr.clone(),
            port: Some(port),
            ..Default::default()
        },
        evidence: super::Evidence::PortConflict(Evidence {
            binder: evidence::Binder {
                pid: o.last.pid,
                tid: o.last.tid,
                comm: o.last.comm.clone(),
                family: o.last.family.clone(),
                addr: o.last.addr.clone(),
            },
            conflicts: o.count,
            since_last_report: o.unreported,
            holders,
        }),
        key: format!("{ns}/{port}"),
        netns: Some(ns),
    }
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, _base: &Baseline) -> PortConflict {
    PortConflict::new(cfg.clone())
}

impl Detector for PortConflict {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        Vec::new()
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let mut out = Vec::new();
        match input {
            Input::Observation(o) if o.kind == ObsKind::BindConflict => {
                let Some(port) = o.port.filter(|&p| p != 0) else {
                    return out;
                };
                let holders = self.holders(o.netns, port, o.addr.as_deref());
                let every = Duration::from_millis(self.cfg.update_every_ms);
                match self.open.get_mut(&(o.netns, port)) {
                    Some(st) => {
                        st.last_conflict = now;
                        st.count += 1;
                        st.unreported += 1;
                        st.last = o.clone();
                        if !holders.is_empty() {
                            st.holders = holders;
                        }
                        if now.saturating_duration_since(st.last_report) >= every {
                            st.last_report = now;
                            out.push(finding(FaultState::Updated, o.netns, port, st));
                            st.unreported = 0;
                        }
                    }
                    None => {
                        let mut st = Open {
                            last_conflict: now,
                            last_report: now,
                            count: 1,
                            unreported: 1,
                            last: o.clone(),
                            holders,
                        };
                        out.push(finding(FaultState::Opened, o.netns, port, &st));
                        st.unreported = 0;
                        self.open.insert((o.netns, port), st);
                    }
                }
            }
            Input::Mib(m) => {
                self.listeners.insert(m.netns, m.listeners.clone());
                let keys: Vec<(u32, u16)> = self
                    .open
                    .iter()
                    .filter(|((ns, _), st)| *ns == m.netns && st.holders.is_empty())
                    .map(|(k, _)| *k)
                    .collect();
                for (ns, port) in keys {
                    let addr = self.open[&(ns, port)].last.addr.clone();
                    let holders = self.holders(ns, port, addr.as_deref());
                    if holders.is_empty() {
                        continue;
                    }
                    let st = self.open.get_mut(&(ns, port)).expect("open");
                    st.holders = holders;
                    st.last_report = now;
                    out.push(finding(FaultState::Updated, ns, port, st));
                    st.unreported = 0;
                }
            }
            _ => {}
        }
        // Any input moves time forward: clear the quiet ones.
        let clear_after = Duration::from_millis(self.cfg.clear_after_ms);
        self.open.retain(|&(ns, port), st| {
            if now.saturating_duration_since(st.last_conflict) >= clear_after {
                out.push(finding(FaultState::Cleared, ns, port, st));
                false
            } else {
                true
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use crate::model::FaultState::{Cleared as C, Opened as O, Updated as U};
    use crate::model::sample::MibSample;

    fn conflict(ns: u32, port: u16) -> Input {
        Input::Observation(Observation {
            netns: ns,
            kind: ObsKind::BindConflict,
            error: "EADDRINUSE".into(),
            pid: 42,
            tid: 43,
            comm: "server".into(),
            family: Some("ipv4".into()),
            addr: Some("10.0.0.1".into()),
            port: Some(port),
        })
    }

    fn tick(ns: u32, listeners: Vec<Listener>) -> Input {
        Input::Mib(MibSample {
            netns: ns,
            listeners,
            ..Default::default()
        })
    }

    fn holder(port: u16) -> Listener {
        Listener {
            addr: "0.0.0.0".into(),
            port,
            queued: 0,
            backlog: 128,
            uid: 1000,
            inode: 4242,
        }
    }

    /// Inputs at the given seconds; returns (state, key) per step.
    fn run(steps: &[(u64, Input)]) -> Vec<Vec<(FaultState, String)>> {
        let mut d = PortConflict::new(Config::default());
        let t0 = Instant::now();
        steps
            .iter()
            .map(|(s, i)| {
                d.observe(i, t0 + Duration::from_secs(*s))
                    .into_iter()
                    .map(|f| (f.state, f.key))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn table() {
        let k = |s: &str| s.to_string();
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Vec<(u64, Input)>, Vec<Vec<(FaultState, String)>>)> = vec![
            (
                "each conflict opens at once",
                vec![(0, conflict(1, 80))],
                vec![vec![(O, k("1/80"))]],
            ),
            (
                "repeats are updates, at most one per 10 s",
                vec![
                    (0, conflict(1, 80)),
                    (1, conflict(1, 80)),
                    (5, conflict(1, 80)),
                    (10, conflict(1, 80)),
                    (11, conflict(1, 80)),
                ],
                vec![
                    vec![(O, k("1/80"))],
                    vec![],
                    vec![],
                    vec![(U, k("1/80"))],
                    vec![],
                ],
            ),
            (
                "clears 30 s after the last conflict, on any input",
                vec![
                    (0, conflict(1, 80)),
                    (20, conflict(1, 80)),
                    (49, tick(1, vec![])),
                    (50, tick(2, vec![])),
                ],
                vec![
                    vec![(O, k("1/80"))],
                    vec![(U, k("1/80"))],
                    vec![],
                    vec![(C, k("1/80"))],
                ],
            ),
            (
                "ports and namespaces are separate",
                vec![
                    (0, conflict(1, 80)),
                    (0, conflict(1, 81)),
                    (0, conflict(2, 80)),
                ],
                vec![
                    vec![(O, k("1/80"))],
                    vec![(O, k("1/81"))],
                    vec![(O, k("2/80"))],
                ],
            ),
            (
                "a conflict after the clear is a new fault",
                vec![
                    (0, conflict(1, 80)),
                    (31, tick(1, vec![])),
                    (32, conflict(1, 80)),
                ],
                vec![
                    vec![(O, k("1/80"))],
                    vec![(C, k("1/80"))],
                    vec![(O, k("1/80"))],
                ],
            ),
        ];
        for (name, steps, want) in cases {
            assert_eq!(run(&steps), want, "{name}");
        }
    }

    #[test]
    fn evidence_names_binder_and_holder() {
        let mut d = PortConflict::new(Config::default());
        let t0 = Instant::now();
        d.observe(&tick(1, vec![holder(80), holder(81)]), t0);
        let f = d.observe(&conflict(1, 80), t0);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject.port, Some(80));
        assert_eq!(f[0].subject.addr.as_deref(), Some("10.0.0.1"));
        assert_eq!(f[0].netns, Some(1));
        assert_eq!(f[0].evidence.json()["binder"]["pid"], 42);
        assert_eq!(f[0].evidence.json()["binder"]["comm"], "server");
        assert_eq!(f[0].evidence.json()["holders"][0]["inode"], 4242);
        assert_eq!(f[0].evidence.json()["holders"][0]["uid"], 1000);
        assert_eq!(f[0].evidence.json()["holders"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_holder_seen_later_is_added_in_an_update() {
        let mut d = PortConflict::new(Config::default());
        let t0 = Instant::now();
        let f = d.observe(&conflict(1, 80), t0);
        assert_eq!(f[0].evidence.json()["holders"], json!([]));
        let f = d.observe(&tick(1, vec![holder(80)]), t0 + Duration::from_millis(300));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].state, U);
        assert_eq!(f[0].evidence.json()["holders"][0]["inode"], 4242);
        // known now: no further update from samples
        assert!(d
            .observe(&tick(1, vec![holder(80)]), t0 + Duration::from_secs(1))
            .is_empty());
    }
}

crate::faults::ranges::validate_fields!(Config {
    update_every_ms,
    clear_after_ms
});
