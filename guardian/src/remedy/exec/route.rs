//! Routes: [`Action::AddRoute`](crate::remedy::Action::AddRoute) and
//! [`Action::DelRoute`](crate::remedy::Action::DelRoute) (each the other's inverse),
//! [`Action::ReplaceRoute`](crate::remedy::Action::ReplaceRoute) (its inverse swaps `from` and
//! `to`); verified by `RoutePresent`, `RouteAbsent` and `RouteVia`. Adding a route has a
//! precondition: its nexthop interface is up and the route is not there yet.
use std::net::IpAddr;

use crate::netlink::{Netlink, RouteSpec, RTN_UNICAST};
use crate::remedy::error::RemedyError;
use crate::remedy::kernel::Kernel;

/// Why [`Action::AddRoute`](crate::remedy::Action::AddRoute) must not be applied now, if so.
pub async fn add_precondition(nl: &Netlink, r: &RouteSpec) -> Option<String> {
    let oifs = r.oif.into_iter().chain(r.nexthops.iter().map(|h| h.oif));
    for oif in oifs {
        match nl.get_link(oif).await {
            Ok(Some(l)) if l.admin_up => {}
            Ok(Some(l)) => return Some(format!("nexthop interface {} is down", l.name)),
            Ok(None) => return Some(format!("nexthop interface {oif} does not exist")),
            Err(e) => return Some(format!("cannot read the nexthop interface: {e}")),
        }
    }
    if let Some(id) = r.nhid {
        match crate::netlink::nexthop::exists(id) {
            Ok(true) => {}
            Ok(false) => {
                return Some(format!(
                    "nexthop object {id} of route {r} no longer exists (the kernel removes a \
                     link's nexthop objects when it goes down): guardian does not invent a \
                     gateway; re-create the object (`ip nexthop add id {id} ...`) and the route"
                ))
            }
            Err(e) => return Some(format!("cannot read nexthop object {id}: {e}")),
        }
    }
    match nl.route_present(r).await {
        Ok(false) => None,
        Ok(true) => Some(format!("route {r} is already present")),
        Err(e) => Some(format!("cannot read routes: {e}")),
    }
}

pub async fn add(k: &mut Kernel, r: &RouteSpec) -> Result<(), RemedyError> {
    Ok(k.nl.add_route(r).await?)
}

pub async fn del(k: &mut Kernel, r: &RouteSpec) -> Result<(), RemedyError> {
    Ok(k.nl.del_route(r).await?)
}

/// Executes [`Action::ReplaceRoute`](crate::remedy::Action::ReplaceRoute): one in-place replace when
/// both routes have the same destination and metric (the kernel's replace key), otherwise add
/// `to`, then delete `from` (and take `to` away again if that fails).
pub async fn replace(k: &mut Kernel, from: &RouteSpec, to: &RouteSpec) -> Result<(), RemedyError> {
    if from.same_destination(to) && from.priority.unwrap_or(0) == to.priority.unwrap_or(0) {
        return Ok(k.nl.replace_route(to).await?);
    }
    k.nl.add_route(to).await?;
    if let Err(e) = k.nl.del_route(from).await {
        if let Err(ue) = k.nl.del_route(to).await {
            tracing::error!("undoing a partial route replace failed: {ue}");
        }
        return Err(e.into());
    }
    Ok(())
}

/// Checks [`Verify::RouteVia`](crate::remedy::Verify::RouteVia): the kernel's lookup for `dst` is a
/// unicast route out of `oif` (through `gateway`, when given) and that link is up.
pub async fn resolves_via(
    k: &mut Kernel,
    dst: IpAddr,
    oif: u32,
    gateway: Option<IpAddr>,
) -> Result<bool, RemedyError> {
    let Some(l) = k.nl.route_get(dst).await? else {
        return Ok(false);
    };
    if l.kind != RTN_UNICAST || l.oif != Some(oif) || (gateway.is_some() && l.gateway != gateway) {
        return Ok(false);
    }
    Ok(k.nl.get_link(oif).await?.is_some_and(|l| l.is_up()))
}

/// `RoutePresent` (`present = true`) and `RouteAbsent`: whether the route is in the table.
pub async fn is_present(k: &mut Kernel, r: &RouteSpec) -> Result<bool, RemedyError> {
    Ok(k.nl.route_present(r).await?)
}
