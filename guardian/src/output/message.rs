//! The one-line human `message` of fault and remedy events, and the words the fault
//! evidence types share to write theirs (`faults/<fault>/evidence.rs`, `detail()`): a subject
//! as an operator writes it, a share as a percentage, a bit rate.
use crate::model::{FaultState, Subject};

use super::event::{RemedyEvent, RemedyResult};

/// `10.0.3.7:443`, `[fd00::7]:443`, `10.9.0.0/24`, `eth0`, `ifindex 3`; parts joined with a
/// space, empty for a namespace-wide fault.
pub fn subject_text(s: &Subject) -> String {
    let mut parts = Vec::new();
    if let Some(r) = &s.route {
        parts.push(r.clone());
    }
    match (&s.addr, s.port) {
        // With a route, the address is its gateway.
        (Some(a), _) if s.route.is_some() => parts.push(format!("via {a}")),
        (Some(a), Some(p)) if a.contains(':') => parts.push(format!("[{a}]:{p}")),
        (Some(a), Some(p)) => parts.push(format!("{a}:{p}")),
        (Some(a), None) => parts.push(a.clone()),
        (None, Some(p)) => parts.push(format!("port {p}")),
        (None, None) => {}
    }
    match (&s.iface, s.ifindex) {
        (Some(i), _) if parts.is_empty() => parts.push(i.clone()),
        (Some(i), _) => parts.push(format!("dev {i}")),
        (None, Some(n)) => parts.push(format!("ifindex {n}")),
        (None, None) => {}
    }
    parts.join(" ")
}

/// The faults whose subject is a remote destination (the others name a local listener, port,
/// interface or route).
const TOWARD: &[&str] = &[
    "retransmit_storm",
    "connect_timeout_cascade",
    "connection_refused",
    "mtu_blackhole",
    "ephemeral_port_exhaustion",
    "time_wait_exhaustion",
    "dns_failure",
];

/// A fault event's message: `retransmit storm toward 10.0.3.7:443: DETAIL`, `... cleared:
/// DETAIL`; `detail` is the evidence's own sentence.
pub fn fault(fault: &str, state: FaultState, subject: &Subject, detail: &str) -> String {
    let what = fault.replace('_', " ");
    let on = match subject_text(subject) {
        s if s.is_empty() => String::new(),
        s if TOWARD.contains(&fault) => format!(" toward {s}"),
        s => format!(" on {s}"),
    };
    let state = match state {
        FaultState::Opened => "",
        FaultState::Updated => " (update)",
        FaultState::Cleared => " cleared",
    };
    format!("{what}{on}{state}: {detail}")
}

/// A remedy event's message, from its own fields: `route_restore verified for route lost on
/// 10.9.0.0/24, 8.0 ms after the fault opened`, then the reason when there is one.
pub fn remedy(r: &RemedyEvent) -> String {
    let result = match r.result {
        RemedyResult::Planned => "planned (observe mode: nothing changed)",
        RemedyResult::Applied => "applied",
        RemedyResult::Verified => "verified",
        RemedyResult::Failed => "failed",
        RemedyResult::RolledBack => "rolled back",
        RemedyResult::Expired => "expired (reverted)",
        RemedyResult::Skipped => "skipped",
    };
    let on = match subject_text(&r.subject) {
        s if s.is_empty() => String::new(),
        s => format!(" on {s}"),
    };
    let mut out = format!(
        "{} {result} for {}{on}, {:.1} ms after the fault opened",
        r.remedy,
        r.fault.replace('_', " "),
        r.elapsed_ms
    );
    if let Some(reason) = r.reason.as_deref().filter(|s| !s.is_empty()) {
        out.push_str(": ");
        out.push_str(reason);
    }
    out
}

impl RemedyEvent {
    /// Sets `message` from the other fields; every remedy event is built through this.
    pub fn with_message(mut self) -> RemedyEvent {
        self.message = remedy(&self);
        self
    }
}

/// A share (0.1042) as `10.4%`.
pub fn pct(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

/// Bits per second as `940.0 Mbit/s` (decimal units, as link speeds are given).
pub fn bits(bps: f64) -> String {
    match bps {
        b if b >= 1e9 => format!("{:.1} Gbit/s", b / 1e9),
        b if b >= 1e6 => format!("{:.1} Mbit/s", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kbit/s", b / 1e3),
        b => format!("{b:.0} bit/s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mode;

    fn subj(addr: Option<&str>, port: Option<u16>, route: Option<&str>) -> Subject {
        Subject {
            addr: addr.map(Into::into),
            port,
            route: route.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn subjects_read_as_an_operator_writes_them() {
        assert_eq!(
            subject_text(&subj(Some("10.0.3.7"), Some(443), None)),
            "10.0.3.7:443"
        );
        assert_eq!(
            subject_text(&subj(Some("fd00::7"), Some(443), None)),
            "[fd00::7]:443"
        );
        assert_eq!(
            subject_text(&subj(None, None, Some("10.9.0.0/24"))),
            "10.9.0.0/24"
        );
        let dev = Subject {
            iface: Some("veth0".into()),
            ifindex: Some(3),
            ..Default::default()
        };
        assert_eq!(subject_text(&dev), "veth0");
        assert_eq!(subject_text(&Subject::default()), "");
    }

    #[test]
    fn a_route_names_its_gateway_and_a_listener_is_on_not_toward() {
        let r = Subject {
            route: Some("10.9.0.0/24".into()),
            addr: Some("10.0.0.2".into()),
            iface: Some("veth0".into()),
            ..Default::default()
        };
        assert_eq!(subject_text(&r), "10.9.0.0/24 via 10.0.0.2 dev veth0");
        let s = subj(Some("10.0.3.7"), Some(443), None);
        assert_eq!(
            fault("port_conflict", FaultState::Opened, &s, "held"),
            "port conflict on 10.0.3.7:443: held"
        );
    }

    #[test]
    fn fault_messages_name_the_fault_the_subject_and_the_state() {
        let s = subj(Some("10.0.3.7"), Some(443), None);
        assert_eq!(
            fault(
                "retransmit_storm",
                FaultState::Opened,
                &s,
                "412 retransmits"
            ),
            "retransmit storm toward 10.0.3.7:443: 412 retransmits"
        );
        assert_eq!(
            fault(
                "link_down",
                FaultState::Cleared,
                &Subject {
                    iface: Some("eth0".into()),
                    ..Default::default()
                },
                "up"
            ),
            "link down on eth0 cleared: up"
        );
    }

    #[test]
    fn remedy_messages_carry_result_elapsed_and_reason() {
        let r = RemedyEvent {
            netns: 1,
            remedy: "route_restore".into(),
            fault: "route_lost".into(),
            message: String::new(),
            result: RemedyResult::Verified,
            mode: Mode::Enforce,
            incident: "i".into(),
            subject: subj(None, None, Some("10.9.0.0/24")),
            change: super::super::event::Change {
                before: serde_json::Value::Null,
                after: serde_json::Value::Null,
            },
            rollback_id: None,
            elapsed_ms: 8.04,
            reason: Some("the route is back".into()),
            severity: None,
        };
        assert_eq!(
            remedy(&r),
            "route_restore verified for route lost on 10.9.0.0/24, 8.0 ms after the fault opened: the route is back"
        );
    }

    #[test]
    fn units() {
        assert_eq!(pct(0.1042), "10.4%");
        assert_eq!(bits(940e6), "940.0 Mbit/s");
    }
}
