//! Plain data handed to the rest of the daemon: [`NetEvent`], [`Notice`], [`LinkState`].
use serde::{Deserialize, Serialize};

use super::route_spec::RouteSpec;

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
