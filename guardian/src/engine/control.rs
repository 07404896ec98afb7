//! The engine's command channel: requests from the control socket (and SIGHUP), each with a
//! oneshot reply, handled inside the engine's select loop so every answer sees one consistent
//! state and every change goes through the same journal, safety rules and verification.
mod heal;
mod reload;
mod status;

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::{Engine, IncidentKey};
use crate::control::protocol::ModeChange;
use crate::control::status::{subject_label, IncidentView, Status};
use crate::control::tally::Tally;
use crate::detect::{DetectConfig, Finding};
use crate::engine::SafetyConfig;
use crate::health::Health;
use crate::output::{rfc3339, Body, Lifecycle, Mode, Phase};
use crate::remedy::RemedyConfig;

/// Closed incidents kept for `history`.
const RECENT_INCIDENTS: usize = 256;
/// Requests waiting for the engine; more make the sender wait.
pub const QUEUE: usize = 32;

/// Thresholds and policies a SIGHUP reload replaces.
#[derive(Debug, Clone)]
pub struct Reload {
    pub detect: DetectConfig,
    pub remedies: RemedyConfig,
    pub safety: SafetyConfig,
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

/// One request to the engine.
#[derive(Debug)]
pub enum Request {
    Status(oneshot::Sender<Status>),
    /// Open and recently closed incidents, newest first.
    Incidents(oneshot::Sender<Vec<IncidentView>>),
    Mode(ModeChange, Reply<Value>),
    Heal {
        fault: String,
        subject: String,
        reply: Reply<Value>,
    },
    /// One change (`Some(id)`) or all open ones.
    Rollback(Option<String>, Reply<Value>),
    /// SIGHUP: the new configuration, or why it could not be loaded (the old one stays).
    Reload(Result<Box<Reload>, String>, Reply<Value>),
}

/// The sending side, held by the control server and run.rs.
pub type Handle = mpsc::Sender<Request>;

/// What the engine's run loop needs from the control side.
pub struct Wiring {
    pub rx: mpsc::Receiver<Request>,
    pub tally: Tally,
}

impl Wiring {
    pub fn channel(tally: Tally) -> (Handle, Wiring) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (tx, Wiring { rx, tally })
    }

    /// No control socket: requests never come.
    pub fn detached() -> Wiring {
        Wiring::channel(Tally::default()).1
    }
}

/// An open incident as the control side sees it.
#[derive(Debug, Clone)]
pub(super) struct Tracked {
    pub view: IncidentView,
    pub finding: Finding,
}

/// The engine's control-side state.
pub(super) struct State {
    pub tally: Tally,
    pub open: BTreeMap<IncidentKey, Tracked>,
    pub recent: VecDeque<IncidentView>,
    /// A manual `heal` is being carried out: pause and per-remedy observe modes do not apply.
    pub manual: bool,
    /// The state directory's lock, taken at runtime when an observing daemon is asked to
    /// change something (mode enforce, heal).
    pub lock: Option<crate::journal::Lock>,
    gauges: Option<(Health, usize)>,
}

impl State {
    pub fn new(tally: Tally) -> State {
        State {
            tally,
            open: BTreeMap::new(),
            recent: VecDeque::new(),
            manual: false,
            lock: None,
            gauges: None,
        }
    }
}

fn severity_name(f: &Finding) -> String {
    serde_json::to_value(f.severity)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Engine {
    /// Keeps the open incidents (and the recently closed) for status, heal and history.
    pub(super) fn ctl_track(&mut self, f: &Finding, incident: &str) {
        use crate::output::FaultState;
        let key: IncidentKey = (f.fault.as_str(), f.key.clone());
        let now = rfc3339(chrono::Utc::now());
        match f.state {
            FaultState::Cleared => {
                if let Some(mut t) = self.ctl.open.remove(&key) {
                    t.view.cleared = Some(now);
                    self.ctl.recent.push_front(t.view);
                    self.ctl.recent.truncate(RECENT_INCIDENTS);
                }
            }
            _ => {
                let view = IncidentView {
                    incident: incident.to_string(),
                    fault: f.fault.to_string(),
                    layer: f.layer,
                    severity: severity_name(f),
                    subject: subject_label(&f.subject, &f.key),
                    netns: f.netns.unwrap_or(self.cfg.netns),
                    since: now,
                    cleared: None,
                };
                let t = self.ctl.open.entry(key).or_insert(Tracked {
                    view,
                    finding: f.clone(),
                });
                t.finding = f.clone();
                t.view.severity = severity_name(f);
            }
        }
    }

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
            Request::Rollback(id, tx) => {
                let r = self.rollback_by_request(id).await;
                let _ = tx.send(r);
            }
            Request::Reload(r, tx) => {
                let out = match r {
                    Ok(new) => {
                        let changed = self.reload(*new);
                        self.lifecycle(Phase::Reloaded, json!({"ok": true, "changed": changed}));
                        Ok(changed)
                    }
                    Err(e) => {
                        tracing::warn!("reload refused, the running configuration stays: {e}");
                        self.lifecycle(Phase::Reloaded, json!({"ok": false, "error": e}));
                        Err(e)
                    }
                };
                let _ = tx.send(out);
            }
        }
    }

    fn paused(&self) -> bool {
        self.cfg.state_dir.join(super::act::PAUSE_FILE).exists()
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
                    .and_then(|()| std::fs::write(dir.join(super::act::PAUSE_FILE), b""))
                    .map_err(|e| {
                        format!("cannot create the pause file in {}: {e}", dir.display())
                    })?;
            }
            ModeChange::Resume => {
                let p = self.cfg.state_dir.join(super::act::PAUSE_FILE);
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
        let h = self.health(Instant::now());
        let n = self.active.len();
        if self.ctl.gauges == Some((h, n)) {
            return;
        }
        self.ctl.gauges = Some((h, n));
        for (layer, score) in h.labelled() {
            metrics::gauge!("guardian_health_score", "layer" => layer).set(score as f64);
        }
        metrics::gauge!("guardian_active_mitigations").set(n as f64);
    }

    pub(super) fn health(&self, now: Instant) -> Health {
        crate::health::score(
            self.ctl
                .open
                .values()
                .map(|t| (t.finding.layer, t.finding.severity)),
            self.ctl.tally.recent_losses(now),
        )
    }
}
