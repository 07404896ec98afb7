//! `heal FAULT SUBJECT` and `rollback ID|--all` through the running daemon.
use serde_json::{json, Value};

use crate::engine::core::Engine;
use crate::engine::recover;
use crate::faults::FaultId;
use crate::journal::{self, JournalPhase};
use crate::model::Mode;

impl Engine {
    /// A manual heal of an open incident: the operator's explicit approval, so it acts even in
    /// observe mode, while paused and for remedies in observe mode; every safety rule, the
    /// journal and verification apply as in enforce mode. Answers with the remedy events.
    pub(super) async fn heal(&mut self, fault: &str, subject: &str) -> Result<Value, String> {
        // A name that is no fault matches no incident (same answer as an unopened one).
        let id = fault.parse::<FaultId>().ok();
        let Some((key, t)) = self
            .ctl
            .open
            .iter()
            .find(|((f, k), t)| Some(*f) == id && (t.view.subject == subject || k == subject))
        else {
            let open: Vec<String> = self
                .ctl
                .open
                .values()
                .map(|t| format!("{} {}", t.view.fault, t.view.subject))
                .collect();
            return Err(if open.is_empty() {
                format!("no open {fault} incident on {subject}: nothing is open")
            } else {
                format!(
                    "no open {fault} incident on {subject} (open: {})",
                    open.join(", ")
                )
            });
        };
        let (key, finding, incident) = (key.clone(), t.finding.clone(), t.view.incident.clone());
        if self.tries.get(&key).is_some_and(|t| t.busy) {
            return Err(format!(
                "a change for incident {incident} is already in place or waiting for its effect"
            ));
        }
        self.ensure_journal()?;
        if let Some(t) = self.tries.get_mut(&key) {
            t.tried.clear();
        }
        let mut tap = self.emitter.subscribe();
        let saved = self.cfg.mode;
        self.cfg.mode = Mode::Enforce;
        self.ctl.manual = true;
        tracing::info!(fault, subject, %incident, "manual heal requested through the control socket");
        self.try_remedy(&finding, &key).await;
        self.cfg.mode = saved;
        self.ctl.manual = false;
        let mut events = Vec::new();
        while let Ok(line) = tap.try_recv() {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["type"] == "remedy" && v["incident"] == incident.as_str() {
                events.push(v);
            }
        }
        let Some(last) = events.last() else {
            return Err(format!(
                "no remedy on the {fault} ladder has anything to do for {subject}"
            ));
        };
        Ok(json!({"incident": incident, "outcome": last["result"].clone(), "events": events}))
    }

    /// Reverts one change or every open one, newest first, as `guardian rollback` does
    /// offline; a reverted temporary mitigation is forgotten by the engine.
    pub(super) async fn rollback_by_request(
        &mut self,
        id: Option<String>,
    ) -> Result<Value, String> {
        let Some(j) = &self.journal else {
            return Err(
                "this guardian keeps no journal (it started in observe mode and changed nothing): nothing to roll back"
                    .into(),
            );
        };
        let loaded = j.read().map_err(|e| e.to_string())?;
        for r in &loaded.rejected {
            tracing::warn!(line = r.line, "journal line skipped: {}", r.why);
        }
        let changes = journal::fold(&loaded.records);
        let guard = self.guard();
        let chosen = recover::choose(changes, id.as_deref()).map_err(|e| e.to_string())?;
        recover::same_netns(&chosen, self.cfg.netns).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for c in chosen {
            let s = recover::revert(&mut self.kernel, &c, &guard).await;
            let mut r = c.first.clone();
            r.phase = s.phase;
            r.ts = crate::output::rfc3339(chrono::Utc::now());
            r.error = Some(s.reason.clone());
            if s.phase != c.last {
                if let Some(j) = self.journal.as_mut() {
                    j.append(&r).map_err(|e| e.to_string())?;
                }
                self.active.retain(|a| a.id != c.first.id);
                if let Ok(d) = recover::decode(&c.first) {
                    match s.phase {
                        JournalPhase::Superseded => self.backoff.back_off(&d.apply, &s.reason),
                        _ => self.backoff.release(&d.apply),
                    }
                }
            }
            let ok = matches!(s.phase, JournalPhase::Reverted | JournalPhase::Superseded);
            tracing::info!(id = %c.first.id, remedy = %c.first.remedy, ok, "{}", s.reason);
            out.push(json!({
                "rollback_id": c.first.id,
                "remedy": c.first.remedy,
                "result": match s.phase {
                    JournalPhase::Reverted => "reverted",
                    JournalPhase::Superseded => "superseded",
                    _ if s.phase == c.last => "refused",
                    _ => "failed",
                },
                "reason": s.reason,
            }));
        }
        Ok(json!({"changes": out}))
    }
}
