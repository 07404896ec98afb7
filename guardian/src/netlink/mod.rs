//! Links and routes of the daemon's current network namespace, through rtnetlink.
//!
//! Two sockets, on purpose:
//! - [`subscribe`] opens a socket bound to the link and IPv4/IPv6 route multicast groups and
//!   never sends a request on it (kernel notifications carry the sequence number of whatever
//!   request caused them, so mixing requests and notifications on one socket could route a
//!   notification to a pending request);
//! - [`Netlink`] is the request side: dumps, single-link queries and the executors that apply
//!   remedies.
//!
//! Everything handed to the rest of the daemon is plain data ([`NetEvent`], [`LinkState`],
//! [`RouteSpec`]) so detectors stay pure and testable.
mod links;
mod route_spec;
mod routes;
pub mod sync;
mod watch;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

pub use links::link_state_from_message;
pub use route_spec::{RouteMetrics, RouteSpec};
pub use routes::{route_spec_from_message, Lookup};
pub use watch::{net_event_from, notice_from_message, subscribe, Subscription};

/// `RT_TABLE_MAIN`.
pub const TABLE_MAIN: u32 = 254;
/// `RTN_UNICAST`.
pub const RTN_UNICAST: u8 = 1;
/// `RT_SCOPE_UNIVERSE`.
pub const RT_SCOPE_UNIVERSE: u8 = 0;
/// `RT_SCOPE_LINK`.
pub const RT_SCOPE_LINK: u8 = 253;
/// `RTPROT_KERNEL`: routes the kernel derives from addresses.
pub const RTPROT_KERNEL: u8 = 2;
/// `RTPROT_BOOT`: what `ip route add` uses by default.
pub const RTPROT_BOOT: u8 = 3;
/// `RTPROT_STATIC`.
pub const RTPROT_STATIC: u8 = 4;
/// `RTPROT_RA`: learned from IPv6 router advertisements.
pub const RTPROT_RA: u8 = 9;
/// `RTPROT_REDIRECT`: learned from ICMP redirects.
pub const RTPROT_REDIRECT: u8 = 1;

/// A change the kernel announced on the link or route multicast groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NetEvent {
    /// RTM_NEWLINK: a link appeared or changed (flags, operstate, MTU, name...).
    Link(LinkState),
    /// RTM_DELLINK: the link is gone.
    LinkRemoved { ifindex: u32, name: String },
    /// RTM_NEWROUTE of a main-table unicast route.
    RouteAdded(RouteSpec),
    /// RTM_DELROUTE of a main-table unicast route.
    RouteDeleted(RouteSpec),
}

/// What the subscription yields: an event, or the news that the kernel dropped some
/// (socket buffer overrun); after an overrun, state must be re-read with a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Event(NetEvent),
    Overrun,
}

/// One link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    pub ifindex: u32,
    pub name: String,
    /// IFF_UP: administratively up.
    pub admin_up: bool,
    /// Carrier/operational state: IFF_LOWER_UP or IFF_RUNNING or IF_OPER_UP.
    pub oper_up: bool,
    pub mtu: u32,
}

impl LinkState {
    /// Admin up and operationally up.
    pub fn is_up(&self) -> bool {
        self.admin_up && self.oper_up
    }
}

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    fn unspecified(self) -> IpAddr {
        match self {
            Family::Ipv4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::Ipv6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

/// Failures talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a netlink route socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("netlink {op} failed: {source}")]
    Request {
        op: &'static str,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("netlink {op} failed: the kernel sent an unexpected reply")]
    Unexpected { op: &'static str },
}

impl NetlinkError {
    fn request(op: &'static str, source: rtnetlink::Error) -> Self {
        NetlinkError::Request { op, source }
    }

    /// The kernel's errno for a rejected request (positive, e.g. `libc::EEXIST`).
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request {
                source: rtnetlink::Error::NetlinkError(m),
                ..
            } => m.code.map(|c| c.get().abs()),
            _ => None,
        }
    }
}

/// The request side: dumps, queries and the executors remedies use.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    _conn: std::sync::Arc<AbortOnDrop>,
}

pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Netlink {
    /// Opens a request socket in the current network namespace; its connection task runs on
    /// the current tokio runtime until the last clone of the returned handle is dropped.
    pub fn connect() -> Result<Self, NetlinkError> {
        // Strict checking lets the kernel filter route dumps by table, protocol, type and oif
        // (Linux >= 4.20); without it the same requests work and we filter in userspace.
        let (conn, handle, _) = match rtnetlink::new_connection_with_strict_check() {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("NETLINK_GET_STRICT_CHK unavailable ({e}); dumping unfiltered");
                rtnetlink::new_connection().map_err(NetlinkError::Socket)?
            }
        };
        let task = tokio::spawn(conn);
        Ok(Netlink {
            handle,
            _conn: std::sync::Arc::new(AbortOnDrop(task)),
        })
    }

    pub(crate) fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }
}

#[cfg(test)]
mod tests {
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
