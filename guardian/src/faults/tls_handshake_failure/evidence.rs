//! `tls_handshake_failure` evidence: one listener's handshakes in the window, the failing
//! peers named with their counts.
//!
//! Serialized into the fault event (keys sorted, as every evidence object).
use serde::Serialize;

use crate::faults::http_5xx::services::Process;
use crate::model::tls::Role;

/// One peer address's handshakes with the listener in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    pub aborted: u64,
    pub failed: u64,
    pub ok: u64,
    pub peer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Closed or reset by the peer before the end (not in `ratio`).
    pub aborted: u64,
    /// Protocol failures (`SSL_ERROR_SSL`).
    pub failed: u64,
    /// The listener, `addr:port`.
    pub listener: String,
    pub min_per_s: f64,
    pub ok: u64,
    /// Failed handshakes per second over the window.
    pub per_s: f64,
    /// The peers with failures or aborts, most failures first (at most `MAX_PEERS`).
    pub peers: Vec<Peer>,
    /// Peers left out of `peers`.
    pub peers_omitted: usize,
    pub processes: Vec<Process>,
    /// failed / (ok + failed).
    pub ratio: f64,
    /// `server`: the local listener failed handshakes with these clients; `client`: local
    /// processes failed handshakes with this server.
    pub role: Role,
    pub threshold: f64,
    pub window_ms: u64,
}

impl Evidence {
    /// The sentence of the event's `message`.
    pub fn detail(&self) -> String {
        let peer = match self.peers.first() {
            Some(p) => format!(", most from {} ({} failed)", p.peer, p.failed),
            None => String::new(),
        };
        format!(
            "{} of {} TLS handshakes failed as {} on {} in {} ms ({:.1}%, threshold {:.1}%), {} aborted{peer}",
            self.failed,
            self.ok + self.failed,
            match self.role {
                Role::Server => "server",
                Role::Client => "client",
            },
            self.listener,
            self.window_ms,
            self.ratio * 100.0,
            self.threshold * 100.0,
            self.aborted
        )
    }
}
