//! What planning reads ([`PlanContext`], the kernel's state behind [`StateReader`]) and the
//! [`Remedy`] trait every remedy implements.
use std::collections::HashMap;

use super::holders;
use super::id::RemedyId;
use super::plan::Plan;
use crate::faults::{FaultId, Finding};
use crate::netlink::{LinkState, RouteSpec};

/// Reads of the kernel's current state that planning needs, behind a trait so that unit
/// tests plan against a fake.
pub trait StateReader {
    /// The value of a sysctl (`net.ipv4.tcp_tw_reuse`) in a namespace (None: the daemon's),
    /// whitespace-normalized (`32768 60999`); None when it cannot be read.
    fn sysctl(&self, netns: Option<u32>, key: &str) -> Option<String>;

    /// Every TCP socket (any state, IPv4 and IPv6) whose local port is `port` in a namespace
    /// (None: the daemon's); None when the table cannot be read. Default: the live kernel
    /// (INET_DIAG from a thread in that namespace).
    fn tcp_sockets(&self, netns: Option<u32>, port: u16) -> Option<Vec<holders::SocketRef>> {
        let ns = holders::live_path(netns).ok()?;
        holders::tcp_sockets(ns.as_deref(), netns, port).ok()
    }

    /// The ports TCP sockets listen on in a namespace (None: the daemon's); None when the
    /// table cannot be read. Default: the live kernel (INET_DIAG).
    fn listening_ports(&self, netns: Option<u32>) -> Option<Vec<u16>> {
        let ns = holders::live_path(netns).ok()?;
        holders::listening_ports(ns.as_deref()).ok()
    }

    /// The processes that hold each socket inode open. Default: a scan of `/proc/*/fd`.
    fn socket_owners(&self, inodes: &[u32]) -> HashMap<u32, Vec<holders::Owner>> {
        holders::owners(inodes)
    }
}

/// Planning input besides the finding.
pub struct PlanContext<'a> {
    /// Links of the daemon's namespace, as last seen.
    pub links: &'a [LinkState],
    /// Routes of the daemon's namespace (all tables), dumped just before planning.
    pub routes: &'a [RouteSpec],
    /// Protected routes captured at start (baseline).
    pub baseline: &'a [RouteSpec],
    pub state: &'a dyn StateReader,
    /// How many times this remedy already acted on this subject (for doubling hold times).
    pub recurrences: u32,
}

pub trait Remedy: Send + Sync {
    /// Stable remedy id, e.g. `link_up`.
    fn name(&self) -> RemedyId;
    /// The faults whose ladder this remedy is on.
    fn faults(&self) -> &'static [FaultId];
    /// `None` when the remedy has nothing to say about this finding (another fault, or a
    /// case it never handles); otherwise a change or the reason it must not act now.
    fn plan(&self, f: &Finding, ctx: &PlanContext<'_>) -> Option<Plan>;
}
