//! Conversion between RTM_NEWROUTE/RTM_DELROUTE messages and [`RouteSpec`], in both
//! directions, every shape guardian restores: single-path, multipath (RTA_MULTIPATH with
//! weights) and nexthop objects (RTA_NH_ID).
use std::net::IpAddr;

use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric, RouteNextHop,
    RouteNextHopFlags, RouteVia,
};
use netlink_packet_route::AddressFamily;

use super::consts::Family;
use super::route_spec::{NextHop, RouteMetrics, RouteSpec};

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

pub(super) fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// One `rtnexthop` of RTA_MULTIPATH; `None` for what cannot be re-added exactly
/// (encapsulations). State flags the kernel sets (dead, linkdown) are not configuration.
fn nexthop_of(h: &RouteNextHop) -> Option<NextHop> {
    let mut hop = NextHop {
        gateway: None,
        oif: h.interface_index,
        weight: u16::from(h.hops) + 1,
        onlink: h.flags.contains(RouteNextHopFlags::Onlink),
    };
    for attr in &h.attributes {
        match attr {
            RouteAttribute::Gateway(a) => hop.gateway = Some(ip_of(a)?),
            RouteAttribute::Via(RouteVia::Inet6(v6)) => hop.gateway = Some(IpAddr::V6(*v6)),
            RouteAttribute::Via(RouteVia::Inet(v4)) => hop.gateway = Some(IpAddr::V4(*v4)),
            RouteAttribute::Encap(_) | RouteAttribute::EncapType(_) | RouteAttribute::Via(_) => {
                return None
            }
            _ => {}
        }
    }
    Some(hop)
}

fn gateway_attr(family: Family, gw: IpAddr) -> RouteAttribute {
    match (family, gw) {
        (Family::Ipv4, IpAddr::V6(v6)) => RouteAttribute::Via(RouteVia::Inet6(v6)),
        (_, gw) => RouteAttribute::Gateway(gw.into()),
    }
}

fn nexthop_message(family: Family, hop: &NextHop) -> RouteNextHop {
    let mut h = RouteNextHop::default();
    h.interface_index = hop.oif;
    h.hops = u8::try_from(hop.weight.clamp(1, 256) - 1).unwrap_or(u8::MAX);
    if hop.onlink {
        h.flags.insert(RouteNextHopFlags::Onlink);
    }
    if let Some(gw) = hop.gateway {
        h.attributes.push(gateway_attr(family, gw));
    }
    h
}

/// Converts a route message. `None` for what a [`RouteSpec`] cannot re-add exactly:
/// non-IP families, cloned (cache) entries, encapsulations.
///
/// A route through a nexthop object keeps the id and the output interface only: with the
/// kernel's compatibility mode (`net.ipv4.nexthop_compat_mode`, on by default) its messages
/// also carry the object's gateway or nexthops, which are the object's, not the route's.
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
    let mut spec = RouteSpec::new(family.unspecified(), h.destination_prefix_length);
    spec.table = u32::from(h.table);
    spec.protocol = h.protocol.into();
    spec.scope = h.scope.into();
    spec.kind = h.kind.into();
    spec.tos = h.tos;
    spec.onlink = h.flags.contains(RouteFlags::Onlink);
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
            RouteAttribute::MultiPath(hops) => {
                spec.nexthops = hops.iter().map(nexthop_of).collect::<Option<Vec<_>>>()?;
            }
            RouteAttribute::NhId(id) => spec.nhid = Some(*id),
            RouteAttribute::Encap(_) | RouteAttribute::EncapType(_) | RouteAttribute::Via(_) => {
                return None
            }
            _ => {}
        }
    }
    if spec.nhid.is_some() {
        spec.gateway = None;
        spec.nexthops.clear();
        spec.onlink = false;
    }
    Some(spec)
}

pub(super) fn address_family(f: Family) -> AddressFamily {
    match f {
        Family::Ipv4 => AddressFamily::Inet,
        Family::Ipv6 => AddressFamily::Inet6,
    }
}

pub(super) fn header_table(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC)
}

/// The RTM_NEWROUTE / RTM_DELROUTE message that adds or deletes exactly this route: the
/// nexthop object alone when it has one, else its nexthops, else its gateway and device.
pub fn route_message(spec: &RouteSpec) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = address_family(spec.family);
    m.header.destination_prefix_length = spec.prefix_len;
    m.header.tos = spec.tos;
    m.header.table = header_table(spec.table);
    m.header.protocol = spec.protocol.into();
    m.header.scope = spec.scope.into();
    m.header.kind = spec.kind.into();
    if spec.onlink && spec.nhid.is_none() {
        m.header.flags.insert(RouteFlags::Onlink);
    }
    m.attributes.push(RouteAttribute::Table(spec.table));
    if spec.prefix_len > 0 {
        m.attributes
            .push(RouteAttribute::Destination(spec.dst.into()));
    }
    if let Some(id) = spec.nhid {
        m.attributes.push(RouteAttribute::NhId(id));
    } else if !spec.nexthops.is_empty() {
        let hops = spec
            .nexthops
            .iter()
            .map(|h| nexthop_message(spec.family, h))
            .collect();
        m.attributes.push(RouteAttribute::MultiPath(hops));
    } else {
        if let Some(gw) = spec.gateway {
            m.attributes.push(gateway_attr(spec.family, gw));
        }
        if let Some(oif) = spec.oif {
            m.attributes.push(RouteAttribute::Oif(oif));
        }
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

#[cfg(test)]
#[path = "route_msg_tests.rs"]
mod tests;
