//! Routes: dumps of the protected tables, presence checks, lookups, add and delete.
use std::collections::BTreeSet;
use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::route::{RouteAttribute, RouteMessage, RouteVia};

use super::client::{Netlink, NetlinkError};
use super::consts::{Family, RTN_UNICAST, TABLE_MAIN};
use super::route_msg::{
    address_family, header_table, ip_of, route_message, route_spec_from_message,
};
use super::route_spec::RouteSpec;

/// What the kernel's route lookup (`ip route get ADDR`) answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// `RTN_*` of the answer (1 unicast; unreachable, blackhole, local...).
    pub kind: u8,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
}

/// A dump request for one family and table (0: all tables), unicast routes, optionally one
/// output interface.
/// With NETLINK_GET_STRICT_CHK the kernel filters; without it, it ignores these fields.
fn dump_request(family: Family, table: u32, oif: Option<u32>) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = address_family(family);
    m.header.table = header_table(table);
    m.header.kind = RTN_UNICAST.into();
    if table != 0 {
        m.attributes.push(RouteAttribute::Table(table));
    }
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
            .filter(|r| (table == 0 || r.table == table) && r.kind == RTN_UNICAST)
            .filter(|r| oif.is_none() || r.oif == oif)
            .collect())
    }

    /// Main-table unicast routes, IPv4 then IPv6.
    pub async fn dump_routes(&self) -> Result<Vec<RouteSpec>, NetlinkError> {
        let mut all = self.dump(Family::Ipv4, TABLE_MAIN, None).await?;
        all.extend(self.dump(Family::Ipv6, TABLE_MAIN, None).await?);
        Ok(all)
    }

    /// Unicast routes of the main table and of every table an `ip rule` or a VRF uses
    /// ([`Netlink::watched_tables`]), IPv4 then IPv6: the routes guardian protects. One dump
    /// of all tables per family, filtered here.
    pub async fn dump_watched_routes(&self) -> Result<Vec<RouteSpec>, NetlinkError> {
        let tables = self.watched_tables().await?;
        self.dump_tables(&tables).await
    }

    /// Unicast routes of these tables, IPv4 then IPv6.
    pub async fn dump_tables(
        &self,
        tables: &BTreeSet<u32>,
    ) -> Result<Vec<RouteSpec>, NetlinkError> {
        let mut all = self.dump(Family::Ipv4, 0, None).await?;
        all.extend(self.dump(Family::Ipv6, 0, None).await?);
        all.retain(|r| tables.contains(&r.table));
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
