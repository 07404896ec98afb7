//! Connection-level shadows, cumulative since attach: TCP resets per service port and
//! direction, as the reset sampler reads them and `reset_storm` consumes them.
use serde::{Deserialize, Serialize};

/// Every (port, direction, side) with resets in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResetSample {
    pub netns: u32,
    pub ports: Vec<PortResets>,
}

/// Whether this host sent the resets or received them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RstDirection {
    Sent,
    Received,
}

impl RstDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            RstDirection::Sent => "sent",
            RstDirection::Received => "received",
        }
    }
}

/// Resets on the connections of one service port (the lower port of each connection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortResets {
    pub port: u16,
    pub direction: RstDirection,
    /// True when `port` is the peer's (this host is the client of that service).
    pub remote: bool,
    /// Cumulative since attach.
    pub count: u64,
}

/// CLOSE_WAIT sockets per local port in one namespace (ports with none are left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CloseWaitSample {
    pub netns: u32,
    pub ports: Vec<PortCloseWait>,
}

/// The sockets of one local port in CLOSE_WAIT now (entered minus left since attach), and,
/// once the count is high enough to matter, the processes that hold them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PortCloseWait {
    pub port: u16,
    pub count: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<SocketOwner>,
}

/// A process holding sockets of a port in CLOSE_WAIT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SocketOwner {
    pub pid: u32,
    pub comm: String,
    /// How many of the port's CLOSE_WAIT sockets it holds.
    pub sockets: u64,
}

/// DNS answers that matched no outstanding query, per source, in the daemon's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DnsSpoofSample {
    pub netns: u32,
    pub sources: Vec<UnmatchedAnswers>,
}

/// Answers from one source on one interface that answered nothing asked (cumulative).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UnmatchedAnswers {
    pub addr: String,
    pub ifindex: u32,
    pub count: u64,
}

/// Flows whose peer advertises a zero window, per local port, in one namespace: the sockets
/// whose zero-window probe (persist) timer is pending (`zero_window_stall`). Empty ports when
/// none are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ZeroWindowSample {
    pub netns: u32,
    /// `TcpExtTCPWinProbe` of the namespace: zero-window probes sent (cumulative).
    pub win_probes: u64,
    pub ports: Vec<PortStalls>,
}

/// The stalled flows of one local port, longest stalled first (at most
/// `source::zero_window::MAX_FLOWS`), and, once one has stalled long enough to matter, the
/// processes that hold them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PortStalls {
    pub port: u16,
    pub flows: Vec<StalledFlow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<SocketOwner>,
}

/// One flow in the persist state, as INET_DIAG and its `tcp_info` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StalledFlow {
    /// `addr:port` (IPv6 as `[addr]:port`).
    pub local: String,
    pub remote: String,
    /// Since the last data segment was sent (`tcpi_last_data_sent`; the probes carry none).
    pub stalled_ms: u64,
    /// Zero-window probes sent in this stall (`tcpi_backoff`: each probe doubles the interval).
    pub probes: u32,
    /// Bytes in the send queue (INET_DIAG `idiag_wqueue`).
    pub queued: u64,
    /// The peer's advertised window (`tcpi_snd_wnd`, Linux 6.2+); None when not reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snd_wnd: Option<u32>,
    /// The socket inode (0 when the socket has no file any more).
    #[serde(default)]
    pub inode: u32,
}
