//! What actions and checks act on: the daemon's rtnetlink socket, the namespaces it knows,
//! and (when the probes are loaded) the maps of guardian's own programs.
use std::path::PathBuf;

use super::RemedyError;
use crate::netlink::Netlink;
use crate::netns;

/// Handles to the maps of guardian's own programs that remedies write (XDP limits, sock_ops
/// policies). Empty when the programs are not loaded (`guardian rollback` with the daemon
/// stopped, unit tests).
#[derive(Default)]
pub struct Maps {
    /// `sockopt_failfast` policies (sock_ops); None when that program is not attached.
    pub failfast: Option<crate::probes::sockops::FailfastMap>,
    /// The XDP program's SYN limits (`xdp_source_limit`, `xdp_port_limit`).
    pub limits: Option<crate::probes::limits::Limits>,
}

pub struct Kernel {
    /// rtnetlink in the daemon's own namespace.
    pub nl: Netlink,
    /// Namespace inode → path, for per-namespace actions.
    pub netns: netns::Index,
    /// The daemon's own namespace inode: an action on it needs no namespace switch.
    pub own_netns: u32,
    pub maps: Maps,
}

impl Kernel {
    pub fn new(nl: Netlink, own_netns: u32, maps: Maps) -> Self {
        Kernel {
            nl,
            netns: netns::Index::new(),
            own_netns,
            maps,
        }
    }

    /// The path to enter for a per-namespace action: None for the daemon's own namespace.
    pub fn netns_path(&mut self, ino: Option<u32>) -> Result<Option<PathBuf>, RemedyError> {
        match ino {
            None => Ok(None),
            Some(i) if i == self.own_netns => Ok(None),
            Some(i) => self.netns.path(i).map(Some).ok_or_else(|| {
                RemedyError::Unavailable(format!("network namespace {i} no longer exists"))
            }),
        }
    }
}
