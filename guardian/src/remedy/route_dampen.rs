//! `route_dampen` (`link_flapping`): takes traffic off a flapping link for a hold time.
//!
//! How: for each configured route of the link (baseline or present now), the two halves of its
//! prefix (`10.9.0.0/25` and `10.9.0.128/25`; `0.0.0.0/1` and `128.0.0.0/1` for a default
//! route) are added through the best alternative route — a route to the same prefix, or one
//! covering it, over another link that is up. Longest prefix wins regardless of metric, so the
//! halves carry the traffic while the link's own routes stay exactly as they were.
//!
//! Why not delete the link's routes or raise their metric: both remove a baseline route, which
//! `route_lost` reports and `route_restore` puts back at once, and the kernel re-flushes a
//! flapping link's IPv4 routes on every admin down anyway (the engine restores them on every
//! up), so the dampening would be undone within one flap. Adding more specific routes touches
//! nothing the other remedies guard; the inverse (delete the halves) leaves the link's routes
//! exactly as they were, and when the link is healthy they carry traffic again at once.
//!
//! A route with no alternative is skipped with the reason (moving a prefix off its only link is
//! an outage, not a remedy), as is a host route (it has no halves) and one that is not in use
//! (an alternative to the same prefix already has a lower metric). Lifetime `Ttl{hold}`: `hold_ms`
//! doubled per recurrence (`ctx.recurrences`), at most `max_hold_ms`.
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::action::{Action, Verify};
use super::context::{PlanContext, Remedy};
use super::id::RemedyId;
use super::plan::{Effect, Lifetime, Plan, PlannedChange};
use super::route_failover::one_or_all;
use super::routing;
use crate::faults::{link_flapping, FaultId, Finding};
use crate::netlink::RouteSpec;

pub const NAME: RemedyId = RemedyId::RouteDampen;

/// `[remedies.route_dampen]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Hold time of the first dampening of a link, milliseconds. Default 30 s.
    pub hold_ms: u64,
    /// The hold doubles per recurrence up to this, milliseconds. Default 10 min.
    pub max_hold_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hold_ms: 30_000,
            max_hold_ms: 600_000,
        }
    }
}

impl Config {
    /// `hold_ms` doubled `recurrences` times, capped at `max_hold_ms`.
    pub fn hold(&self, recurrences: u32) -> u64 {
        let factor = 1u64.checked_shl(recurrences.min(63)).unwrap_or(u64::MAX);
        self.hold_ms.saturating_mul(factor).min(self.max_hold_ms)
    }
}

#[derive(Debug, Clone, Default)]
pub struct RouteDampen {
    cfg: Config,
}

impl RouteDampen {
    pub fn new(cfg: Config) -> Self {
        RouteDampen { cfg }
    }
}

/// The routes guardian protects (see [`super::routing::protected`]) that go out of `ifindex`,
/// from the baseline and the current table, once each.
fn routes_of<'a>(ctx: &PlanContext<'a>, ifindex: u32) -> Vec<&'a RouteSpec> {
    let mut out: Vec<&RouteSpec> = Vec::new();
    for r in ctx.baseline.iter().chain(ctx.routes) {
        if r.oif == Some(ifindex)
            && super::routing::protected(r)
            && !out.iter().any(|o| o.same_route(r))
        {
            out.push(r);
        }
    }
    out
}

/// The route traffic for `r` should take instead: same prefix or covering, over another up
/// link; longest prefix first, then lowest metric.
fn alternative<'a>(ctx: &PlanContext<'a>, r: &RouteSpec, ifindex: u32) -> Option<&'a RouteSpec> {
    ctx.routes
        .iter()
        .filter(|a| a.is_main_unicast() && a.table == r.table && a.tos == r.tos)
        .filter(|a| a.prefix_len <= r.prefix_len && routing::covers(a, r.dst))
        .filter(|a| a.oif != Some(ifindex) && routing::link_up(ctx.links, a.oif))
        .min_by_key(|a| (std::cmp::Reverse(a.prefix_len), a.priority.unwrap_or(0)))
}

impl Remedy for RouteDampen {
    fn name(&self) -> RemedyId {
        NAME
    }

    fn faults(&self) -> &'static [FaultId] {
        &[link_flapping::FAULT]
    }

    fn plan(&self, f: &Finding, ctx: &PlanContext<'_>) -> Option<Plan> {
        if f.fault != link_flapping::FAULT {
            return None;
        }
        let ifindex = f.subject.ifindex?;
        let routes = routes_of(ctx, ifindex);
        if routes.is_empty() {
            return None;
        }
        let (mut pairs, mut checks, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        let (mut targets, mut before, mut after) = (Vec::new(), Vec::new(), Vec::new());
        for r in routes {
            if r.prefix_len >= routing::max_len(r.dst) {
                skipped.push(format!(
                    "{r} is a host route: nothing more specific can carry it"
                ));
                continue;
            }
            let Some(alt) = alternative(ctx, r, ifindex) else {
                skipped.push(format!("{r} has no alternative route over another up link"));
                continue;
            };
            if alt.same_destination(r) && alt.priority.unwrap_or(0) < r.priority.unwrap_or(0) {
                skipped.push(format!("{r} is not in use ({} is preferred)", alt.key()));
                continue;
            }
            let len = r.prefix_len + 1;
            let mut halves = Vec::new();
            for dst in [r.dst, routing::upper_half(r.dst, r.prefix_len)] {
                let mut h = RouteSpec::new(dst, len);
                h.table = r.table;
                h.tos = r.tos;
                h.gateway = alt.gateway;
                h.oif = alt.oif;
                let m = routing::free_metric(ctx.routes, &h, alt.priority.unwrap_or(0));
                halves.push(h.metric(m));
            }
            checks.extend(halves.iter().cloned().map(Verify::RoutePresent));
            checks.push(Verify::RouteVia {
                dst: routing::probe(r),
                oif: alt.oif?,
                gateway: alt.gateway,
            });
            targets.push(super::plan::route_target(r));
            before.push(json!({"route": r.to_string(), "key": r.key()}));
            after.push(json!({
                "route": r.to_string(),
                "via": alt.key(),
                "halves": halves.iter().map(RouteSpec::key).collect::<Vec<_>>(),
            }));
            pairs.extend(
                halves
                    .into_iter()
                    .map(|h| (Action::AddRoute(h.clone()), Action::DelRoute(h))),
            );
        }
        if pairs.is_empty() {
            return Some(Plan::Skip(skipped.join("; ")));
        }
        let hold_ms = self.cfg.hold(ctx.recurrences);
        let (apply, inverse) = one_or_all(pairs);
        Some(Plan::Change(Box::new(PlannedChange {
            remedy: NAME,
            subject: f.subject.clone(),
            targets,
            apply,
            inverse,
            verify: Verify::All { checks },
            effect: Effect::InPlace,
            lifetime: Lifetime::Ttl { ms: hold_ms },
            before: json!({"routes": before}),
            after: json!({"routes": after, "hold_ms": hold_ms, "skipped": skipped}),
        })))
    }
}

#[cfg(test)]
#[path = "route_dampen_tests.rs"]
mod tests;
