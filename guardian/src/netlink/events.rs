//! Plain data handed to the rest of the daemon: [`NetEvent`], [`Notice`], [`LinkState`].
use serde::{Deserialize, Serialize};

use super::route_spec::RouteSpec;
use super::who::Who;

/// A change the kernel announced on the link or route multicast groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NetEvent {
    /// RTM_NEWLINK: a link appeared or changed (flags, operstate, MTU, name...).
    Link(Change<LinkState>),
    /// RTM_DELLINK: the link is gone.
    LinkRemoved {
        ifindex: u32,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Who>,
    },
    /// RTM_NEWROUTE of a unicast route of a watched table.
    RouteAdded(Change<RouteSpec>),
    /// RTM_DELROUTE of a unicast route of a watched table.
    RouteDeleted(Change<RouteSpec>),
    /// `guardian baseline accept`: the operator's decision about protected routes, recorded
    /// like any other input so replay sees it: `dropped` are protected no more (their loss is
    /// accepted), `added` are protected from now on.
    BaselineAccepted {
        #[serde(default)]
        dropped: Vec<RouteSpec>,
        #[serde(default)]
        added: Vec<RouteSpec>,
    },
    /// RTM_DELADDR: an IPv4 or IPv6 address was removed from a link (the kernel removes the
    /// routes that depended on it without any RTM_DELROUTE).
    AddressRemoved {
        ifindex: u32,
        address: std::net::IpAddr,
        prefix_len: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Who>,
    },
}

/// A link or route as a notification announced it, with who made the change (`None` in
/// records written before guardian said who, and for changes it infers from a dump).
/// Dereferences to the link or route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change<T> {
    #[serde(flatten)]
    pub what: T,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Who>,
}

impl<T> Change<T> {
    pub fn by(what: T, by: Option<Who>) -> Self {
        Change { what, by }
    }
}

impl<T> From<T> for Change<T> {
    fn from(what: T) -> Self {
        Change { what, by: None }
    }
}

impl<T> std::ops::Deref for Change<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.what
    }
}

impl NetEvent {
    /// The sender of the change, when the event says.
    pub fn by_mut(&mut self) -> Option<&mut Who> {
        match self {
            NetEvent::Link(c) => c.by.as_mut(),
            NetEvent::RouteAdded(c) | NetEvent::RouteDeleted(c) => c.by.as_mut(),
            NetEvent::LinkRemoved { by, .. } => by.as_mut(),
            NetEvent::AddressRemoved { by, .. } => by.as_mut(),
            NetEvent::BaselineAccepted { .. } => None,
        }
    }
}

/// What the subscription yields: an event, or the news that the kernel dropped some
/// (socket buffer overrun); after an overrun, state must be re-read with a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
// One notice at a time passes through the subscription: boxing the event would allocate for
// each of them to save stack space nobody runs short of.
#[allow(clippy::large_enum_variant)]
pub enum Notice {
    Event(NetEvent),
    Overrun,
    /// An `ip rule` was added or deleted (RTM_NEWRULE / RTM_DELRULE): the set of protected
    /// tables may have changed.
    Rules,
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
