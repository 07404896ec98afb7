//! `route_failover`: carries a prefix through a configured backup gateway.
//!
//! - `link_down` (after `link_up` on the ladder): the kernel drops a downed link's IPv4 routes
//!   without a word, so the routes to move come from the engine's baseline (`ctx.baseline`, with
//!   their output interface). Each baseline route of the link with a configured backup is added
//!   through the backup gateway, with the primary's metric plus `metric_offset`: when the link
//!   comes back, `route_restore` can re-add the primary next to it (no EEXIST) and the primary
//!   wins at once; the backup then goes when the incident clears (`UntilClear`). A link that
//!   lost its carrier keeps its routes (flagged linkdown, still used by the kernel): those are
//!   replaced in place by the backup (same metric) and put back exactly when the incident
//!   clears. Verified when the backup route is present and the kernel's lookup resolves
//!   through it over an up link.
//! - `retransmit_storm`: the route carrying the finding's destination (or, when the finding
//!   names none, each configured backup prefix) is replaced in place by the same route through
//!   the backup gateway (inverse: the old route exactly). It must help (`Effect::Clears`); it
//!   stays (`Permanent`): switching back on its own would bring the storm back.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::action::{Action, Verify};
use super::context::{PlanContext, Remedy};
use super::id::RemedyId;
use super::plan::{Effect, Lifetime, Plan, PlannedChange};
use super::routing::{self, Prefix};
use crate::faults::{link_down, retransmit_storm, FaultId, Finding};
use crate::netlink::RouteSpec;

pub const NAME: RemedyId = RemedyId::RouteFailover;

/// One backup nexthop: `{ prefix = "10.9.0.0/24", via = "10.77.131.2", dev = "vb" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// The destination (`10.9.0.0/24`, `fd00:9::/64` or `default`).
    pub prefix: Prefix,
    /// The backup gateway.
    pub via: IpAddr,
    /// The interface to reach it on; by default the up link whose connected route covers `via`.
    #[serde(default)]
    pub dev: Option<String>,
}

/// `[remedies.route_failover]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Backup nexthops per destination prefix. Empty (the default): the remedy never acts.
    pub backups: Vec<Backup>,
    /// Added to the primary route's metric for the backup route (`link_down`), so the primary,
    /// restored when its link comes back, coexists with the backup and is preferred. Default 10.
    pub metric_offset: u32,
    /// The longest a `link_down` failover stays if the link never comes back. Default 24 h.
    pub max_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backups: Vec::new(),
            metric_offset: 10,
            max_ms: 24 * 3600 * 1000,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RouteFailover {
    cfg: Config,
    own_netns: Option<u32>,
}

impl RouteFailover {
    pub fn new(cfg: Config, own_netns: Option<u32>) -> Self {
        RouteFailover { cfg, own_netns }
    }

    fn backup_for(&self, r: &RouteSpec) -> Option<&Backup> {
        self.cfg
            .backups
            .iter()
            .find(|b| b.prefix.matches(r) && b.via.is_ipv4() == r.dst.is_ipv4())
    }

    /// The up link (other than `avoid`) the backup gateway is reached on.
    fn nexthop(&self, b: &Backup, ctx: &PlanContext<'_>, avoid: Option<u32>) -> Option<u32> {
        let oif = match &b.dev {
            Some(dev) => ctx.links.iter().find(|l| &l.name == dev)?.ifindex,
            None => {
                let connected = routing::lookup(ctx.routes, ctx.links, b.via)?;
                connected.gateway.is_none().then_some(connected.oif)??
            }
        };
        (Some(oif) != avoid && routing::link_up(ctx.links, Some(oif))).then_some(oif)
    }

    fn plan_link_down(&self, f: &Finding, ctx: &PlanContext<'_>) -> Option<Plan> {
        let ifindex = f.subject.ifindex?;
        let primaries: Vec<(&RouteSpec, &Backup)> = ctx
            .baseline
            .iter()
            .filter(|r| r.oif == Some(ifindex) && r.is_main_unicast())
            .filter_map(|r| Some((r, self.backup_for(r)?)))
            .collect();
        if primaries.is_empty() {
            return None;
        }
        let (mut pairs, mut checks, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        let (mut targets, mut before, mut after) = (Vec::new(), Vec::new(), Vec::new());
        for (p, b) in primaries {
            let carried = ctx.routes.iter().find(|r| {
                r.same_destination(p)
                    && r.oif != Some(ifindex)
                    && routing::link_up(ctx.links, r.oif)
            });
            if let Some(c) = carried {
                skipped.push(format!("{p} is already carried by {}", c.key()));
                continue;
            }
            let Some(oif) = self.nexthop(b, ctx, Some(ifindex)) else {
                skipped.push(format!(
                    "backup {} for {p} is not reachable over an up link",
                    b.via
                ));
                continue;
            };
            // Carrier lost: the kernel keeps the route (linkdown) and still uses it, so it is
            // replaced in place (inverse: the primary back exactly). Flushed (admin down): the
            // backup is added next to where the primary will be restored.
            let present = ctx.routes.iter().find(|r| r.same_route(p));
            let s = match present {
                Some(cur) => {
                    let mut s = cur.clone().via(b.via).dev(oif);
                    s.pref_src = None;
                    s
                }
                None => {
                    let mut s = RouteSpec::new(p.dst, p.prefix_len).via(b.via).dev(oif);
                    s.table = p.table;
                    s.tos = p.tos;
                    let off = self.cfg.metric_offset;
                    let wanted = p.priority.unwrap_or(0).saturating_add(off);
                    s.metric(routing::free_metric(ctx.routes, p, wanted))
                }
            };
            checks.push(Verify::RoutePresent(s.clone()));
            checks.push(Verify::RouteVia {
                dst: routing::probe(&s),
                oif,
                gateway: Some(b.via),
            });
            targets.push(super::plan::route_target(p));
            let was = json!({"route": p.to_string(), "was": p.key(), "present": present.is_some()});
            before.push(was);
            after.push(json!({"route": p.to_string(), "via": b.via, "key": s.key()}));
            pairs.push(match present {
                Some(cur) => replace_pair(cur, &s),
                None => (Action::AddRoute(s.clone()), Action::DelRoute(s)),
            });
        }
        if pairs.is_empty() {
            return Some(Plan::Skip(skipped.join("; ")));
        }
        let (apply, inverse) = one_or_all(pairs);
        Some(Plan::Change(Box::new(PlannedChange {
            remedy: NAME,
            subject: f.subject.clone(),
            targets,
            apply,
            inverse,
            verify: Verify::All { checks },
            effect: Effect::InPlace,
            lifetime: Lifetime::UntilClear {
                max_ms: self.cfg.max_ms,
            },
            before: json!({"routes": before}),
            after: json!({"routes": after, "skipped": skipped}),
        })))
    }

    /// The route that carries `dest` now: the route for exactly that prefix, else the lookup.
    fn current<'a>(&self, dest: &Prefix, ctx: &PlanContext<'a>) -> Option<&'a RouteSpec> {
        let exact = ctx
            .routes
            .iter()
            .filter(|r| r.is_main_unicast() && dest.matches(r))
            .filter(|r| r.oif.is_none() || routing::link_up(ctx.links, r.oif))
            .min_by_key(|r| r.priority.unwrap_or(0));
        match (exact, dest) {
            (Some(r), _) => Some(r),
            (None, Prefix::Net { addr, .. }) => routing::lookup(ctx.routes, ctx.links, *addr),
            (None, Prefix::Default) => None,
        }
    }

    fn plan_storm(&self, f: &Finding, ctx: &PlanContext<'_>) -> Option<Plan> {
        if let Some(skip) = routing::foreign(f, self.own_netns) {
            return Some(skip);
        }
        let dests: Vec<Prefix> = match routing::destination(f) {
            Some(d) => vec![d],
            None => self.cfg.backups.iter().map(|b| b.prefix).collect(),
        };
        let (mut pairs, mut checks, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        let (mut targets, mut before, mut after) = (Vec::new(), Vec::new(), Vec::new());
        for d in dests {
            let Some(cur) = self.current(&d, ctx) else {
                continue;
            };
            let Some(b) = self.backup_for(cur) else {
                continue;
            };
            if cur.gateway == Some(b.via) || targets.contains(&super::plan::route_target(cur)) {
                skipped.push(format!("{cur} already goes through {}", b.via));
                continue;
            }
            let Some(oif) = self.nexthop(b, ctx, None) else {
                skipped.push(format!(
                    "backup {} for {cur} is not reachable over an up link",
                    b.via
                ));
                continue;
            };
            let mut to = cur.clone().via(b.via).dev(oif);
            if cur.oif != Some(oif) {
                to.pref_src = None;
            }
            checks.push(Verify::RoutePresent(to.clone()));
            checks.push(Verify::RouteAbsent(cur.clone()));
            targets.push(super::plan::route_target(cur));
            before.push(json!({"route": cur.to_string(), "key": cur.key()}));
            after.push(json!({"route": cur.to_string(), "key": to.key()}));
            pairs.push(replace_pair(cur, &to));
        }
        if pairs.is_empty() {
            return (!skipped.is_empty()).then(|| Plan::Skip(skipped.join("; ")));
        }
        let (apply, inverse) = one_or_all(pairs);
        Some(Plan::Change(Box::new(PlannedChange {
            remedy: NAME,
            subject: f.subject.clone(),
            targets,
            apply,
            inverse,
            verify: Verify::All { checks },
            effect: Effect::Clears,
            lifetime: Lifetime::Permanent,
            before: json!({"routes": before}),
            after: json!({"routes": after}),
        })))
    }
}

/// `from` → `to` and back.
pub fn replace_pair(from: &RouteSpec, to: &RouteSpec) -> (Action, Action) {
    (
        Action::ReplaceRoute {
            from: from.clone(),
            to: to.clone(),
        },
        Action::ReplaceRoute {
            from: to.clone(),
            to: from.clone(),
        },
    )
}

/// A single pair as is, several as one [`Action::All`].
pub fn one_or_all(mut pairs: Vec<(Action, Action)>) -> (Action, Action) {
    if pairs.len() == 1 {
        return pairs.remove(0);
    }
    Action::all(pairs)
}

impl Remedy for RouteFailover {
    fn name(&self) -> RemedyId {
        NAME
    }

    fn faults(&self) -> &'static [FaultId] {
        &[link_down::FAULT, retransmit_storm::FAULT]
    }

    fn plan(&self, f: &Finding, ctx: &PlanContext<'_>) -> Option<Plan> {
        if self.cfg.backups.is_empty() {
            return None;
        }
        match f.fault {
            link_down::FAULT => self.plan_link_down(f, ctx),
            retransmit_storm::FAULT => self.plan_storm(f, ctx),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "route_failover_tests.rs"]
mod tests;
