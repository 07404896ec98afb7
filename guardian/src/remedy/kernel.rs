//! What actions and checks act on: the daemon's rtnetlink socket, the namespaces it knows,
//! and (when the probes are loaded) the maps of guardian's own programs ([`Maps`], owned by
//! `probes`).
use std::path::PathBuf;

use super::error::RemedyError;
use crate::netlink::Netlink;
use crate::netns;

pub use crate::probes::Maps;

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
