//! TLS handshake outcomes per (role, listener, peer, process), cumulative since attach, the
//! plaintext TLS alerts local processes wrote, and the certificates the local TLS listeners
//! present: what the TLS sampler reads each tick and `tls_handshake_failure` and
//! `tls_cert_expiry` consume.
use serde::{Deserialize, Serialize};

/// Every handshake key seen in one namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TlsSample {
    pub netns: u32,
    pub handshakes: Vec<HandshakeCounts>,
    /// Plaintext alerts written by local processes (any TLS stack), cumulative since attach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertCounts>,
    /// The certificates of this namespace's TLS listeners, as last probed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certs: Vec<CertInfo>,
}

/// Which end of the handshake the process was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Accepted the connection: `addr:port` is its listener, `peer` the client.
    Server,
    /// Connected: `addr:port` is the server, `peer` the process's own address.
    Client,
}

/// One process's handshakes on one listener with one peer address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeCounts {
    pub role: Role,
    /// The listener's address (empty when the socket could not be resolved).
    pub addr: String,
    pub port: u16,
    pub peer: String,
    pub pid: u32,
    pub comm: String,
    pub ok: u64,
    /// Protocol failures (`SSL_ERROR_SSL`).
    pub failed: u64,
    /// Closed or reset by the peer before the end (`SSL_ERROR_SYSCALL`/`ZERO_RETURN`).
    pub aborted: u64,
}

impl HandshakeCounts {
    /// `addr:port` (`[addr]:port` for IPv6), the listener's name in keys and evidence.
    pub fn listener(&self) -> String {
        listener(&self.addr, self.port)
    }
}

/// `addr:port`, `[addr]:port` for IPv6.
fn listener(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// TLS alerts one end wrote in cleartext on one listener with one peer address: content type
/// 21 records sent before the keys were set, i.e. handshake failures, whatever the TLS stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertCounts {
    /// The writer's role: `server` (an accepted connection), `client` (a connecting one).
    pub role: Role,
    /// The listener, as in `HandshakeCounts` (the server's address for both roles).
    pub addr: String,
    pub port: u16,
    /// The client's address.
    pub peer: String,
    /// 1 warning, 2 fatal.
    pub level: u8,
    /// The alert description (RFC 8446 §6).
    pub code: u8,
    pub count: u64,
}

impl AlertCounts {
    pub fn listener(&self) -> String {
        listener(&self.addr, self.port)
    }
}

/// The certificate a local TLS listener presents, as the last probe read it (guardian
/// connects to the listener in its namespace and records the chain without judging it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    pub addr: String,
    pub port: u16,
    /// The leaf's subject and issuer (RFC 4514).
    pub subject: String,
    pub issuer: String,
    /// notAfter, seconds since the epoch, and as RFC 3339.
    pub not_after_unix: i64,
    pub not_after: String,
    /// When the probe read it, seconds since the epoch.
    pub checked_unix: i64,
}

impl CertInfo {
    /// `addr:port` (`[addr]:port` for IPv6).
    pub fn listener(&self) -> String {
        listener(&self.addr, self.port)
    }

    /// Seconds from the check to notAfter (negative: expired when checked).
    pub fn seconds_left(&self) -> i64 {
        self.not_after_unix - self.checked_unix
    }
}
