//! Per-destination counters for the fleet view: `guardian_dst_retransmits_total{dst}` and
//! `guardian_dst_connect_failures_total{dst}`, for at most [`TOP_K`] destination addresses,
//! the rest summed under `dst="other"`. Prometheus then asks "do two nodes see trouble toward
//! the same destination?" (docs/deploy/prometheus-rules.yaml).
//!
//! Fed from the collector's inputs, which carry cumulative per-key totals (failed connects
//! per (netns, address, port), retransmits per open flow): the deltas are summed per address.
//! The label set is bounded by eviction, which the `metrics` facade cannot do (a registered
//! series lives forever), hence these few lines of our own rendering: when a new destination
//! moves and all slots are taken, the one that moved least recently makes room (its series
//! goes stale in Prometheus); if every slot moved in this very sample, the new one counts
//! under `other`.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::input::Input;

/// Destinations with their own label.
pub const TOP_K: usize = 32;
/// Per-key totals remembered for deltas (beyond it, the least recently seen are forgotten).
const MAX_KEYS: usize = 8192;

pub const RETRANSMITS: &str = "guardian_dst_retransmits_total";
pub const CONNECT_FAILURES: &str = "guardian_dst_connect_failures_total";
pub const OTHER: &str = "other";

/// A rendered family: name, help, the value it takes from [`Counts`].
type Family = (&'static str, &'static str, fn(&Counts) -> u64);

/// Which counter a delta goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Retransmits,
    ConnectFailures,
    ConnectRefused,
}

/// (kind, netns, address, port, local port): the kernel's key of one cumulative total.
type Key = (Kind, u32, String, u16, u16);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub retransmits: u64,
    pub connect_failures: u64,
    /// The sample in which this destination last moved.
    moved: u64,
}

#[derive(Default)]
pub struct State {
    sample: u64,
    /// Last cumulative value and the sample it was seen in.
    last: BTreeMap<Key, (u64, u64)>,
    dsts: BTreeMap<String, Counts>,
    other: Counts,
}

pub struct Tracker(Mutex<Option<State>>);

pub static TRACKER: Tracker = Tracker(Mutex::new(None));

impl Tracker {
    /// Takes the deltas of one collector tick; `only`: count that namespace's only
    /// (`[metrics] destinations = "own"`).
    pub fn observe(&self, inputs: &[Input], only: Option<u32>) {
        if let Ok(mut g) = self.0.lock() {
            let s = g.get_or_insert_with(State::default);
            match only {
                None => s.observe(inputs),
                Some(ns) => {
                    let mine: Vec<Input> = inputs
                        .iter()
                        .filter(|i| {
                            matches!(i, Input::Counters(c) if c.netns == ns)
                                || matches!(i, Input::Flows(f) if f.netns == ns)
                        })
                        .cloned()
                        .collect();
                    s.observe(&mine)
                }
            }
        }
    }

    /// Appends the two families (HELP, TYPE, samples) to an exposition.
    pub fn render(&self, out: &mut String) {
        match self.0.lock().as_deref() {
            Ok(Some(s)) => s.render(out),
            _ => State::default().render(out),
        }
    }
}

impl State {
    pub fn observe(&mut self, inputs: &[Input]) {
        self.sample += 1;
        let mut deltas: BTreeMap<String, Counts> = BTreeMap::new();
        for input in inputs {
            match input {
                Input::Counters(c) => {
                    // Refused connects are failed connects too (a dead service): the eBPF
                    // side keeps them in their own map, so that they never feed
                    // connect_timeout_cascade, and they are summed back here.
                    let failed = c
                        .connect_failures_by_dst
                        .iter()
                        .map(|d| (Kind::ConnectFailures, d))
                        .chain(
                            c.connect_refused_by_dst
                                .iter()
                                .map(|d| (Kind::ConnectRefused, d)),
                        );
                    for (kind, d) in failed {
                        let k = (kind, c.netns, d.addr.clone(), d.port, 0);
                        let n = self.delta(k, d.count);
                        deltas.entry(d.addr.clone()).or_default().connect_failures += n;
                    }
                }
                Input::Flows(f) => {
                    for r in &f.retrans_by_flow {
                        let k = (
                            Kind::Retransmits,
                            f.netns,
                            r.daddr.clone(),
                            r.dport,
                            r.sport,
                        );
                        let n = self.delta(k, r.full + r.small);
                        deltas.entry(r.daddr.clone()).or_default().retransmits += n;
                    }
                }
                _ => {}
            }
        }
        for (dst, d) in deltas {
            if d.retransmits + d.connect_failures > 0 && !dst.is_empty() {
                self.add(dst, d);
            }
        }
        self.forget();
    }

    /// How much a cumulative total grew since it was last seen (all of it when it is new, or
    /// when it went down: a new flow on the same ports, or a recreated map).
    fn delta(&mut self, k: Key, now: u64) -> u64 {
        let sample = self.sample;
        match self.last.insert(k, (now, sample)) {
            Some((prev, _)) if now >= prev => now - prev,
            _ => now,
        }
    }

    fn add(&mut self, dst: String, d: Counts) {
        let sample = self.sample;
        if !self.dsts.contains_key(&dst) && self.dsts.len() >= TOP_K {
            let stalest = self
                .dsts
                .iter()
                .filter(|(_, c)| c.moved < sample)
                .min_by_key(|(_, c)| c.moved)
                .map(|(k, _)| k.clone());
            match stalest {
                Some(k) => {
                    self.dsts.remove(&k);
                }
                None => {
                    self.other.retransmits += d.retransmits;
                    self.other.connect_failures += d.connect_failures;
                    self.other.moved = sample;
                    return;
                }
            }
        }
        let c = self.dsts.entry(dst).or_default();
        c.retransmits += d.retransmits;
        c.connect_failures += d.connect_failures;
        c.moved = sample;
    }

    /// Keeps `last` bounded: the keys seen least recently go first.
    fn forget(&mut self) {
        if self.last.len() <= MAX_KEYS {
            return;
        }
        let mut seen: Vec<u64> = self.last.values().map(|v| v.1).collect();
        seen.sort_unstable();
        let cut = seen[self.last.len() - MAX_KEYS];
        self.last.retain(|_, v| v.1 > cut);
    }

    pub fn get(&self, dst: &str) -> Option<Counts> {
        match dst {
            OTHER => Some(self.other),
            _ => self.dsts.get(dst).copied(),
        }
    }

    pub fn render(&self, out: &mut String) {
        let families: [Family; 2] = [
            (
                RETRANSMITS,
                "Retransmitted segments of flows that needed the retransmission timer, by destination address (the busiest few; the rest under dst=\"other\").",
                |c| c.retransmits,
            ),
            (
                CONNECT_FAILURES,
                "Failed connects (SYN_SENT to CLOSE), by destination address (the busiest few; the rest under dst=\"other\").",
                |c| c.connect_failures,
            ),
        ];
        for (name, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (dst, c) in &self.dsts {
                let _ = writeln!(out, "{name}{{dst=\"{dst}\"}} {}", value(c));
            }
            let _ = writeln!(out, "{name}{{dst=\"{OTHER}\"}} {}", value(&self.other));
            out.push('\n');
        }
    }
}

#[cfg(test)]
#[path = "dst_tests.rs"]
mod tests;
