//! Choosing what to do about a fault: walk its ladder one rung at a time, plan, check every
//! safety rule, budget and precondition, and decide whether the mode lets the change be made
//! (`act.rs` then carries it out) or only reported.
use std::time::Instant;

use super::act::{KernelState, Outcome};
use super::change::Attempt;
use super::core::Engine;
use super::safety;
use crate::faults::incidents::IncidentKey;
use crate::faults::{FaultId, Finding};
use crate::model::Mode;
use crate::output::RemedyResult;
use crate::remedy::{exec, Action, Plan, PlanContext, RemedyId, RemedyMode, StateReader};

/// While this file exists in the state directory, enforce mode only plans (detection, expiries
/// and rollbacks go on): `touch /var/lib/guardian/paused` to pause, `rm` to resume. A file, so
/// that a pause survives restarts and needs no running daemon to be set.
pub const PAUSE_FILE: &str = "paused";

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
        let names: Vec<RemedyId> = self
            .remedies
            .iter()
            .filter(|r| r.faults().contains(&f.fault))
            .map(|r| r.name())
            .collect();
        let order: Vec<RemedyId> = self
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
            let backed_off = {
                let reader = KernelState::new(self.cfg.netns);
                self.backoff
                    .check(&plan.apply, |ns, key| reader.sysctl(ns, key))
            };
            if let Err(reason) = backed_off {
                self.skip(&at, reason);
                continue;
            }
            let now = Instant::now();
            let subject = plan.target_list();
            // Report-only remedies change nothing: they neither need nor use a budget.
            let report_only = plan.apply == Action::Nothing;
            if let Err(reason) = safety::check_plan(&self.cfg.safety, &self.host(), &plan) {
                self.skip(&at, reason);
                continue;
            }
            if !report_only {
                if let Err(reason) = self.budgets.check(&self.cfg.safety, name, &subject, now) {
                    if reason.starts_with("budget exhausted") {
                        self.budget_exhausted(&at, reason);
                    } else {
                        self.skip(&at, reason);
                    }
                    continue;
                }
            }
            if let Some(reason) = exec::precondition(&self.kernel.nl, &plan.apply).await {
                // Live state changes (a nexthop comes back up): this rung may be asked again
                // on the fault's next update.
                if let Some(t) = self.tries.get_mut(key) {
                    t.tried.remove(&name);
                }
                self.skip(&at, reason);
                continue;
            }
            if let Some(reason) = self.observe_only(name, f.fault) {
                tracing::info!(remedy = name.as_str(), action = %plan.apply, %reason, "remedy planned");
                self.emit(&at, RemedyResult::Planned, None, Some(reason));
                return;
            }
            if !report_only {
                self.budgets.record(name, &subject, now);
            }
            self.count_recurrence(name, f);
            if let Outcome::Kept = self.enforce(at, plan, key).await {
                return;
            }
        }
    }

    /// Why this remedy may only be planned now, if so: global observe mode, the remedy's own
    /// mode, or a success rate below the configured confidence.
    fn observe_only(&self, remedy: RemedyId, fault: FaultId) -> Option<String> {
        if self.cfg.mode == Mode::Observe {
            return Some("observe mode".into());
        }
        // A manual heal (control socket) is the operator's approval: pause and per-remedy
        // observe modes do not hold it back.
        let pause = self.cfg.state_dir.join(PAUSE_FILE);
        if !self.ctl.manual && pause.exists() {
            return Some(format!("paused: {} exists", pause.display()));
        }
        if !self.ctl.manual && self.cfg.remedies.mode_of(remedy.as_str()) == RemedyMode::Observe {
            return Some(format!("remedies.modes.{remedy} = \"observe\""));
        }
        let s = &self.cfg.safety;
        if !self.ladder.confident(
            fault.as_str(),
            remedy.as_str(),
            s.min_confidence,
            s.min_attempts,
        ) {
            let st = self.ladder.stat(fault.as_str(), remedy.as_str());
            return Some(format!(
                "success rate {:.2} over {:.1} recent attempts is below safety.min_confidence = {}",
                st.rate(),
                st.attempts(),
                s.min_confidence
            ));
        }
        None
    }

    /// A remedy that would act is held back by an exhausted budget: a `critical` skipped
    /// event and `guardian_budget_exhausted_total{remedy}`.
    fn budget_exhausted(&self, at: &Attempt, reason: String) {
        tracing::error!(remedy = at.remedy, %reason, "remedy skipped");
        metrics::counter!(crate::output::count::BUDGET_EXHAUSTED, "remedy" => at.remedy.clone())
            .increment(1);
        self.emit_with(
            at,
            RemedyResult::Skipped,
            None,
            Some(reason),
            Some(crate::model::Severity::Critical),
        );
    }

    fn skip(&self, at: &Attempt, reason: String) {
        tracing::info!(remedy = at.remedy, %reason, "remedy skipped");
        self.emit(at, RemedyResult::Skipped, None, Some(reason));
    }
}
