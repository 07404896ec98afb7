//! Changes that are still the engine's business after they were applied: those waiting for
//! their effect (verified when the fault clears or a counter goes quiet, rolled back at the
//! deadline) and temporary mitigations (reverted when their time runs out or their fault
//! clears). Also the reporting every attempt shares: journal records and `remedy` events.
use std::time::Instant;

use chrono::Utc;
use serde_json::Value;

use super::change::{Active, Attempt, Waiting};
use super::core::Engine;
use crate::faults::FaultId;
use crate::journal::{self, JournalPhase, Record};
use crate::model::sample::MibSample;
use crate::output::{rfc3339, Body, Change, RemedyEvent, RemedyResult};
use crate::remedy::{Effect, MibCounter};

/// Splits changes into those whose effect deadline or expiry has come, and the rest.
fn split_due(active: Vec<Active>, now: Instant) -> (Vec<Active>, Vec<Active>) {
    active
        .into_iter()
        .partition(|a| a.deadline().is_some_and(|d| d <= now))
}

fn counter(m: &MibSample, c: MibCounter) -> u64 {
    match c {
        MibCounter::ListenOverflows => m.listen_overflows,
        MibCounter::ListenDrops => m.listen_drops,
        MibCounter::ReqQFullDrop => m.req_q_full_drop,
        MibCounter::TwOverflow => m.tw_overflow,
    }
}

impl Engine {
    /// The earliest effect deadline or expiry.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.active.iter().filter_map(Active::deadline).min()
    }

    /// Handles effect deadlines and expiries that are due.
    pub(super) async fn settle(&mut self, now: Instant) {
        let (due, keep) = split_due(std::mem::take(&mut self.active), now);
        self.active = keep;
        for a in due {
            let last = self
                .tries
                .iter()
                .find(|((f, k), _)| f.as_str() == a.at.fault && *k == a.at.key)
                .and_then(|(_, t)| t.last.clone());
            if let Waiting::Effect { .. } = a.waiting {
                let ms = self.cfg.safety.effect_timeout_ms;
                self.roll_back(&a, format!("no effect ({:?}) within {ms} ms", a.effect))
                    .await;
            } else {
                self.expire(&a, "its time ran out").await;
            }
            // The fault is still open: the next rung (or, after an expiry, the same one
            // again, as a recurrence) may act.
            if let Some(f) = last {
                let key = (f.fault, f.key.clone());
                if let Some(t) = self.tries.get_mut(&key) {
                    t.busy = false;
                    if !matches!(a.waiting, Waiting::Effect { .. }) {
                        t.tried.clear();
                    }
                }
                if self.incidents.get(&key).is_some() {
                    self.try_remedy(&f, &key).await;
                }
            }
        }
    }

    /// Reverts a temporary mitigation and reports it as `expired`.
    pub(super) async fn expire(&mut self, a: &Active, why: &str) {
        if self.superseded(a, why).await {
            return;
        }
        self.backoff.release(&a.apply);
        match a.inverse.execute(&mut self.kernel).await {
            Ok(()) => {
                let reason = format!("{why}; reverted ({})", a.inverse);
                tracing::info!(remedy = a.at.remedy, "{reason}");
                self.finish(a, JournalPhase::Expired, RemedyResult::Expired, reason);
            }
            Err(e) => {
                let reason = format!("{why}, but reverting ({}) failed: {e}", a.inverse);
                tracing::error!(remedy = a.at.remedy, "{reason}");
                self.finish(a, JournalPhase::Failed, RemedyResult::Failed, reason);
            }
        }
    }

    /// The incident of (fault, key) cleared: changes waiting for that are verified, and
    /// until-clear mitigations are reverted.
    pub(super) async fn on_cleared(&mut self, fault: FaultId, key: &str) {
        let (mine, rest): (Vec<Active>, Vec<Active>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|a| a.at.fault == fault.as_str() && a.at.key == key);
        self.active = rest;
        for mut a in mine {
            if let Waiting::Effect { .. } = a.waiting {
                let was_until_clear = a.until_clear;
                a.until_clear = false;
                self.verified(&mut a, "the fault cleared");
                if was_until_clear {
                    self.active.retain(|x| x.id != a.id);
                    self.expire(&a, "its fault cleared").await;
                }
            } else if a.until_clear {
                self.expire(&a, "its fault cleared").await;
            } else {
                self.active.push(a);
            }
        }
    }

    /// A MIB sample: changes waiting for a counter to go quiet in that namespace.
    pub(super) fn on_mib(&mut self, m: &MibSample) {
        let own = self.cfg.netns;
        let mut quiet = Vec::new();
        for a in &mut self.active {
            let (Effect::CounterQuiet { counter: c }, Waiting::Effect { counter_last, .. }) =
                (a.effect, &mut a.waiting)
            else {
                continue;
            };
            if a.at.netns.unwrap_or(own) != m.netns {
                continue;
            }
            let v = counter(m, c);
            match counter_last {
                Some(prev) if *prev == v => quiet.push(a.id.clone()),
                _ => *counter_last = Some(v),
            }
        }
        for id in quiet {
            if let Some(i) = self.active.iter().position(|a| a.id == id) {
                let mut a = self.active.remove(i);
                self.verified(&mut a, "the counter stopped growing");
            }
        }
    }

    /// At shutdown: reverts temporary mitigations when configured to.
    pub(super) async fn revert_temporary(&mut self) {
        if !self.cfg.safety.revert_on_shutdown {
            return;
        }
        for a in std::mem::take(&mut self.active) {
            if a.expires.is_some() || a.until_clear {
                self.expire(&a, "guardian is stopping").await;
            }
        }
    }

    pub(super) fn journal(
        &mut self,
        a: &Active,
        phase: JournalPhase,
        error: Option<String>,
    ) -> Result<(), journal::JournalError> {
        let Some(j) = self.journal.as_mut() else {
            return Ok(());
        };
        j.append(&Record {
            id: a.id.clone(),
            ts: rfc3339(Utc::now()),
            remedy: a.at.remedy.clone(),
            subject: value(&a.at.subject),
            incident: a.at.incident.clone(),
            phase,
            action: value(&a.apply),
            inverse: value(&a.inverse),
            before: a.at.before.clone(),
            after: a.at.after.clone(),
            error,
            netns: self.cfg.netns,
            fault: a.at.fault.clone(),
            key: a.at.key.clone(),
            verify: value(&a.verify),
            effect: value(&a.effect),
            expires_at_ms: a.expires_at_ms,
            until_clear: a.until_clear,
        })
    }

    pub(super) fn journal_best_effort(
        &mut self,
        a: &Active,
        phase: JournalPhase,
        error: Option<String>,
    ) {
        if let Err(e) = self.journal(a, phase, error) {
            tracing::error!("{e}");
        }
    }

    pub(super) fn emit(
        &self,
        at: &Attempt,
        result: RemedyResult,
        rollback_id: Option<&str>,
        reason: Option<String>,
    ) {
        self.emit_with(at, result, rollback_id, reason, None);
    }

    pub(super) fn emit_with(
        &self,
        at: &Attempt,
        result: RemedyResult,
        rollback_id: Option<&str>,
        reason: Option<String>,
        severity: Option<crate::model::Severity>,
    ) {
        self.emitter.emit(Body::Remedy(
            RemedyEvent {
                netns: at.netns.unwrap_or(self.cfg.netns),
                remedy: at.remedy.clone(),
                fault: at.fault.clone(),
                result,
                message: String::new(),
                mode: self.cfg.mode,
                incident: at.incident.clone(),
                subject: at.subject.clone(),
                change: Change {
                    before: at.before.clone(),
                    after: at.after.clone(),
                },
                rollback_id: rollback_id.map(str::to_string),
                elapsed_ms: at.opened_at.elapsed().as_secs_f64() * 1e3,
                reason,
                severity,
            }
            .with_message(),
        ));
    }
}

/// A JSON value of a plain serializable type (these cannot fail to serialize).
pub(super) fn value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::Subject;
    use crate::remedy::{Action, Verify};

    fn active(id: &str, expires: Option<Instant>, waiting: Waiting) -> Active {
        Active {
            id: id.into(),
            at: Attempt {
                fault: "syn_flood".into(),
                key: "k".into(),
                netns: None,
                incident: "i".into(),
                opened_at: Instant::now(),
                remedy: "xdp_source_limit".into(),
                subject: Subject::default(),
                before: Value::Null,
                after: Value::Null,
            },
            apply: Action::Nothing,
            inverse: Action::Nothing,
            verify: Verify::Nothing,
            effect: Effect::InPlace,
            expires,
            expires_at_ms: None,
            until_clear: false,
            waiting,
        }
    }

    #[test]
    fn ttl_expiry_and_effect_deadlines_come_due_in_time() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let list = vec![
            active("ttl-past", Some(t0), Waiting::None),
            active("ttl-future", Some(t0 + 10 * s), Waiting::None),
            active(
                "effect-past",
                Some(t0 + 10 * s),
                Waiting::Effect {
                    deadline: t0,
                    counter_last: None,
                },
            ),
            active("permanent", None, Waiting::None),
        ];
        let (due, keep) = split_due(list, t0 + Duration::from_millis(1));
        let ids = |v: &[Active]| v.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&due), ["ttl-past", "effect-past"]);
        assert_eq!(ids(&keep), ["ttl-future", "permanent"]);
        // the earliest of an effect deadline and an expiry wins; permanent changes never
        // come due
        assert_eq!(keep[0].deadline(), Some(t0 + 10 * s));
        assert_eq!(keep[1].deadline(), None);
    }
}
