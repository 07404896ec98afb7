//! `route_restore`: adds a lost baseline route back exactly as it was (inverse: delete it).
//!
//! Reads the route from the `route_lost` finding's evidence (`route`, a serialized
//! [`RouteSpec`]), so a journaled or replayed finding plans the same change.
use serde_json::json;

use super::action::{Action, Verify};
use super::context::{PlanContext, Remedy};
use super::id::RemedyId;
use super::plan::{Effect, Lifetime, Plan, PlannedChange};
use crate::faults::{route_lost, Evidence, FaultId, Finding};
use crate::netlink::RouteSpec;

pub const NAME: RemedyId = RemedyId::RouteRestore;

#[derive(Debug, Clone, Default)]
pub struct RouteRestore;

impl RouteRestore {
    pub fn new() -> Self {
        RouteRestore
    }
}

impl Remedy for RouteRestore {
    fn name(&self) -> RemedyId {
        NAME
    }

    fn faults(&self) -> &'static [FaultId] {
        &[route_lost::FAULT]
    }

    fn plan(&self, f: &Finding, _ctx: &PlanContext<'_>) -> Option<Plan> {
        if f.fault != route_lost::FAULT {
            return None;
        }
        let Evidence::RouteLost(ev) = &f.evidence else {
            return None;
        };
        let spec: RouteSpec = ev.route.clone();
        let route = spec.key();
        Some(Plan::Change(Box::new(PlannedChange {
            remedy: NAME,
            subject: f.subject.clone(),
            targets: vec![super::plan::restore_target(&spec)],
            apply: Action::AddRoute(spec.clone()),
            inverse: Action::DelRoute(spec.clone()),
            verify: Verify::RoutePresent(spec),
            effect: Effect::InPlace,
            lifetime: Lifetime::Permanent,
            before: json!({"route": route, "present": false}),
            after: json!({"route": route, "present": true}),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::route_lost::RouteLost;
    use crate::model::{FaultState, Severity, Subject};
    use crate::netlink::{LinkState, NetEvent};
    use crate::remedy::testing::{change, ctx, FakeState};
    use std::time::Instant;

    fn spec() -> RouteSpec {
        RouteSpec::new("fd99::".parse().unwrap(), 64)
            .via("fd00::2".parse().unwrap())
            .dev(3)
            .metric(1024)
    }

    #[test]
    fn plans_add_with_delete_inverse_from_a_detector_finding() {
        let va = LinkState {
            ifindex: 3,
            name: "va".into(),
            admin_up: true,
            oper_up: true,
            mtu: 1500,
        };
        let mut d = RouteLost::new(vec![spec()], &[va]);
        let f = crate::faults::observe_net(&mut d, &NetEvent::RouteDeleted(spec()), Instant::now());
        let p = change(&RouteRestore::new(), &f[0], &ctx(&FakeState::default()));
        assert_eq!(p.remedy.as_str(), "route_restore");
        assert_eq!(p.apply, Action::AddRoute(spec()));
        assert_eq!(p.inverse, Action::DelRoute(spec()));
        assert_eq!(p.verify, Verify::RoutePresent(spec()));
        assert_eq!(p.before["present"], false);
        assert_eq!(p.after["present"], true);
        assert_eq!(p.subject.route.as_deref(), Some("fd99::/64"));
    }

    #[test]
    fn does_not_apply_elsewhere() {
        let base = Finding {
            fault: route_lost::FAULT,
            layer: 3,
            severity: Severity::Error,
            state: FaultState::Opened,
            subject: Subject::default(),
            evidence: Evidence::Json(json!({})),
            key: "route:x".into(),
            netns: None,
        };
        // no route in the evidence
        assert!(RouteRestore
            .plan(&base, &ctx(&FakeState::default()))
            .is_none());
        // garbage route
        let mut bad = base.clone();
        bad.evidence = Evidence::Json(json!({"route": {"dst": "nope"}}));
        assert!(RouteRestore
            .plan(&bad, &ctx(&FakeState::default()))
            .is_none());
        // another fault, even with a route
        let mut other = base.clone();
        other.fault = crate::faults::FaultId::LinkDown;
        other.evidence = Evidence::RouteLost(route_lost::Evidence {
            lost_ms: None,
            oif_admin_up: None,
            oif_oper_up: None,
            oif_up: None,
            route: spec(),
        });
        assert!(RouteRestore
            .plan(&other, &ctx(&FakeState::default()))
            .is_none());
    }
}
