//! Hysteresis for rate and level faults, shared by the detectors: a condition must hold for
//! `hold` before a fault opens, `updated` findings are rate-limited to one per `update_every`,
//! and the fault clears only after the condition has been absent for `clear_after`. A value
//! dancing around the threshold therefore does not flap opened/cleared.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::detector::ForgetNetns;
use super::{Evidence, Finding};
use crate::model::{FaultState, Severity, Subject};
use serde::{Deserialize, Serialize};

/// Durations in milliseconds so that configuration and record files stay plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hysteresis {
    /// How long the condition must hold before the fault opens (0: at once).
    pub hold_ms: u64,
    /// How long the condition must be absent before the fault clears.
    pub clear_after_ms: u64,
    /// At most one `updated` finding per subject this often.
    pub update_every_ms: u64,
}

impl Hysteresis {
    pub const fn new(hold_ms: u64, clear_after_ms: u64, update_every_ms: u64) -> Self {
        Self {
            hold_ms,
            clear_after_ms,
            update_every_ms,
        }
    }
}

/// Which fault a tracker reports.
#[derive(Debug, Clone, Copy)]
pub struct FaultMeta {
    pub fault: super::FaultId,
    pub layer: u8,
    pub severity: Severity,
}

/// One subject for which the condition holds now.
#[derive(Debug, Clone)]
pub struct Holding {
    pub key: String,
    pub netns: Option<u32>,
    pub subject: Subject,
    pub evidence: Evidence,
}

#[derive(Debug)]
struct State {
    since: Instant,
    open: bool,
    absent_since: Option<Instant>,
    last_report: Instant,
    last: Holding,
}

#[derive(Debug)]
pub struct Tracker {
    meta: FaultMeta,
    h: Hysteresis,
    states: HashMap<String, State>,
}

impl Tracker {
    pub fn new(meta: FaultMeta, h: Hysteresis) -> Self {
        Self {
            meta,
            h,
            states: HashMap::new(),
        }
    }

    /// Evaluates one round. `holding` lists the subjects whose condition holds now. A tracked
    /// subject that is not listed counts as absent only if `in_scope(key)` says this round
    /// speaks for it (e.g. a sample of one namespace speaks only for that namespace's keys).
    pub fn evaluate(
        &mut self,
        now: Instant,
        holding: Vec<Holding>,
        in_scope: impl Fn(&str) -> bool,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let ms = Duration::from_millis;
        let mut seen = std::collections::HashSet::new();
        for hold in holding {
            seen.insert(hold.key.clone());
            let st = self
                .states
                .entry(hold.key.clone())
                .or_insert_with(|| State {
                    since: now,
                    open: false,
                    absent_since: None,
                    last_report: now,
                    last: hold.clone(),
                });
            st.absent_since = None;
            st.last = hold;
            if !st.open {
                if now.duration_since(st.since) >= ms(self.h.hold_ms) {
                    st.open = true;
                    st.last_report = now;
                    out.push(finding(self.meta, FaultState::Opened, &st.last));
                }
            } else if now.duration_since(st.last_report) >= ms(self.h.update_every_ms) {
                st.last_report = now;
                out.push(finding(self.meta, FaultState::Updated, &st.last));
            }
        }
        let meta = self.meta;
        let clear_after = ms(self.h.clear_after_ms);
        self.states.retain(|key, st| {
            if seen.contains(key) || !in_scope(key) {
                return true;
            }
            if !st.open {
                return false; // never opened: forget it
            }
            let absent = *st.absent_since.get_or_insert(now);
            if now.duration_since(absent) >= clear_after {
                out.push(finding(meta, FaultState::Cleared, &st.last));
                return false;
            }
            true
        });
        out
    }

    /// Evaluates one round about one namespace: tracked subjects of other namespaces are out
    /// of scope (they neither clear nor change). Subjects are matched by the `netns` of their
    /// holdings, so detectors need no key convention for it.
    pub fn evaluate_netns(
        &mut self,
        now: Instant,
        netns: u32,
        holding: Vec<Holding>,
    ) -> Vec<Finding> {
        let scope: std::collections::HashSet<String> = self
            .states
            .iter()
            .filter(|(_, st)| st.last.netns == Some(netns))
            .map(|(k, _)| k.clone())
            .collect();
        self.evaluate(now, holding, |k| scope.contains(k))
    }

    /// Subjects currently open (for tests and status).
    pub fn open_keys(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .states
            .iter()
            .filter(|(_, s)| s.open)
            .map(|(k, _)| k.as_str())
            .collect();
        v.sort_unstable();
        v
    }
}

impl ForgetNetns for Tracker {
    /// Forgets every subject of namespace `netns` (deleted): a `cleared` finding, with the
    /// engine's evidence saying why, for each one that was open.
    fn forget_netns(&mut self, netns: u32) -> Vec<Finding> {
        let meta = self.meta;
        let mut out = Vec::new();
        self.states.retain(|_, st| {
            if st.last.netns != Some(netns) {
                return true;
            }
            if st.open {
                let mut f = finding(meta, FaultState::Cleared, &st.last);
                f.evidence = Evidence::closed(NETNS_GONE);
                out.push(f);
            }
            false
        });
        out
    }
}

/// The reason of a fault cleared because its namespace was deleted.
pub const NETNS_GONE: &str = "the network namespace was deleted";

fn finding(meta: FaultMeta, state: FaultState, h: &Holding) -> Finding {
    Finding {
        fault: meta.fault,
        layer: meta.layer,
        severity: meta.severity,
        state,
        subject: h.subject.clone(),
        evidence: h.evidence.clone(),
        key: h.key.clone(),
        netns: h.netns,
    }
}

/// `hold_ms`, `clear_after_ms` (both may be 0) and `update_every_ms` of a detector's table.
impl super::ranges::Field for Hysteresis {
    fn check(&self, table: &str, _name: &str) -> Result<(), super::ranges::Invalid> {
        self.hold_ms.check(table, "hold_ms")?;
        self.clear_after_ms.check(table, "clear_after_ms")?;
        self.update_every_ms.check(table, "update_every_ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: FaultMeta = FaultMeta {
        fault: crate::faults::FaultId::SynFlood,
        layer: 4,
        severity: Severity::Warning,
    };

    fn h(key: &str) -> Holding {
        Holding {
            key: key.into(),
            netns: Some(1),
            subject: Subject::default(),
            evidence: Evidence::closed("test"),
        }
    }

    /// Feeds one round per entry (`true` = the condition holds for "a") at 1 s steps and
    /// returns the finding states per round.
    fn run(hyst: Hysteresis, rounds: &[bool]) -> Vec<Vec<FaultState>> {
        let mut t = Tracker::new(META, hyst);
        let t0 = Instant::now();
        rounds
            .iter()
            .enumerate()
            .map(|(i, &on)| {
                let now = t0 + Duration::from_secs(i as u64);
                let holding = if on { vec![h("a")] } else { vec![] };
                t.evaluate(now, holding, |_| true)
                    .into_iter()
                    .map(|f| f.state)
                    .collect()
            })
            .collect()
    }

    use FaultState::{Cleared as C, Opened as O, Updated as U};

    #[test]
    fn a_deleted_namespace_clears_its_open_faults_only_and_forgets_the_rest() {
        let mut t = Tracker::new(META, Hysteresis::new(1000, 5000, 60_000));
        let t0 = Instant::now();
        let at = |netns: u32, key: &str| Holding {
            netns: Some(netns),
            ..h(key)
        };
        t.evaluate(t0, vec![at(7, "7/a"), at(8, "8/a")], |_| true);
        // 7/a and 8/a open; 7/b only starts holding.
        let opened = t.evaluate(
            t0 + Duration::from_secs(1),
            vec![at(7, "7/a"), at(8, "8/a"), at(7, "7/b")],
            |_| true,
        );
        assert_eq!(opened.len(), 2);
        let gone = t.forget_netns(7);
        assert_eq!(gone.len(), 1, "{gone:?}");
        assert_eq!((gone[0].state, gone[0].key.as_str()), (C, "7/a"));
        assert_eq!(gone[0].evidence.json()["reason"], NETNS_GONE);
        assert_eq!(t.open_keys(), ["8/a"]);
        // Nothing of 7 is left: the same number, reused, starts from nothing (holds anew).
        let again = t.evaluate(t0 + Duration::from_secs(2), vec![at(7, "7/b")], |_| true);
        assert!(again.is_empty(), "{again:?}");
        assert!(t.forget_netns(9).is_empty());
    }

    #[test]
    fn opens_after_hold_and_clears_after_absence() {
        let got = run(
            Hysteresis::new(2000, 3000, 60_000),
            &[true, true, true, false, false, false, false],
        );
        // Holds from t=0, open at t=2; absent from t=3, cleared 3 s later at t=6.
        assert_eq!(
            got,
            vec![vec![], vec![], vec![O], vec![], vec![], vec![], vec![C]]
        );
    }

    #[test]
    fn a_blip_shorter_than_hold_never_opens() {
        let got = run(
            Hysteresis::new(2000, 0, 60_000),
            &[true, true, false, true, true],
        );
        assert!(got.iter().all(Vec::is_empty), "{got:?}");
    }

    #[test]
    fn flapping_around_the_threshold_does_not_flap_the_fault() {
        let got = run(
            Hysteresis::new(0, 3000, 60_000),
            &[true, false, true, false, true, false, true],
        );
        assert_eq!(got[0], vec![O]);
        assert!(got[1..].iter().all(Vec::is_empty), "{got:?}");
    }

    #[test]
    fn updates_are_rate_limited() {
        let got = run(Hysteresis::new(0, 0, 2000), &[true, true, true, true, true]);
        assert_eq!(got, vec![vec![O], vec![], vec![U], vec![], vec![U]]);
    }

    #[test]
    fn subjects_are_separate_and_out_of_scope_keys_are_kept() {
        let mut t = Tracker::new(META, Hysteresis::new(0, 0, 60_000));
        let now = Instant::now();
        let f = t.evaluate(now, vec![h("ns1/a"), h("ns2/b")], |_| true);
        assert_eq!(f.len(), 2);
        // A round about ns1 only: ns2/b stays open.
        let f = t.evaluate(now + Duration::from_secs(1), vec![], |k| {
            k.starts_with("ns1/")
        });
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].key, "ns1/a");
        assert_eq!(t.open_keys(), vec!["ns2/b"]);
    }

    #[test]
    fn a_round_about_one_namespace_leaves_the_others_alone() {
        let mut t = Tracker::new(META, Hysteresis::new(0, 0, 60_000));
        let now = Instant::now();
        let in_ns = |key: &str, ns: u32| Holding {
            netns: Some(ns),
            ..h(key)
        };
        let f = t.evaluate(now, vec![in_ns("a", 1), in_ns("b", 2)], |_| true);
        assert_eq!(f.len(), 2);
        let f = t.evaluate_netns(now + Duration::from_secs(1), 1, vec![]);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].key.as_str(), f[0].state), ("a", FaultState::Cleared));
        assert_eq!(t.open_keys(), vec!["b"]);
        // Still holding in namespace 2: nothing new, nothing cleared.
        assert!(t
            .evaluate_netns(now + Duration::from_secs(2), 2, vec![in_ns("b", 2)])
            .is_empty());
        assert_eq!(t.open_keys(), vec!["b"]);
    }
}
