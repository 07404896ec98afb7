//! The NDJSON event model (schema 1). Every line is an [`Envelope`]: `schema`, `ts`, `host`,
//! `type`, then the fields of that type. docs/events.md and docs/schema/events.schema.json
//! describe the same shapes; the end-to-end tests validate every emitted line against the schema.
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const SCHEMA_VERSION: u32 = 1;

/// One NDJSON line.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<'a> {
    pub schema: u32,
    /// RFC 3339, UTC, nanoseconds.
    pub ts: String,
    pub host: &'a str,
    #[serde(flatten)]
    pub body: &'a Body,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    Lifecycle(Lifecycle),
    Counters(Counters),
    Observation(Observation),
    Fault(Fault),
    Remedy(RemedyEvent),
    Loss(Loss),
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Started,
    Attached,
    Stopping,
    Detached,
    /// The mode changed at runtime (`guardian mode`): `detail.from`, `detail.to`, `detail.paused`.
    ModeChanged,
    /// SIGHUP: the configuration was re-read; `detail.ok`, and `detail.error` when the new
    /// configuration was refused (the old one stays).
    Reloaded,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Lifecycle {
    pub phase: Phase,
    /// The daemon's own network namespace.
    pub netns: u32,
    pub version: &'static str,
    pub mode: Mode,
    /// Free-form details: attached programs, interfaces, reasons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Detect and plan; change nothing.
    #[default]
    Observe,
    /// Apply, verify, roll back on failure.
    Enforce,
}

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
    /// Destinations with the most failed connects (SYN_SENT -> CLOSE), most first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connect_failures_by_dst: Vec<DstCount>,
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

/// An individually interesting kernel event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Observation {
    pub netns: u32,
    /// `bind_conflict` (bind returned EADDRINUSE) or `connect_addrnotavail`.
    pub kind: String,
    /// `EADDRINUSE`, `EADDRNOTAVAIL`.
    pub error: String,
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
            kind: "bind_conflict".into(),
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

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Notice,
    Info,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaultState {
    Opened,
    Updated,
    Cleared,
}

/// What a fault or remedy is about. Only the fields that apply are present.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Subject {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    /// A route destination in CIDR form, e.g. `10.9.0.0/24` or `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Fault {
    pub netns: u32,
    pub fault: &'static str,
    pub layer: u8,
    pub severity: Severity,
    pub state: FaultState,
    pub incident: String,
    pub subject: Subject,
    pub evidence: Value,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RemedyResult {
    Planned,
    Applied,
    Verified,
    Failed,
    RolledBack,
    /// A temporary mitigation was reverted: its time ran out, its fault cleared, or the daemon
    /// stopped.
    Expired,
    Skipped,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    pub before: Value,
    pub after: Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RemedyEvent {
    pub netns: u32,
    pub remedy: String,
    pub fault: String,
    pub result: RemedyResult,
    pub mode: Mode,
    pub incident: String,
    pub subject: Subject,
    pub change: Change,
    /// Journal id of the change; `guardian rollback ID` reverts it.
    pub rollback_id: Option<String>,
    /// Milliseconds since the fault opened.
    pub elapsed_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Events the kernel could not hand over (ring buffer full).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Loss {
    /// Which channel lost them: `ringbuf`, `map_full`, or `recursion:<program>` (runs the
    /// kernel skipped because the program was already running on that CPU).
    pub source: std::borrow::Cow<'static, str>,
    /// Lost since the previous loss event.
    pub lost: u64,
    /// Lost since the daemon attached.
    pub total: u64,
}
