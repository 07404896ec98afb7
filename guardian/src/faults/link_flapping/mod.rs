//! `link_flapping` (layer 2): ≥ 4 up/down transitions of one link in 30 s.
//!
//! Any link of the daemon's namespace, from rtnetlink link events (`Input::Net`). A transition
//! is a change of "up" (admin up and oper up). The fault opens on the transition that makes the
//! count within `window_ms` reach `transitions` (an event fault: no hold), reports `updated`
//! at most every `update_every_ms` while the link keeps flapping, and clears once the link has
//! had no transition for `clear_after_ms` (checked on every input, so the clear comes on the
//! next tick after the quiet time).
//!
//! A link seen for the first time is assumed to have been up before (links normally are):
//! a first event saying "down" counts as one transition, "up" counts none.
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::netlink::{LinkState, NetEvent};
use crate::model::{FaultState, Severity, Subject};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::LinkFlapping;

pub const LAYER: u8 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Transitions (up->down or down->up) within the window that open the fault.
    pub transitions: u32,
    pub window_ms: u64,
    /// The link must have had no transition this long for the fault to clear.
    pub clear_after_ms: u64,
    /// At most one `updated` finding this often while the link keeps flapping.
    pub update_every_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            transitions: 4,
            window_ms: 30_000,
            clear_after_ms: 30_000,
            update_every_ms: 10_000,
        }
    }
}

#[derive(Debug)]
struct Track {
    name: String,
    up: bool,
    /// Times of the transitions within the window.
    times: VecDeque<Instant>,
    /// Transitions since the fault opened.
    total: u64,
    open: Option<Instant>,
    last_report: Instant,
    last_transition: Instant,
}

pub struct LinkFlapping {
    cfg: Config,
    links: HashMap<u32, Track>,
    /// Up/down state of the links at start, so that the first event of a link that was down
    /// at start and comes up counts as one transition, not none.
    initial: HashMap<u32, bool>,
}

impl LinkFlapping {
    pub fn new(cfg: Config, links: &[LinkState]) -> Self {
        Self {
            cfg,
            links: HashMap::new(),
            initial: links.iter().map(|l| (l.ifindex, l.is_up())).collect(),
        }
    }

    fn finding(&self, state: FaultState, ifindex: u32, t: &Track, now: Instant) -> Finding {
        let open_ms = t
            .open
            .map(|o| now.saturating_duration_since(o).as_millis() as u64);
        Finding {
            fault: FAULT,
            layer: LAYER,
            severity: Severity::Warning,
            state,
            subject: Subject {
                iface: Some(t.name.clone()),
                ifindex: Some(ifindex),
                ..Default::default()
            },
            evidence: super::Evidence::LinkFlapping(Evidence {
                ifindex,
                transitions_in_window: t.times.len(),
                transitions_total: t.total,
                window_ms: self.cfg.window_ms,
                threshold: self.cfg.transitions,
                up: t.up,
                flapping_ms: open_ms,
                removed: false,
            }),
            key: key(ifindex),
            netns: None,
        }
    }

    fn on_link(&mut self, l: &LinkState, now: Instant) -> Vec<Finding> {
        let window = Duration::from_millis(self.cfg.window_ms);
        let was_up = self.initial.get(&l.ifindex).copied().unwrap_or(true);
        let t = self.links.entry(l.ifindex).or_insert_with(|| Track {
            name: l.name.clone(),
            up: was_up,
            times: VecDeque::new(),
            total: 0,
            open: None,
            last_report: now,
            last_transition: now,
        });
        t.name = l.name.clone();
        if t.up == l.is_up() {
            return Vec::new();
        }
        t.up = l.is_up();
        t.times.push_back(now);
        t.total += 1;
        t.last_transition = now;
        while t
            .times
            .front()
            .is_some_and(|&x| now.saturating_duration_since(x) > window)
        {
            t.times.pop_front();
        }
        let t = &self.links[&l.ifindex];
        if t.open.is_none() && t.times.len() as u32 >= self.cfg.transitions {
            let t = self.links.get_mut(&l.ifindex).unwrap();
            t.open = Some(now);
            t.last_report = now;
            t.total = t.times.len() as u64;
            let t = &self.links[&l.ifindex];
            return vec![self.finding(FaultState::Opened, l.ifindex, t, now)];
        }
        if t.open.is_some()
            && now.saturating_duration_since(t.last_report)
                >= Duration::from_millis(self.cfg.update_every_ms)
        {
            self.links.get_mut(&l.ifindex).unwrap().last_report = now;
            let t = &self.links[&l.ifindex];
            return vec![self.finding(FaultState::Updated, l.ifindex, t, now)];
        }
        Vec::new()
    }

    /// Clears links that have been quiet long enough.
    fn sweep(&mut self, now: Instant) -> Vec<Finding> {
        let quiet = Duration::from_millis(self.cfg.clear_after_ms);
        let mut done: Vec<u32> = self
            .links
            .iter()
            .filter(|(_, t)| {
                t.open.is_some() && now.saturating_duration_since(t.last_transition) >= quiet
            })
            .map(|(&i, _)| i)
            .collect();
        done.sort_unstable();
        let mut out = Vec::new();
        for i in done {
            let f = self.finding(FaultState::Cleared, i, &self.links[&i], now);
            out.push(f);
            let t = self.links.get_mut(&i).unwrap();
            t.open = None;
            t.times.clear();
            t.total = 0;
        }
        out
    }
}

/// The finding key of a link.
pub fn key(ifindex: u32) -> String {
    format!("link:{ifindex}")
}

/// The detector as the registry builds it.
pub fn detector(cfg: &Config, base: &Baseline) -> LinkFlapping {
    LinkFlapping::new(cfg.clone(), &base.links)
}

impl Detector for LinkFlapping {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        Vec::new()
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let mut out = self.sweep(now);
        match input {
            Input::Net(NetEvent::Link(l)) => out.extend(self.on_link(l, now)),
            Input::Net(NetEvent::LinkRemoved { ifindex, .. }) => {
                if let Some(t) = self.links.remove(ifindex) {
                    if t.open.is_some() {
                        let mut f = self.finding(FaultState::Cleared, *ifindex, &t, now);
                        if let super::Evidence::LinkFlapping(e) = &mut f.evidence {
                            e.removed = true;
                        }
                        out.push(f);
                    }
                }
            }
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Counters;

    fn link(ifindex: u32, up: bool) -> Input {
        Input::Net(NetEvent::Link(
            LinkState {
                ifindex,
                name: format!("veth{ifindex}"),
                admin_up: up,
                oper_up: up,
                mtu: 1500,
            }
            .into(),
        ))
    }

    fn tick() -> Input {
        Input::Counters(Counters::default())
    }

    fn cfg() -> Config {
        Config {
            transitions: 4,
            window_ms: 30_000,
            clear_after_ms: 5_000,
            update_every_ms: 10_000,
        }
    }

    /// Feeds (ms, input) and returns (ms, state, key) of every finding.
    fn run(cfg: Config, steps: &[(u64, Input)]) -> Vec<(u64, FaultState, String)> {
        run_from(cfg, &[], steps)
    }

    fn run_from(
        cfg: Config,
        initial: &[LinkState],
        steps: &[(u64, Input)],
    ) -> Vec<(u64, FaultState, String)> {
        let mut d = LinkFlapping::new(cfg, initial);
        let t0 = Instant::now();
        let mut out = vec![];
        for (ms, i) in steps {
            for f in d.observe(i, t0 + Duration::from_millis(*ms)) {
                out.push((*ms, f.state, f.key));
            }
        }
        out
    }

    fn toggles(ifindex: u32, start: u64, n: usize, every: u64) -> Vec<(u64, Input)> {
        (0..n)
            .map(|i| (start + i as u64 * every, link(ifindex, i % 2 == 1)))
            .collect()
    }

    #[test]
    fn three_transitions_do_not_open_four_do() {
        assert!(run(cfg(), &toggles(3, 0, 3, 100)).is_empty());
        let got = run(cfg(), &toggles(3, 0, 4, 100));
        assert_eq!(got, vec![(300, FaultState::Opened, "link:3".into())]);
    }

    #[test]
    fn transitions_spread_wider_than_the_window_do_not_open() {
        // 4 transitions 11 s apart: never 4 within 30 s.
        assert!(run(cfg(), &toggles(3, 0, 4, 11_000)).is_empty());
        // 10 s apart: the 4th is 30 s after the first, still inside the window.
        assert_eq!(run(cfg(), &toggles(3, 0, 4, 10_000)).len(), 1);
    }

    #[test]
    fn repeated_events_without_a_change_are_not_transitions() {
        let steps: Vec<(u64, Input)> = (0..10).map(|i| (i * 10, link(3, true))).collect();
        assert!(run(cfg(), &steps).is_empty());
    }

    #[test]
    fn keeps_open_while_flapping_and_clears_after_quiet_time() {
        // 30 transitions over 3 s, then ticks.
        let mut steps = toggles(3, 0, 30, 100);
        steps.extend((0..10).map(|i| (3_000 + i * 1000, tick())));
        let got = run(cfg(), &steps);
        // Opened at the 4th; no re-open, no flapping of the fault; cleared 5 s after the last
        // transition (2.9 s), on the first input at or after 7.9 s.
        assert_eq!(
            got,
            vec![
                (300, FaultState::Opened, "link:3".into()),
                (8_000, FaultState::Cleared, "link:3".into()),
            ]
        );
    }

    #[test]
    fn a_transition_before_the_quiet_time_keeps_it_open() {
        let mut steps = toggles(3, 0, 4, 100);
        steps.push((4_000, tick()));
        steps.push((4_500, link(3, false)));
        steps.push((9_000, tick()));
        steps.push((9_600, tick()));
        let got = run(cfg(), &steps);
        assert_eq!(
            got,
            vec![
                (300, FaultState::Opened, "link:3".into()),
                (9_600, FaultState::Cleared, "link:3".into()),
            ]
        );
    }

    #[test]
    fn updates_are_rate_limited() {
        let got = run(cfg(), &toggles(3, 0, 300, 100));
        let updates = got.iter().filter(|g| g.1 == FaultState::Updated).count();
        assert_eq!(updates, 2, "{got:?}"); // at 10.3 s and 20.3 s
    }

    #[test]
    fn links_are_separate() {
        let mut steps = toggles(3, 0, 4, 100);
        steps.extend(toggles(4, 0, 3, 100));
        let got = run(cfg(), &steps);
        assert_eq!(got, vec![(300, FaultState::Opened, "link:3".into())]);
    }

    #[test]
    fn removal_clears() {
        let mut steps = toggles(3, 0, 4, 100);
        steps.push((
            500,
            Input::Net(NetEvent::LinkRemoved {
                ifindex: 3,
                name: "veth3".into(),
                by: None,
            }),
        ));
        let got = run(cfg(), &steps);
        assert_eq!(got[1], (500, FaultState::Cleared, "link:3".into()));
    }

    #[test]
    fn a_link_down_at_start_counts_its_first_up_as_a_transition() {
        let l = |up: bool| LinkState {
            ifindex: 7,
            name: "v7".into(),
            admin_up: up,
            oper_up: up,
            mtu: 1500,
        };
        let steps: Vec<(u64, Input)> = [true, false, true, false]
            .iter()
            .enumerate()
            .map(|(i, &up)| (i as u64 * 100, Input::Net(NetEvent::Link(l(up).into()))))
            .collect();
        // Down at start: up, down, up, down are four transitions.
        let got = run_from(cfg(), &[l(false)], &steps);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, FaultState::Opened);
        // Unknown at start (assumed up): the first "up" is no transition, so only three.
        assert!(run(cfg(), &steps).is_empty());
    }
}

crate::faults::ranges::validate_fields!(Config {
    transitions,
    window_ms,
    clear_after_ms,
    update_every_ms
});
