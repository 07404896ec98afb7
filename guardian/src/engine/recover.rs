//! Settling what the journal says is unfinished: at start (a previous daemon died or was
//! killed mid-change) and by hand (`guardian rollback`, or `rollback` through the control
//! socket: both choose the changes with [`choose`] and [`same_netns`], and revert them with
//! [`revert`]).
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

use serde_json::Value;

use super::act::unix_ms;
use super::change::{Active, Attempt, Waiting};
use super::core::Engine;
use crate::journal::{ChangeState, JournalPhase, Record};
use crate::model::Subject;
use crate::output::RemedyResult;
use crate::remedy::{Action, Effect, Kernel, RemedyError, Verify};

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

/// A journaled change, decoded.
pub struct Decoded {
    pub apply: Action,
    pub inverse: Action,
    pub verify: Verify,
    pub effect: Effect,
}

pub fn decode(r: &Record) -> Result<Decoded, String> {
    let d = |v: &Value, what: &str| format!("cannot decode the {what} of change {}: {v}", r.id);
    Ok(Decoded {
        apply: serde_json::from_value(r.action.clone()).map_err(|_| d(&r.action, "action"))?,
        inverse: serde_json::from_value(r.inverse.clone()).map_err(|_| d(&r.inverse, "inverse"))?,
        verify: serde_json::from_value(r.verify.clone()).unwrap_or(Verify::Nothing),
        effect: serde_json::from_value(r.effect.clone()).unwrap_or_default(),
    })
}

/// What became of one unfinished change.
pub struct Settled {
    pub phase: JournalPhase,
    pub reason: String,
}

/// Decides and carries out what an unfinished change needs at start.
pub async fn settle(k: &mut Kernel, c: &ChangeState, now_ms: u64) -> Settled {
    let d = match decode(&c.first) {
        Ok(d) => d,
        Err(reason) => {
            return Settled {
                phase: JournalPhase::Failed,
                reason,
            }
        }
    };
    let holds = d.verify.check(k).await.unwrap_or(false);
    match c.last {
        JournalPhase::Intent | JournalPhase::Applied if holds && d.effect == Effect::InPlace => {
            Settled {
                phase: JournalPhase::Verified,
                reason: "verified at start: the change is in place".into(),
            }
        }
        JournalPhase::Intent | JournalPhase::Applied => {
            let why = if c.last == JournalPhase::Intent {
                "interrupted before it was verified"
            } else {
                "not verified before guardian stopped"
            };
            match d.inverse.execute(k).await {
                Ok(()) | Err(RemedyError::Unavailable(_)) => Settled {
                    phase: JournalPhase::RolledBack,
                    reason: format!("{why}; rolled back at start ({})", d.inverse),
                },
                // A change interrupted before it reached the kernel has nothing to undo.
                Err(e) if c.last == JournalPhase::Intent => Settled {
                    phase: JournalPhase::RolledBack,
                    reason: format!("{why}; nothing to undo ({e})"),
                },
                Err(e) => Settled {
                    phase: JournalPhase::Failed,
                    reason: format!("{why}, and rolling back ({}) failed: {e}", d.inverse),
                },
            }
        }
        _ if c.first.expires_at_ms.is_some_and(|t| t <= now_ms) => {
            match d.inverse.execute(k).await {
                Ok(()) | Err(RemedyError::Unavailable(_)) => Settled {
                    phase: JournalPhase::Expired,
                    reason: format!(
                        "expired while guardian was stopped; reverted ({})",
                        d.inverse
                    ),
                },
                Err(e) => Settled {
                    phase: JournalPhase::Failed,
                    reason: format!("expired, but reverting ({}) failed: {e}", d.inverse),
                },
            }
        }
        _ => Settled {
            phase: c.last,
            reason: String::new(),
        },
    }
}

/// Reverts one change by hand: its inverse, then a `reverted` record.
pub async fn revert(k: &mut Kernel, c: &ChangeState) -> Settled {
    let d = match decode(&c.first) {
        Ok(d) => d,
        Err(reason) => {
            return Settled {
                phase: JournalPhase::Failed,
                reason,
            }
        }
    };
    match d.inverse.execute(k).await {
        Ok(()) => Settled {
            phase: JournalPhase::Reverted,
            reason: format!("reverted by hand ({})", d.inverse),
        },
        Err(RemedyError::Unavailable(why)) => Settled {
            phase: JournalPhase::Reverted,
            reason: format!("nothing left to revert: {why}"),
        },
        Err(e) => Settled {
            phase: JournalPhase::Failed,
            reason: format!("reverting by hand ({}) failed: {e}", d.inverse),
        },
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
    /// Settles the journal's unfinished changes at start.
    pub(super) async fn recover(&mut self) {
        let Some(j) = &self.journal else {
            return;
        };
        let records = match crate::journal::read_all(j.path()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}; unfinished changes cannot be settled");
                return;
            }
        };
        let now_ms = unix_ms();
        for c in crate::journal::fold(&records) {
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
            let s = settle(&mut self.kernel, &c, now_ms).await;
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
                tracing::info!(id = %c.first.id, remedy = %c.first.remedy, "change still active");
                if active.expires.is_some() {
                    self.active.push(active);
                }
                continue;
            }
            tracing::warn!(id = %c.first.id, remedy = %c.first.remedy, phase = ?s.phase, "{}", s.reason);
            if s.phase == JournalPhase::Verified {
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
