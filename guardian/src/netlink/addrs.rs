//! Addresses: RTM_DELADDR as a [`NetEvent::AddressRemoved`]. The kernel takes the routes that
//! depended on an IPv4 address with it (the gateway routes of its subnet, when it was the
//! link's last one) without any RTM_DELROUTE, so the removal is the only sign of their loss.
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::AddressFamily;

use super::events::NetEvent;

/// Converts an RTM_DELADDR message; `None` for non-IP families or a message without address.
/// The local address (`IFA_LOCAL`) is preferred: on a point-to-point link `IFA_ADDRESS` is
/// the peer's.
pub fn address_removed_from_message(m: &AddressMessage) -> Option<NetEvent> {
    if !matches!(m.header.family, AddressFamily::Inet | AddressFamily::Inet6) {
        return None;
    }
    let pick = |local: bool| {
        m.attributes.iter().find_map(|a| match (a, local) {
            (AddressAttribute::Local(ip), true) | (AddressAttribute::Address(ip), false) => {
                Some(*ip)
            }
            _ => None,
        })
    };
    let address = pick(true).or_else(|| pick(false))?;
    Some(NetEvent::AddressRemoved {
        ifindex: m.header.index,
        address,
        prefix_len: m.header.prefix_len,
        by: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::{notice_from_message, Notice, Who};
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::RouteNetlinkMessage;

    fn v4(local: &str, peer: Option<&str>) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = 24;
        m.header.index = 7;
        if let Some(p) = peer {
            m.attributes
                .push(AddressAttribute::Address(p.parse().unwrap()));
        }
        m.attributes
            .push(AddressAttribute::Local(local.parse().unwrap()));
        m
    }

    #[test]
    fn a_deladdr_from_a_process_is_an_address_removed_event_with_its_sender() {
        let mut header = NetlinkHeader::default();
        header.port_number = 4242;
        let msg = NetlinkMessage::new(
            header,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(v4("10.77.67.50", None))),
        );
        let Some(Notice::Event(ev)) = notice_from_message(msg) else {
            panic!("no event");
        };
        assert_eq!(
            ev,
            NetEvent::AddressRemoved {
                ifindex: 7,
                address: "10.77.67.50".parse().unwrap(),
                prefix_len: 24,
                by: Some(Who::port(4242)),
            }
        );
        // serialized like the other events, and read back
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["event"], "address_removed");
        assert_eq!(json["address"], "10.77.67.50");
        assert_eq!(serde_json::from_value::<NetEvent>(json).unwrap(), ev);
    }

    #[test]
    fn the_local_address_wins_over_the_peer_and_new_addresses_are_not_watched() {
        let ev = address_removed_from_message(&v4("10.0.0.1", Some("10.0.0.2"))).unwrap();
        assert!(matches!(ev, NetEvent::AddressRemoved { address, .. }
            if address == "10.0.0.1".parse::<std::net::IpAddr>().unwrap()));
        let mut v6 = AddressMessage::default();
        v6.header.family = AddressFamily::Inet6;
        v6.header.prefix_len = 64;
        v6.attributes
            .push(AddressAttribute::Address("fd00::5".parse().unwrap()));
        assert!(address_removed_from_message(&v6).is_some());
        let mut other = v4("10.0.0.1", None);
        other.header.family = AddressFamily::Packet;
        assert!(address_removed_from_message(&other).is_none());
        let mut bare = AddressMessage::default();
        bare.header.family = AddressFamily::Inet;
        assert!(address_removed_from_message(&bare).is_none());
        let new = RouteNetlinkMessage::NewAddress(v4("10.0.0.1", None));
        assert!(crate::netlink::net_event_from(new).is_none());
    }
}
