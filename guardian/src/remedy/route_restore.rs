//! `route_restore`: adds a lost baseline route back exactly as it was (inverse: delete it).
//!
//! Reads the route from the `route_lost` finding's evidence (`route`, a serialized
//! [`RouteSpec`]), so a journaled or replayed finding plans the same change. The route is
//! added back in its own table with its own shape: every nexthop and weight of a multipath
//! route, the same `nhid` for a route through a nexthop object (whose absence the add
//! precondition reports: guardian never invents a gateway for it).
//!
//! Only a configured route (protocol `boot`, `static`, `unspec`) that no other process
//! deleted is restored (see [`route_lost::restorable`]): a route of a control plane (BIRD,
//! FRR, a DHCP client, keepalived...) is its owner's to withdraw, and a route an operator or a
//! program deleted on purpose stays deleted until it is added back or the loss is accepted
//! (`guardian baseline accept PREFIX`). Both are skipped with the owner and the sender named.
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
        if !route_lost::restorable(&spec, ev.by.as_ref()) {
            return Some(Plan::Skip(not_restored(&spec, ev)));
        }
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

/// Why a lost route is left to its owner.
fn not_restored(spec: &RouteSpec, ev: &route_lost::Evidence) -> String {
    let by = ev.by_text.as_deref().unwrap_or("an unknown sender");
    if ev.owner == crate::netlink::protos::Owner::ControlPlane {
        return format!(
            "route {spec} belongs to a control plane (proto {}); deleted by {by}: its owner \
             decides, guardian does not restore it",
            ev.protocol
        );
    }
    format!(
        "route {spec} (proto {}) was deleted by {by}, a deliberate change: guardian does not \
         undo it; add it back, or accept its loss with `guardian baseline accept {spec}`",
        ev.protocol
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::route_lost::RouteLost;
    use crate::model::{FaultState, Severity, Subject};
    use crate::netlink::{Change, LinkState, NetEvent, Who};
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
        let f = crate::faults::observe_net(
            &mut d,
            &NetEvent::RouteDeleted(Change::by(spec(), Some(Who::port(0)))),
            Instant::now(),
        );
        let p = change(&RouteRestore::new(), &f[0], &ctx(&FakeState::default()));
        assert_eq!(p.remedy.as_str(), "route_restore");
        assert_eq!(p.apply, Action::AddRoute(spec()));
        assert_eq!(p.inverse, Action::DelRoute(spec()));
        assert_eq!(p.verify, Verify::RoutePresent(spec()));
        assert_eq!(p.before["present"], false);
        assert_eq!(p.after["present"], true);
        assert_eq!(p.subject.route.as_deref(), Some("fd99::/64"));
    }

    fn va() -> LinkState {
        LinkState {
            ifindex: 3,
            name: "va".into(),
            admin_up: true,
            oper_up: true,
            mtu: 1500,
        }
    }

    /// The plan for `route` lost through a deletion by `by`.
    fn plan_for(route: RouteSpec, by: Option<Who>) -> Plan {
        let mut d = RouteLost::new(vec![route.clone()], &[va()]);
        let ev = NetEvent::RouteDeleted(Change::by(route, by));
        let f = crate::faults::observe_net(&mut d, &ev, Instant::now());
        RouteRestore
            .plan(&f[0], &ctx(&FakeState::default()))
            .expect("route_restore has something to say")
    }

    #[test]
    fn only_configured_routes_the_kernel_dropped_are_restored() {
        let bird = Who {
            portid: 812,
            pid: Some(812),
            comm: Some("bird".into()),
            ..Who::default()
        };
        let ip = Who {
            portid: 4242,
            pid: Some(4242),
            exited: true,
            ..Who::default()
        };
        let me = Who {
            guardian: true,
            ..bird.clone()
        };
        let mut birds = spec();
        birds.protocol = 12;
        let mut dhcp = spec();
        dhcp.protocol = 16;
        let restored = |p: &Plan| matches!(p, Plan::Change(_));
        let skip = |p: Plan| match p {
            Plan::Skip(s) => s,
            Plan::Change(c) => panic!("restored: {:?}", c.apply),
        };
        // configured route: the kernel, guardian itself or an unknown sender -> restored
        assert!(restored(&plan_for(spec(), Some(Who::kernel("link down")))));
        assert!(restored(&plan_for(spec(), Some(me.clone()))));
        assert!(restored(&plan_for(spec(), None)));
        // configured route deleted by a process -> left deleted, with the accept path
        let s = skip(plan_for(spec(), Some(ip)));
        assert_eq!(
            s,
            "route fd99::/64 (proto boot) was deleted by pid 4242 (exited), a deliberate \
             change: guardian does not undo it; add it back, or accept its loss with \
             `guardian baseline accept fd99::/64`"
        );
        // a control plane's route: never, whoever deleted it
        let s = skip(plan_for(birds, Some(bird)));
        assert!(
            s.contains("control plane (proto bird); deleted by pid 812 (bird)"),
            "{s}"
        );
        let s = skip(plan_for(dhcp, Some(Who::port(0))));
        assert!(s.contains("(proto dhcp); deleted by the kernel"), "{s}");
    }

    #[test]
    fn a_multipath_route_of_table_100_is_planned_exactly() {
        let hop = |gw: &str, weight| crate::netlink::NextHop {
            gateway: Some(gw.parse().unwrap()),
            oif: 3,
            weight,
            onlink: false,
        };
        let mut ecmp = RouteSpec::new("10.9.0.0".parse().unwrap(), 24)
            .multipath(vec![hop("10.0.0.2", 1), hop("10.0.0.3", 3)])
            .metric(7);
        ecmp.table = 100;
        ecmp.protocol = 4;
        let Plan::Change(c) = plan_for(ecmp.clone(), Some(Who::kernel("link down"))) else {
            panic!("a static ECMP route the kernel dropped is restored");
        };
        assert_eq!(c.apply, Action::AddRoute(ecmp.clone()));
        assert_eq!(c.verify, Verify::RoutePresent(ecmp));
        assert_eq!(
            c.apply.to_string(),
            "route add 10.9.0.0/24 metric 7 nexthop via 10.0.0.2 oif 3 weight 1 \
             nexthop via 10.0.0.3 oif 3 weight 3 table 100"
        );
        let nh = RouteSpec::new("10.9.1.0".parse().unwrap(), 24)
            .nhid(10)
            .dev(3);
        let Plan::Change(c) = plan_for(nh.clone(), None) else {
            panic!("a nexthop-object route is planned with its id");
        };
        assert_eq!(c.apply, Action::AddRoute(nh));
        assert_eq!(c.apply.to_string(), "route add 10.9.1.0/24 oif 3 nhid 10");
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
            accepted: false,
            by: None,
            by_text: None,
            lost_ms: None,
            oif_admin_up: None,
            oif_oper_up: None,
            oif_up: None,
            owner: crate::netlink::protos::Owner::Configured,
            protocol: "boot".into(),
            route: spec(),
        });
        assert!(RouteRestore
            .plan(&other, &ctx(&FakeState::default()))
            .is_none());
    }
}
