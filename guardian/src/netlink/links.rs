//! Links: conversion from RTM_NEWLINK, dump, single-link query, set up/down.
use futures::TryStreamExt;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};
use netlink_packet_route::AddressFamily;
use rtnetlink::LinkUnspec;

use super::client::{Netlink, NetlinkError};
use super::events::LinkState;

/// Converts a link message; `None` for messages that are not about a whole link (e.g. the
/// AF_BRIDGE port messages the kernel also sends on RTNLGRP_LINK).
pub fn link_state_from_message(m: &LinkMessage) -> Option<LinkState> {
    if m.header.interface_family != AddressFamily::Unspec || m.header.index == 0 {
        return None;
    }
    let flags = m.header.flags;
    let mut name = String::new();
    let mut mtu = 0;
    let mut operstate = None;
    for attr in &m.attributes {
        match attr {
            LinkAttribute::IfName(n) => name.clone_from(n),
            LinkAttribute::Mtu(v) => mtu = *v,
            LinkAttribute::OperState(s) => operstate = Some(*s),
            _ => {}
        }
    }
    let admin_up = flags.contains(LinkFlags::Up);
    // IFF_LOWER_UP (carrier) is updated synchronously; IFF_RUNNING and IF_OPER_UP follow
    // through linkwatch. Any of them means the link passes traffic (loopback and many virtual
    // devices report operstate UNKNOWN with IFF_LOWER_UP set).
    let oper_up = admin_up
        && (flags.contains(LinkFlags::LowerUp)
            || flags.contains(LinkFlags::Running)
            || operstate == Some(State::Up));
    Some(LinkState {
        ifindex: m.header.index,
        name,
        admin_up,
        oper_up,
        mtu,
    })
}

fn is_no_device(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m)
        if m.code.map(|c| c.get().abs()) == Some(libc::ENODEV))
}

impl Netlink {
    /// Every link of the namespace.
    pub async fn dump_links(&self) -> Result<Vec<LinkState>, NetlinkError> {
        let msgs: Vec<LinkMessage> = self
            .handle()
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetlinkError::request("link dump", e))?;
        Ok(msgs.iter().filter_map(link_state_from_message).collect())
    }

    /// The link with this index, or `None` if there is none.
    pub async fn get_link(&self, ifindex: u32) -> Result<Option<LinkState>, NetlinkError> {
        let res: Result<Vec<LinkMessage>, _> = self
            .handle()
            .link()
            .get()
            .match_index(ifindex)
            .execute()
            .try_collect()
            .await;
        match res {
            Ok(msgs) => Ok(msgs.iter().find_map(link_state_from_message)),
            Err(e) if is_no_device(&e) => Ok(None),
            Err(e) => Err(NetlinkError::request("link get", e)),
        }
    }

    /// `ip link set dev IFINDEX up`.
    pub async fn set_link_up(&self, ifindex: u32) -> Result<(), NetlinkError> {
        self.handle()
            .link()
            .change(LinkUnspec::new_with_index(ifindex).up().build())
            .execute()
            .await
            .map_err(|e| NetlinkError::request("link set up", e))
    }

    /// `ip link set dev IFINDEX down`.
    pub async fn set_link_down(&self, ifindex: u32) -> Result<(), NetlinkError> {
        self.handle()
            .link()
            .change(LinkUnspec::new_with_index(ifindex).down().build())
            .execute()
            .await
            .map_err(|e| NetlinkError::request("link set down", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(index: u32, name: &str, flags: LinkFlags, oper: Option<State>) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = flags;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m.attributes.push(LinkAttribute::Mtu(1500));
        if let Some(s) = oper {
            m.attributes.push(LinkAttribute::OperState(s));
        }
        m
    }

    #[test]
    fn conversion_table() {
        let up_lower = LinkFlags::Up | LinkFlags::LowerUp;
        // (flags, operstate, admin_up, oper_up)
        let cases: &[(LinkFlags, Option<State>, bool, bool)] = &[
            (up_lower | LinkFlags::Running, Some(State::Up), true, true),
            // carrier is back but linkwatch has not run yet: counts as up
            (up_lower, Some(State::LowerLayerDown), true, true),
            // loopback style: UNKNOWN operstate with carrier
            (
                up_lower | LinkFlags::Running,
                Some(State::Unknown),
                true,
                true,
            ),
            (LinkFlags::Up, Some(State::LowerLayerDown), true, false),
            (LinkFlags::Up, Some(State::Up), true, true),
            (LinkFlags::empty(), Some(State::Down), false, false),
            // stale flags while admin down are never "oper up"
            (LinkFlags::LowerUp, Some(State::Down), false, false),
        ];
        for (i, (flags, oper, admin, up)) in cases.iter().enumerate() {
            let l = link_state_from_message(&msg(3, "va", *flags, *oper)).unwrap();
            assert_eq!((l.admin_up, l.oper_up), (*admin, *up), "case {i}");
            assert_eq!(l.name, "va");
            assert_eq!(l.ifindex, 3);
            assert_eq!(l.mtu, 1500);
        }
    }

    #[test]
    fn bridge_port_messages_are_ignored() {
        let mut m = msg(3, "va", LinkFlags::Up, None);
        m.header.interface_family = AddressFamily::Bridge;
        assert!(link_state_from_message(&m).is_none());
    }
}
