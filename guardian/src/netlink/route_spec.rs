//! [`RouteSpec`]: a route as plain data, with its identity and how it prints.
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::consts::{Family, RTN_UNICAST, RTPROT_BOOT, RT_SCOPE_UNIVERSE, TABLE_LOCAL, TABLE_MAIN};

/// A route, with everything needed to delete it or add it back exactly.
///
/// Identity (what [`RouteSpec::same_route`] compares): family, destination, prefix length,
/// table, gateway, output interface and metric — plus TOS, which the kernel also keys on — and
/// the route's shape: the nexthops of a multipath (ECMP) route and the nexthop object id.
/// Protocol, scope, kind, preferred source, the onlink flag and the [`RouteMetrics`] guardian
/// knows are carried to re-add the route as it was; metrics are attributes of a route, not part
/// of its identity (the kernel does not key on them either).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouteSpec {
    pub family: Family,
    /// Destination network address (`0.0.0.0` / `::` for the default route).
    pub dst: IpAddr,
    pub prefix_len: u8,
    pub table: u32,
    /// `RTPROT_*` (e.g. 3 boot for `ip route add`, 4 static).
    pub protocol: u8,
    /// `RT_SCOPE_*` (0 universe, 253 link).
    pub scope: u8,
    /// `RTN_*` (1 unicast).
    pub kind: u8,
    #[serde(default)]
    pub tos: u8,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub oif: Option<u32>,
    /// Metric; `None` when the kernel reports none (IPv4 metric 0).
    #[serde(default)]
    pub priority: Option<u32>,
    #[serde(default)]
    pub pref_src: Option<IpAddr>,
    #[serde(default)]
    pub onlink: bool,
    /// Route metrics (RTA_METRICS) guardian sets and re-adds: locked MTU, congestion control.
    /// Absent from the JSON when empty, so older journals and fixtures read unchanged.
    #[serde(default, skip_serializing_if = "RouteMetrics::is_empty")]
    pub metrics: RouteMetrics,
    /// The nexthops of a multipath (ECMP) route (RTA_MULTIPATH), in the kernel's order; empty
    /// for a single-path route (then `gateway` and `oif` say where it goes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nexthops: Vec<NextHop>,
    /// The nexthop object the route uses (`ip route add ... nhid N`, RTA_NH_ID). Such a route
    /// is added back with this id only (the kernel refuses a gateway or device beside it);
    /// `oif` is kept as the kernel reports it, to know which link carries the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nhid: Option<u32>,
}

/// One nexthop of a multipath route (`nexthop via GW dev IF weight W [onlink]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NextHop {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    pub oif: u32,
    /// 1 to 256, as `ip route` shows it (the kernel stores `weight - 1`).
    pub weight: u16,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub onlink: bool,
}

/// The route metrics guardian carries (`ip route ... mtu lock 1400 congctl bbr`). Others the
/// kernel reports (advmss, hoplimit, ...) are not carried.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RouteMetrics {
    /// RTAX_MTU: the path MTU of the route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The MTU is locked (RTAX_LOCK bit of RTAX_MTU): ICMP cannot raise or lower it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mtu_lock: bool,
    /// RTAX_CC_ALGO: the TCP congestion control of connections using the route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cc_algo: Option<String>,
}

impl RouteMetrics {
    pub fn is_empty(&self) -> bool {
        *self == RouteMetrics::default()
    }
}

impl RouteSpec {
    /// A main-table, unicast, universe-scope route with protocol `boot` (like `ip route add`).
    pub fn new(dst: IpAddr, prefix_len: u8) -> Self {
        RouteSpec {
            family: if dst.is_ipv4() {
                Family::Ipv4
            } else {
                Family::Ipv6
            },
            dst,
            prefix_len,
            table: TABLE_MAIN,
            protocol: RTPROT_BOOT,
            scope: RT_SCOPE_UNIVERSE,
            kind: RTN_UNICAST,
            tos: 0,
            gateway: None,
            oif: None,
            priority: None,
            pref_src: None,
            onlink: false,
            metrics: RouteMetrics::default(),
            nexthops: Vec::new(),
            nhid: None,
        }
    }

    /// Multipath: these nexthops instead of one gateway and device.
    pub fn multipath(mut self, hops: Vec<NextHop>) -> Self {
        self.gateway = None;
        self.oif = None;
        self.nexthops = hops;
        self
    }

    /// Through the nexthop object `id`.
    pub fn nhid(mut self, id: u32) -> Self {
        self.nhid = Some(id);
        self
    }

    /// The route goes out of this interface (its own device or one of its nexthops').
    pub fn uses_oif(&self, ifindex: u32) -> bool {
        self.oif == Some(ifindex) || self.nexthops.iter().any(|h| h.oif == ifindex)
    }

    pub fn via(mut self, gateway: IpAddr) -> Self {
        self.gateway = Some(gateway);
        self
    }

    pub fn dev(mut self, oif: u32) -> Self {
        self.oif = Some(oif);
        self
    }

    pub fn metric(mut self, priority: u32) -> Self {
        self.priority = if priority == 0 { None } else { Some(priority) };
        self
    }

    /// With a locked path MTU (`mtu lock N`).
    pub fn mtu_lock(mut self, mtu: u32) -> Self {
        self.metrics.mtu = Some(mtu);
        self.metrics.mtu_lock = true;
        self
    }

    /// With a congestion control algorithm (`congctl NAME`).
    pub fn congctl(mut self, algo: &str) -> Self {
        self.metrics.cc_algo = Some(algo.to_string());
        self
    }

    /// The same destination in the same table (and TOS): routes the kernel chooses between by
    /// metric.
    pub fn same_destination(&self, other: &RouteSpec) -> bool {
        self.family == other.family
            && self.prefix_len == other.prefix_len
            && self.dst == other.dst
            && self.table == other.table
            && self.tos == other.tos
    }

    pub fn is_default(&self) -> bool {
        self.prefix_len == 0
    }

    /// Main table, unicast: the routes the route remedies consider (lookups, failover...).
    pub fn is_main_unicast(&self) -> bool {
        self.table == TABLE_MAIN && self.kind == RTN_UNICAST
    }

    /// Unicast, in any table but `local` (255, the kernel's own): the routes the route watch
    /// reports; which of them are protected depends on the tables the rules and VRFs use
    /// (see [`super::tables`]).
    pub fn is_unicast_outside_local(&self) -> bool {
        self.table != TABLE_LOCAL && self.kind == RTN_UNICAST
    }

    /// The same kernel route (see the type's doc for what identity means).
    pub fn same_route(&self, other: &RouteSpec) -> bool {
        self.family == other.family
            && self.prefix_len == other.prefix_len
            && self.dst == other.dst
            && self.table == other.table
            && self.tos == other.tos
            && self.gateway == other.gateway
            && self.oif == other.oif
            && self.priority.unwrap_or(0) == other.priority.unwrap_or(0)
            && self.nhid == other.nhid
            && self.nexthops == other.nexthops
    }

    /// A stable key for the route's identity, e.g.
    /// `ipv4 10.9.0.0/24 table 254 via 10.0.0.2 oif 3 metric 0`.
    pub fn key(&self) -> String {
        let mut s = format!(
            "{} {} table {}",
            self.family.as_str(),
            self.cidr(),
            self.table
        );
        if self.tos != 0 {
            s.push_str(&format!(" tos {}", self.tos));
        }
        if let Some(gw) = self.gateway {
            s.push_str(&format!(" via {gw}"));
        }
        if let Some(oif) = self.oif {
            s.push_str(&format!(" oif {oif}"));
        }
        s.push_str(&format!(" metric {}", self.priority.unwrap_or(0)));
        if let Some(id) = self.nhid {
            s.push_str(&format!(" nhid {id}"));
        }
        for h in &self.nexthops {
            s.push_str(" nexthop");
            if let Some(gw) = h.gateway {
                s.push_str(&format!(" via {gw}"));
            }
            s.push_str(&format!(" oif {} weight {}", h.oif, h.weight));
            if h.onlink {
                s.push_str(" onlink");
            }
        }
        s
    }

    /// The destination in CIDR form (`default` does not apply here: `0.0.0.0/0`).
    fn cidr(&self) -> String {
        format!("{}/{}", self.dst, self.prefix_len)
    }
}

impl fmt::Display for RouteSpec {
    /// `10.9.0.0/24`, `fd00:1::/64` or `default`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_default() {
            f.write_str("default")
        } else {
            write!(f, "{}/{}", self.dst, self.prefix_len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::consts::RTPROT_STATIC;
    use super::*;

    #[test]
    fn display_is_cidr_or_default() {
        let r = RouteSpec::new("10.9.0.0".parse().unwrap(), 24);
        assert_eq!(r.to_string(), "10.9.0.0/24");
        let d = RouteSpec::new("0.0.0.0".parse().unwrap(), 0);
        assert_eq!(d.to_string(), "default");
        let v6 = RouteSpec::new("fd00:1::".parse().unwrap(), 64);
        assert_eq!(v6.to_string(), "fd00:1::/64");
        assert_eq!(v6.family, Family::Ipv6);
        let d6 = RouteSpec::new(Family::Ipv6.unspecified(), 0);
        assert_eq!(d6.to_string(), "default");
    }

    #[test]
    fn identity_ignores_protocol_but_not_gateway_or_metric() {
        let a = RouteSpec::new("10.9.0.0".parse().unwrap(), 24)
            .via("10.0.0.2".parse().unwrap())
            .dev(3);
        let mut b = a.clone();
        b.protocol = RTPROT_STATIC;
        assert!(a.same_route(&b));
        assert!(!a.same_route(&a.clone().via("10.0.0.3".parse().unwrap())));
        assert!(!a.same_route(&a.clone().metric(100)));
        assert!(a.same_route(&a.clone().metric(0)));
        assert!(!a.same_route(&a.clone().dev(4)));
        assert_eq!(
            a.key(),
            "ipv4 10.9.0.0/24 table 254 via 10.0.0.2 oif 3 metric 0"
        );
    }

    #[test]
    fn metrics_are_not_identity_and_absent_from_json_when_empty() {
        let a = RouteSpec::new("10.9.0.0".parse().unwrap(), 24).dev(3);
        let locked = a.clone().mtu_lock(1400).congctl("bbr");
        assert!(a.same_route(&locked));
        assert_eq!(a.key(), locked.key());
        let v = serde_json::to_value(&a).unwrap();
        assert!(v.get("metrics").is_none(), "{v}");
        let v = serde_json::to_value(&locked).unwrap();
        assert_eq!(
            v["metrics"],
            serde_json::json!({"mtu": 1400, "mtu_lock": true, "cc_algo": "bbr"})
        );
        assert_eq!(serde_json::from_value::<RouteSpec>(v).unwrap(), locked);
        // a journal line written before metrics existed
        let old = serde_json::json!({"family": "ipv4", "dst": "10.9.0.0", "prefix_len": 24,
            "table": 254, "protocol": 3, "scope": 0, "kind": 1, "oif": 3});
        assert_eq!(serde_json::from_value::<RouteSpec>(old).unwrap(), a);
        assert!(a.same_destination(&a.clone().via("10.0.0.9".parse().unwrap()).metric(7)));
    }

    #[test]
    fn shapes_are_identity_and_round_trip_through_json() {
        let hop = |gw: &str, oif, weight| NextHop {
            gateway: Some(gw.parse().unwrap()),
            oif,
            weight,
            onlink: false,
        };
        let ecmp = RouteSpec::new("10.9.0.0".parse().unwrap(), 24)
            .multipath(vec![hop("10.0.0.2", 3, 1), hop("10.0.0.3", 4, 2)]);
        assert_eq!(
            ecmp.key(),
            "ipv4 10.9.0.0/24 table 254 metric 0 nexthop via 10.0.0.2 oif 3 weight 1 \
             nexthop via 10.0.0.3 oif 4 weight 2"
        );
        assert!(ecmp.uses_oif(4) && !ecmp.uses_oif(5));
        let reweighted = ecmp
            .clone()
            .multipath(vec![hop("10.0.0.2", 3, 1), hop("10.0.0.3", 4, 3)]);
        assert!(!ecmp.same_route(&reweighted));
        assert!(ecmp.same_destination(&reweighted));
        let v = serde_json::to_value(&ecmp).unwrap();
        assert_eq!(v["nexthops"][1]["weight"], 2);
        assert!(v["nexthops"][0].get("onlink").is_none(), "{v}");
        assert_eq!(serde_json::from_value::<RouteSpec>(v).unwrap(), ecmp);

        let nh = RouteSpec::new("10.9.1.0".parse().unwrap(), 24)
            .nhid(10)
            .dev(3);
        assert_eq!(
            nh.key(),
            "ipv4 10.9.1.0/24 table 254 oif 3 metric 0 nhid 10"
        );
        assert!(!nh.same_route(&nh.clone().nhid(11)));
        let v = serde_json::to_value(&nh).unwrap();
        assert_eq!(v["nhid"], 10);
        assert!(v.get("nexthops").is_none(), "{v}");
        assert_eq!(serde_json::from_value::<RouteSpec>(v).unwrap(), nh);
    }

    #[test]
    fn the_watch_takes_every_table_but_local() {
        let mut r = RouteSpec::new("10.9.0.0".parse().unwrap(), 24);
        r.table = 100;
        assert!(r.is_unicast_outside_local() && !r.is_main_unicast());
        r.table = TABLE_LOCAL;
        assert!(!r.is_unicast_outside_local());
        r.table = 100;
        r.kind = 2; // RTN_LOCAL
        assert!(!r.is_unicast_outside_local());
    }

    #[test]
    fn route_spec_round_trips_through_json() {
        let a = RouteSpec::new("fd00:9::".parse().unwrap(), 64)
            .via("fd00::2".parse().unwrap())
            .dev(7)
            .metric(1024);
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["family"], "ipv6");
        assert_eq!(v["dst"], "fd00:9::");
        let back: RouteSpec = serde_json::from_value(v).unwrap();
        assert_eq!(a, back);
    }
}
