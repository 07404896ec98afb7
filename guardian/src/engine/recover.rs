//! Settling what the journal says is unfinished: at start (a previous daemon died or was
//! killed mid-change) and by hand (`guardian rollback`, or `rollback` through the control
//! socket: both choose the changes with [`choose`] and [`same_netns`], and revert them with
//! [`revert`]).
//!
//! Only authenticated records count (journal/auth.rs); the lines that are not are skipped and
//! reported. Every undo is checked again first ([`Guard`]: its remedy's rules, this namespace,
//! the safety rules) and is not run over someone else's later change ([`changed_since`]).
//! In observe mode recovery only reports what it would do.
//!
//! At start, for every change that is not over:
//! - `intent` only: the change may or may not have reached the kernel. If its verification
//!   holds, it did: continue as `applied`. Otherwise its inverse is applied (errors ignored:
//!   a half-applied change is undone as far as it got) → `rolled_back`.
//! - `applied`: verified now if its check holds and it needs no effect → `verified`;
//!   otherwise rolled back.
//! - `verified` with a lifetime: reverted if expired → `expired`; otherwise it stays and its
//!   expiry is armed again.
use std::time::{Duration, Instant};

use super::act::unix_ms;
use super::change::{Active, Attempt, Waiting};
use super::core::Engine;
pub use super::recheck::Guard;
pub use super::undo::{changed_since, decode, Decoded, Settled};
use super::undo::{undo, Undo};
use crate::journal::{ChangeState, JournalPhase, Record};
use crate::model::{Mode, Subject};
use crate::output::RemedyResult;
use crate::remedy::{Effect, Kernel};

/// Why a rollback by hand (`guardian rollback`, or the control socket's `rollback`) refuses.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("no change {0} in the journal")]
    UnknownId(String),
    #[error("change {id} is already over ({phase:?}); nothing to revert")]
    NotOpen { id: String, phase: JournalPhase },
    #[error("change {id} was made in network namespace {netns}, not this one: run the rollback there (nsenter --net=PATH guardian rollback ...)")]
    OtherNamespace { id: String, netns: u32 },
}

/// The changes a rollback by hand reverts: the one `id` (which must still be open), or every
/// open one, newest first.
pub fn choose(
    changes: Vec<ChangeState>,
    id: Option<&str>,
) -> Result<Vec<ChangeState>, RollbackError> {
    let Some(id) = id else {
        return Ok(changes.into_iter().filter(|c| c.is_open()).rev().collect());
    };
    let c = changes
        .into_iter()
        .find(|c| c.first.id == id)
        .ok_or_else(|| RollbackError::UnknownId(id.to_string()))?;
    if !c.is_open() {
        return Err(RollbackError::NotOpen {
            id: id.to_string(),
            phase: c.last,
        });
    }
    Ok(vec![c])
}

/// Refuses when a chosen change was made in another network namespace than `own`.
pub fn same_netns(chosen: &[ChangeState], own: u32) -> Result<(), RollbackError> {
    match chosen
        .iter()
        .find(|c| c.first.netns != 0 && c.first.netns != own)
    {
        Some(c) => Err(RollbackError::OtherNamespace {
            id: c.first.id.clone(),
            netns: c.first.netns,
        }),
        None => Ok(()),
    }
}

/// Decides and carries out what an unfinished change needs at start.
pub async fn settle(
    k: &mut Kernel,
    c: &ChangeState,
    now_ms: u64,
    guard: &Guard,
    observe: bool,
) -> Settled {
    let d = match decode(&c.first) {
        Ok(d) => d,
        Err(reason) => return Settled::new(JournalPhase::Failed, reason),
    };
    let holds = d.verify.check(k).await.unwrap_or(false);
    let (why, after_verified, done) = match c.last {
        JournalPhase::Intent | JournalPhase::Applied if holds && d.effect == Effect::InPlace => {
            return Settled::new(
                JournalPhase::Verified,
                "verified at start: the change is in place".into(),
            );
        }
        JournalPhase::Intent => (
            "interrupted before it was verified",
            false,
            JournalPhase::RolledBack,
        ),
        JournalPhase::Applied => (
            "not verified before guardian stopped",
            false,
            JournalPhase::RolledBack,
        ),
        _ if c.first.expires_at_ms.is_some_and(|t| t <= now_ms) => (
            "expired while guardian was stopped",
            true,
            JournalPhase::Expired,
        ),
        _ => return Settled::new(c.last, String::new()),
    };
    let verb = if done == JournalPhase::Expired {
        "reverted"
    } else {
        "rolled back at start"
    };
    match undo(k, &c.first, &d, guard, observe, after_verified).await {
        Undo::Done => Settled::new(done, format!("{why}; {verb} ({})", d.inverse)),
        Undo::Refused(r) => Settled {
            phase: c.last,
            reason: format!("{why}, but its undo ({}) is {r}; left as it is", d.inverse),
            event: Some(RemedyResult::Skipped),
        },
        Undo::WouldRun(r) => Settled {
            phase: c.last,
            reason: format!("{why}; {r}"),
            event: Some(RemedyResult::Planned),
        },
        Undo::Changed(r) => Settled {
            phase: JournalPhase::Superseded,
            reason: format!("{why}; not reverted: {r}"),
            event: Some(RemedyResult::Skipped),
        },
        // A change interrupted before it reached the kernel has nothing to undo.
        Undo::Failed(e) if c.last == JournalPhase::Intent => {
            Settled::new(done, format!("{why}; nothing to undo ({e})"))
        }
        Undo::Failed(e) => Settled::new(
            JournalPhase::Failed,
            format!("{why}, and undoing it ({}) failed: {e}", d.inverse),
        ),
    }
}

/// Reverts one change by hand: its inverse, then a `reverted` record. Refused by the
/// [`Guard`] (nothing journaled: phase unchanged), or `superseded` when someone else changed
/// the state since.
pub async fn revert(k: &mut Kernel, c: &ChangeState, guard: &Guard) -> Settled {
    let d = match decode(&c.first) {
        Ok(d) => d,
        Err(reason) => return Settled::new(JournalPhase::Failed, reason),
    };
    let verified = c.last == JournalPhase::Verified;
    match undo(k, &c.first, &d, guard, false, verified).await {
        Undo::Done => Settled::new(
            JournalPhase::Reverted,
            format!("reverted by hand ({})", d.inverse),
        ),
        Undo::Refused(r) | Undo::WouldRun(r) => Settled {
            phase: c.last,
            reason: format!("not reverted: {} is {r}", d.inverse),
            event: Some(RemedyResult::Skipped),
        },
        Undo::Changed(r) => Settled {
            phase: JournalPhase::Superseded,
            reason: format!("not reverted: {r}"),
            event: Some(RemedyResult::Skipped),
        },
        Undo::Failed(e) => Settled::new(
            JournalPhase::Failed,
            format!("reverting by hand ({}) failed: {e}", d.inverse),
        ),
    }
}

/// The attempt a journaled change reports under.
pub fn attempt_of(r: &Record) -> Attempt {
    Attempt {
        fault: r.fault.clone(),
        key: r.key.clone(),
        netns: None,
        incident: r.incident.clone(),
        opened_at: Instant::now(),
        remedy: r.remedy.clone(),
        subject: serde_json::from_value::<Subject>(r.subject.clone()).unwrap_or_default(),
        before: r.before.clone(),
        after: r.after.clone(),
    }
}

impl Engine {
    /// What the undo checks need to know here.
    pub(super) fn guard(&self) -> Guard {
        Guard {
            own_netns: self.cfg.netns,
            safety: self.cfg.safety.clone(),
            host: self.host(),
            links: self
                .links
                .iter()
                .map(|(i, l)| (*i, l.name.clone()))
                .collect(),
        }
    }

    /// Reports journal lines that were skipped (torn, forged, foreign, unauthenticated): a
    /// `lifecycle` event `journal_rejected` and the `guardian_journal_rejected_total` counter.
    pub(super) fn report_rejected(&self, rejected: &[crate::journal::Rejected]) {
        if rejected.is_empty() {
            return;
        }
        metrics::counter!(crate::output::count::JOURNAL_REJECTED).increment(rejected.len() as u64);
        for r in rejected {
            tracing::error!(line = r.line, "journal line skipped: {}", r.why);
        }
        let lines: Vec<serde_json::Value> = rejected
            .iter()
            .take(20)
            .map(|r| serde_json::json!({"line": r.line, "why": r.why}))
            .collect();
        self.lifecycle(
            crate::output::Phase::JournalRejected,
            serde_json::json!({"rejected": rejected.len(), "lines": lines}),
        );
    }

    /// Settles the journal's unfinished changes at start.
    pub(super) async fn recover(&mut self) {
        let Some(j) = &self.journal else {
            return;
        };
        let loaded = match j.read() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("{e}; unfinished changes cannot be settled");
                return;
            }
        };
        self.report_rejected(&loaded.rejected);
        let now_ms = unix_ms();
        let guard = self.guard();
        let observe = self.cfg.mode == Mode::Observe;
        for c in crate::journal::fold(&loaded.records) {
            if !c.is_open() {
                continue;
            }
            if c.first.netns != 0 && c.first.netns != self.cfg.netns {
                tracing::error!(
                    id = %c.first.id,
                    netns = c.first.netns,
                    "change made in another network namespace; left for a daemon there or `guardian rollback` run there"
                );
                continue;
            }
            let s = settle(&mut self.kernel, &c, now_ms, &guard, observe).await;
            let Ok(d) = decode(&c.first) else {
                self.record_settled(&c, &s);
                continue;
            };
            let mut active = Active {
                id: c.first.id.clone(),
                at: attempt_of(&c.first),
                apply: d.apply,
                inverse: d.inverse,
                verify: d.verify,
                effect: d.effect,
                expires: c
                    .first
                    .expires_at_ms
                    .map(|t| Instant::now() + Duration::from_millis(t.saturating_sub(now_ms))),
                expires_at_ms: c.first.expires_at_ms,
                until_clear: c.first.until_clear,
                waiting: Waiting::None,
            };
            if s.phase == c.last {
                if let Some(result) = s.event {
                    // Refused, or observe mode: reported, nothing changed, nothing armed.
                    tracing::warn!(id = %c.first.id, remedy = %c.first.remedy, "{}", s.reason);
                    self.emit(&active.at, result, Some(&active.id), Some(s.reason));
                    continue;
                }
                tracing::info!(id = %c.first.id, remedy = %c.first.remedy, "change still active");
                if c.last == JournalPhase::Verified {
                    self.backoff.hold(&active.apply);
                }
                if active.expires.is_some() && !observe {
                    self.active.push(active);
                }
                continue;
            }
            tracing::warn!(id = %c.first.id, remedy = %c.first.remedy, phase = %crate::logging::json(&s.phase), "{}", s.reason);
            if s.phase == JournalPhase::Verified {
                self.backoff.hold(&active.apply);
                active.until_clear = false;
                self.journal_best_effort(&active, JournalPhase::Verified, Some(s.reason.clone()));
                self.emit(
                    &active.at,
                    RemedyResult::Verified,
                    Some(&active.id),
                    Some(s.reason),
                );
                if active.expires.is_some() {
                    self.active.push(active);
                }
            } else {
                if s.phase == JournalPhase::Superseded {
                    self.backoff.back_off(&active.apply, &s.reason);
                }
                self.record_settled(&c, &s);
            }
        }
    }

    fn record_settled(&mut self, c: &ChangeState, s: &Settled) {
        let mut r = c.first.clone();
        r.phase = s.phase;
        r.ts = crate::output::rfc3339(chrono::Utc::now());
        r.error = Some(s.reason.clone());
        if let Some(j) = self.journal.as_mut() {
            if let Err(e) = j.append(&r) {
                tracing::error!("{e}");
            }
        }
        let result = match s.phase {
            _ if s.event.is_some() => s.event.unwrap_or(RemedyResult::Skipped),
            JournalPhase::RolledBack => RemedyResult::RolledBack,
            JournalPhase::Expired => RemedyResult::Expired,
            _ => RemedyResult::Failed,
        };
        self.emit(
            &attempt_of(&c.first),
            result,
            Some(&c.first.id),
            Some(s.reason.clone()),
        );
    }
}
