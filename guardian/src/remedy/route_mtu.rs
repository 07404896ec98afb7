//! `route_mtu` (`mtu_blackhole`): a route for the stuck destination with a locked, lower MTU.
//!
//! The path drops packets above some size and the ICMP that would lower the path MTU never
//! arrives; a locked route MTU makes TCP send segments that fit without it. The route is the
//! destination (`/32`, `/128`, or `prefix_len_*`) through the same gateway and interface the
//! destination is routed through now, with `mtu lock N` (N: `mtu_ipv4`, default 1400, or
//! `mtu_ipv6`, default 1280 — the IPv6 minimum, always deliverable). When the current route is
//! already exactly that prefix, it is replaced in place with the metric added (inverse: the old
//! route exactly); otherwise the new route is added (inverse: delete it). Verified when the route
//! is present with the locked MTU; it must help (`Effect::Clears`: the stuck flows make progress).
//!
//! Lifetime `Permanent` by default: guardian cannot observe the blackhole being fixed (the ICMP
//! stays filtered), so reverting on a timer would silently re-create it, while a slightly lower
//! MTU to one destination costs a few per cent of throughput. `ttl_ms` makes it a long TTL.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::action::{Action, Verify};
use super::context::{PlanContext, Remedy};
use super::id::RemedyId;
use super::plan::{Effect, Lifetime, Plan, PlannedChange};
use super::route_failover::replace_pair;
use super::routing;
use crate::faults::{mtu_blackhole, FaultId, Finding};
use crate::netlink::RouteSpec;

pub const NAME: RemedyId = RemedyId::RouteMtu;

/// `[remedies.route_mtu]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Locked MTU for IPv4 destinations. Default 1400 (below common tunnel overheads).
    pub mtu_ipv4: u32,
    /// Locked MTU for IPv6 destinations. Default 1280 (the IPv6 minimum).
    pub mtu_ipv6: u32,
    /// Prefix length of the route for an IPv4 destination. Default 32 (that host only).
    pub prefix_len_ipv4: u8,
    /// Prefix length of the route for an IPv6 destination. Default 128.
    pub prefix_len_ipv6: u8,
    /// 0 (default): the route stays until an operator rolls it back; else it expires after this.
    pub ttl_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mtu_ipv4: 1400,
            mtu_ipv6: 1280,
            prefix_len_ipv4: 32,
            prefix_len_ipv6: 128,
            ttl_ms: 0,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RouteMtu {
    cfg: Config,
    own_netns: Option<u32>,
}

impl RouteMtu {
    pub fn new(cfg: Config, own_netns: Option<u32>) -> Self {
        RouteMtu { cfg, own_netns }
    }
}

impl Remedy for RouteMtu {
    fn name(&self) -> RemedyId {
        NAME
    }

    fn faults(&self) -> &'static [FaultId] {
        &[mtu_blackhole::FAULT]
    }

    fn plan(&self, f: &Finding, ctx: &PlanContext<'_>) -> Option<Plan> {
        if f.fault != mtu_blackhole::FAULT {
            return None;
        }
        let addr: IpAddr = f.subject.addr.as_deref()?.parse().ok()?;
        if let Some(skip) = routing::foreign(f, self.own_netns) {
            return Some(skip);
        }
        let Some(cur) = routing::lookup(ctx.routes, ctx.links, addr) else {
            return Some(Plan::Skip(format!("no route to {addr}")));
        };
        let (mtu, len) = if addr.is_ipv4() {
            (self.cfg.mtu_ipv4, self.cfg.prefix_len_ipv4.min(32))
        } else {
            (self.cfg.mtu_ipv6, self.cfg.prefix_len_ipv6.min(128))
        };
        let link_mtu = ctx
            .links
            .iter()
            .find(|l| Some(l.ifindex) == cur.oif)
            .map(|l| l.mtu);
        let path_mtu = cur.metrics.mtu.into_iter().chain(link_mtu).min();
        if path_mtu.is_some_and(|p| p <= mtu) {
            return Some(Plan::Skip(format!(
                "the path MTU to {addr} is already {} (route {}), not above {mtu}",
                path_mtu.unwrap_or_default(),
                cur.key()
            )));
        }
        let dst = routing::network(addr, len);
        let (apply, inverse, spec) = if cur.dst == dst && cur.prefix_len == len {
            let to = cur.clone().mtu_lock(mtu);
            let (a, i) = replace_pair(cur, &to);
            (a, i, to)
        } else {
            let mut s = RouteSpec::new(dst, len).mtu_lock(mtu);
            s.table = cur.table;
            s.gateway = cur.gateway;
            s.oif = cur.oif;
            s.pref_src = cur.pref_src;
            s.onlink = cur.onlink;
            s = s.metric(cur.priority.unwrap_or(0));
            (Action::AddRoute(s.clone()), Action::DelRoute(s.clone()), s)
        };
        let lifetime = match self.cfg.ttl_ms {
            0 => Lifetime::Permanent,
            ms => Lifetime::Ttl { ms },
        };
        Some(Plan::Change(Box::new(PlannedChange {
            remedy: NAME,
            subject: f.subject.clone(),
            targets: vec![super::plan::route_target(&spec)],
            apply,
            inverse,
            verify: Verify::RoutePresent(spec.clone()),
            effect: Effect::Clears,
            lifetime,
            before: json!({"route": spec.to_string(), "via": cur.key(), "mtu": path_mtu}),
            after: json!({"route": spec.to_string(), "key": spec.key(), "mtu": mtu, "mtu_lock": true}),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::LinkState;
    use crate::remedy::routing::fixtures::*;
    use crate::remedy::testing::{change, FakeState};

    const OWN: u32 = 4026531840;

    fn ctx<'a>(
        s: &'a FakeState,
        links: &'a [LinkState],
        routes: &'a [RouteSpec],
    ) -> PlanContext<'a> {
        PlanContext {
            links,
            routes,
            baseline: &[],
            state: s,
            recurrences: 0,
        }
    }

    fn net() -> RouteSpec {
        RouteSpec::new(ip("10.77.135.0"), 24)
            .via(ip("10.77.134.2"))
            .dev(3)
    }

    #[test]
    fn adds_a_host_route_with_a_locked_mtu_through_the_same_nexthop() {
        let s = FakeState::default();
        let l = [link(3, "va", true)];
        let routes = [connected("10.77.134.0", 24, 3), net()];
        let f = to_addr("mtu_blackhole", Some(OWN), "10.77.135.2");
        let r = RouteMtu::new(Config::default(), Some(OWN));
        let p = change(&r, &f, &ctx(&s, &l, &routes));
        let want = RouteSpec::new(ip("10.77.135.2"), 32)
            .via(ip("10.77.134.2"))
            .dev(3)
            .mtu_lock(1400);
        assert_eq!(p.apply, Action::AddRoute(want.clone()));
        assert_eq!(p.inverse, Action::DelRoute(want.clone()));
        assert_eq!(p.verify, Verify::RoutePresent(want));
        assert_eq!(p.targets, ["route:10.77.135.2/32"]);
        assert_eq!(p.effect, Effect::Clears);
        assert_eq!(p.lifetime, Lifetime::Permanent);
        assert_eq!(p.before["mtu"], 1500);
        assert_eq!(p.after["mtu"], 1400);
        // a configured prefix that is exactly the current route: replaced in place, and back
        let cfg: Config =
            toml::from_str("mtu_ipv4 = 1280\nprefix_len_ipv4 = 24\nttl_ms = 60000").unwrap();
        let p = change(&RouteMtu::new(cfg, Some(OWN)), &f, &ctx(&s, &l, &routes));
        let to = net().mtu_lock(1280);
        assert_eq!(
            p.apply,
            Action::ReplaceRoute {
                from: net(),
                to: to.clone()
            }
        );
        assert_eq!(
            p.inverse,
            Action::ReplaceRoute {
                from: to.clone(),
                to: net()
            }
        );
        assert_eq!(p.verify, Verify::RoutePresent(to));
        assert_eq!(p.lifetime, Lifetime::Ttl { ms: 60_000 });
    }

    #[test]
    fn table_of_skips_and_non_plans() {
        let s = FakeState::default();
        let l = [link(3, "va", true)];
        let routes = [connected("10.77.134.0", 24, 3), net()];
        let r = RouteMtu::new(Config::default(), Some(OWN));
        let skip = |f: &Finding, routes: &[RouteSpec], l: &[LinkState]| match r
            .plan(f, &ctx(&s, l, routes))
        {
            Some(Plan::Skip(why)) => why,
            other => panic!("{other:?}"),
        };
        let f = to_addr("mtu_blackhole", Some(OWN), "10.77.135.2");
        assert!(skip(&f, &[], &l).contains("no route"));
        let small = [LinkState {
            mtu: 1280,
            ..link(3, "va", true)
        }];
        assert!(skip(&f, &routes, &small).contains("already 1280"));
        let locked = [net().mtu_lock(1300)];
        assert!(skip(&f, &locked, &l).contains("already 1300"));
        let foreign = to_addr("mtu_blackhole", Some(9), "10.77.135.2");
        assert!(skip(&foreign, &routes, &l).contains("namespace 9"));
        // no address, or another fault: not ours
        let mut none = f.clone();
        none.subject.addr = None;
        assert_eq!(r.plan(&none, &ctx(&s, &l, &routes)), None);
        let mut other = f.clone();
        other.fault = crate::faults::FaultId::RetransmitStorm;
        assert_eq!(r.plan(&other, &ctx(&s, &l, &routes)), None);
        // IPv6: 1280 through the v6 route
        let l6 = [link(3, "va", true)];
        let v6 = [RouteSpec::new(ip("fd00:9::"), 64).via(ip("fd00::2")).dev(3)];
        let f6 = to_addr("mtu_blackhole", Some(OWN), "fd00:9::7");
        let p = change(&r, &f6, &ctx(&s, &l6, &v6));
        assert_eq!(p.targets, ["route:fd00:9::7/128"]);
        assert_eq!(p.after["mtu"], 1280);
    }
}
