//! What `status`, `history` and `stats` answer: plain serde types the engine fills and the
//! client renders (one definition for both ends of the socket).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::health::Health;
use crate::model::Subject;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub uptime_s: u64,
    /// `observe`, `enforce`, or `paused` (enforce with the pause file present).
    pub mode: String,
    pub netns: u32,
    pub state_dir: String,
    pub health: Health,
    pub incidents: Vec<IncidentView>,
    pub mitigations: Vec<MitigationView>,
    pub budgets: BudgetView,
    pub remedies: Vec<RemedyRate>,
    pub events: EventTotals,
    /// Set when the engine was busy and this is its last published state: how old it is
    /// (uptime and event totals are current).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_ms: Option<u64>,
}

/// An incident, open or (in history) closed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentView {
    pub incident: String,
    pub fault: String,
    pub layer: u8,
    pub severity: String,
    /// As `heal FAULT SUBJECT` takes it: interface, route prefix, `addr:port`, ...
    pub subject: String,
    pub netns: u32,
    /// RFC 3339.
    pub since: String,
    /// RFC 3339; absent while open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared: Option<String>,
}

/// A change still guardian's business: waiting for its effect, or a temporary mitigation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MitigationView {
    pub rollback_id: String,
    pub remedy: String,
    pub fault: String,
    pub subject: String,
    /// Seconds until it is reverted; absent for changes without a time limit.
    pub ttl_s: Option<u64>,
    pub until_clear: bool,
    pub waiting_for_effect: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetView {
    pub global_max_per_hour: u32,
    pub global_left: u32,
    pub window_s: u64,
    pub per_remedy_max: u32,
    pub per_subject_max: u32,
    /// Remedies and subjects that acted within the window.
    pub used: Vec<BudgetUse>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetUse {
    pub remedy: String,
    pub subject: String,
    pub remedy_left: u32,
    pub subject_left: u32,
}

/// The ladder's record of one (fault, remedy).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RemedyRate {
    pub fault: String,
    pub remedy: String,
    pub attempts: u32,
    pub successes: u32,
    /// Laplace-smoothed: (s + 1) / (attempts + 2).
    pub rate: f64,
    /// Whether enforce mode may apply it (safety.min_confidence / min_attempts).
    pub confident: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventTotals {
    /// Events emitted since the control socket opened.
    pub total: u64,
    pub by_type: BTreeMap<String, u64>,
    /// Events the kernel could not hand over (sum of `loss` events' `lost`).
    pub lost: u64,
    pub lost_last_minute: u64,
}

/// `stats`: counts by type and fault, remedy results, success rates, losses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub uptime_s: u64,
    pub events: EventTotals,
    /// fault → state (`opened`, `updated`, `cleared`) → count.
    pub faults: BTreeMap<String, BTreeMap<String, u64>>,
    /// remedy → result (`planned`, `applied`, `verified`, ...) → count.
    pub remedies: BTreeMap<String, BTreeMap<String, u64>>,
    pub rates: Vec<RemedyRate>,
    /// loss source → events lost.
    pub losses: BTreeMap<String, u64>,
}

/// One journaled change, for `history`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeView {
    pub rollback_id: String,
    /// When it was first journaled (RFC 3339).
    pub ts: String,
    pub remedy: String,
    pub fault: String,
    pub subject: String,
    /// The phase it last reached (`verified`, `rolled_back`, `reverted`, ...).
    pub phase: String,
    pub last_ts: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub changes: Vec<ChangeView>,
    /// Incidents kept in memory by the running daemon (empty when read offline).
    pub incidents: Vec<IncidentView>,
}

/// A subject as status prints it and `heal` takes it: the interface, the route, the
/// `addr:port`, the address or `port N`; the detector's key when none applies.
pub fn subject_label(s: &Subject, key: &str) -> String {
    match (s, key) {
        (Subject { iface: Some(i), .. }, _) => i.clone(),
        (Subject { route: Some(r), .. }, _) => r.clone(),
        (
            Subject {
                addr: Some(a),
                port: Some(p),
                ..
            },
            _,
        ) => format!("{a}:{p}"),
        (Subject { addr: Some(a), .. }, _) => a.clone(),
        (Subject { port: Some(p), .. }, _) => format!("port {p}"),
        _ => key.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_labels() {
        let s = |f: fn(&mut Subject)| {
            let mut s = Subject::default();
            f(&mut s);
            s
        };
        assert_eq!(
            subject_label(
                &s(|s| {
                    s.iface = Some("eth0".into());
                    s.ifindex = Some(2)
                }),
                "k"
            ),
            "eth0"
        );
        assert_eq!(
            subject_label(&s(|s| s.route = Some("10.9.0.0/24".into())), "k"),
            "10.9.0.0/24"
        );
        assert_eq!(
            subject_label(
                &s(|s| {
                    s.addr = Some("10.0.0.1".into());
                    s.port = Some(80)
                }),
                "k"
            ),
            "10.0.0.1:80"
        );
        assert_eq!(subject_label(&s(|s| s.port = Some(80)), "k"), "port 80");
        assert_eq!(subject_label(&Subject::default(), "key-1"), "key-1");
    }

    #[test]
    fn status_round_trips_through_json() {
        let st = Status {
            mode: "enforce".into(),
            incidents: vec![IncidentView {
                fault: "link_down".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let back: Status = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
        assert_eq!(back, st);
    }
}
