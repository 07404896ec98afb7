//! The NDJSON event model (schema 1). Every line is an [`Envelope`]: `schema`, `ts`, `host`,
//! `type`, then the fields of that type. docs/events.md and docs/schema/events.schema.json
//! describe the same shapes; the end-to-end tests validate every emitted line against the schema.
use serde::Serialize;
use serde_json::Value;

use crate::model::{Counters, FaultState, LossSource, Mode, Observation, Severity, Subject};

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
    /// Who owns the event's network namespace (host, systemd unit, container, pod), when
    /// known: [`crate::owner`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<&'a crate::owner::Owner>,
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

impl Body {
    /// The network namespace the event is about, for the types that name one.
    pub fn netns(&self) -> Option<u32> {
        match self {
            Body::Lifecycle(l) => Some(l.netns),
            Body::Counters(c) => Some(c.netns),
            Body::Observation(o) => Some(o.netns),
            Body::Fault(f) => Some(f.netns),
            Body::Remedy(r) => Some(r.netns),
            Body::Loss(_) => None,
        }
    }
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
    /// At start: journal lines were skipped (torn, malformed, not authenticated);
    /// `detail.rejected` (how many) and `detail.lines` (`line`, `why`; the first 20).
    JournalRejected,
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

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Fault {
    pub netns: u32,
    pub fault: &'static str,
    pub layer: u8,
    pub severity: Severity,
    pub state: FaultState,
    /// One line for people: the fault, its subject and the evidence's numbers
    /// ([`super::message`]).
    pub message: String,
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
    /// One line for people, from this event's own fields ([`RemedyEvent::with_message`]).
    pub message: String,
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
    /// Set when the event needs attention beyond its result: `critical` when a remedy was
    /// skipped because a budget is exhausted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// Events the kernel could not hand over (ring buffer full).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Loss {
    /// Which channel lost them: `ringbuf`, `map_full`, or `recursion:<program>` (runs the
    /// kernel skipped because the program was already running on that CPU).
    pub source: LossSource,
    /// Lost since the previous loss event.
    pub lost: u64,
    /// Lost since the daemon attached.
    pub total: u64,
}
