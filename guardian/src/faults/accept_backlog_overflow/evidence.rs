//! `accept_backlog_overflow` evidence: listen queue overflows and drops in the window, and the listener seen full.
//!
//! Serialized into the fault event (keys sorted, as every evidence object) and read by the
//! remedies as fields.
use serde::Serialize;

/// A listener seen with a full accept queue.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Listener {
    pub addr: String,
    pub backlog: u32,
    pub inode: u32,
    pub port: u16,
    pub queued: u32,
    pub seen_full_ms_ago: u64,
    pub uid: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    pub drops: u64,
    pub listen_overflows_total: u64,
    /// Absent when no listener was seen full (the namespace-wide fault).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener: Option<Listener>,
    pub overflows: u64,
    pub somaxconn: Option<u64>,
    pub window_ms: u64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        let mut s = format!(
            "{} accept-queue overflows, {} SYNs dropped in {} ms",
            self.overflows, self.drops, self.window_ms
        );
        if let Some(l) = &self.listener {
            s.push_str(&format!(
                "; listener {}:{} queue {}/{}",
                l.addr, l.port, l.queued, l.backlog
            ));
        }
        s
    }
}
