//! `status`: the engine's state assembled into [`Status`].
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::engine::api::{
    subject_label, BudgetUse, BudgetView, MitigationView, RemedyRate, Status,
};
use crate::engine::change::{Active, Waiting};
use crate::engine::core::Engine;
use crate::engine::safety::SafetyConfig;
use crate::remedy::RemedyId;

impl Engine {
    pub(in crate::engine) fn status(&self, now: Instant) -> Status {
        let mut incidents: Vec<_> = self.ctl.open.values().map(|t| t.view.clone()).collect();
        incidents.sort_by(|a, b| b.since.cmp(&a.since));
        let s = &self.cfg.safety;
        Status {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            uptime_s: self.ctl.tally.uptime().as_secs(),
            mode: self.mode_label().into(),
            netns: self.cfg.netns,
            state_dir: self.cfg.state_dir.display().to_string(),
            health: self.ctl.health(now),
            incidents,
            mitigations: self.active.iter().map(|a| mitigation(a, now)).collect(),
            budgets: budget_view(
                s,
                self.budgets.taken(),
                self.budgets.global_left(s, now),
                now,
            ),
            remedies: rates(&self.ladder.snapshot(), |f, r| {
                self.ladder
                    .confident(f, r, s.min_confidence, s.min_attempts)
            }),
            events: self.ctl.tally.totals(now),
            stale_ms: None,
        }
    }
}

fn mitigation(a: &Active, now: Instant) -> MitigationView {
    MitigationView {
        rollback_id: a.id.clone(),
        remedy: a.at.remedy.clone(),
        fault: a.at.fault.clone(),
        subject: subject_label(&a.at.subject, &a.at.key),
        ttl_s: a
            .expires
            .map(|e| e.saturating_duration_since(now).as_secs()),
        until_clear: a.until_clear,
        waiting_for_effect: matches!(a.waiting, Waiting::Effect { .. }),
    }
}

/// Budgets left: global this hour; per remedy and per (remedy, subject) within the window,
/// for those that acted.
pub(super) fn budget_view<'a>(
    cfg: &SafetyConfig,
    taken: impl Iterator<Item = (Instant, RemedyId, &'a str)>,
    global_left: u32,
    now: Instant,
) -> BudgetView {
    let window = Duration::from_secs(cfg.window_s);
    let mut by_remedy: BTreeMap<&str, u32> = BTreeMap::new();
    let mut by_subject: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for (t, r, s) in taken {
        let r = r.as_str();
        if now.saturating_duration_since(t) < window {
            *by_remedy.entry(r).or_default() += 1;
            *by_subject.entry((r, s)).or_default() += 1;
        }
    }
    BudgetView {
        global_max_per_hour: cfg.global_max_per_hour,
        global_left,
        window_s: cfg.window_s,
        per_remedy_max: cfg.per_remedy_max,
        per_subject_max: cfg.per_subject_max,
        used: by_subject
            .into_iter()
            .map(|((r, s), n)| BudgetUse {
                remedy: r.into(),
                subject: s.into(),
                remedy_left: cfg.per_remedy_max.saturating_sub(by_remedy[r]),
                subject_left: cfg.per_subject_max.saturating_sub(n),
            })
            .collect(),
    }
}

/// The ladder snapshot (`{fault: {remedy: {success, failure, rate}}}`) as rows.
pub(super) fn rates(snapshot: &Value, confident: impl Fn(&str, &str) -> bool) -> Vec<RemedyRate> {
    let mut out = Vec::new();
    let Some(faults) = snapshot.as_object() else {
        return out;
    };
    for (fault, m) in faults {
        for (remedy, st) in m.as_object().into_iter().flatten() {
            let n = |k: &str| st.get(k).and_then(Value::as_u64).unwrap_or(0) as u32;
            let (s, f) = (n("success"), n("failure"));
            out.push(RemedyRate {
                fault: fault.clone(),
                remedy: remedy.clone(),
                attempts: s + f,
                successes: s,
                rate: st.get("rate").and_then(Value::as_f64).unwrap_or(0.5),
                confident: confident(fault, remedy),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ladder::Ladder;

    #[test]
    fn budgets_left_per_remedy_and_subject_within_the_window() {
        let cfg = SafetyConfig {
            window_s: 60,
            per_remedy_max: 5,
            per_subject_max: 3,
            ..Default::default()
        };
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(100);
        let taken = vec![
            (t0, RemedyId::LinkUp, "iface:old"), // outside the window
            (t0 + Duration::from_secs(50), RemedyId::LinkUp, "iface:a"),
            (t0 + Duration::from_secs(60), RemedyId::LinkUp, "iface:a"),
            (t0 + Duration::from_secs(70), RemedyId::LinkUp, "iface:b"),
            (t0 + Duration::from_secs(80), RemedyId::Sysctl, "sysctl:x"),
        ];
        let v = budget_view(&cfg, taken.into_iter(), 26, now);
        assert_eq!(v.global_left, 26);
        let rows: Vec<(&str, &str, u32, u32)> = v
            .used
            .iter()
            .map(|u| {
                (
                    u.remedy.as_str(),
                    u.subject.as_str(),
                    u.remedy_left,
                    u.subject_left,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("link_up", "iface:a", 2, 1),
                ("link_up", "iface:b", 2, 2),
                ("sysctl", "sysctl:x", 4, 2)
            ]
        );
    }

    #[test]
    fn rates_from_the_ladder() {
        let mut l = Ladder::in_memory();
        l.record("link_down", "link_up", true);
        l.record("link_down", "link_up", true);
        l.record("syn_flood", "xdp_source_limit", false);
        let r = rates(&l.snapshot(), |_, r| r == "link_up");
        assert_eq!(r.len(), 2);
        assert_eq!(
            (
                r[0].fault.as_str(),
                r[0].remedy.as_str(),
                r[0].attempts,
                r[0].successes
            ),
            ("link_down", "link_up", 2, 2)
        );
        assert!((r[0].rate - 0.75).abs() < 1e-9 && r[0].confident);
        assert!((r[1].rate - 1.0 / 3.0).abs() < 1e-9 && !r[1].confident);
    }
}
