//! Carrying out a change `policy.rs` chose: journal → apply → verify it is in place → (wait
//! for its effect) → keep it, or roll it back (and the ladder tries the next rung).
use std::time::{Duration, Instant};

use super::change::{Active, Attempt, Waiting};
use super::config::VERIFY_POLL;
use super::core::Engine;
use crate::faults::incidents::IncidentKey;
use crate::faults::Finding;
use crate::journal::JournalPhase;
use crate::output::RemedyResult;
use crate::remedy::{Effect, Lifetime, PlannedChange, RemedyId, StateReader, Verify};

/// How an enforced change ended up.
pub(super) enum Outcome {
    /// In place and (for `InPlace` effects) verified, or waiting for its effect.
    Kept,
    /// Not applied, or rolled back: the next rung may be tried.
    Undone,
}

enum Verdict {
    Verified,
    TimedOut,
    Cancelled,
}

impl Engine {
    /// Counts one more action of `remedy` on the fault's subject (hold-time doubling).
    pub(super) fn count_recurrence(&mut self, remedy: RemedyId, f: &Finding) {
        *self
            .recurrences
            .entry((remedy, recurrence_key(f)))
            .or_default() += 1;
    }

    pub(super) fn recurrences_of(&self, remedy: RemedyId, f: &Finding) -> u32 {
        self.recurrences
            .get(&(remedy, recurrence_key(f)))
            .copied()
            .unwrap_or(0)
    }

    /// Journal, apply, verify in place; then keep (waiting for the effect if there is one) or
    /// roll back.
    pub(super) async fn enforce(
        &mut self,
        at: Attempt,
        plan: PlannedChange,
        key: &IncidentKey,
    ) -> Outcome {
        let id = crate::journal::new_id();
        let expires_at_ms = plan.lifetime.max_ms().map(|ms| unix_ms() + ms);
        let until_clear = matches!(plan.lifetime, Lifetime::UntilClear { .. });
        let mut active = Active {
            id: id.clone(),
            at,
            apply: plan.apply.clone(),
            inverse: plan.inverse.clone(),
            verify: plan.verify.clone(),
            effect: plan.effect,
            expires: plan
                .lifetime
                .max_ms()
                .map(|ms| Instant::now() + Duration::from_millis(ms)),
            expires_at_ms,
            until_clear,
            waiting: Waiting::None,
        };
        if let Err(e) = self.journal(&active, JournalPhase::Intent, None) {
            tracing::error!("{e}; not applying {}", plan.apply);
            let reason = format!("the journal could not be written, change not applied: {e}");
            self.emit(&active.at, RemedyResult::Skipped, None, Some(reason));
            return Outcome::Undone;
        }
        crash_point("intent");
        let applied = plan.apply.execute(&mut self.kernel).await;
        crash_point("apply");
        if let Err(e) = applied {
            let reason = format!("{} failed: {e}", plan.apply);
            tracing::warn!(remedy = plan.remedy.as_str(), "{reason}");
            self.finish(&active, JournalPhase::Failed, RemedyResult::Failed, reason);
            self.ladder
                .record(&active.at.fault, plan.remedy.as_str(), false);
            return Outcome::Undone;
        }
        self.journal_best_effort(&active, JournalPhase::Applied, None);
        crash_point("applied");
        self.emit(&active.at, RemedyResult::Applied, Some(&id), None);
        match self.verify(&plan.verify).await {
            Verdict::Verified => {}
            Verdict::Cancelled => {
                tracing::warn!(
                    remedy = plan.remedy.as_str(),
                    rollback_id = %id,
                    "shutting down during verification; the change stays applied and journaled"
                );
                return Outcome::Kept;
            }
            Verdict::TimedOut => {
                let ms = self.cfg.verify_timeout.as_millis();
                self.roll_back(&active, format!("not in place within {ms} ms"))
                    .await;
                return Outcome::Undone;
            }
        }
        self.tries.entry(key.clone()).or_default().busy = true;
        match plan.effect {
            Effect::InPlace => self.verified(&mut active, "in place"),
            effect => {
                let deadline =
                    Instant::now() + Duration::from_millis(self.cfg.safety.effect_timeout_ms);
                active.waiting = Waiting::Effect {
                    deadline,
                    counter_last: None,
                };
                tracing::info!(
                    remedy = plan.remedy.as_str(),
                    effect = %crate::logging::json(&effect),
                    "change in place; waiting for its effect"
                );
                self.active.push(active);
            }
        }
        Outcome::Kept
    }

    /// Records success; keeps the change active when it has a lifetime.
    pub(super) fn verified(&mut self, active: &mut Active, how: &str) {
        tracing::info!(remedy = active.at.remedy, how, "remedy verified");
        active.waiting = Waiting::None;
        self.journal_best_effort(active, JournalPhase::Verified, None);
        self.backoff.hold(&active.apply);
        self.emit(&active.at, RemedyResult::Verified, Some(&active.id), None);
        self.ladder
            .record(&active.at.fault, &active.at.remedy, true);
        if active.expires.is_some() || active.until_clear {
            self.active.push(active.clone());
        }
    }

    /// Applies the inverse after a failed verification and reports it.
    pub(super) async fn roll_back(&mut self, active: &Active, why: String) {
        self.ladder
            .record(&active.at.fault, &active.at.remedy, false);
        // A change that was in place (waiting for its effect) may have been changed by
        // someone else since: theirs stays.
        if matches!(active.waiting, Waiting::Effect { .. }) && self.superseded(active, &why).await {
            return;
        }
        self.backoff.release(&active.apply);
        match active.inverse.execute(&mut self.kernel).await {
            Ok(()) => {
                let reason = format!("{why}; rolled back ({})", active.inverse);
                tracing::warn!(remedy = active.at.remedy, "{reason}");
                self.finish(
                    active,
                    JournalPhase::RolledBack,
                    RemedyResult::RolledBack,
                    reason,
                );
            }
            Err(e) => {
                let reason = format!("{why}, and the rollback ({}) failed: {e}", active.inverse);
                tracing::error!(remedy = active.at.remedy, "{reason}");
                self.finish(active, JournalPhase::Failed, RemedyResult::Failed, reason);
            }
        }
    }

    /// Whether someone else changed what `active` set since guardian set it; if so, the
    /// change is let go (`superseded`, a `skipped` event saying so) instead of reverted over
    /// theirs, and guardian backs off from its sysctls.
    pub(super) async fn superseded(&mut self, active: &Active, why: &str) -> bool {
        let Some(changed) = super::undo::changed_since(&mut self.kernel, &active.verify).await
        else {
            return false;
        };
        let reason =
            format!("{why}; not reverted: {changed}; guardian backs off and leaves it to them");
        tracing::warn!(remedy = active.at.remedy, "{reason}");
        self.backoff.back_off(&active.apply, &changed);
        self.active.retain(|a| a.id != active.id);
        self.finish(
            active,
            JournalPhase::Superseded,
            RemedyResult::Skipped,
            reason,
        );
        true
    }

    /// Journals a terminal phase and emits the matching event.
    pub(super) fn finish(
        &mut self,
        active: &Active,
        phase: JournalPhase,
        result: RemedyResult,
        reason: String,
    ) {
        self.journal_best_effort(active, phase, Some(reason.clone()));
        self.emit(&active.at, result, Some(&active.id), Some(reason));
    }

    /// Re-queries the kernel every [`VERIFY_POLL`] until the condition holds or the deadline.
    async fn verify(&mut self, v: &Verify) -> Verdict {
        let deadline = tokio::time::Instant::now() + self.cfg.verify_timeout;
        loop {
            match tokio::time::timeout_at(deadline, v.check(&mut self.kernel)).await {
                Ok(Ok(true)) => return Verdict::Verified,
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::debug!("verification query failed: {e}"),
                Err(_) => return Verdict::TimedOut,
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Verdict::TimedOut;
            }
            let wake = (now + VERIFY_POLL).min(deadline);
            tokio::select! {
                _ = self.shutdown.cancelled() => return Verdict::Cancelled,
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

/// Crash-safety testing: `GUARDIAN_CRASH_POINT=intent|apply|applied` aborts the process at
/// that point of the first enforced change (after the intent is journaled; after the change
/// reached the kernel but before `applied` is journaled; after `applied` is journaled and
/// before verification), exactly like a `kill -9` there. Read once. Only in test builds (the
/// `crash-points` feature); a no-op in production.
#[cfg(feature = "crash-points")]
fn crash_point(at: &str) {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let point = POINT.get_or_init(|| std::env::var("GUARDIAN_CRASH_POINT").ok());
    if point.as_deref() == Some(at) {
        tracing::error!("GUARDIAN_CRASH_POINT={at}: aborting as a crash would");
        std::process::abort();
    }
}

#[cfg(not(feature = "crash-points"))]
fn crash_point(_at: &str) {}

/// What "the same subject" means for recurrences (hold-time doubling): the fault's key.
fn recurrence_key(f: &Finding) -> String {
    format!("{}/{}", f.fault, f.key)
}

pub(super) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Reads the kernel state planning needs, from the live system.
pub(super) struct KernelState {
    own_netns: u32,
    index: std::cell::RefCell<crate::netns::Index>,
}

impl KernelState {
    pub(super) fn new(own_netns: u32) -> Self {
        KernelState {
            own_netns,
            index: std::cell::RefCell::new(crate::netns::Index::new()),
        }
    }
}

impl StateReader for KernelState {
    fn sysctl(&self, netns: Option<u32>, key: &str) -> Option<String> {
        let path = match netns {
            Some(ns) if ns != self.own_netns => Some(self.index.borrow_mut().path(ns)?),
            _ => None,
        };
        crate::sysctl::read(path.as_deref(), key).ok()
    }
}
