//! Routes that went with an address: when a process removes an address (a DHCP client's
//! `ip addr flush` on a lease change), the kernel drops the IPv4 routes that needed it without
//! any RTM_DELROUTE. The engine re-reads that interface's routes and reports each protected
//! route that vanished as deleted by the address's remover, so it is a deliberate change
//! (`route_lost` warning, not restored), and stays one: the fault stays open with that sender,
//! so a later link bounce, whose reconcile finds the route missing again, restores nothing.
use std::collections::HashSet;

use super::core::Engine;
use crate::netlink::{Change, NetEvent, RouteSpec, Who};

/// The interface and the sender (with what it did as `cause`) of an address removal made by
/// a process; `None` for the kernel's own removals (IPv6 addresses on link down...) and
/// guardian's.
pub(super) fn removal_by_process(ev: &NetEvent) -> Option<(u32, Who)> {
    let NetEvent::AddressRemoved {
        ifindex,
        address,
        prefix_len,
        by: Some(who),
    } = ev
    else {
        return None;
    };
    if !who.is_process() {
        return None;
    }
    let by = Who {
        cause: Some(format!("removed address {address}/{prefix_len}")),
        ..who.clone()
    };
    Some((*ifindex, by))
}

/// The protected routes of `ifindex` missing from `present`, as deleted by `by`.
fn vanished(
    baseline: &[RouteSpec],
    present: &[RouteSpec],
    ifindex: u32,
    by: &Who,
) -> Vec<NetEvent> {
    let keys: HashSet<String> = present.iter().map(RouteSpec::key).collect();
    baseline
        .iter()
        .filter(|b| b.oif == Some(ifindex) && !keys.contains(&b.key()))
        .map(|b| NetEvent::RouteDeleted(Change::by(b.clone(), Some(by.clone()))))
        .collect()
}

impl Engine {
    /// After a process removed an address of `ifindex`: the protected routes of that interface
    /// that are gone, as `RouteDeleted` by that process.
    pub(super) async fn routes_gone_with_address(&self, ifindex: u32, by: Who) -> Vec<NetEvent> {
        if !self.baseline.iter().any(|b| b.oif == Some(ifindex)) {
            return vec![];
        }
        match self.kernel.nl.dump_routes().await {
            Ok(present) => vanished(&self.baseline, &present, ifindex, &by),
            Err(e) => {
                tracing::warn!("cannot re-read routes after an address removal: {e}");
                vec![]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::route_lost::RouteLost;
    use crate::faults::{Detector, Evidence, Input};
    use crate::model::{FaultState, Severity};
    use crate::netlink::LinkState;
    use std::time::Instant;

    fn default_via(gw: &str) -> RouteSpec {
        RouteSpec::new("0.0.0.0".parse().unwrap(), 0)
            .via(gw.parse().unwrap())
            .dev(7)
    }

    fn removed(portid: u32) -> NetEvent {
        NetEvent::AddressRemoved {
            ifindex: 7,
            address: "10.77.67.50".parse().unwrap(),
            prefix_len: 24,
            by: Some(Who {
                pid: Some(4242),
                exited: true,
                ..Who::port(portid)
            }),
        }
    }

    #[test]
    fn only_a_process_removal_is_attributed_and_it_says_which_address() {
        let (ifindex, by) = removal_by_process(&removed(4242)).unwrap();
        assert_eq!(ifindex, 7);
        assert_eq!(
            by.to_string(),
            "pid 4242 (exited), which removed address 10.77.67.50/24"
        );
        // the kernel's own removals (IPv6 addresses on link down) are not a decision
        let kernel = NetEvent::AddressRemoved {
            ifindex: 7,
            address: "fd00::5".parse().unwrap(),
            prefix_len: 64,
            by: Some(Who::port(0)),
        };
        assert!(removal_by_process(&kernel).is_none());
        let guardian = NetEvent::AddressRemoved {
            ifindex: 7,
            address: "fd00::5".parse().unwrap(),
            prefix_len: 64,
            by: Some(Who {
                guardian: true,
                ..Who::port(99)
            }),
        };
        assert!(removal_by_process(&guardian).is_none());
        assert!(
            removal_by_process(&NetEvent::RouteDeleted(default_via("10.0.0.1").into())).is_none()
        );
    }

    #[test]
    fn the_missing_protected_routes_of_that_interface_are_deleted_by_the_remover() {
        let a = default_via("10.77.67.1");
        let other_if = RouteSpec::new("10.9.0.0".parse().unwrap(), 16)
            .via("10.1.0.1".parse().unwrap())
            .dev(3);
        let kept = RouteSpec::new("10.8.0.0".parse().unwrap(), 16)
            .via("10.77.67.9".parse().unwrap())
            .dev(7);
        let baseline = [a.clone(), other_if, kept.clone()];
        // the kernel's table after the flush: the lease's new gateway, and one route still there
        let present = [default_via("10.77.67.3"), kept];
        let (_, by) = removal_by_process(&removed(4242)).unwrap();
        let got = vanished(&baseline, &present, 7, &by);
        assert_eq!(got, [NetEvent::RouteDeleted(Change::by(a, Some(by)))]);
    }

    /// The whole decision: the route that went with the address is a deliberate change
    /// (warning, not restored), and a later link bounce (the link's reconcile reports it
    /// missing again, as flushed by the kernel) does not turn it into a fault to heal.
    #[test]
    fn a_later_link_bounce_does_not_make_the_route_restorable() {
        let a = default_via("10.77.67.1");
        let link = |up: bool| LinkState {
            ifindex: 7,
            name: "eth0".into(),
            admin_up: up,
            oper_up: up,
            mtu: 1500,
        };
        let mut d = RouteLost::new(vec![a.clone()], &[link(true)]);
        let now = Instant::now();
        let mut feed = |ev: NetEvent| d.observe(&Input::Net(ev), now);
        let (_, by) = removal_by_process(&removed(4242)).unwrap();
        let lost = vanished(std::slice::from_ref(&a), &[], 7, &by).remove(0);
        let opened = feed(lost);
        assert_eq!(opened.len(), 1);
        assert_eq!(opened[0].state, FaultState::Opened);
        assert_eq!(opened[0].severity, Severity::Warning);
        let restorable = |f: &crate::faults::Finding| {
            let Evidence::RouteLost(ev) = &f.evidence else {
                panic!("not route_lost evidence")
            };
            crate::faults::route_lost::restorable(&ev.route, ev.by.as_ref())
        };
        assert!(!restorable(&opened[0]));
        assert_eq!(
            opened[0].evidence.json()["by_text"],
            "pid 4242 (exited), which removed address 10.77.67.50/24"
        );
        // the bounce: down, up, and the reconcile's "flushed while its link was down"
        assert!(feed(NetEvent::Link(link(false).into())).is_empty());
        let up = feed(NetEvent::Link(link(true).into()));
        let flushed = Change::by(
            a.clone(),
            Some(Who::kernel("flushed while its link was down")),
        );
        assert!(feed(NetEvent::RouteDeleted(flushed)).is_empty());
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].state, FaultState::Updated);
        assert!(!restorable(&up[0]), "{:?}", up[0]);
    }
}
