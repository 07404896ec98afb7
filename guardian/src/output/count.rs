//! Prometheus counters derived from the event stream, counted where every event passes
//! ([`super::Emitter::emit`]) from the typed body before it is serialized. Without an installed
//! recorder (metrics disabled) each call is a no-op.
use metrics::counter;

use super::{Body, RemedyResult};

pub const EVENTS: &str = "guardian_events_total";
pub const REMEDIES: &str = "guardian_remedies_total";
pub const ROLLBACKS: &str = "guardian_rollbacks_total";
pub const LOSS: &str = "guardian_loss_events_total";
/// Remedies held back by an exhausted budget, by remedy.
pub const BUDGET_EXHAUSTED: &str = "guardian_budget_exhausted_total";
/// Journal lines skipped because they were torn, malformed or not authenticated.
pub const JOURNAL_REJECTED: &str = "guardian_journal_rejected_total";

/// The `snake_case` name serde gives a unit enum variant (`Severity::Critical` → `critical`).
fn name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn kind(body: &Body) -> &'static str {
    match body {
        Body::Lifecycle(_) => "lifecycle",
        Body::Counters(_) => "counters",
        Body::Observation(_) => "observation",
        Body::Fault(_) => "fault",
        Body::Remedy(_) => "remedy",
        Body::Loss(_) => "loss",
    }
}

pub fn count(body: &Body) {
    let (fault, severity) = match body {
        Body::Fault(f) => (f.fault.to_string(), name(&f.severity)),
        Body::Remedy(r) => (r.fault.clone(), String::new()),
        _ => (String::new(), String::new()),
    };
    counter!(EVENTS, "type" => kind(body), "fault" => fault, "severity" => severity).increment(1);
    match body {
        Body::Remedy(r) => {
            counter!(REMEDIES, "remedy" => r.remedy.clone(), "mode" => name(&r.mode), "result" => name(&r.result))
                .increment(1);
            if r.result == RemedyResult::RolledBack {
                counter!(ROLLBACKS).increment(1);
            }
        }
        Body::Loss(l) => counter!(LOSS, "source" => l.source.to_string().split(':').next().unwrap_or_default().to_string()).increment(l.lost),
        _ => {}
    }
}

/// Help text for the exporter.
pub fn describe() {
    metrics::describe_counter!(EVENTS, "Events emitted, by type, fault and severity.");
    metrics::describe_counter!(REMEDIES, "Remedy events, by remedy, mode and result.");
    metrics::describe_counter!(ROLLBACKS, "Changes rolled back after failing to verify.");
    metrics::describe_counter!(
        BUDGET_EXHAUSTED,
        "Remedies that would have acted but were held back by an exhausted budget, by remedy."
    );
    metrics::describe_counter!(
        JOURNAL_REJECTED,
        "Journal lines skipped: torn, malformed, or not authenticated by this host's key."
    );
    metrics::describe_counter!(
        LOSS,
        "Kernel events lost before guardian read them (ring buffer full, map full, recursion)."
    );
}
