//! Acting on an opened fault: plan, check preconditions, then either report the plan
//! (observe) or journal → apply → verify → roll back (enforce).
use std::time::Instant;

use chrono::Utc;

use super::{Engine, IncidentKey, VERIFY_POLL};
use crate::detect::Finding;
use crate::journal::{self, JournalPhase, Record};
use crate::output::{rfc3339, Body, Change, Mode, RemedyEvent, RemedyResult};
use crate::remedy::{Action, Plan, PlanContext, PlannedChange, StateReader, Verify};

/// The remedy attempt being reported.
struct Attempt<'a> {
    fault: &'static str,
    incident: String,
    opened_at: Instant,
    plan: &'a PlannedChange,
}

enum Verdict {
    Verified,
    TimedOut,
    Cancelled,
}

impl Engine {
    /// Walks the fault's ladder: the first remedy that plans a change (and passes the safety
    /// rules) is carried out according to the mode. A remedy that skips says why in a
    /// `skipped` event and the next one is asked. At most one change per incident at a time.
    pub(super) async fn try_remedy(&mut self, f: &Finding, key: &IncidentKey) {
        let Some(inc) = self.incidents.get(key) else {
            return;
        };
        let (incident, opened_at) = (inc.id.clone(), inc.opened_at);
        let routes = match self.kernel.nl.dump_routes().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("cannot read routes to plan a remedy: {e}");
                return;
            }
        };
        let plans: Vec<Plan> = {
            let links: Vec<_> = self.links.values().cloned().collect();
            let reader = KernelState::new(self.cfg.netns);
            let ctx = PlanContext {
                links: &links,
                routes: &routes,
                baseline: &self.baseline,
                state: &reader,
                recurrences: 0,
            };
            self.remedies
                .iter()
                .filter_map(|r| r.plan(f, &ctx))
                .collect()
        };
        for plan in plans {
            let plan = match plan {
                Plan::Change(c) => *c,
                Plan::Skip(reason) => {
                    tracing::info!(fault = f.fault, %reason, "remedy skipped");
                    continue;
                }
            };
            let at = Attempt {
                fault: f.fault,
                incident: incident.clone(),
                opened_at,
                plan: &plan,
            };
            if let Some(reason) = self.precondition(&plan.apply).await {
                tracing::info!(remedy = plan.remedy, %reason, "remedy skipped");
                self.emit(&at, RemedyResult::Skipped, None, Some(reason));
                continue;
            }
            if let Some(inc) = self.incidents.get_mut(key) {
                inc.attempted = true;
            }
            match self.cfg.mode {
                Mode::Observe => {
                    tracing::info!(remedy = plan.remedy, action = %plan.apply, "remedy planned (observe mode)");
                    self.emit(&at, RemedyResult::Planned, None, None);
                }
                Mode::Enforce => self.enforce(&at).await,
            }
            return;
        }
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

    async fn enforce(&mut self, at: &Attempt<'_>) {
        let plan = at.plan;
        let id = journal::new_id();
        if let Err(e) = self.journal(&id, at, JournalPhase::Intent, None) {
            tracing::error!("{e}; not applying {}", plan.apply);
            let reason = format!("the journal could not be written, change not applied: {e}");
            self.emit(at, RemedyResult::Skipped, None, Some(reason));
            return;
        }
        if let Err(e) = plan.apply.execute(&mut self.kernel).await {
            let reason = format!("{} failed: {e}", plan.apply);
            tracing::warn!(remedy = plan.remedy, "{reason}");
            self.journal_best_effort(&id, at, JournalPhase::Failed, Some(reason.clone()));
            self.emit(at, RemedyResult::Failed, Some(&id), Some(reason));
            return;
        }
        self.journal_best_effort(&id, at, JournalPhase::Applied, None);
        self.emit(at, RemedyResult::Applied, Some(&id), None);
        match self.verify(&plan.verify).await {
            Verdict::Verified => {
                tracing::info!(remedy = plan.remedy, action = %plan.apply, "remedy verified");
                self.journal_best_effort(&id, at, JournalPhase::Verified, None);
                self.emit(at, RemedyResult::Verified, Some(&id), None);
            }
            Verdict::Cancelled => {
                tracing::warn!(
                    remedy = plan.remedy,
                    rollback_id = %id,
                    "shutting down during verification; the change stays applied and journaled"
                );
            }
            Verdict::TimedOut => {
                let ms = self.cfg.verify_timeout.as_millis();
                let why = format!("not verified within {ms} ms");
                match plan.inverse.execute(&mut self.kernel).await {
                    Ok(()) => {
                        let reason = format!("{why}; rolled back ({})", plan.inverse);
                        tracing::warn!(remedy = plan.remedy, "{reason}");
                        self.journal_best_effort(&id, at, JournalPhase::RolledBack, Some(why));
                        self.emit(at, RemedyResult::RolledBack, Some(&id), Some(reason));
                    }
                    Err(e) => {
                        let reason =
                            format!("{why}, and the rollback ({}) failed: {e}", plan.inverse);
                        tracing::error!(remedy = plan.remedy, "{reason}");
                        self.journal_best_effort(
                            &id,
                            at,
                            JournalPhase::Failed,
                            Some(reason.clone()),
                        );
                        self.emit(at, RemedyResult::Failed, Some(&id), Some(reason));
                    }
                }
            }
        }
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

    fn journal(
        &mut self,
        id: &str,
        at: &Attempt<'_>,
        phase: JournalPhase,
        error: Option<String>,
    ) -> Result<(), journal::JournalError> {
        let Some(j) = self.journal.as_mut() else {
            return Ok(());
        };
        let plan = at.plan;
        j.append(&Record {
            id: id.to_string(),
            ts: rfc3339(Utc::now()),
            remedy: plan.remedy.to_string(),
            subject: value(&plan.subject),
            incident: at.incident.clone(),
            phase,
            action: value(&plan.apply),
            inverse: value(&plan.inverse),
            before: plan.before.clone(),
            after: plan.after.clone(),
            error,
        })
    }

    fn journal_best_effort(
        &mut self,
        id: &str,
        at: &Attempt<'_>,
        phase: JournalPhase,
        error: Option<String>,
    ) {
        if let Err(e) = self.journal(id, at, phase, error) {
            tracing::error!("{e}");
        }
    }

    fn emit(
        &self,
        at: &Attempt<'_>,
        result: RemedyResult,
        rollback_id: Option<&str>,
        reason: Option<String>,
    ) {
        self.emitter.emit(Body::Remedy(RemedyEvent {
            netns: self.cfg.netns,
            remedy: at.plan.remedy,
            fault: at.fault,
            result,
            mode: self.cfg.mode,
            incident: at.incident.clone(),
            subject: at.plan.subject.clone(),
            change: Change {
                before: at.plan.before.clone(),
                after: at.plan.after.clone(),
            },
            rollback_id: rollback_id.map(str::to_string),
            elapsed_ms: at.opened_at.elapsed().as_secs_f64() * 1e3,
            reason,
        }));
    }
}

/// A JSON value of a plain serializable type (these cannot fail to serialize).
fn value<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// Reads the kernel state planning needs, from the live system.
struct KernelState {
    own_netns: u32,
    index: std::cell::RefCell<crate::netns::Index>,
}

impl KernelState {
    fn new(own_netns: u32) -> Self {
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
