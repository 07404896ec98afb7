//! Kernel observations and totals: what the ring buffer and the counter maps report, as
//! detectors consume them and as `observation`, `counters` and `loss` events carry them.
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// Periodic per-netns totals since the daemon attached (monotonic counters) plus gauges.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Counters {
    pub netns: u32,
    pub interval_ms: u64,
    /// True on the last counters event written at shutdown.
    #[serde(rename = "final")]
    pub is_final: bool,
    pub retrans_segs: u64,
    pub syn_retrans: u64,
    pub synack_retrans: u64,
    /// TIME_WAIT sockets now (exact, INET_DIAG); null when the namespace could not be entered.
    pub time_wait: Option<u64>,
    pub tw_entries: u64,
    pub connect_failures: u64,
    pub connect_eaddrnotavail: u64,
    pub bind_eaddrinuse: u64,
    /// `tcp_retransmit_skb` hits that returned before the kernel accounted a retransmission.
    pub retrans_failed: u64,
    /// Destinations with the most failed connects (SYN_SENT -> CLOSE) that were not refused
    /// (timed out, unreachable), most first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connect_failures_by_dst: Vec<DstCount>,
    /// The failed connects of `connect_failures_by_dst` by how they ended and by the uid
    /// that owned the socket, most first (`sockopt_failfast`'s evidence).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connect_ends_by_dst: Vec<ConnectEnd>,
    /// Of `connect_failures`, the connects refused (ECONNREFUSED: a RST to the SYN).
    #[serde(default)]
    pub connect_refused: u64,
    /// Destinations with the most refused connects, most first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connect_refused_by_dst: Vec<DstCount>,
    /// Per XDP interface (only in the daemon's own namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xdp: Vec<XdpIface>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DstCount {
    pub addr: String,
    pub port: u16,
    pub count: u64,
}

/// How a failed connect that was not refused ended (the socket's `sk_err` when it closed).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ConnectEndReason {
    /// ETIMEDOUT: the SYN retransmissions ran out; the network dropped the SYNs.
    Timeout,
    /// Closed by the application while in SYN_SENT (no error on the socket).
    Abandoned,
    /// Another error, e.g. an ICMP host/net unreachable or TTL exceeded.
    Error,
    /// The kernel's BTF lacks `sock.sk_err`.
    Unknown,
}

/// Failed connects to one destination by one uid that ended one way (cumulative).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnectEnd {
    pub addr: String,
    pub port: u16,
    /// The socket owner's uid; null when the kernel's BTF lacks `sock.sk_uid`.
    pub uid: Option<u32>,
    pub reason: ConnectEndReason,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct XdpIface {
    pub iface: String,
    pub ifindex: u32,
    pub packets: u64,
    pub bytes: u64,
    pub syn_rx: u64,
    /// Top sources by SYNs, most first.
    pub syn_by_source: Vec<AddrCount>,
    /// Top destination ports by SYNs, most first.
    pub syn_by_port: Vec<PortCount>,
    /// Top (source, destination port) pairs by SYNs, most first (`syn_flood` names a port's
    /// sources from these, not from a source's SYNs to every port).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syn_by_source_port: Vec<DstCount>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AddrCount {
    pub addr: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortCount {
    pub port: u16,
    pub count: u64,
}

/// What an [`Observation`] is; serialized as `bind_conflict`, `connect_addrnotavail`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ObsKind {
    /// bind(2) returned EADDRINUSE.
    BindConflict,
    /// connect(2) returned EADDRNOTAVAIL (no free ephemeral port).
    ConnectAddrnotavail,
}

impl ObsKind {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ObsKind::BindConflict => "bind_conflict",
            ObsKind::ConnectAddrnotavail => "connect_addrnotavail",
        }
    }

    /// The errno name the syscall returned.
    pub fn error(self) -> &'static str {
        match self {
            ObsKind::BindConflict => "EADDRINUSE",
            ObsKind::ConnectAddrnotavail => "EADDRNOTAVAIL",
        }
    }
}

impl fmt::Display for ObsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An individually interesting kernel event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Observation {
    pub netns: u32,
    pub kind: ObsKind,
    /// `EADDRINUSE`, `EADDRNOTAVAIL`. A `Cow`: decoded records borrow the static name instead
    /// of allocating one per record (the event path's cost, `cargo xtask bench decode`).
    pub error: std::borrow::Cow<'static, str>,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// `ipv4` or `ipv6`; absent when the syscall's address was not readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[cfg(test)]
impl Observation {
    /// A test fixture: an EADDRINUSE on `port` in `netns`, by pid/tid `pid`.
    pub fn bind_conflict(netns: u32, port: u16, pid: u32) -> Self {
        Observation {
            netns,
            kind: ObsKind::BindConflict,
            error: "EADDRINUSE".into(),
            pid,
            tid: pid,
            comm: "x".into(),
            family: None,
            addr: None,
            port: Some(port),
        }
    }
}

/// Which channel lost events, as a `loss` event names it: `ringbuf`, `map_full`, `h2_desync`,
/// `recursion:<program>`, `detect`, `throttle` or `queue`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LossSource {
    /// The kernel's ring buffer was full.
    Ringbuf,
    /// A kernel map was full.
    MapFull,
    /// An HTTP/2 connection whose frames the TLS uprobe lost track of.
    H2Desync,
    /// Runs the kernel skipped because the program was already running on that CPU.
    Recursion(String),
    /// Runs the kernel skipped without counting them (before Linux 6.7), inferred as a lower
    /// bound from a gauge they would have moved (`inferred:<program>`).
    Inferred(String),
    /// Observations shed by the detectors' input queue.
    Detect,
    /// Observations held back by the per-key throttle.
    Throttle,
    /// Observations shed by the event writer's queue.
    Queue,
    /// Entries an LRU map that traffic from outside fills evicted (`evicted:<MAP>`).
    Evicted(String),
}

impl fmt::Display for LossSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossSource::Ringbuf => f.write_str("ringbuf"),
            LossSource::MapFull => f.write_str("map_full"),
            LossSource::H2Desync => f.write_str("h2_desync"),
            LossSource::Recursion(program) => write!(f, "recursion:{program}"),
            LossSource::Inferred(program) => write!(f, "inferred:{program}"),
            LossSource::Detect => f.write_str("detect"),
            LossSource::Throttle => f.write_str("throttle"),
            LossSource::Queue => f.write_str("queue"),
            LossSource::Evicted(map) => write!(f, "evicted:{map}"),
        }
    }
}

impl Serialize for LossSource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_to_their_wire_names() {
        for k in [ObsKind::BindConflict, ObsKind::ConnectAddrnotavail] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            let back: ObsKind = serde_json::from_value(k.as_str().into()).unwrap();
            assert_eq!(back, k);
        }
        assert_eq!(ObsKind::BindConflict.as_str(), "bind_conflict");
        assert_eq!(
            ObsKind::ConnectAddrnotavail.as_str(),
            "connect_addrnotavail"
        );
    }

    #[test]
    fn loss_sources_serialize_as_before() {
        let all = [
            (LossSource::Ringbuf, "ringbuf"),
            (LossSource::MapFull, "map_full"),
            (LossSource::H2Desync, "h2_desync"),
            (
                LossSource::Recursion("tp_set_state".into()),
                "recursion:tp_set_state",
            ),
            (
                LossSource::Evicted("XDP_SYN_SRC".into()),
                "evicted:XDP_SYN_SRC",
            ),
            (LossSource::Detect, "detect"),
            (LossSource::Throttle, "throttle"),
            (LossSource::Queue, "queue"),
        ];
        for (s, want) in all {
            assert_eq!(serde_json::to_value(&s).unwrap(), want);
        }
    }
}
