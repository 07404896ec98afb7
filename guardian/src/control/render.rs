//! Human renderings of `status`, `stats` and `history` (one screen each); `--json` prints the
//! daemon's answer instead.
use std::fmt::Write as _;

use crate::engine::api::{History, Stats, Status};

fn dur(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Trims an RFC 3339 time to the second: `2026-11-22T08:20:07Z`.
fn secs(ts: &str) -> String {
    match ts.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => ts.to_string(),
    }
}

pub fn status(s: &Status) -> String {
    let mut o = String::new();
    let h = &s.health;
    let _ = writeln!(
        o,
        "guardian {}  pid {}  up {}  mode {}  netns {}",
        s.version,
        s.pid,
        dur(s.uptime_s),
        s.mode,
        s.netns
    );
    if let Some(ms) = s.stale_ms {
        let _ = writeln!(o, "(the engine is busy: its state as of {ms} ms ago)");
    }
    let _ = writeln!(
        o,
        "health   L2 {:>3}  L3 {:>3}  L4 {:>3}  overall {:>3}",
        h.l2, h.l3, h.l4, h.overall
    );
    let _ = writeln!(o, "\nincidents ({} open)", s.incidents.len());
    for i in &s.incidents {
        let _ = writeln!(
            o,
            "  {:<26} L{} {:<8} {:<22} since {}  {}",
            i.fault,
            i.layer,
            i.severity,
            i.subject,
            secs(&i.since),
            i.incident
        );
    }
    let _ = writeln!(o, "mitigations ({} active)", s.mitigations.len());
    for m in &s.mitigations {
        let ttl = match (m.ttl_s, m.until_clear) {
            (Some(t), _) => format!("ttl {}", dur(t)),
            (None, true) => "until clear".into(),
            (None, false) => "permanent".into(),
        };
        let waiting = if m.waiting_for_effect {
            "  (waiting for effect)"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "  {:<18} {:<26} {:<22} {:<12} {}{}",
            m.remedy, m.fault, m.subject, ttl, m.rollback_id, waiting
        );
    }
    let b = &s.budgets;
    let _ = writeln!(
        o,
        "budgets  {}/{} actions left this hour; per remedy {}, per subject {} within {}",
        b.global_left,
        b.global_max_per_hour,
        b.per_remedy_max,
        b.per_subject_max,
        dur(b.window_s)
    );
    for u in &b.used {
        let _ = writeln!(
            o,
            "  {:<18} {:<30} remedy {} left, subject {} left",
            u.remedy, u.subject, u.remedy_left, u.subject_left
        );
    }
    let _ = writeln!(o, "success rates ({} tried)", s.remedies.len());
    for r in &s.remedies {
        let _ = writeln!(
            o,
            "  {:<26} {:<18} {:>3}/{:<3} rate {:.2}  {}",
            r.fault,
            r.remedy,
            r.successes,
            r.attempts,
            r.rate,
            if r.confident {
                "confident"
            } else {
                "plan only"
            }
        );
    }
    let e = &s.events;
    let _ = writeln!(
        o,
        "events   {} emitted, {} lost ({} in the last minute)",
        e.total, e.lost, e.lost_last_minute
    );
    o
}

pub fn stats(s: &Stats) -> String {
    let mut o = String::new();
    let e = &s.events;
    let _ = writeln!(
        o,
        "up {}: {} events, {} lost ({} in the last minute)",
        dur(s.uptime_s),
        e.total,
        e.lost,
        e.lost_last_minute
    );
    let join = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(o, "by type: {}", join(&e.by_type));
    let _ = writeln!(o, "faults:");
    for (f, m) in &s.faults {
        let _ = writeln!(o, "  {f:<26} {}", join(m));
    }
    let _ = writeln!(o, "remedies:");
    for (r, m) in &s.remedies {
        let _ = writeln!(o, "  {r:<26} {}", join(m));
    }
    let _ = writeln!(o, "success rates:");
    for r in &s.rates {
        let _ = writeln!(
            o,
            "  {:<26} {:<18} {}/{} rate {:.2}",
            r.fault, r.remedy, r.successes, r.attempts, r.rate
        );
    }
    if !s.losses.is_empty() {
        let _ = writeln!(o, "losses: {}", join(&s.losses));
    }
    o
}

pub fn history(h: &History) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "changes ({})", h.changes.len());
    for c in &h.changes {
        let _ = writeln!(
            o,
            "  {}  {:<18} {:<26} {:<22} {:<12} {}{}",
            secs(&c.ts),
            c.remedy,
            c.fault,
            c.subject,
            c.phase,
            c.rollback_id,
            c.error
                .as_ref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(o, "incidents ({})", h.incidents.len());
    for i in &h.incidents {
        let until = i
            .cleared
            .as_ref()
            .map(|c| format!("cleared {}", secs(c)))
            .unwrap_or_else(|| "open".into());
        let _ = writeln!(
            o,
            "  {}  {:<26} {:<8} {:<22} {}",
            secs(&i.since),
            i.fault,
            i.severity,
            i.subject,
            until
        );
    }
    o
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
