//! What a remedy plans: a [`PlannedChange`] (action, exact inverse, [`Verify`], [`Effect`],
//! [`Lifetime`], before/after) or a reason to skip ([`Plan`]).
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::action::{Action, Verify};
use super::id::RemedyId;
use crate::model::{RouteDst, Subject, Target};
use crate::netlink::RouteSpec;

/// How the engine tells that an applied change actually helped, beyond the change being in
/// place. Checked until the verification deadline; if it never holds, the change is rolled
/// back and the next remedy on the fault's ladder is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    /// Being in place is enough (link up, route present, mitigation installed).
    #[default]
    InPlace,
    /// The incident clears (its detector's hysteresis says the fault is gone).
    Clears,
    /// A MIB counter of the fault's namespace stops growing (e.g. `listen_drops`): two
    /// consecutive samples after the change carry the same value.
    CounterQuiet { counter: MibCounter },
}

/// MIB counters an [`Effect::CounterQuiet`] can watch (fields of `source::mib::MibSample`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MibCounter {
    ListenOverflows,
    ListenDrops,
    ReqQFullDrop,
    TwOverflow,
}

/// How long a change stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Lifetime {
    /// A fix: stays until an operator reverts it (`guardian rollback ID`).
    #[default]
    Permanent,
    /// A temporary mitigation: reverted (`expired`) after `ms`.
    Ttl { ms: u64 },
    /// Reverted when the incident clears, or after `max_ms` at the latest.
    UntilClear { max_ms: u64 },
}

impl Lifetime {
    /// The longest the change may stay, if bounded.
    pub fn max_ms(&self) -> Option<u64> {
        match *self {
            Lifetime::Permanent => None,
            Lifetime::Ttl { ms } => Some(ms),
            Lifetime::UntilClear { max_ms } => Some(max_ms),
        }
    }
}

/// A planned change: what to do, how to undo it exactly, how to verify it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedChange {
    /// The remedy that planned it, e.g. `link_up`.
    pub remedy: RemedyId,
    pub subject: Subject,
    /// Every concrete thing the change touches (displayed as `iface:eth0`,
    /// `route:10.9.0.0/24`, `sysctl:net.ipv4.tcp_tw_reuse`, `src:10.0.0.7`, `port:80`,
    /// `dst:10.77.110.2`). The engine refuses an empty set, a wildcard, a protected subject
    /// or too many at once (blast radius).
    pub targets: Vec<Target>,
    pub apply: Action,
    pub inverse: Action,
    /// The change is in place (checked right after applying, polled until the deadline).
    pub verify: Verify,
    /// The change helped.
    pub effect: Effect,
    pub lifetime: Lifetime,
    /// The state before, as reported in `change.before`.
    pub before: Value,
    /// The state the change aims for, as reported in `change.after`.
    pub after: Value,
}

impl PlannedChange {
    /// The targets as budgets key them: `iface:va,route:default`.
    pub fn target_list(&self) -> String {
        let shown: Vec<String> = self.targets.iter().map(Target::to_string).collect();
        shown.join(",")
    }
}

/// The target of a change to the existing route `r`.
pub(crate) fn route_target(r: &RouteSpec) -> Target {
    Target::Route(RouteDst::new(r.dst, r.prefix_len))
}

/// The target of adding the lost route `r` back, named by its full key ([`RouteSpec::key`]).
pub(crate) fn restore_target(r: &RouteSpec) -> Target {
    Target::RestoreRoute {
        dst: RouteDst::new(r.dst, r.prefix_len),
        key: r.key(),
    }
}

/// What a remedy concluded about a finding it is responsible for.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Change(Box<PlannedChange>),
    /// The remedy is on this fault's ladder but must not act now; the reason goes into a
    /// `skipped` event and the next rung is tried.
    Skip(String),
}

impl Plan {
    pub fn change(&self) -> Option<&PlannedChange> {
        match self {
            Plan::Change(c) => Some(c),
            Plan::Skip(_) => None,
        }
    }
}
