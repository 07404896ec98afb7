//! `tls_handshake_failure` evidence: one listener's handshakes in the window, the failing
//! peers named with their counts, and the plaintext TLS alerts both ends wrote.
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

/// Whether the alert was written by this end (`role`) or by the other one (a local process
/// in the same namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Sent,
    Received,
}

/// What `ok` and `failed` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Handshake returns (OpenSSL uprobes).
    Handshakes,
    /// Fatal plaintext alerts, sent and received (no OpenSSL handshake seen on this listener:
    /// GnuTLS, Go, rustls...); successes are not seen, so `ok` is 0.
    Alerts,
}

/// One kind of plaintext TLS alert with one peer in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// The IANA name (`handshake_failure`, `unknown_ca`...; `unknown` for an unnamed code).
    pub alert: &'static str,
    pub code: u8,
    pub count: u64,
    pub direction: Direction,
    /// `fatal` or `warning`.
    pub level: &'static str,
    /// The client's address.
    pub peer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Closed or reset by the peer before the end (not in `ratio`).
    pub aborted: u64,
    /// The plaintext alerts in the window, most first (at most `MAX_ALERTS`).
    pub alerts: Vec<Alert>,
    /// Alert entries left out of `alerts`.
    pub alerts_omitted: usize,
    pub basis: Basis,
    /// Protocol failures (`SSL_ERROR_SSL`), or fatal alerts with `basis: alerts`.
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
        let mut alerts = String::new();
        for (i, a) in self.alerts.iter().take(3).enumerate() {
            let sep = if i == 0 { "; alerts: " } else { ", " };
            let dir = match a.direction {
                Direction::Sent => "sent",
                Direction::Received => "received",
            };
            alerts += &format!("{sep}{} {} {dir}", a.count, a.alert);
        }
        let of = match self.basis {
            Basis::Handshakes => format!("{} of {} TLS handshakes", self.failed, self.ok + self.failed),
            Basis::Alerts => format!("{} TLS handshakes (fatal alerts)", self.failed),
        };
        format!(
            "{of} failed as {} on {} in {} ms ({:.1}%, threshold {:.1}%), {} aborted{peer}{alerts}",
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
