//! `link_down` (layer 2): a managed interface went admin-down or lost its carrier/oper state.
//!
//! Opens when a managed link that was up (admin up and oper up) is seen not up; stays open
//! through further down events (no re-open); clears when the link is admin up and oper up
//! again. A link already down when guardian starts, or that appears down, does not open a
//! fault: only a transition from up does. A managed link that is deleted clears its fault
//! (evidence `removed: true`), as nothing can heal it any more.
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::{Baseline, Detector, FaultId, Finding, Input};
use crate::netlink::{Change, LinkState, NetEvent, Who};
use crate::model::{FaultState, Severity, Subject};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::LinkDown;

pub const LAYER: u8 = 2;

#[derive(Debug)]
struct Track {
    last: LinkState,
    /// When the open fault opened.
    open_since: Option<Instant>,
}

/// Watches the managed interfaces (by name).
#[derive(Debug)]
pub struct LinkDown {
    managed: HashSet<String>,
    /// Managed links by ifindex.
    links: HashMap<u32, Track>,
}

impl LinkDown {
    /// `managed`: interface names to watch (`--keep-up`); `initial`: the link dump taken at
    /// start, so the first event of a link is compared with its real previous state.
    pub fn new<S: Into<String>>(
        managed: impl IntoIterator<Item = S>,
        initial: &[LinkState],
    ) -> Self {
        let managed: HashSet<String> = managed.into_iter().map(Into::into).collect();
        let links = initial
            .iter()
            .filter(|l| managed.contains(&l.name))
            .map(|l| {
                (
                    l.ifindex,
                    Track {
                        last: l.clone(),
                        open_since: None,
                    },
                )
            })
            .collect();
        LinkDown { managed, links }
    }

    fn finding(state: FaultState, l: &LinkState, evidence: Evidence) -> Finding {
        Finding {
            fault: FAULT,
            layer: LAYER,
            severity: Severity::Error,
            state,
            subject: Subject {
                iface: Some(l.name.clone()),
                ifindex: Some(l.ifindex),
                ..Default::default()
            },
            evidence: super::Evidence::LinkDown(evidence),
            key: key(l.ifindex),
            netns: None,
        }
    }

    fn cleared(
        t: &Track,
        l: &LinkState,
        now: Instant,
        removed: bool,
        by: Option<&Who>,
    ) -> Finding {
        let down_ms = t
            .open_since
            .map(|s| now.saturating_duration_since(s).as_secs_f64() * 1e3);
        let ev = Evidence {
            ifindex: l.ifindex,
            admin_up: l.admin_up,
            oper_up: l.oper_up,
            mtu: l.mtu,
            down_ms: Some(down_ms),
            reason: None,
            removed,
            by_text: by.map(|w| crate::netlink::who::link_text(w, l.admin_up, removed)),
            by: by.cloned(),
        };
        Self::finding(FaultState::Cleared, l, ev)
    }
}

/// The finding key of a link.
pub fn key(ifindex: u32) -> String {
    format!("link:{ifindex}")
}
/// `link_down` has no thresholds.
pub type Config = ();

/// The detector as the registry builds it.
pub fn detector(_cfg: &Config, base: &Baseline) -> LinkDown {
    LinkDown::new(base.keep_up.iter().cloned(), &base.links)
}

impl Detector for LinkDown {
    fn trackers(&mut self) -> Vec<&mut dyn crate::faults::detector::ForgetNetns> {
        Vec::new()
    }

    fn name(&self) -> FaultId {
        FAULT
    }

    fn observe(&mut self, input: &Input, now: Instant) -> Vec<Finding> {
        let Input::Net(ev) = input else {
            return Vec::new();
        };
        match ev {
            NetEvent::Link(l) if self.managed.contains(&l.name) => {
                let Some(t) = self.links.get_mut(&l.ifindex) else {
                    // First sight of this link (created after start): remember, no finding.
                    self.links.insert(
                        l.ifindex,
                        Track {
                            last: l.what.clone(),
                            open_since: None,
                        },
                    );
                    return vec![];
                };
                let was_up = t.last.is_up();
                let by = l.by.as_ref();
                let mut out = vec![];
                let reason = |l: &LinkState| {
                    if !l.admin_up {
                        evidence::Reason::AdminDown
                    } else {
                        evidence::Reason::OperDown
                    }
                };
                let evidence = |l: &LinkState| Evidence {
                    ifindex: l.ifindex,
                    admin_up: l.admin_up,
                    oper_up: l.oper_up,
                    mtu: l.mtu,
                    down_ms: None,
                    reason: Some(reason(l)),
                    removed: false,
                    by: by.cloned(),
                    by_text: by.map(|w| crate::netlink::who::link_text(w, l.admin_up, false)),
                };
                if t.open_since.is_none() && was_up && !l.is_up() {
                    t.open_since = Some(now);
                    out.push(Self::finding(FaultState::Opened, l, evidence(l)));
                } else if t.open_since.is_some() && !l.is_up() && reason(&t.last) != reason(l) {
                    // Same incident, different cause (e.g. carrier lost, then set admin down):
                    // a remedy that did not apply before may apply now.
                    out.push(Self::finding(FaultState::Updated, l, evidence(l)));
                } else if t.open_since.is_some() && l.is_up() {
                    out.push(Self::cleared(t, l, now, false, by));
                    t.open_since = None;
                }
                t.last = l.what.clone();
                out
            }
            // A managed link renamed to an unmanaged name, or deleted: stop watching it.
            NetEvent::Link(Change {
                what: LinkState { ifindex, .. },
                ..
            })
            | NetEvent::LinkRemoved { ifindex, .. } => {
                let Some(t) = self.links.remove(ifindex) else {
                    return vec![];
                };
                if t.open_since.is_none() {
                    return vec![];
                }
                let (l, by) = match ev {
                    NetEvent::Link(l) => (
                        LinkState {
                            name: t.last.name.clone(),
                            ..l.what.clone()
                        },
                        l.by.as_ref(),
                    ),
                    NetEvent::LinkRemoved { by, .. } => (
                        LinkState {
                            admin_up: false,
                            oper_up: false,
                            ..t.last.clone()
                        },
                        by.as_ref(),
                    ),
                    _ => return vec![],
                };
                vec![Self::cleared(&t, &l, now, true, by)]
            }
            NetEvent::RouteAdded(_)
            | NetEvent::RouteDeleted(_)
            | NetEvent::BaselineAccepted { .. } => vec![],
            NetEvent::AddressRemoved { .. } => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn link(ifindex: u32, name: &str, admin_up: bool, oper_up: bool) -> LinkState {
        LinkState {
            ifindex,
            name: name.into(),
            admin_up,
            oper_up,
            mtu: 1500,
        }
    }

    /// Runs events through a fresh detector managing `va` (ifindex 3, initially up; `vb`,
    /// ifindex 2, unmanaged and up) and returns, per step, the states of the findings.
    fn run(steps: &[NetEvent]) -> Vec<Vec<FaultState>> {
        let initial = [link(2, "vb", true, true), link(3, "va", true, true)];
        let mut d = LinkDown::new(["va"], &initial);
        let t0 = Instant::now();
        steps
            .iter()
            .enumerate()
            .map(|(i, ev)| {
                crate::faults::observe_net(&mut d, ev, t0 + Duration::from_millis(i as u64))
                    .into_iter()
                    .map(|f| {
                        assert_eq!(f.fault, FAULT);
                        assert_eq!(f.layer, 2);
                        assert_eq!(f.severity, Severity::Error);
                        assert_eq!(f.key, "link:3");
                        assert_eq!(f.subject.iface.as_deref(), Some("va"));
                        f.state
                    })
                    .collect()
            })
            .collect()
    }

    use FaultState::{Cleared as C, Opened as O, Updated as U};
    #[allow(non_snake_case)]
    fn L(l: LinkState) -> NetEvent {
        NetEvent::Link(l.into())
    }

    #[test]
    fn table() {
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Vec<NetEvent>, Vec<Vec<FaultState>>)> = vec![
            (
                "admin down opens, up clears",
                vec![L(link(3, "va", false, false)), L(link(3, "va", true, true))],
                vec![vec![O], vec![C]],
            ),
            (
                "oper down (carrier loss) opens too",
                vec![L(link(3, "va", true, false)), L(link(3, "va", true, true))],
                vec![vec![O], vec![C]],
            ),
            (
                "repeated down events do not re-open; a change of cause updates",
                vec![
                    L(link(3, "va", false, false)),
                    L(link(3, "va", false, false)),
                    L(link(3, "va", true, false)),
                    L(link(3, "va", true, false)),
                    L(link(3, "va", false, false)),
                ],
                vec![vec![O], vec![], vec![U], vec![], vec![U]],
            ),
            (
                "carrier lost first, then admin down: the incident is updated, not re-opened",
                vec![
                    L(link(3, "va", true, false)),
                    L(link(3, "va", false, false)),
                ],
                vec![vec![O], vec![U]],
            ),
            (
                "admin up without carrier does not clear",
                vec![
                    L(link(3, "va", false, false)),
                    L(link(3, "va", true, false)),
                    L(link(3, "va", true, true)),
                ],
                vec![vec![O], vec![U], vec![C]],
            ),
            (
                "unmanaged iface ignored",
                vec![L(link(2, "vb", false, false)), L(link(2, "vb", true, true))],
                vec![vec![], vec![]],
            ),
            (
                "up events while up are quiet",
                vec![L(link(3, "va", true, true)), L(link(3, "va", true, true))],
                vec![vec![], vec![]],
            ),
            (
                "a second outage is a new fault",
                vec![
                    L(link(3, "va", false, false)),
                    L(link(3, "va", true, true)),
                    L(link(3, "va", false, false)),
                ],
                vec![vec![O], vec![C], vec![O]],
            ),
            (
                "route events ignored",
                vec![NetEvent::RouteDeleted(Change::from(crate::netlink::RouteSpec::new(
                    "10.0.0.0".parse().unwrap(),
                    8,
                )))],
                vec![vec![]],
            ),
            (
                "deleting a down managed link clears its fault",
                vec![
                    L(link(3, "va", false, false)),
                    NetEvent::LinkRemoved {
                        ifindex: 3,
                        name: "va".into(),
                        by: None,
                    },
                ],
                vec![vec![O], vec![C]],
            ),
        ];
        for (name, events, want) in cases {
            assert_eq!(run(&events), want, "{name}");
        }
    }

    #[test]
    fn link_down_at_start_or_new_link_does_not_open() {
        let initial = [link(3, "va", false, false)];
        let mut d = LinkDown::new(["va", "vc"], &initial);
        let now = Instant::now();
        assert!(
            crate::faults::observe_net(&mut d, &L(link(3, "va", false, false)), now).is_empty()
        );
        // a managed link created later, down, then up, then down: opens only on the last
        assert!(
            crate::faults::observe_net(&mut d, &L(link(9, "vc", false, false)), now).is_empty()
        );
        assert!(crate::faults::observe_net(&mut d, &L(link(9, "vc", true, true)), now).is_empty());
        let f = crate::faults::observe_net(&mut d, &L(link(9, "vc", false, false)), now);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].key, "link:9");
    }

    #[test]
    fn evidence_says_why_and_how_long() {
        let initial = [link(3, "va", true, true)];
        let mut d = LinkDown::new(["va"], &initial);
        let t0 = Instant::now();
        let open = crate::faults::observe_net(&mut d, &L(link(3, "va", false, false)), t0);
        assert_eq!(open[0].evidence.json()["reason"], "admin_down");
        assert_eq!(open[0].evidence.json()["admin_up"], false);
        assert_eq!(open[0].subject.ifindex, Some(3));
        let clear = crate::faults::observe_net(
            &mut d,
            &L(link(3, "va", true, true)),
            t0 + Duration::from_millis(40),
        );
        assert_eq!(clear[0].evidence.json()["down_ms"], 40.0);
    }
}
