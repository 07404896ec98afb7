//! The engine's state: configuration, kernel handles, detectors, remedies, incidents, the
//! changes in flight; and the path of one input (detectors → findings → fault events →
//! remedies). What it does with faults and changes: `policy.rs` (which rung may act),
//! `act.rs` (carrying a change out), `active.rs` (changes in place), `recover.rs` (the journal
//! at start); its API: `control.rs` and `incidents.rs`.
use std::collections::HashMap;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::change::{Active, Tries};
use super::config::EngineConfig;
use super::incidents;
use super::ladder::Ladder;
use super::peers::{self, Live, Peers, Protected};
use super::safety::{Budgets, Host};
use crate::faults::incidents::{fault_body, Ids, IncidentKey, Incidents};
use crate::faults::{self, Baseline, Detector, Finding, Input};
use crate::journal::Journal;
use crate::model::FaultState;
use crate::netlink::{LinkState, RouteSpec};
use crate::output::Emitter;
use crate::record::Recorder;
use crate::remedy::{self, Kernel, Remedy, RemedyId};

/// How often the protected sources are rebuilt from the live system.
const PROTECTED_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) struct Engine {
    pub(super) cfg: EngineConfig,
    pub(super) emitter: Emitter,
    pub(super) kernel: Kernel,
    pub(super) detectors: Vec<Box<dyn Detector + Send + Sync>>,
    pub(super) remedies: Vec<Box<dyn Remedy>>,
    pub(super) incidents: Incidents,
    pub(super) recorder: Option<Recorder>,
    pub(super) links: HashMap<u32, LinkState>,
    pub(super) baseline: Vec<RouteSpec>,
    /// The routing tables whose routes are protected (main, the rules' and the VRFs').
    pub(super) tables: std::collections::BTreeSet<u32>,
    pub(super) journal: Option<Journal>,
    pub(super) shutdown: CancellationToken,
    pub(super) budgets: Budgets,
    /// Sysctls guardian holds, and those it let go of (someone else changed them).
    pub(super) backoff: super::backoff::Backoff,
    pub(super) ladder: Ladder,
    /// Changes waiting for their effect, and live temporary mitigations.
    pub(super) active: Vec<Active>,
    pub(super) tries: HashMap<IncidentKey, Tries>,
    /// How often a remedy acted on a fault's subject (hold-time doubling).
    pub(super) recurrences: HashMap<(RemedyId, String), u32>,
    /// Open incidents, recent ones, the lock taken at runtime: what the control socket needs.
    pub(super) ctl: incidents::State,
    /// Peers that completed handshakes, and the protected sources built from them and the
    /// live system (`peers.rs`), refreshed by [`Engine::refresh_protected`].
    pub(super) peers: Peers,
    pub(super) protected: (Protected, Option<Instant>),
    /// Resolves the senders of link and route changes to processes.
    pub(super) senders: crate::netlink::who::Resolver,
}

impl Engine {
    pub(super) fn new(
        cfg: EngineConfig,
        emitter: Emitter,
        kernel: Kernel,
        base: &Baseline,
        journal: Option<Journal>,
        recorder: Option<Recorder>,
        shutdown: CancellationToken,
    ) -> Self {
        let detectors = faults::all(&cfg.detect, base);
        let remedies = remedy::all(&cfg.remedies, &cfg.keep_up);
        Engine {
            cfg,
            emitter,
            kernel,
            detectors,
            remedies,
            incidents: Incidents::new(Ids::Clock),
            recorder,
            links: base.links.iter().map(|l| (l.ifindex, l.clone())).collect(),
            baseline: base.routes.clone(),
            tables: std::collections::BTreeSet::from([crate::netlink::TABLE_MAIN]),
            journal,
            shutdown,
            budgets: Budgets::default(),
            backoff: Default::default(),
            ladder: Ladder::in_memory(),
            active: Vec::new(),
            tries: HashMap::new(),
            recurrences: HashMap::new(),
            ctl: incidents::State::new(Default::default()),
            peers: Peers::default(),
            protected: (Protected::default(), None),
            senders: Default::default(),
        }
    }

    /// What the safety rules need to know about the host.
    pub(super) fn host(&self) -> Host {
        let default_route_interfaces = self
            .baseline
            .iter()
            .filter(|r| r.is_default())
            .filter_map(|r| r.oif.and_then(|i| self.links.get(&i)))
            .map(|l| l.name.clone())
            .collect();
        Host {
            default_route_interfaces,
            managed_interfaces: self.cfg.keep_up.len().max(1),
            protected_sources: self.protected.0.clone(),
        }
    }

    /// Rebuilds the protected sources from the live system at most every
    /// [`PROTECTED_REFRESH`], and before the first plan.
    fn refresh_protected(&mut self, now: Instant) {
        if self
            .protected
            .1
            .is_some_and(|t| now.saturating_duration_since(t) < PROTECTED_REFRESH)
        {
            return;
        }
        let live = Live {
            gateways: peers::live_gateways(),
            resolvers: std::fs::read_to_string("/etc/resolv.conf")
                .map(|t| peers::resolvers(&t))
                .unwrap_or_default(),
            local: peers::live_local(),
            handshaking: self.peers.recent(now),
        };
        self.protected = (
            Protected::build(&self.cfg.safety.protected_sources, &live),
            Some(now),
        );
    }

    /// Runs one input through every detector (recording it first) and acts on the findings.
    pub(super) async fn observe(&mut self, input: Input) {
        let now = Instant::now();
        if let Some(r) = &mut self.recorder {
            if let Err(e) = r.write(now, &input) {
                tracing::warn!(error = %e, "recording stopped");
                self.recorder = None;
            }
        }
        if let Input::Mib(m) = &input {
            self.on_mib(m);
        }
        if let Input::Flows(f) = &input {
            if self.peers.observe(&f.established_by_source, now) {
                self.protected.1 = None;
            }
        }
        self.refresh_protected(now);
        for f in faults::observe_all(&mut self.detectors, &input, now) {
            self.on_finding(f, now).await;
        }
    }

    async fn on_finding(&mut self, f: Finding, now: Instant) {
        let Some(id) = self.incidents.track(&f, now) else {
            tracing::debug!(fault = f.fault.as_str(), key = %f.key, "update or clear of an unknown fault");
            return;
        };
        tracing::info!(fault = f.fault.as_str(), key = %f.key, incident = %id, state = %crate::logging::json(&f.state), "fault");
        self.emitter.emit(fault_body(&f, &id, self.cfg.netns));
        self.ctl.track(&f, &id, self.cfg.netns);
        let key: IncidentKey = (f.fault, f.key.clone());
        if f.state == FaultState::Cleared {
            self.tries.remove(&key);
            self.on_cleared(f.fault, &f.key).await;
        } else {
            self.try_remedy(&f, &key).await;
        }
    }
}
