//! The engine's side of its API (`engine::api`): requests handled inside the engine's select
//! loop, so every answer sees one consistent state and every change goes through the same
//! journal, safety rules and verification.
mod baseline;
mod heal;
mod reload;
mod status;

use std::time::Instant;

use serde_json::{json, Value};

use super::api::{IncidentView, ModeChange, Request};
use super::core::Engine;
use crate::model::Mode;
use crate::output::{Body, Lifecycle, Phase};

impl Engine {
    /// Answers one request.
    pub(super) async fn on_control(&mut self, req: Request) {
        match req {
            Request::Status(tx) => {
                let _ = tx.send(self.status(Instant::now()));
            }
            Request::Incidents(tx) => {
                let mut all: Vec<IncidentView> =
                    self.ctl.open.values().map(|t| t.view.clone()).collect();
                all.sort_by(|a, b| b.since.cmp(&a.since));
                all.extend(self.ctl.recent.iter().cloned());
                let _ = tx.send(all);
            }
            Request::Mode(m, tx) => {
                let _ = tx.send(self.set_mode(m));
            }
            Request::Heal {
                fault,
                subject,
                reply,
            } => {
                let r = self.heal(&fault, &subject).await;
                let _ = reply.send(r);
            }
            Request::Baseline {
                accept,
                prefix,
                reply,
            } => {
                let r = self.baseline_request(accept, prefix.as_deref()).await;
                let _ = reply.send(r);
            }
            Request::Rollback(id, tx) => {
                let r = self.rollback_by_request(id).await;
                let _ = tx.send(r);
            }
            Request::Reload(r, tx) => {
                let out = match r {
                    Ok(new) => {
                        let changed = self.reload(*new);
                        crate::health::gauges::reloaded(true);
                        self.lifecycle(Phase::Reloaded, json!({"ok": true, "changed": changed}));
                        Ok(changed)
                    }
                    Err(e) => {
                        tracing::warn!("reload refused, the running configuration stays: {e}");
                        crate::health::gauges::reloaded(false);
                        self.lifecycle(Phase::Reloaded, json!({"ok": false, "error": e}));
                        Err(e)
                    }
                };
                let _ = tx.send(out);
            }
        }
    }

    fn paused(&self) -> bool {
        self.cfg.state_dir.join(super::policy::PAUSE_FILE).exists()
    }

    /// `observe`, `enforce` or `paused`.
    pub(super) fn mode_label(&self) -> &'static str {
        match self.cfg.mode {
            Mode::Observe => "observe",
            Mode::Enforce if self.paused() => "paused",
            Mode::Enforce => "enforce",
        }
    }

    /// Takes the state directory's lock and opens the journal (and the persisted ladder)
    /// when this daemon started without them (observe mode).
    pub(super) fn ensure_journal(&mut self) -> Result<(), String> {
        if self.journal.is_some() {
            return Ok(());
        }
        let dir = &self.cfg.state_dir;
        let lock = crate::journal::lock(dir).map_err(|e| e.to_string())?;
        let j = crate::journal::Journal::open(dir).map_err(|e| e.to_string())?;
        self.ctl.lock = Some(lock);
        self.journal = Some(j);
        self.ladder = super::ladder::Ladder::load(dir);
        Ok(())
    }

    fn set_mode(&mut self, m: ModeChange) -> Result<Value, String> {
        let before = self.mode_label();
        match m {
            ModeChange::Observe => self.cfg.mode = Mode::Observe,
            ModeChange::Enforce => {
                self.ensure_journal()?;
                self.cfg.mode = Mode::Enforce;
            }
            ModeChange::Pause => {
                let dir = &self.cfg.state_dir;
                std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(dir.join(super::policy::PAUSE_FILE), b""))
                    .map_err(|e| {
                        format!("cannot create the pause file in {}: {e}", dir.display())
                    })?;
            }
            ModeChange::Resume => {
                let p = self.cfg.state_dir.join(super::policy::PAUSE_FILE);
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("cannot remove {}: {e}", p.display())),
                }
            }
        }
        let after = self.mode_label();
        let paused = self.paused();
        tracing::info!(
            from = before,
            to = after,
            paused,
            "mode changed through the control socket"
        );
        self.lifecycle(
            Phase::ModeChanged,
            json!({"from": before, "to": after, "paused": paused}),
        );
        Ok(json!({"mode": after, "paused": paused}))
    }

    pub(super) fn lifecycle(&self, phase: Phase, detail: Value) {
        self.emitter.emit(Body::Lifecycle(Lifecycle {
            phase,
            netns: self.cfg.netns,
            version: env!("CARGO_PKG_VERSION"),
            mode: self.cfg.mode,
            detail: Some(detail),
        }));
    }

    /// Sets the health and active-mitigation gauges when they changed.
    pub(super) fn publish_gauges(&mut self) {
        let h = self.ctl.health(Instant::now());
        let n = self.active.len();
        let open: Vec<(&'static str, crate::model::Severity)> = self
            .ctl
            .open
            .values()
            .map(|t| (t.finding.fault.as_str(), t.finding.severity))
            .collect();
        crate::owner::metric::set_open(self.ctl.open.values().filter_map(|t| t.finding.netns));
        let now = Some((h, n, open.clone()));
        if self.ctl.gauges == now {
            return;
        }
        self.ctl.gauges = now;
        let faults: Vec<&'static str> = crate::faults::FaultId::ALL
            .iter()
            .map(|f| f.as_str())
            .collect();
        crate::health::gauges::publish_open(&faults, open);
        for (layer, score) in h.labelled() {
            metrics::gauge!("guardian_health_score", "layer" => layer).set(score as f64);
        }
        metrics::gauge!("guardian_active_mitigations").set(n as f64);
    }
}
