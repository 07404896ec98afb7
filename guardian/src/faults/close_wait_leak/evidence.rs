//! `close_wait_leak` evidence: one local port's CLOSE_WAIT sockets, their growth, and the
//! processes that hold them.
//!
//! Serialized into the fault event (keys sorted, as every evidence object).
use serde::Serialize;

use crate::model::shadows::SocketOwner;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    /// Sockets of the port in CLOSE_WAIT now (counted from attach).
    pub close_wait: u64,
    /// Growth within `span_ms`.
    pub grew_by: u64,
    pub span_ms: u64,
    /// The configured `min_sockets` and `min_growth`.
    pub threshold: u64,
    pub min_growth: u64,
    /// The processes holding them, most sockets first (empty when the kernel's BTF lacks the
    /// socket inode or the process has gone).
    pub owners: Vec<SocketOwner>,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        let held = match self.owners.first() {
            Some(o) => format!(", most held by pid {} ({}): {}", o.pid, o.comm, o.sockets),
            None => String::new(),
        };
        format!(
            "{} sockets in CLOSE_WAIT, {} more in {} ms (thresholds {} and +{}){held}",
            self.close_wait, self.grew_by, self.span_ms, self.threshold, self.min_growth
        )
    }
}
