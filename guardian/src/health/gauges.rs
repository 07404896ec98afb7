//! The engine's gauges and the heal-time histogram: their names, their bounded label values,
//! and the calls that set them. Names live here (below the engine and the metrics server) so
//! the engine that sets them and the server that pre-registers them at 0 agree.
//!
//! Without an installed recorder (metrics disabled) every call is a no-op.
use crate::model::Severity;

pub const OPEN_INCIDENTS: &str = "guardian_open_incidents";
pub const MODE: &str = "guardian_mode";
pub const LAST_RELOAD_SUCCESS: &str = "guardian_last_reload_success";
pub const LAST_RELOAD_TIME: &str = "guardian_last_reload_timestamp_seconds";
pub const HEAL_DURATION: &str = "guardian_heal_duration_seconds";

/// Every value of `guardian_mode{mode}`; exactly one is 1.
pub const MODES: [&str; 3] = ["observe", "enforce", "paused"];

/// Every severity, as it is written in events and labels.
pub const SEVERITIES: [(Severity, &str); 5] = [
    (Severity::Critical, "critical"),
    (Severity::Error, "error"),
    (Severity::Warning, "warning"),
    (Severity::Notice, "notice"),
    (Severity::Info, "info"),
];

/// Bucket bounds of the heal-time histogram, in seconds: from a link brought back up within a
/// second to a mitigation that holds for half an hour.
pub const HEAL_BUCKETS: [f64; 12] = [
    0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

pub fn severity_label(s: Severity) -> &'static str {
    SEVERITIES
        .iter()
        .find(|(v, _)| *v == s)
        .map_or("info", |(_, n)| n)
}

/// `guardian_mode{mode}`: 1 for `current` (one of [`MODES`]), 0 for the others.
pub fn publish_mode(current: &str) {
    for m in MODES {
        metrics::gauge!(MODE, "mode" => m).set(if m == current { 1.0 } else { 0.0 });
    }
}

/// `guardian_open_incidents{fault,severity}` for every fault of `faults` and every severity:
/// the count of `open` incidents with that pair, 0 for the others (a pair that closed drops
/// back to 0 instead of keeping its last value).
pub fn publish_open<'a>(
    faults: &[&'static str],
    open: impl IntoIterator<Item = (&'a str, Severity)>,
) {
    let mut counts = std::collections::HashMap::<(&str, &str), u64>::new();
    for (f, s) in open {
        *counts.entry((f, severity_label(s))).or_default() += 1;
    }
    for &fault in faults {
        for (_, name) in SEVERITIES {
            let n = counts.get(&(fault, name)).copied().unwrap_or(0);
            metrics::gauge!(OPEN_INCIDENTS, "fault" => fault, "severity" => name).set(n as f64);
        }
    }
}

/// A reload was applied (`ok`) or refused.
pub fn reloaded(ok: bool) {
    metrics::gauge!(LAST_RELOAD_SUCCESS).set(if ok { 1.0 } else { 0.0 });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    metrics::gauge!(LAST_RELOAD_TIME).set(now);
}

/// An incident of `fault` closed `secs` after it opened.
pub fn healed(fault: &'static str, secs: f64) {
    metrics::histogram!(HEAL_DURATION, "fault" => fault).record(secs);
}

/// Help text and zero values for the exporter (called once when the recorder is installed).
pub fn describe(faults: &[&'static str]) {
    metrics::describe_gauge!(OPEN_INCIDENTS, "Incidents open now, by fault and severity.");
    metrics::describe_gauge!(
        MODE,
        "1 for the mode the daemon acts in now (observe, enforce, paused), 0 for the others."
    );
    metrics::describe_gauge!(
        LAST_RELOAD_SUCCESS,
        "1 if the last configuration reload (or the start) succeeded, 0 if it was refused."
    );
    metrics::describe_gauge!(
        LAST_RELOAD_TIME,
        metrics::Unit::Seconds,
        "Unix time of the last configuration reload attempt (0: none since start)."
    );
    metrics::describe_histogram!(
        HEAL_DURATION,
        metrics::Unit::Seconds,
        "Time from an incident's opening to its clearing, by fault."
    );
    publish_open(faults, []);
    metrics::gauge!(LAST_RELOAD_SUCCESS).set(1.0);
    metrics::gauge!(LAST_RELOAD_TIME).set(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_severity_has_its_event_name() {
        for (s, name) in SEVERITIES {
            assert_eq!(serde_json::to_value(s).unwrap(), *name);
            assert_eq!(severity_label(s), name);
        }
    }

    #[test]
    fn buckets_rise() {
        assert!(HEAL_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}
