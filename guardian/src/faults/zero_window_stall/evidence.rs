//! `zero_window_stall` evidence: one local port's flows stalled on a zero window, the longest
//! ones, and the processes that hold them.
//!
//! Serialized into the fault event (keys sorted, as every evidence object).
use serde::Serialize;

use crate::model::shadows::{SocketOwner, StalledFlow};

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    /// Flows of the port stalled at least `stall_ms` now.
    pub stalled_flows: u64,
    /// The longest stall (ms since that flow last sent data).
    pub longest_ms: u64,
    /// Bytes waiting in the send queues of the stalled flows.
    pub queued_bytes: u64,
    /// The configured `stall_ms` and `min_flows`.
    pub stall_ms: u64,
    pub min_flows: u64,
    /// The longest stalled flows (at most 5): local and remote `addr:port`, `stalled_ms`,
    /// `probes` sent in this stall, `queued` bytes, the peer's window `snd_wnd` (when the
    /// kernel reports it) and the socket `inode`.
    pub flows: Vec<StalledFlow>,
    /// The processes holding them, most sockets first (empty when none could be named).
    pub owners: Vec<SocketOwner>,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        let longest = match self.flows.first() {
            Some(f) => format!(
                ", longest {} ms to {} ({} bytes queued, {} probes)",
                f.stalled_ms, f.remote, f.queued, f.probes
            ),
            None => String::new(),
        };
        let held = match self.owners.first() {
            Some(o) => format!(", held by pid {} ({})", o.pid, o.comm),
            None => String::new(),
        };
        format!(
            "{} flows stalled on a zero window for at least {} ms, {} bytes queued{longest}{held}",
            self.stalled_flows, self.stall_ms, self.queued_bytes
        )
    }
}
