//! Acting on a fault: walk its ladder, check every safety rule, then either report the plan
//! (observe) or journal → apply → verify the change is in place → (wait for its effect) →
//! keep it, or roll it back and try the next rung.
use std::time::{Duration, Instant};

use super::active::{Active, Attempt, Waiting};
use super::{safety, Engine, IncidentKey, VERIFY_POLL};
use crate::detect::Finding;
use crate::journal::JournalPhase;
use crate::output::{Mode, RemedyResult};
use crate::remedy::{
    Action, Effect, Lifetime, Plan, PlanContext, PlannedChange, RemedyMode, StateReader, Verify,
};

/// While this file exists in the state directory, enforce mode only plans (detection, expiries
/// and rollbacks go on): `touch /var/lib/guardian/paused` to pause, `rm` to resume. A file, so
/// that a pause survives restarts and needs no running daemon to be set.
pub const PAUSE_FILE: &str = "paused";

/// How an enforced change ended up.
enum Outcome {
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
    /// Walks the fault's ladder. The first remedy that plans a change which passes the safety
    /// rules is carried out according to the mode; remedies that skip or are refused say why
    /// in a `skipped` event and the next one is asked. One change per incident at a time; a
    /// rung that failed is not tried again for the same incident.
    pub(super) async fn try_remedy(&mut self, f: &Finding, key: &IncidentKey) {
        let Some(inc) = self.incidents.get(key) else {
            return;
        };
        let (incident, opened_at) = (inc.id.clone(), inc.opened_at);
        let tried = self.tries.entry(key.clone()).or_default();
        tried.last = Some(f.clone());
        if tried.busy {
            return;
        }
        let names: Vec<&'static str> = self
            .remedies
            .iter()
            .filter(|r| r.faults().contains(&f.fault))
            .map(|r| r.name())
            .collect();
        let order: Vec<&'static str> = self
            .ladder
            .order(f.fault, &names)
            .into_iter()
            .map(|i| names[i])
            .filter(|n| !tried.tried.contains(n))
            .collect();
        if order.is_empty() {
            return;
        }
        if let Err(reason) = safety::netns_allowed(&self.cfg.safety, self.cfg.netns, f.netns) {
            // Once per incident: every rung counts as tried.
            let t = self.tries.entry(key.clone()).or_default();
            t.tried.extend(order.iter().copied());
            self.skip(&Attempt::of(f, &incident, opened_at, order[0]), reason);
            return;
        }
        let routes = match self.kernel.nl.dump_routes().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("cannot read routes to plan a remedy: {e}");
                return;
            }
        };
        for name in order {
            // Planned one rung at a time: rungs after the one that acts are never planned
            // (some planning reads the kernel: socket dumps, /proc scans).
            let plan = {
                let links: Vec<_> = self.links.values().cloned().collect();
                let reader = KernelState::new(self.cfg.netns);
                let ctx = PlanContext {
                    links: &links,
                    routes: &routes,
                    baseline: &self.baseline,
                    state: &reader,
                    recurrences: self.recurrences_of(name, f),
                };
                self.remedies
                    .iter()
                    .find(|r| r.name() == name)
                    .and_then(|r| r.plan(f, &ctx))
            };
            let Some(plan) = plan else {
                continue;
            };
            self.tries
                .entry(key.clone())
                .or_default()
                .tried
                .insert(name);
            let mut at = Attempt::of(f, &incident, opened_at, name);
            let plan = match plan {
                Plan::Change(c) => *c,
                Plan::Skip(reason) => {
                    self.skip(&at, reason);
                    continue;
                }
            };
            at.subject = plan.subject.clone();
            at.before = plan.before.clone();
            at.after = plan.after.clone();
            let now = Instant::now();
            let subject = plan.targets.join(",");
            if let Err(reason) = safety::check_plan(&self.cfg.safety, &self.host(), &plan)
                .and_then(|()| self.budgets.check(&self.cfg.safety, name, &subject, now))
            {
                self.skip(&at, reason);
                continue;
            }
            if let Some(reason) = self.precondition(&plan.apply).await {
                // Live state changes (a nexthop comes back up): this rung may be asked again
                // on the fault's next update.
                if let Some(t) = self.tries.get_mut(key) {
                    t.tried.remove(name);
                }
                self.skip(&at, reason);
                continue;
            }
            if let Some(reason) = self.observe_only(name, f.fault) {
                tracing::info!(remedy = name, action = %plan.apply, %reason, "remedy planned");
                self.emit(&at, RemedyResult::Planned, None, Some(reason));
                return;
            }
            self.budgets.record(name, &subject, now);
            *self
                .recurrences
                .entry((name, recurrence_key(f)))
                .or_default() += 1;
            if let Outcome::Kept = self.enforce(at, plan, key).await {
                return;
            }
        }
    }

    /// Why this remedy may only be planned now, if so: global observe mode, the remedy's own
    /// mode, or a success rate below the configured confidence.
    fn observe_only(&self, remedy: &str, fault: &str) -> Option<String> {
        if self.cfg.mode == Mode::Observe {
            return Some("observe mode".into());
        }
        // A manual heal (control socket) is the operator's approval: pause and per-remedy
        // observe modes do not hold it back.
        let pause = self.cfg.state_dir.join(PAUSE_FILE);
        if !self.ctl.manual && pause.exists() {
            return Some(format!("paused: {} exists", pause.display()));
        }
        if !self.ctl.manual && self.cfg.remedies.mode_of(remedy) == RemedyMode::Observe {
            return Some(format!("remedies.modes.{remedy} = \"observe\""));
        }
        let s = &self.cfg.safety;
        if !self
            .ladder
            .confident(fault, remedy, s.min_confidence, s.min_attempts)
        {
            let st = self.ladder.stat(fault, remedy);
            return Some(format!(
                "success rate {:.2} over {} attempts is below safety.min_confidence = {}",
                st.rate(),
                st.attempts(),
                s.min_confidence
            ));
        }
        None
    }

    fn skip(&self, at: &Attempt, reason: String) {
        tracing::info!(remedy = at.remedy, %reason, "remedy skipped");
        self.emit(at, RemedyResult::Skipped, None, Some(reason));
    }

    fn recurrences_of(&self, remedy: &'static str, f: &Finding) -> u32 {
        self.recurrences
            .get(&(remedy, recurrence_key(f)))
            .copied()
            .unwrap_or(0)
    }

    /// Why the change must not be applied now, if it must not. Checks live kernel state, so a
    /// change never undoes someone else's fix and its inverse stays exact.
    async fn precondition(&self, action: &Action) -> Option<String> {
        let nl = &self.kernel.nl;
        match action {
            Action::SetLinkUp { ifindex, name } => match nl.get_link(*ifindex).await {
                Ok(Some(l)) if !l.admin_up => None,
                Ok(Some(_)) => Some(format!("interface {name} is already up")),
                Ok(None) => Some(format!("interface {name} no longer exists")),
                Err(e) => Some(format!("cannot read interface {name}: {e}")),
            },
            Action::AddRoute(r) => {
                if let Some(oif) = r.oif {
                    match nl.get_link(oif).await {
                        Ok(Some(l)) if l.admin_up => {}
                        Ok(Some(l)) => {
                            return Some(format!("nexthop interface {} is down", l.name))
                        }
                        Ok(None) => return Some(format!("nexthop interface {oif} does not exist")),
                        Err(e) => return Some(format!("cannot read the nexthop interface: {e}")),
                    }
                }
                match nl.route_present(r).await {
                    Ok(false) => None,
                    Ok(true) => Some(format!("route {r} is already present")),
                    Err(e) => Some(format!("cannot read routes: {e}")),
                }
            }
            _ => None,
        }
    }

    /// Journal, apply, verify in place; then keep (waiting for the effect if there is one) or
    /// roll back.
    async fn enforce(&mut self, at: Attempt, plan: PlannedChange, key: &IncidentKey) -> Outcome {
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
            tracing::warn!(remedy = plan.remedy, "{reason}");
            self.finish(&active, JournalPhase::Failed, RemedyResult::Failed, reason);
            self.ladder.record(&active.at.fault, plan.remedy, false);
            return Outcome::Undone;
        }
        self.journal_best_effort(&active, JournalPhase::Applied, None);
        crash_point("applied");
        self.emit(&active.at, RemedyResult::Applied, Some(&id), None);
        match self.verify(&plan.verify).await {
            Verdict::Verified => {}
            Verdict::Cancelled => {
                tracing::warn!(
                    remedy = plan.remedy,
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
                    remedy = plan.remedy,
                    ?effect,
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
