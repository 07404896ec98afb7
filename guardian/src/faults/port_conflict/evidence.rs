//! `port_conflict` evidence: the last failed bind and the sockets that hold the port.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

/// The process whose bind failed last.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Binder {
    pub addr: Option<String>,
    pub comm: String,
    pub family: Option<String>,
    pub pid: u32,
    pub tid: u32,
}

/// A listening socket on the port.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Holder {
    pub addr: String,
    pub inode: u32,
    pub port: u16,
    pub state: &'static str,
    pub uid: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    pub binder: Binder,
    /// Conflicts since the fault opened.
    pub conflicts: u64,
    pub holders: Vec<Holder>,
    pub since_last_report: u64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        let held = match self.holders.first() {
            Some(h) => format!("held by {}:{} ({})", h.addr, h.port, h.state),
            None => "held by a socket no longer listed".to_string(),
        };
        format!(
            "{} (pid {}) could not bind: the port is {held}; conflicts: {}",
            self.binder.comm, self.binder.pid, self.conflicts
        )
    }
}
