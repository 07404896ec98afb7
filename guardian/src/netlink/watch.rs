//! The multicast subscription: link and route notifications as a stream of [`Notice`]s.
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::mpsc::UnboundedReceiver;
use futures::Stream;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{AsyncSocket, SocketAddr};

use super::client::{AbortOnDrop, NetlinkError};
use super::events::{NetEvent, Notice};
use super::links::link_state_from_message;
use super::route_msg::route_spec_from_message;
use super::route_spec::RouteSpec;
use super::who::Who;

const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV6_ROUTE: u32 = 11;
const RTNLGRP_IPV4_RULE: u32 = 8;
const RTNLGRP_IPV6_RULE: u32 = 19;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV6_IFADDR: u32 = 9;

/// Receive buffer asked for the subscription socket (capped by `net.core.rmem_max`).
const SUBSCRIPTION_RCVBUF: usize = 4 << 20;

/// The multicast subscription: a stream of [`Notice`]s for links and unicast routes of every
/// table but `local` (IPv4 and IPv6); the detectors keep those of protected routes. Its connection task stops when the subscription is dropped.
pub struct Subscription {
    rx: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
    _conn: AbortOnDrop,
}

/// Subscribes to RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE and the two rule groups
/// in the current network namespace. Must be called inside a tokio runtime. Subscribe before dumping so no
/// change between the dump and the subscription goes unseen.
pub fn subscribe() -> Result<Subscription, NetlinkError> {
    let (mut conn, _handle, rx) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
    let groups = (1 << (RTNLGRP_LINK - 1))
        | (1 << (RTNLGRP_IPV4_ROUTE - 1))
        | (1 << (RTNLGRP_IPV6_ROUTE - 1))
        | (1 << (RTNLGRP_IPV4_RULE - 1))
        | (1 << (RTNLGRP_IPV6_RULE - 1))
        | (1 << (RTNLGRP_IPV4_IFADDR - 1))
        | (1 << (RTNLGRP_IPV6_IFADDR - 1));
    let sock = conn.socket_mut().socket_mut();
    sock.bind(&SocketAddr::new(0, groups))
        .map_err(NetlinkError::Socket)?;
    if let Err(e) = sock.set_rx_buf_sz(SUBSCRIPTION_RCVBUF) {
        tracing::debug!("could not enlarge the netlink receive buffer: {e}");
    }
    let task = tokio::spawn(conn);
    Ok(Subscription {
        rx,
        _conn: AbortOnDrop(task),
    })
}

impl Stream for Subscription {
    type Item = Notice;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Notice>> {
        loop {
            match Pin::new(&mut self.rx).poll_next(cx) {
                Poll::Ready(Some((msg, _))) => {
                    if let Some(n) = notice_from_message(msg) {
                        return Poll::Ready(Some(n));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Converts one multicast message; `None` for messages guardian does not watch (other
/// families, other tables, non-unicast and cloned routes, bridge port links...).
pub fn notice_from_message(msg: NetlinkMessage<RouteNetlinkMessage>) -> Option<Notice> {
    match msg.payload {
        NetlinkPayload::Overrun(_) => Some(Notice::Overrun),
        NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewRule(_) | RouteNetlinkMessage::DelRule(_),
        ) => Some(Notice::Rules),
        NetlinkPayload::InnerMessage(inner) => {
            let mut ev = net_event_from(inner)?;
            // nlmsg_pid: the port of the socket whose request caused the change, 0 for the
            // kernel's own changes.
            let who = Some(Who::port(msg.header.port_number));
            match &mut ev {
                NetEvent::Link(c) => c.by = who,
                NetEvent::RouteAdded(c) | NetEvent::RouteDeleted(c) => c.by = who,
                NetEvent::LinkRemoved { by, .. } => *by = who,
                NetEvent::AddressRemoved { by, .. } => *by = who,
                NetEvent::BaselineAccepted { .. } => {}
            }
            Some(Notice::Event(ev))
        }
        _ => None,
    }
}

/// Converts one rtnetlink message into a [`NetEvent`] when it is one guardian watches.
pub fn net_event_from(msg: RouteNetlinkMessage) -> Option<NetEvent> {
    match msg {
        RouteNetlinkMessage::NewLink(m) => {
            link_state_from_message(&m).map(|l| NetEvent::Link(l.into()))
        }
        RouteNetlinkMessage::DelLink(m) => {
            link_state_from_message(&m).map(|l| NetEvent::LinkRemoved {
                ifindex: l.ifindex,
                name: l.name,
                by: None,
            })
        }
        RouteNetlinkMessage::NewRoute(m) => route_spec_from_message(&m)
            .filter(RouteSpec::is_unicast_outside_local)
            .map(|r| NetEvent::RouteAdded(r.into())),
        RouteNetlinkMessage::DelRoute(m) => route_spec_from_message(&m)
            .filter(RouteSpec::is_unicast_outside_local)
            .map(|r| NetEvent::RouteDeleted(r.into())),
        RouteNetlinkMessage::DelAddress(m) => super::addrs::address_removed_from_message(&m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::NetlinkHeader;
    use netlink_packet_route::route::RouteMessage;
    use netlink_packet_route::rule::RuleMessage;

    fn msg(inner: RouteNetlinkMessage) -> NetlinkMessage<RouteNetlinkMessage> {
        NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(inner),
        )
    }

    #[test]
    fn rules_say_the_tables_may_have_changed_and_every_table_but_local_is_watched() {
        for r in [
            RouteNetlinkMessage::NewRule(RuleMessage::default()),
            RouteNetlinkMessage::DelRule(RuleMessage::default()),
        ] {
            assert_eq!(notice_from_message(msg(r)), Some(Notice::Rules));
        }
        let mut route = super::super::route_msg::route_message(
            &RouteSpec::new("10.9.0.0".parse().unwrap(), 24).dev(3),
        );
        route.header.table = 100;
        route
            .attributes
            .retain(|a| !matches!(a, netlink_packet_route::route::RouteAttribute::Table(_)));
        let Some(Notice::Event(NetEvent::RouteDeleted(c))) =
            notice_from_message(msg(RouteNetlinkMessage::DelRoute(route.clone())))
        else {
            panic!("a table 100 route is watched");
        };
        assert_eq!(c.table, 100);
        let mut local: RouteMessage = route;
        local.header.table = 255;
        assert_eq!(
            notice_from_message(msg(RouteNetlinkMessage::DelRoute(local))),
            None
        );
    }
}
