//! `route_lost` (layer 3): a route of the baseline was deleted while its nexthop interface
//! is up.
//!
//! Every finding says who owns the route (its protocol, see [`crate::netlink::protos`]) and who
//! deleted it (the notification's sender, see [`crate::netlink::who`]). The severity says what
//! guardian makes of it: `error` for a configured route the kernel dropped (a fault, restored),
//! `warning` for a configured route a process deleted (a deliberate change, reported until it
//! is re-added or accepted) and `info` for a route of a control plane (its decision, reported).
//!
//! The baseline is the route table snapshot handed over at start, changed since only by
//! `guardian baseline accept`. A deletion matches a
//! baseline route on family, destination, prefix length, table, gateway, output interface and
//! metric. A deletion while the route's output interface is admin-down (or unknown) is the
//! link's consequence, not a lost route, and opens nothing: `link_down` covers it. The fault
//! clears when the route is added back. When the output interface of a route whose fault is
//! open comes (back) admin-up, an `updated` finding says so (evidence `oif_up: true`), so a
//! remedy that had to wait for the interface can run.
use std::collections::HashMap;
use std::time::Instant;

use super::{Detector, FaultId, Finding, Input};
use crate::model::{FaultState, Severity, Subject};
use crate::netlink::protos::{self, Owner};
use crate::netlink::{LinkState, NetEvent, RouteSpec, Who};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::RouteLost;

pub const LAYER: u8 = 3;

#[derive(Debug)]
struct Baseline {
    spec: RouteSpec,
    open_since: Option<Instant>,
    /// Who deleted it, while the fault is open.
    lost_by: Option<Who>,
}

#[derive(Debug)]
pub struct RouteLost {
    routes: Vec<Baseline>,
    links: HashMap<u32, LinkState>,
}

/// What a finding adds to the route and its link: who, and how it ended.
#[derive(Default)]
struct Detail {
    lost_ms: Option<Option<f64>>,
    oif_up: Option<bool>,
    by: Option<Who>,
    accepted: bool,
}

/// Whether guardian restores a route lost this way: a configured route (not a control
/// plane's) that no other process deleted (the kernel, guardian itself, or nobody knows).
pub fn restorable(route: &RouteSpec, by: Option<&Who>) -> bool {
    protos::owner(route.protocol) == Owner::Configured && !by.is_some_and(Who::is_process)
}

impl RouteLost {
    /// `baseline`: the routes to protect; `links`: the link dump taken at start.
    pub fn new(baseline: Vec<RouteSpec>, links: &[LinkState]) -> Self {
        RouteLost {
            routes: baseline.into_iter().map(Self::entry).collect(),
            links: links.iter().map(|l| (l.ifindex, l.clone())).collect(),
        }
    }

    fn entry(spec: RouteSpec) -> Baseline {
        Baseline {
            spec,
            open_since: None,
            lost_by: None,
        }
    }

    /// The protected routes.
    pub fn baseline(&self) -> impl Iterator<Item = &RouteSpec> {
        self.routes.iter().map(|b| &b.spec)
    }

    fn oif_admin_up(&self, spec: &RouteSpec) -> bool {
        match spec.oif {
            // Unknown interface: treat as down (nothing to restore onto).
            Some(i) => self.links.get(&i).is_some_and(|l| l.admin_up),
            None => true,
        }
    }

    fn finding(&self, state: FaultState, spec: &RouteSpec, d: Detail) -> Finding {
        let link = spec.oif.and_then(|i| self.links.get(&i));
        let owner = protos::owner(spec.protocol);
        let severity = match (owner, &d.by) {
            (Owner::ControlPlane, _) => Severity::Info,
            (_, Some(w)) if w.is_process() => Severity::Warning,
            _ => Severity::Error,
        };
        let evidence = super::Evidence::RouteLost(Evidence {
            accepted: d.accepted,
            by_text: d.by.as_ref().map(Who::to_string),
            by: d.by,
            lost_ms: d.lost_ms,
            oif_admin_up: link.map(|l| l.admin_up),
            oif_oper_up: link.map(|l| l.oper_up),
            oif_up: d.oif_up,
            owner,
            protocol: protos::protocol_name(spec.protocol),
            route: spec.clone(),
        });
        Finding {
            fault: FAULT,
            layer: LAYER,
            severity,
            state,
            subject: Subject {
                iface: link.map(|l| l.name.clone()),
                ifindex: spec.oif,
                route: Some(spec.to_string()),
                addr: spec.gateway.map(|g| g.to_string()),
                ..Default::default()
            },
            evidence,
            key: key(spec),
            netns: None,
        }
    }

    /// `guardian baseline accept`: routes no longer protected (an open fault on one clears,
    /// `accepted`), routes protected from now on.
    fn accept(&mut self, dropped: &[RouteSpec], added: &[RouteSpec], now: Instant) -> Vec<Finding> {
        let mut out = Vec::new();
        for r in dropped {
            let Some(i) = self.routes.iter().position(|b| b.spec.same_route(r)) else {
                continue;
            };
            let b = self.routes.remove(i);
            if let Some(since) = b.open_since {
                let lost = now.saturating_duration_since(since).as_secs_f64() * 1e3;
                let d = Detail {
                    lost_ms: Some(Some(lost)),
                    by: b.lost_by,
                    accepted: true,
                    ..Detail::default()
                };
                out.push(self.finding(FaultState::Cleared, &b.spec, d));
            }
        }
        for r in added {
            if !self.routes.iter().any(|b| b.spec.same_route(r)) {
                self.routes.push(Self::entry(r.clone()));
            }
        }
        out
    }
}

/// The finding key of a route.
pub fn key(spec: &RouteSpec) -> String {
    format!("route:{}", spec.key())
}
/// `route_lost` has no thresholds.
pub type Config = ();

/// The detector as the registry builds it.
pub fn detector(_cfg: &Config, base: &crate::faults::Baseline) -> RouteLost {
    RouteLost::new(base.routes.clone(), &base.links)
}

impl Detector for RouteLost {
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
            NetEvent::Link(l) => {
                let came_up = l.admin_up && !self.links.get(&l.ifindex).is_some_and(|p| p.admin_up);
                self.links.insert(l.ifindex, l.what.clone());
                if !came_up {
                    return vec![];
                }
                self.routes
                    .iter()
                    .filter(|b| b.open_since.is_some() && b.spec.oif == Some(l.ifindex))
                    .map(|b| {
                        let d = Detail {
                            oif_up: Some(true),
                            by: b.lost_by.clone(),
                            ..Detail::default()
                        };
                        self.finding(FaultState::Updated, &b.spec, d)
                    })
                    .collect()
            }
            NetEvent::LinkRemoved { ifindex, .. } => {
                self.links.remove(ifindex);
                vec![]
            }
            NetEvent::RouteDeleted(r) => {
                let Some(i) = self.routes.iter().position(|b| b.spec.same_route(r)) else {
                    return vec![];
                };
                if self.routes[i].open_since.is_some() || !self.oif_admin_up(&self.routes[i].spec) {
                    return vec![];
                }
                self.routes[i].open_since = Some(now);
                self.routes[i].lost_by = r.by.clone();
                let spec = self.routes[i].spec.clone();
                let d = Detail {
                    by: r.by.clone(),
                    ..Detail::default()
                };
                vec![self.finding(FaultState::Opened, &spec, d)]
            }
            NetEvent::RouteAdded(r) => {
                let Some(i) = self
                    .routes
                    .iter()
                    .position(|b| b.open_since.is_some() && b.spec.same_route(r))
                else {
                    return vec![];
                };
                let since = self.routes[i].open_since.take();
                self.routes[i].lost_by = None;
                let lost_ms = since.map(|s| now.saturating_duration_since(s).as_secs_f64() * 1e3);
                let spec = self.routes[i].spec.clone();
                let d = Detail {
                    lost_ms: Some(lost_ms),
                    by: r.by.clone(),
                    ..Detail::default()
                };
                vec![self.finding(FaultState::Cleared, &spec, d)]
            }
            NetEvent::BaselineAccepted { dropped, added } => self.accept(dropped, added, now),
            NetEvent::AddressRemoved { .. } => vec![],
        }
    }
}

#[cfg(test)]
mod tests;
