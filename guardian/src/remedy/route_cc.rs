//! `route_cc` (`retransmit_storm`, after `route_failover`): a congestion control algorithm
//! (RTAX_CC_ALGO, default `bbr`) for the route to the storm's destination — loss-based control
//! collapses on a lossy path, BBR keeps its rate.
//!
//! The destination is the finding's (`subject.route` or `subject.addr`) or, when the
//! finding names none (the detector judges a whole namespace), each of the configured
//! `prefixes`. A route for exactly the prefix is replaced in place with the metric added
//! (inverse: the old route exactly); otherwise a route for the prefix is added through the
//! nexthop the destination is routed through now (inverse: delete it). Verified when the route is
//! present with the algorithm; it must help (`Effect::Clears`). New connections pick the route's
//! algorithm when they connect; established ones keep theirs.
//!
//! Skipped with the reason when the algorithm is not in `tcp_available_congestion_control`:
//! loading a kernel module is a host-wide change no remedy makes.
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::action::{Action, Verify};
use super::context::{PlanContext, Remedy};
use super::id::RemedyId;
use super::plan::{Effect, Lifetime, Plan, PlannedChange};
use super::route_failover::{one_or_all, replace_pair};
use super::routing::{self, Prefix};
use crate::faults::{retransmit_storm, FaultId, Finding};
use crate::netlink::RouteSpec;

pub const NAME: RemedyId = RemedyId::RouteCc;
const AVAILABLE: &str = "net.ipv4.tcp_available_congestion_control";

/// `[remedies.route_cc]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The congestion control algorithm to set. Default `bbr`.
    pub algo: String,
    /// Destinations to act on when the finding names none (`["10.9.0.0/24"]`). Default none.
    pub prefixes: Vec<Prefix>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            algo: "bbr".into(),
            prefixes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RouteCc {
    cfg: Config,
    own_netns: Option<u32>,
}

impl RouteCc {
    pub fn new(cfg: Config, own_netns: Option<u32>) -> Self {
        RouteCc { cfg, own_netns }
    }

    /// (from, to) for one destination, or why not.
    fn one(
        &self,
        d: &Prefix,
        ctx: &PlanContext<'_>,
    ) -> Result<(Option<RouteSpec>, RouteSpec), String> {
        let algo = self.cfg.algo.as_str();
        let exact = ctx
            .routes
            .iter()
            .filter(|r| r.is_main_unicast() && d.matches(r))
            .filter(|r| r.oif.is_none() || routing::link_up(ctx.links, r.oif))
            .min_by_key(|r| r.priority.unwrap_or(0));
        let already = |r: &RouteSpec| r.metrics.cc_algo.as_deref() == Some(algo);
        if let Some(r) = exact {
            if already(r) {
                return Err(format!("{} already uses {algo}", r.key()));
            }
            return Ok((Some(r.clone()), r.clone().congctl(algo)));
        }
        let Prefix::Net { addr, len } = *d else {
            return Err("no default route".into());
        };
        let cur = routing::lookup(ctx.routes, ctx.links, addr).ok_or(format!("no route to {d}"))?;
        if already(cur) {
            return Err(format!("{} already uses {algo}", cur.key()));
        }
        let mut s = RouteSpec::new(addr, len).congctl(algo);
        s.table = cur.table;
        s.gateway = cur.gateway;
        s.oif = cur.oif;
        s.pref_src = cur.pref_src;
        s.onlink = cur.onlink;
        s.metrics.mtu = cur.metrics.mtu;
        s.metrics.mtu_lock = cur.metrics.mtu_lock;
        Ok((None, s.metric(cur.priority.unwrap_or(0))))
    }
}

impl Remedy for RouteCc {
    fn name(&self) -> RemedyId {
        NAME
    }

    fn faults(&self) -> &'static [FaultId] {
        &[retransmit_storm::FAULT]
    }

    fn plan(&self, f: &Finding, ctx: &PlanContext<'_>) -> Option<Plan> {
        if f.fault != retransmit_storm::FAULT {
            return None;
        }
        if let Some(skip) = routing::foreign(f, self.own_netns) {
            return Some(skip);
        }
        let algo = &self.cfg.algo;
        let Some(avail) = ctx.state.sysctl(f.netns, AVAILABLE) else {
            return Some(Plan::Skip(format!("cannot read {AVAILABLE}")));
        };
        if !avail.split_whitespace().any(|a| a == algo) {
            return Some(Plan::Skip(format!(
                "congestion control {algo} is not available (available: {avail}); guardian \
                 loads no kernel modules"
            )));
        }
        let dests =
            match routing::destination(f) {
                Some(d) => vec![d],
                None if self.cfg.prefixes.is_empty() => return Some(Plan::Skip(
                    "the finding names no destination and [remedies.route_cc] prefixes is empty"
                        .into(),
                )),
                None => self.cfg.prefixes.clone(),
            };
        let (mut pairs, mut checks, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        let (mut targets, mut before, mut after) = (Vec::new(), Vec::new(), Vec::new());
        for d in &dests {
            let (from, to) = match self.one(d, ctx) {
                Ok(p) => p,
                Err(why) => {
                    skipped.push(why);
                    continue;
                }
            };
            checks.push(Verify::RoutePresent(to.clone()));
            targets.push(super::plan::route_target(&to));
            before.push(json!({"route": to.to_string(), "cc_algo": from.as_ref().and_then(|r| r.metrics.cc_algo.clone()), "present": from.is_some()}));
            after.push(json!({"route": to.to_string(), "cc_algo": algo, "key": to.key()}));
            pairs.push(match from {
                Some(from) => replace_pair(&from, &to),
                None => (Action::AddRoute(to.clone()), Action::DelRoute(to)),
            });
        }
        if pairs.is_empty() {
            return Some(Plan::Skip(skipped.join("; ")));
        }
        let (apply, inverse) = one_or_all(pairs);
        let verify = match checks.len() {
            1 => checks.remove(0),
            _ => Verify::All { checks },
        };
        Some(Plan::Change(Box::new(PlannedChange {
            remedy: NAME,
            subject: f.subject.clone(),
            targets,
            apply,
            inverse,
            verify,
            effect: Effect::Clears,
            lifetime: Lifetime::Permanent,
            before: json!({"routes": before}),
            after: json!({"routes": after, "skipped": skipped}),
        })))
    }
}

#[cfg(test)]
#[path = "route_cc_tests.rs"]
mod tests;
