//! Per-tick samples: what the samplers of `source` read from the kernel and detectors consume.
//! Every sample is serializable, so `guardian run --record` can write it and `guardian replay`
//! feed it back.
use serde::{Deserialize, Serialize};

use super::{AddrCount, PortCount};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MibSample {
    pub netns: u32,
    /// `TcpOutSegs`: segments sent (retransmissions excluded), since the namespace was made.
    pub tcp_out_segs: u64,
    /// `TcpRetransSegs`: segments retransmitted.
    pub tcp_retrans_segs: u64,
    /// `TcpExtListenOverflows`: SYNs or handshake ACKs dropped because an accept queue was full.
    pub listen_overflows: u64,
    /// `TcpExtListenDrops`: every drop at a listener (overflows included).
    pub listen_drops: u64,
    /// `TcpExtTCPTimeWaitOverflow`: TIME_WAIT sockets not created because the table was full.
    pub tw_overflow: u64,
    /// `TcpExtTCPReqQFullDrop`: SYNs dropped because the SYN queue was full (no syncookies).
    pub req_q_full_drop: u64,
    /// `TcpExtSyncookiesSent`.
    pub syncookies_sent: u64,
    /// `TcpExtTCPReqQFullDoCookies`: SYNs answered with a cookie because the SYN queue was
    /// full (the kernel absorbing a flood).
    pub req_q_full_do_cookies: u64,
    /// `TcpExtTCPRetransFail`: retransmissions whose transmit failed (counted in
    /// `TcpRetransSegs`; before Linux 6.17 `tcp_retransmit_skb` does not fire for them).
    pub tcp_retrans_fail: u64,
    /// `TcpExtTCPWinProbe`: zero-window probes sent (the persist timer fired), since the
    /// namespace was made. `zero_window_stall` looks for the stalled flows only when it moved.
    pub tcp_win_probe: u64,
    /// `net.ipv4.tcp_max_tw_buckets`.
    pub tcp_max_tw_buckets: Option<u64>,
    /// `net.ipv4.ip_local_port_range`.
    pub port_range: Option<PortRange>,
    /// `net.ipv4.tcp_tw_reuse`.
    pub tcp_tw_reuse: Option<u64>,
    /// `net.core.somaxconn`.
    pub somaxconn: Option<u64>,
    /// TCP sockets in TIME_WAIT (IPv4 and IPv6); None when the socket table could not be read
    /// (a dump error must not read as "no TIME_WAIT"). The daemon's `time_wait` gauge uses it.
    pub time_wait: Option<u64>,
    /// TIME_WAIT sockets per destination whose local port is in the ephemeral range (each one
    /// holds a port for that destination), most first, at most `source::mib::TOP_N`.
    pub time_wait_by_dst: Vec<DstSockets>,
    /// Sockets of any state but LISTEN per destination whose local port is in the ephemeral
    /// range: the range usage toward that destination. Most first, at most `source::mib::TOP_N`.
    pub ephemeral_by_dst: Vec<DstSockets>,
    /// Listening sockets with their accept queues, fullest first, at most `source::mib::MAX_LISTENERS`.
    pub listeners: Vec<Listener>,
    /// TCP sockets seen in the dump.
    pub sockets: u64,
}

impl MibSample {
    /// Ports in the ephemeral range (`hi - lo + 1`), if known.
    pub fn range_size(&self) -> Option<u64> {
        self.port_range.map(|r| r.size())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn size(&self) -> u64 {
        (self.hi as u64 + 1).saturating_sub(self.lo as u64)
    }
    pub fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DstSockets {
    pub addr: String,
    pub port: u16,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    /// Local address (`0.0.0.0` / `::` for a wildcard bind).
    pub addr: String,
    pub port: u16,
    /// Connections waiting in the accept queue (`idiag_rqueue`).
    pub queued: u32,
    /// The accept queue's limit, `min(backlog, somaxconn)` (`idiag_wqueue`).
    pub backlog: u32,
    pub uid: u32,
    pub inode: u32,
}

impl Listener {
    /// The accept queue is full: the next completed handshake overflows.
    pub fn full(&self) -> bool {
        self.queued >= self.backlog
    }
}

/// One flow's retransmit pattern (see `guardian_common::flows::FlowRtx`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FlowRetrans {
    pub daddr: String,
    pub dport: u16,
    pub sport: u16,
    /// Retransmitted skbs at least the flow's MSS long / shorter.
    pub full: u64,
    pub small: u64,
    /// Of those, sent by the retransmission timer.
    pub rto_full: u64,
    pub rto_small: u64,
    /// Consecutive timer retransmits of full-size segments without progress (0: none now).
    pub full_streak: u32,
    pub mss: u32,
    /// Length of the last retransmitted skb.
    pub len: u32,
    pub backoff: u32,
    /// Milliseconds since the flow's last retransmit.
    pub idle_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FlowSample {
    pub netns: u32,
    /// Completed passive handshakes (SYN_RECV -> ESTABLISHED) per local port, cumulative.
    #[serde(default)]
    pub handshakes_by_port: Vec<PortCount>,
    /// Completed passive handshakes per peer address, cumulative.
    #[serde(default)]
    pub established_by_source: Vec<AddrCount>,
    /// Open flows that needed the retransmission timer (`rto_full + rto_small > 0`).
    #[serde(default)]
    pub retrans_by_flow: Vec<FlowRetrans>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DnsSample {
    pub netns: u32,
    pub resolvers: Vec<ResolverCounts>,
}

/// Totals for one resolver seen on one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResolverCounts {
    /// The resolver's address.
    pub addr: String,
    pub ifindex: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    pub queries: u64,
    pub noerror: u64,
    pub nxdomain: u64,
    pub servfail: u64,
    pub refused: u64,
    /// Other rcodes (FORMERR, NOTIMP, ...).
    pub other: u64,
}

impl ResolverCounts {
    pub fn answers(&self) -> u64 {
        self.noerror + self.nxdomain + self.servfail + self.refused + self.other
    }
    /// Responses that say the resolver failed: SERVFAIL and REFUSED.
    pub fn failed(&self) -> u64 {
        self.servfail + self.refused
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LinkStatsSample {
    pub netns: u32,
    pub links: Vec<LinkCounters>,
}

/// One interface's totals since it was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LinkCounters {
    pub iface: String,
    pub ifindex: u32,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Link speed in Mbit/s as the driver reports it; absent when it reports none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mbps: Option<u64>,
}
