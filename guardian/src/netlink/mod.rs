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
mod addrs;
mod client;
mod consts;
mod events;
mod links;
pub mod nexthop;
pub mod protos;
mod route_msg;
mod route_spec;
mod routes;
pub mod sync;
pub mod tables;
mod watch;
pub mod who;

pub use client::{Netlink, NetlinkError};
pub use consts::{
    Family, RTN_UNICAST, RTPROT_BOOT, RTPROT_KERNEL, RTPROT_RA, RTPROT_REDIRECT, RTPROT_STATIC,
    RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, TABLE_LOCAL, TABLE_MAIN,
};
pub use events::{Change, LinkState, NetEvent, Notice};
pub use links::link_state_from_message;
pub use route_msg::route_spec_from_message;
pub use route_spec::{NextHop, RouteMetrics, RouteSpec};
pub use routes::Lookup;
pub use watch::{net_event_from, notice_from_message, subscribe, Subscription};
pub use who::Who;
