//! `link_up`: brings an admin-down `keep_up` interface back up (inverse: set it down again).
//!
//! Applies only to `link_down` findings on interfaces named by `--keep-up` that are
//! administratively down. A link that is admin up but has no carrier is not ours to fix by
//! setting it up, so the remedy does not apply (`None`).
use std::collections::HashSet;

use serde_json::json;

use super::action::{Action, Verify};
use super::context::{PlanContext, Remedy};
use super::id::RemedyId;
use super::plan::{Effect, Lifetime, Plan, PlannedChange};
use crate::faults::{link_down, Evidence, FaultId, Finding};

pub const NAME: RemedyId = RemedyId::LinkUp;

#[derive(Debug, Clone, Default)]
pub struct LinkUp {
    keep_up: HashSet<String>,
}

impl LinkUp {
    /// `keep_up`: the interface names guardian keeps up.
    pub fn new<S: Into<String>>(keep_up: impl IntoIterator<Item = S>) -> Self {
        LinkUp {
            keep_up: keep_up.into_iter().map(Into::into).collect(),
        }
    }
}

impl Remedy for LinkUp {
    fn name(&self) -> RemedyId {
        NAME
    }

    fn faults(&self) -> &'static [FaultId] {
        &[link_down::FAULT]
    }

    fn plan(&self, f: &Finding, _ctx: &PlanContext<'_>) -> Option<Plan> {
        if f.fault != link_down::FAULT {
            return None;
        }
        let name = f.subject.iface.clone()?;
        let ifindex = f.subject.ifindex?;
        if !self.keep_up.contains(&name) {
            return None;
        }
        // Only an admin-down link is fixed by setting it up.
        let Evidence::LinkDown(ev) = &f.evidence else {
            return None;
        };
        if ev.admin_up {
            return None;
        }
        let oper_up = ev.oper_up;
        Some(Plan::Change(Box::new(PlannedChange {
            remedy: NAME,
            subject: f.subject.clone(),
            targets: vec![crate::model::Target::Iface(name.clone())],
            apply: Action::SetLinkUp {
                ifindex,
                name: name.clone(),
            },
            inverse: Action::SetLinkDown { ifindex, name },
            verify: Verify::LinkUp { ifindex },
            effect: Effect::InPlace,
            lifetime: Lifetime::Permanent,
            before: json!({"admin_up": false, "oper_up": oper_up}),
            after: json!({"admin_up": true, "oper_up": true}),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::link_down::LinkDown;
    use crate::model::{FaultState, Severity, Subject};
    use crate::netlink::{LinkState, NetEvent};
    use crate::remedy::testing::{change, ctx, FakeState};
    use std::time::Instant;

    fn finding(iface: &str, admin_up: bool, oper_up: bool) -> Finding {
        Finding {
            fault: link_down::FAULT,
            layer: 2,
            severity: Severity::Error,
            state: FaultState::Opened,
            subject: Subject {
                iface: Some(iface.into()),
                ifindex: Some(3),
                ..Default::default()
            },
            evidence: Evidence::LinkDown(link_down::Evidence {
                ifindex: 3,
                admin_up,
                oper_up,
                ..Default::default()
            }),
            key: "link:3".into(),
            netns: None,
        }
    }

    #[test]
    fn table() {
        let r = LinkUp::new(["va"]);
        // (finding, applies)
        let mut other_fault = finding("va", false, false);
        other_fault.fault = crate::faults::FaultId::RouteLost;
        let mut no_ifindex = finding("va", false, false);
        no_ifindex.subject.ifindex = None;
        let cases = [
            (
                "admin down keep-up iface",
                finding("va", false, false),
                true,
            ),
            (
                "admin up, no carrier: not ours",
                finding("va", true, false),
                false,
            ),
            ("not a keep-up iface", finding("vb", false, false), false),
            ("other fault", other_fault, false),
            ("no ifindex", no_ifindex, false),
        ];
        for (name, f, applies) in cases {
            let plan = r.plan(&f, &ctx(&FakeState::default()));
            assert_eq!(plan.is_some(), applies, "{name}");
        }
    }

    #[test]
    fn plan_is_up_with_down_inverse_and_link_verify() {
        let p = change(
            &LinkUp::new(["va"]),
            &finding("va", false, false),
            &ctx(&FakeState::default()),
        );
        assert_eq!(p.remedy.as_str(), "link_up");
        assert_eq!(
            p.apply,
            Action::SetLinkUp {
                ifindex: 3,
                name: "va".into()
            }
        );
        assert_eq!(
            p.inverse,
            Action::SetLinkDown {
                ifindex: 3,
                name: "va".into()
            }
        );
        assert_eq!(p.verify, Verify::LinkUp { ifindex: 3 });
        assert_eq!(p.before["admin_up"], false);
        assert_eq!(p.after["admin_up"], true);
        assert_eq!(p.subject.iface.as_deref(), Some("va"));
        assert_eq!(p.targets, ["iface:va"]);
    }

    #[test]
    fn plans_from_a_real_detector_finding() {
        let up = LinkState {
            ifindex: 3,
            name: "va".into(),
            admin_up: true,
            oper_up: true,
            mtu: 1500,
        };
        let mut d = LinkDown::new(["va"], std::slice::from_ref(&up));
        let down = LinkState {
            admin_up: false,
            oper_up: false,
            ..up
        };
        let f = crate::faults::observe_net(&mut d, &NetEvent::Link(down.into()), Instant::now());
        change(&LinkUp::new(["va"]), &f[0], &ctx(&FakeState::default()));
    }
}
