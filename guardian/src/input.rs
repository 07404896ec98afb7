//! What detectors consume, as the sources produce it; it sits below both `source` and
//! `detect`. Every input is serializable: `guardian run --record FILE` writes them with their
//! time offset, and `guardian replay FILE` feeds them back, deterministically.
use serde::{Deserialize, Serialize};

use crate::model::http::HttpSample;
use crate::model::sample::{DnsSample, FlowSample, LinkStatsSample, MibSample};
use crate::model::shadows::{CloseWaitSample, DnsSpoofSample, ResetSample, ZeroWindowSample};
use crate::model::tls::TlsSample;
use crate::model::{Counters, Observation};
use crate::netlink::NetEvent;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", content = "data", rename_all = "snake_case")]
pub enum Input {
    /// A link or route change (rtnetlink), in the daemon's own namespace.
    Net(NetEvent),
    /// Per-namespace totals from the eBPF counter maps (the same numbers as `counters` events).
    Counters(Counters),
    /// An individual kernel event from the ring buffer (bind conflict, EADDRNOTAVAIL).
    Observation(Observation),
    /// Per-namespace MIB counters, sysctls and socket-table aggregates.
    Mib(MibSample),
    /// Per-port handshakes, per-source connections and per-flow retransmit patterns.
    Flows(FlowSample),
    /// DNS answers and unanswered queries per resolver (tcx).
    Dns(DnsSample),
    /// Per-interface byte counters and capacity.
    LinkStats(LinkStatsSample),
    /// HTTP responses by status per service (syscall tracepoints, `--http`).
    Http(HttpSample),
    /// TCP resets sent and received per service port (reset tracepoints).
    Resets(ResetSample),
    /// CLOSE_WAIT sockets per local port, and who holds them (`close_wait_leak`).
    CloseWait(CloseWaitSample),
    /// DNS answers that matched no outstanding query, per source (`dns_spoofing_suspected`).
    DnsSpoof(DnsSpoofSample),
    /// TLS handshake outcomes per listener and peer (OpenSSL uprobes, `--http`).
    Tls(TlsSample),
    /// Flows stalled on a zero window per local port (`zero_window_stall`).
    ZeroWindow(ZeroWindowSample),
    /// A namespace no path has led to for a while (deleted): its open faults clear, and the
    /// detectors forget what they tracked in it.
    NetnsGone(u32),
}

impl Input {
    /// The namespace the input is about, when it is about one other than the daemon's.
    pub fn netns(&self) -> Option<u32> {
        match self {
            Input::Net(_) => None,
            Input::Counters(c) => Some(c.netns),
            Input::Observation(o) => Some(o.netns),
            Input::Mib(m) => Some(m.netns),
            Input::Flows(f) => Some(f.netns),
            Input::Dns(d) => Some(d.netns),
            Input::LinkStats(l) => Some(l.netns),
            Input::Http(h) => Some(h.netns),
            Input::Resets(r) => Some(r.netns),
            Input::CloseWait(c) => Some(c.netns),
            Input::DnsSpoof(d) => Some(d.netns),
            Input::Tls(t) => Some(t.netns),
            Input::ZeroWindow(z) => Some(z.netns),
            Input::NetnsGone(n) => Some(*n),
        }
    }
}
