//! What the route remedies (`route_failover`, `route_dampen`, `route_mtu`, `route_cc`) share:
//! prefixes in configuration, longest-prefix lookups in the routes planning sees, where a
//! finding points, and the executors of the route action and check they add
//! ([`Action::ReplaceRoute`](super::Action::ReplaceRoute),
//! [`Verify::RouteVia`](super::Verify::RouteVia)).
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use crate::faults::Finding;
use crate::netlink::{LinkState, RouteSpec};

/// A destination prefix in configuration: `10.9.0.0/24`, `fd00:9::/64`, or `default` (the
/// default route of either family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Prefix {
    Default,
    Net { addr: IpAddr, len: u8 },
}

impl Prefix {
    pub fn parse(s: &str) -> Result<Prefix, String> {
        if s == "default" {
            return Ok(Prefix::Default);
        }
        let (a, l) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not a prefix (10.9.0.0/24, fd00::/64 or default)"))?;
        let len = if l.is_empty() {
            max_len(addr)
        } else {
            l.parse::<u8>()
                .ok()
                .filter(|n| *n <= max_len(addr))
                .ok_or_else(|| format!("{s:?}: bad prefix length"))?
        };
        Ok(Prefix::Net {
            addr: network(addr, len),
            len,
        })
    }

    /// The route is for exactly this prefix (`default`: a default route of either family).
    pub fn matches(&self, r: &RouteSpec) -> bool {
        match *self {
            Prefix::Default => r.prefix_len == 0,
            Prefix::Net { addr, len } => r.dst == addr && r.prefix_len == len,
        }
    }
}

impl TryFrom<String> for Prefix {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Prefix::parse(&s)
    }
}

impl From<Prefix> for String {
    fn from(p: Prefix) -> String {
        p.to_string()
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::Default => f.write_str("default"),
            Prefix::Net { addr, len } => write!(f, "{addr}/{len}"),
        }
    }
}

pub fn max_len(a: IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

/// The network address of `a/len` (host bits cleared).
pub fn network(a: IpAddr, len: u8) -> IpAddr {
    match a {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// The route's destination covers `a`.
pub fn covers(r: &RouteSpec, a: IpAddr) -> bool {
    r.dst.is_ipv4() == a.is_ipv4() && network(a, r.prefix_len) == network(r.dst, r.prefix_len)
}

/// The link is known and up (admin and oper).
pub fn link_up(links: &[LinkState], ifindex: Option<u32>) -> bool {
    ifindex.is_some_and(|i| links.iter().any(|l| l.ifindex == i && l.is_up()))
}

/// The route the kernel would pick for `a` among `routes` (main-table unicast, longest prefix,
/// then lowest metric), ignoring routes through links that are down.
pub fn lookup<'a>(
    routes: &'a [RouteSpec],
    links: &[LinkState],
    a: IpAddr,
) -> Option<&'a RouteSpec> {
    routes
        .iter()
        .filter(|r| r.is_main_unicast() && covers(r, a))
        .filter(|r| r.oif.is_none() || link_up(links, r.oif))
        .min_by_key(|r| (std::cmp::Reverse(r.prefix_len), r.priority.unwrap_or(0)))
}

/// The first metric at or above `wanted` that no route to the same destination uses (the
/// kernel refuses a second route with the same destination and metric).
pub fn free_metric(routes: &[RouteSpec], like: &RouteSpec, wanted: u32) -> u32 {
    let mut m = wanted;
    while routes
        .iter()
        .any(|r| r.same_destination(like) && r.priority.unwrap_or(0) == m)
    {
        m = m.saturating_add(1);
    }
    m
}

/// An address inside the route's destination to ask the kernel's lookup about: the network
/// address, or for a default route the first address of the upper half (`128.0.0.0`, `8000::`),
/// since `0.0.0.0` is local.
pub fn probe(r: &RouteSpec) -> IpAddr {
    if r.prefix_len == 0 {
        return upper_half(r.dst, 0);
    }
    r.dst
}

/// The network address of the upper half of `a/len` (`len` < the family's maximum).
pub fn upper_half(a: IpAddr, len: u8) -> IpAddr {
    match network(a, len) {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) | (1u32 << (31 - len)))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) | (1u128 << (127 - len)))),
    }
}

/// Where a finding points: a prefix (`subject.route`) or else an address (`subject.addr`).
/// (No fault's evidence names a destination of its own: the subject says it.)
pub fn destination(f: &Finding) -> Option<Prefix> {
    [f.subject.route.as_deref(), f.subject.addr.as_deref()]
        .into_iter()
        .flatten()
        .find_map(|s| Prefix::parse(s).ok())
}

/// A skip when the finding is in another namespace than the daemon's: the route remedies
/// change the daemon's own routing table only.
pub fn foreign(f: &Finding, own_netns: Option<u32>) -> Option<Plan> {
    match (f.netns, own_netns) {
        (Some(ns), Some(own)) if ns != own => Some(Plan::Skip(format!(
            "the fault is in network namespace {ns}; route remedies change the routes of \
             the daemon's own namespace ({own}) only"
        ))),
        _ => None,
    }
}

/// The daemon's namespace, read once when the remedies are built.
pub fn own_netns() -> Option<u32> {
    crate::netns::current().ok()
}

/// Routes worth protecting: unicast routes someone configured, in any table but `local` (the
/// caller dumps the tables guardian watches: main, the rules' and the VRFs'). Routes the
/// kernel derives from addresses, learns from router advertisements or from redirects come and
/// go with their source and are not restored.
pub fn protected(r: &RouteSpec) -> bool {
    r.is_unicast_outside_local()
        && !matches!(
            r.protocol,
            crate::netlink::RTPROT_KERNEL
                | crate::netlink::RTPROT_RA
                | crate::netlink::RTPROT_REDIRECT
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_parse_normalize_and_match() {
        assert_eq!(Prefix::parse("default"), Ok(Prefix::Default));
        let p = Prefix::parse("10.9.0.7/24").unwrap();
        assert_eq!(p.to_string(), "10.9.0.0/24");
        assert_eq!(
            Prefix::parse("10.9.0.7").unwrap().to_string(),
            "10.9.0.7/32"
        );
        assert_eq!(
            Prefix::parse("fd00:9::1/64").unwrap().to_string(),
            "fd00:9::/64"
        );
        assert!(Prefix::parse("10.9.0.0/33").is_err());
        assert!(Prefix::parse("nope").is_err());
        assert!(p.matches(&RouteSpec::new(ip("10.9.0.0"), 24)));
        assert!(!p.matches(&RouteSpec::new(ip("10.9.0.0"), 25)));
        assert!(Prefix::Default.matches(&RouteSpec::new(ip("::"), 0)));
        let v: Prefix = serde_json::from_value(serde_json::json!("10.9.0.0/24")).unwrap();
        assert_eq!(v, p);
        assert_eq!(serde_json::to_value(p).unwrap(), "10.9.0.0/24");
    }

    #[test]
    fn lookup_is_longest_prefix_then_metric_over_up_links() {
        let links = [
            LinkState {
                ifindex: 3,
                name: "a".into(),
                admin_up: true,
                oper_up: true,
                mtu: 1500,
            },
            LinkState {
                ifindex: 4,
                name: "b".into(),
                admin_up: true,
                oper_up: false,
                mtu: 1500,
            },
        ];
        let def = RouteSpec::new(ip("0.0.0.0"), 0).via(ip("10.0.0.1")).dev(3);
        let net = RouteSpec::new(ip("10.9.0.0"), 24)
            .via(ip("10.0.0.2"))
            .dev(3)
            .metric(20);
        let net_low = net.clone().metric(10);
        let down = RouteSpec::new(ip("10.9.0.0"), 25)
            .via(ip("10.0.1.2"))
            .dev(4);
        let routes = [def.clone(), net.clone(), net_low.clone(), down];
        assert_eq!(lookup(&routes, &links, ip("10.9.0.5")), Some(&net_low));
        assert_eq!(lookup(&routes, &links, ip("10.8.0.5")), Some(&def));
        assert_eq!(lookup(&routes[1..], &links, ip("10.8.0.5")), None);
        assert_eq!(free_metric(&routes, &net, 10), 11);
        assert_eq!(free_metric(&routes, &net, 21), 21);
    }

    #[test]
    fn probes_and_halves() {
        assert_eq!(probe(&RouteSpec::new(ip("0.0.0.0"), 0)), ip("128.0.0.0"));
        assert_eq!(probe(&RouteSpec::new(ip("::"), 0)), ip("8000::"));
        assert_eq!(probe(&RouteSpec::new(ip("10.9.0.0"), 24)), ip("10.9.0.0"));
        assert_eq!(upper_half(ip("10.9.0.0"), 24), ip("10.9.0.128"));
        assert_eq!(upper_half(ip("fd00:9::"), 64), ip("fd00:9:0:0:8000::"));
        assert!(covers(
            &RouteSpec::new(ip("10.9.0.0"), 24),
            ip("10.9.0.200")
        ));
        assert!(!covers(&RouteSpec::new(ip("10.9.0.0"), 24), ip("10.9.1.1")));
        assert!(!covers(&RouteSpec::new(ip("::"), 0), ip("10.9.1.1")));
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Links, routes and findings the route remedies' planning tests share.
    use super::*;
    use crate::model::{FaultState, Severity, Subject};
    use crate::netlink::{RTPROT_KERNEL, RT_SCOPE_LINK};

    pub fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    pub fn link(ifindex: u32, name: &str, up: bool) -> LinkState {
        LinkState {
            ifindex,
            name: name.into(),
            admin_up: up,
            oper_up: up,
            mtu: 1500,
        }
    }

    /// The kernel's route to a link's own subnet.
    pub fn connected(net: &str, len: u8, oif: u32) -> RouteSpec {
        let mut r = RouteSpec::new(ip(net), len).dev(oif);
        r.protocol = RTPROT_KERNEL;
        r.scope = RT_SCOPE_LINK;
        r
    }

    /// A finding of `fault` (a name of the catalogue).
    pub fn finding(fault: &str, netns: Option<u32>, subject: Subject) -> Finding {
        Finding {
            fault: fault.parse().expect("a fault of the catalogue"),
            layer: 3,
            severity: Severity::Warning,
            state: FaultState::Opened,
            subject,
            evidence: crate::faults::Evidence::closed("test"),
            key: "k".into(),
            netns,
        }
    }

    pub fn on_iface(fault: &str, name: &str, ifindex: u32) -> Finding {
        finding(
            fault,
            None,
            Subject {
                iface: Some(name.into()),
                ifindex: Some(ifindex),
                ..Default::default()
            },
        )
    }

    pub fn to_addr(fault: &str, netns: Option<u32>, addr: &str) -> Finding {
        finding(
            fault,
            netns,
            Subject {
                addr: Some(addr.into()),
                ..Default::default()
            },
        )
    }
}
