//! `route_lost` (layer 3): a route of the baseline was deleted while its nexthop interface
//! is up.
//!
//! The baseline is the route table snapshot handed over at start. A deletion matches a
//! baseline route on family, destination, prefix length, table, gateway, output interface and
//! metric. A deletion while the route's output interface is admin-down (or unknown) is the
//! link's consequence, not a lost route, and opens nothing: `link_down` covers it. The fault
//! clears when the route is added back. When the output interface of a route whose fault is
//! open comes (back) admin-up, an `updated` finding says so (evidence `oif_up: true`), so a
//! remedy that had to wait for the interface can run.
use std::collections::HashMap;
use std::time::Instant;

use super::{Detector, FaultId, Finding, Input};
use crate::netlink::{LinkState, NetEvent, RouteSpec};
use crate::model::{FaultState, Severity, Subject};

pub mod evidence;

pub use evidence::Evidence;

pub const FAULT: FaultId = FaultId::RouteLost;

pub const LAYER: u8 = 3;

#[derive(Debug)]
struct Baseline {
    spec: RouteSpec,
    open_since: Option<Instant>,
}

#[derive(Debug)]
pub struct RouteLost {
    routes: Vec<Baseline>,
    links: HashMap<u32, LinkState>,
}

impl RouteLost {
    /// `baseline`: the routes to protect; `links`: the link dump taken at start.
    pub fn new(baseline: Vec<RouteSpec>, links: &[LinkState]) -> Self {
        RouteLost {
            routes: baseline
                .into_iter()
                .map(|spec| Baseline {
                    spec,
                    open_since: None,
                })
                .collect(),
            links: links.iter().map(|l| (l.ifindex, l.clone())).collect(),
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

    fn finding(
        &self,
        state: FaultState,
        spec: &RouteSpec,
        lost_ms: Option<Option<f64>>,
        oif_up: Option<bool>,
    ) -> Finding {
        let link = spec.oif.and_then(|i| self.links.get(&i));
        let evidence = super::Evidence::RouteLost(Evidence {
            lost_ms,
            oif_admin_up: link.map(|l| l.admin_up),
            oif_oper_up: link.map(|l| l.oper_up),
            oif_up,
            route: spec.clone(),
        });
        Finding {
            fault: FAULT,
            layer: LAYER,
            severity: Severity::Error,
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
                self.links.insert(l.ifindex, l.clone());
                if !came_up {
                    return vec![];
                }
                self.routes
                    .iter()
                    .filter(|b| b.open_since.is_some() && b.spec.oif == Some(l.ifindex))
                    .map(|b| self.finding(FaultState::Updated, &b.spec, None, Some(true)))
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
                let spec = self.routes[i].spec.clone();
                vec![self.finding(FaultState::Opened, &spec, None, None)]
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
                let lost_ms = since.map(|s| now.saturating_duration_since(s).as_secs_f64() * 1e3);
                let spec = self.routes[i].spec.clone();
                vec![self.finding(FaultState::Cleared, &spec, Some(lost_ms), None)]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use FaultState::{Cleared as C, Opened as O, Updated as U};
    use NetEvent::{Link as L, RouteAdded as Add, RouteDeleted as Del};

    fn link(ifindex: u32, name: &str, admin_up: bool) -> LinkState {
        LinkState {
            ifindex,
            name: name.into(),
            admin_up,
            oper_up: admin_up,
            mtu: 1500,
        }
    }

    fn v4() -> RouteSpec {
        RouteSpec::new("10.250.0.0".parse().unwrap(), 24)
            .via("10.0.0.2".parse().unwrap())
            .dev(3)
    }

    fn v6() -> RouteSpec {
        RouteSpec::new("fd99::".parse().unwrap(), 64)
            .via("fd00::2".parse().unwrap())
            .dev(3)
            .metric(1024)
    }

    fn v4_default_on_down_link() -> RouteSpec {
        RouteSpec::new("0.0.0.0".parse().unwrap(), 0)
            .via("10.1.0.1".parse().unwrap())
            .dev(4)
    }

    /// Baseline: v4, v6 (both via ifindex 3 `va`, up) and a default route via ifindex 4
    /// (`vd`, admin down).
    fn run(steps: &[NetEvent]) -> Vec<Vec<FaultState>> {
        let links = [link(3, "va", true), link(4, "vd", false)];
        let mut d = RouteLost::new(vec![v4(), v6(), v4_default_on_down_link()], &links);
        let t0 = Instant::now();
        steps
            .iter()
            .enumerate()
            .map(|(i, ev)| {
                crate::faults::observe_net(&mut d, ev, t0 + Duration::from_millis(i as u64))
                    .into_iter()
                    .map(|f| {
                        assert_eq!((f.fault, f.layer), (FAULT, 3));
                        f.state
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn table() {
        let other = RouteSpec::new("10.251.0.0".parse().unwrap(), 24)
            .via("10.0.0.2".parse().unwrap())
            .dev(3);
        let other_metric = v4().metric(50);
        let other_gw = v4().via("10.0.0.3".parse().unwrap());
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Vec<NetEvent>, Vec<Vec<FaultState>>)> = vec![
            (
                "baseline route deleted opens, re-added clears",
                vec![Del(v4()), Add(v4())],
                vec![vec![O], vec![C]],
            ),
            (
                "IPv6 route",
                vec![Del(v6()), Add(v6())],
                vec![vec![O], vec![C]],
            ),
            (
                "route not in baseline ignored",
                vec![Del(other.clone()), Add(other)],
                vec![vec![], vec![]],
            ),
            (
                "different metric is another route",
                vec![Del(other_metric)],
                vec![vec![]],
            ),
            (
                "different gateway is another route",
                vec![Del(other_gw)],
                vec![vec![]],
            ),
            (
                "oif admin-down: ignored",
                vec![Del(v4_default_on_down_link())],
                vec![vec![]],
            ),
            (
                "oif went down first: ignored",
                vec![L(link(3, "va", false)), Del(v4()), Del(v6())],
                vec![vec![], vec![], vec![]],
            ),
            (
                "repeated delete does not re-open",
                vec![Del(v4()), Del(v4()), Add(v4()), Del(v4())],
                vec![vec![O], vec![], vec![C], vec![O]],
            ),
            (
                "add of a present route is quiet",
                vec![Add(v4())],
                vec![vec![]],
            ),
            (
                "oif coming back up updates an open fault once",
                vec![
                    Del(v4()),
                    L(link(3, "va", false)),
                    L(link(3, "va", true)),
                    L(link(3, "va", true)),
                ],
                vec![vec![O], vec![], vec![U], vec![]],
            ),
            (
                "oif unknown (deleted) counts as down",
                vec![
                    NetEvent::LinkRemoved {
                        ifindex: 3,
                        name: "va".into(),
                    },
                    Del(v4()),
                ],
                vec![vec![], vec![]],
            ),
            (
                "oif up later, then delete opens",
                vec![L(link(4, "vd", true)), Del(v4_default_on_down_link())],
                vec![vec![], vec![O]],
            ),
        ];
        for (name, events, want) in cases {
            assert_eq!(run(&events), want, "{name}");
        }
    }

    #[test]
    fn finding_carries_the_baseline_spec() {
        let mut base = v4();
        base.protocol = crate::netlink::RTPROT_STATIC;
        let mut d = RouteLost::new(vec![base.clone()], &[link(3, "va", true)]);
        let now = Instant::now();
        // the deletion message may differ in non-identity fields; the baseline's are kept
        let f = crate::faults::observe_net(&mut d, &Del(v4()), now);
        assert_eq!(f.len(), 1);
        let spec: RouteSpec = serde_json::from_value(f[0].evidence.json()["route"].clone()).unwrap();
        assert_eq!(spec, base);
        assert_eq!(f[0].subject.route.as_deref(), Some("10.250.0.0/24"));
        assert_eq!(f[0].subject.iface.as_deref(), Some("va"));
        assert_eq!(f[0].subject.addr.as_deref(), Some("10.0.0.2"));
        assert_eq!(
            f[0].key,
            "route:ipv4 10.250.0.0/24 table 254 via 10.0.0.2 oif 3 metric 0"
        );
        let c = crate::faults::observe_net(&mut d, &Add(v4()), now + Duration::from_millis(7));
        assert_eq!(c[0].state, FaultState::Cleared);
        assert_eq!(c[0].evidence.json()["lost_ms"], 7.0);
        assert_eq!(c[0].key, f[0].key);
    }
}
