//! Routes: conversion between RTM_NEWROUTE/RTM_DELROUTE messages and [`RouteSpec`], dumps of
//! the main table, presence checks, add and delete.
use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric, RouteVia,
};
use netlink_packet_route::AddressFamily;

use super::client::{Netlink, NetlinkError};
use super::consts::{Family, RTN_UNICAST, TABLE_MAIN};
use super::route_spec::{RouteMetrics, RouteSpec};

/// `RTAX_MTU`: its bit in `RTAX_LOCK` locks the MTU.
const RTAX_MTU: u32 = 2;

fn metrics_of(list: &[RouteMetric]) -> RouteMetrics {
    let mut m = RouteMetrics::default();
    for metric in list {
        match metric {
            RouteMetric::Mtu(v) => m.mtu = Some(*v),
            RouteMetric::Lock(bits) => m.mtu_lock = bits & (1 << RTAX_MTU) != 0,
            RouteMetric::CcAlgo(name) => m.cc_algo = Some(name.clone()),
            _ => {}
        }
    }
    m
}

fn metrics_attr(m: &RouteMetrics) -> Option<RouteAttribute> {
    let mut list = Vec::new();
    if m.mtu_lock {
        list.push(RouteMetric::Lock(1 << RTAX_MTU));
    }
    if let Some(mtu) = m.mtu {
        list.push(RouteMetric::Mtu(mtu));
    }
    if let Some(cc) = &m.cc_algo {
        list.push(RouteMetric::CcAlgo(cc.clone()));
    }
    (!list.is_empty()).then_some(RouteAttribute::Metrics(list))
}

/// What the kernel's route lookup (`ip route get ADDR`) answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// `RTN_*` of the answer (1 unicast; unreachable, blackhole, local...).
    pub kind: u8,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Converts a route message. `None` for what a [`RouteSpec`] cannot re-add exactly:
/// non-IP families, cloned (cache) entries, multipath, nexthop objects, encapsulations.
pub fn route_spec_from_message(m: &RouteMessage) -> Option<RouteSpec> {
    let h = &m.header;
    let family = match h.address_family {
        AddressFamily::Inet => Family::Ipv4,
        AddressFamily::Inet6 => Family::Ipv6,
        _ => return None,
    };
    if h.flags.contains(RouteFlags::Cloned) {
        return None;
    }
    let mut spec = RouteSpec {
        family,
        dst: family.unspecified(),
        prefix_len: h.destination_prefix_length,
        table: u32::from(h.table),
        protocol: h.protocol.into(),
        scope: h.scope.into(),
        kind: h.kind.into(),
        tos: h.tos,
        gateway: None,
        oif: None,
        priority: None,
        pref_src: None,
        onlink: h.flags.contains(RouteFlags::Onlink),
        metrics: RouteMetrics::default(),
    };
    for attr in &m.attributes {
        match attr {
            RouteAttribute::Destination(a) => spec.dst = ip_of(a)?,
            RouteAttribute::Gateway(a) => spec.gateway = Some(ip_of(a)?),
            RouteAttribute::Via(RouteVia::Inet6(v6)) => spec.gateway = Some(IpAddr::V6(*v6)),
            RouteAttribute::Via(RouteVia::Inet(v4)) => spec.gateway = Some(IpAddr::V4(*v4)),
            RouteAttribute::Oif(i) => spec.oif = Some(*i),
            RouteAttribute::Priority(p) => spec.priority = (*p != 0).then_some(*p),
            RouteAttribute::Table(t) => spec.table = *t,
            RouteAttribute::PrefSource(a) => spec.pref_src = ip_of(a),
            RouteAttribute::Metrics(list) => spec.metrics = metrics_of(list),
            RouteAttribute::MultiPath(_)
            | RouteAttribute::NhId(_)
            | RouteAttribute::Encap(_)
            | RouteAttribute::EncapType(_)
            | RouteAttribute::Via(_) => return None,
            _ => {}
        }
    }
    Some(spec)
}

fn address_family(f: Family) -> AddressFamily {
    match f {
        Family::Ipv4 => AddressFamily::Inet,
        Family::Ipv6 => AddressFamily::Inet6,
    }
}

fn header_table(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC)
}

/// The RTM_NEWROUTE / RTM_DELROUTE message that adds or deletes exactly this route.
pub fn route_message(spec: &RouteSpec) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = address_family(spec.family);
    m.header.destination_prefix_length = spec.prefix_len;
    m.header.tos = spec.tos;
    m.header.table = header_table(spec.table);
    m.header.protocol = spec.protocol.into();
    m.header.scope = spec.scope.into();
    m.header.kind = spec.kind.into();
    if spec.onlink {
        m.header.flags.insert(RouteFlags::Onlink);
    }
    m.attributes.push(RouteAttribute::Table(spec.table));
    if spec.prefix_len > 0 {
        m.attributes
            .push(RouteAttribute::Destination(spec.dst.into()));
    }
    if let Some(gw) = spec.gateway {
        let attr = match (spec.family, gw) {
            (Family::Ipv4, IpAddr::V6(v6)) => RouteAttribute::Via(RouteVia::Inet6(v6)),
            (_, gw) => RouteAttribute::Gateway(gw.into()),
        };
        m.attributes.push(attr);
    }
    if let Some(oif) = spec.oif {
        m.attributes.push(RouteAttribute::Oif(oif));
    }
    if let Some(p) = spec.priority {
        m.attributes.push(RouteAttribute::Priority(p));
    }
    if let Some(src) = spec.pref_src {
        m.attributes.push(RouteAttribute::PrefSource(src.into()));
    }
    m.attributes.extend(metrics_attr(&spec.metrics));
    m
}

/// A dump request for one family and table, unicast routes, optionally one output interface.
/// With NETLINK_GET_STRICT_CHK the kernel filters; without it, it ignores these fields.
fn dump_request(family: Family, table: u32, oif: Option<u32>) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = address_family(family);
    m.header.table = header_table(table);
    m.header.kind = RTN_UNICAST.into();
    m.attributes.push(RouteAttribute::Table(table));
    if let Some(oif) = oif {
        m.attributes.push(RouteAttribute::Oif(oif));
    }
    m
}

impl Netlink {
    async fn dump(
        &self,
        family: Family,
        table: u32,
        oif: Option<u32>,
    ) -> Result<Vec<RouteSpec>, NetlinkError> {
        let msgs: Vec<RouteMessage> = self
            .handle()
            .route()
            .get(dump_request(family, table, oif))
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetlinkError::request("route dump", e))?;
        Ok(msgs
            .iter()
            .filter_map(route_spec_from_message)
            .filter(|r| r.table == table && r.kind == RTN_UNICAST)
            .filter(|r| oif.is_none() || r.oif == oif)
            .collect())
    }

    /// Main-table unicast routes, IPv4 then IPv6.
    pub async fn dump_routes(&self) -> Result<Vec<RouteSpec>, NetlinkError> {
        let mut all = self.dump(Family::Ipv4, TABLE_MAIN, None).await?;
        all.extend(self.dump(Family::Ipv6, TABLE_MAIN, None).await?);
        Ok(all)
    }

    /// Whether the kernel has this route (same identity, see [`RouteSpec::same_route`]) and,
    /// when the spec carries metrics, with exactly those metrics.
    pub async fn route_present(&self, spec: &RouteSpec) -> Result<bool, NetlinkError> {
        let routes = self.dump(spec.family, spec.table, spec.oif).await?;
        Ok(routes
            .iter()
            .any(|r| r.same_route(spec) && (spec.metrics.is_empty() || r.metrics == spec.metrics)))
    }

    /// `ip route replace` with exactly this route: replaces the route of the same destination,
    /// TOS, table and metric in place (one atomic change), or adds it.
    pub async fn replace_route(&self, spec: &RouteSpec) -> Result<(), NetlinkError> {
        self.handle()
            .route()
            .add(route_message(spec))
            .replace()
            .execute()
            .await
            .map_err(|e| NetlinkError::request("route replace", e))
    }

    /// The kernel's route lookup for one address (`ip route get ADDR`).
    pub async fn route_get(&self, addr: IpAddr) -> Result<Option<Lookup>, NetlinkError> {
        let mut m = RouteMessage::default();
        m.header.address_family = address_family(if addr.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        });
        m.header.destination_prefix_length = if addr.is_ipv4() { 32 } else { 128 };
        m.attributes.push(RouteAttribute::Destination(addr.into()));
        let mut replies = self.handle().route().get(m).execute();
        let Some(reply) = replies
            .try_next()
            .await
            .map_err(|e| NetlinkError::request("route get", e))?
        else {
            return Ok(None);
        };
        let mut l = Lookup {
            kind: reply.header.kind.into(),
            oif: None,
            gateway: None,
        };
        for attr in &reply.attributes {
            match attr {
                RouteAttribute::Oif(i) => l.oif = Some(*i),
                RouteAttribute::Gateway(a) => l.gateway = ip_of(a),
                RouteAttribute::Via(RouteVia::Inet(v4)) => l.gateway = Some(IpAddr::V4(*v4)),
                RouteAttribute::Via(RouteVia::Inet6(v6)) => l.gateway = Some(IpAddr::V6(*v6)),
                _ => {}
            }
        }
        Ok(Some(l))
    }

    /// `ip route add` of exactly this route (fails with EEXIST if it is there).
    pub async fn add_route(&self, spec: &RouteSpec) -> Result<(), NetlinkError> {
        self.handle()
            .route()
            .add(route_message(spec))
            .execute()
            .await
            .map_err(|e| NetlinkError::request("route add", e))
    }

    /// `ip route del` of exactly this route.
    pub async fn del_route(&self, spec: &RouteSpec) -> Result<(), NetlinkError> {
        self.handle()
            .route()
            .del(route_message(spec))
            .execute()
            .await
            .map_err(|e| NetlinkError::request("route del", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::route::{RouteProtocol, RouteScope, RouteType};

    fn v4_msg() -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = 24;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        m.attributes.push(RouteAttribute::Table(254));
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                "10.250.0.0".parse().unwrap(),
            )));
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(
                "10.0.0.2".parse().unwrap(),
            )));
        m.attributes.push(RouteAttribute::Oif(3));
        m
    }

    #[test]
    fn v4_message_to_spec_and_back() {
        let spec = route_spec_from_message(&v4_msg()).unwrap();
        let want = RouteSpec::new("10.250.0.0".parse().unwrap(), 24)
            .via("10.0.0.2".parse().unwrap())
            .dev(3);
        assert_eq!(spec, want);
        assert!(spec.is_main_unicast());
        assert_eq!(spec.to_string(), "10.250.0.0/24");
        // and the message we would send re-parses to the same spec
        assert_eq!(route_spec_from_message(&route_message(&spec)), Some(spec));
    }

    #[test]
    fn v6_default_route_with_metric() {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet6;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Static;
        m.header.kind = RouteType::Unicast;
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet6(
                "fd00::2".parse().unwrap(),
            )));
        m.attributes.push(RouteAttribute::Oif(5));
        m.attributes.push(RouteAttribute::Priority(1024));
        let spec = route_spec_from_message(&m).unwrap();
        assert_eq!(spec.family, Family::Ipv6);
        assert_eq!(spec.dst, "::".parse::<IpAddr>().unwrap());
        assert_eq!(spec.to_string(), "default");
        assert_eq!(spec.priority, Some(1024));
        let back = route_message(&spec);
        assert!(!back
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Destination(_))));
        assert_eq!(route_spec_from_message(&back), Some(spec));
    }

    #[test]
    fn metrics_go_out_and_come_back() {
        let spec = route_spec_from_message(&v4_msg())
            .unwrap()
            .mtu_lock(1280)
            .congctl("bbr");
        let m = route_message(&spec);
        let metrics = m
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Metrics(l) => Some(l.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            metrics,
            [
                RouteMetric::Lock(4),
                RouteMetric::Mtu(1280),
                RouteMetric::CcAlgo("bbr".into())
            ]
        );
        assert_eq!(route_spec_from_message(&m), Some(spec));
        // an unlocked MTU stays unlocked; other metrics are ignored
        let mut m = v4_msg();
        m.attributes.push(RouteAttribute::Metrics(vec![
            RouteMetric::Mtu(1400),
            RouteMetric::Hoplimit(9),
        ]));
        let got = route_spec_from_message(&m).unwrap().metrics;
        assert_eq!(
            (got.mtu, got.mtu_lock, got.cc_algo),
            (Some(1400), false, None)
        );
        // no metrics, no attribute
        assert!(!route_message(&route_spec_from_message(&v4_msg()).unwrap())
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Metrics(_))));
    }

    #[test]
    fn unrepresentable_routes_are_skipped() {
        let mut cloned = v4_msg();
        cloned.header.flags.insert(RouteFlags::Cloned);
        assert!(route_spec_from_message(&cloned).is_none());
        let mut mp = v4_msg();
        mp.attributes.push(RouteAttribute::MultiPath(vec![]));
        assert!(route_spec_from_message(&mp).is_none());
        let mut other = v4_msg();
        other.header.address_family = AddressFamily::Mpls;
        assert!(route_spec_from_message(&other).is_none());
    }

    #[test]
    fn other_tables_are_not_main_unicast() {
        let mut m = v4_msg();
        m.attributes
            .retain(|a| !matches!(a, RouteAttribute::Table(_)));
        m.header.table = 255; // local
        assert!(!route_spec_from_message(&m).unwrap().is_main_unicast());
        let mut m = v4_msg();
        m.attributes.push(RouteAttribute::Table(1000));
        assert_eq!(route_spec_from_message(&m).unwrap().table, 1000);
    }
}
