//! What detectors consume, as the sources produce it; it sits below both `source` and
//! `detect`. Every input is serializable: `guardian run --record FILE` writes them with their
//! time offset, and `guardian replay FILE` feeds them back, deterministically.
use serde::{Deserialize, Serialize};

use crate::model::http::HttpSample;
use crate::model::sample::{DnsSample, FlowSample, LinkStatsSample, MibSample};
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
        }
    }
}
