//! The engine: netlink events → detectors → findings → fault events → remedies, with the
//! safety rules that belong to no single remedy: mode, one attempt per incident,
//! preconditions, write-ahead journal, verification deadline and rollback.
//!
//! Order at start: subscribe to the multicast groups first, then dump links and routes (the
//! baseline), so no change between the snapshot and the subscription is missed. Every event
//! is handled as soon as it arrives; a remedy is applied and verified inline (re-querying the
//! kernel every few milliseconds) so a downed link is back up and verified within
//! milliseconds, not at the next tick.
mod act;
mod active;
pub mod control;
pub mod ladder;
mod net;
pub mod recover;
pub mod safety;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

pub use crate::detect::incidents::IncidentKey;
use crate::detect::incidents::{fault_body, Ids, Incidents};
use crate::detect::record::Recorder;
use crate::detect::{self, Baseline, DetectConfig, Detector, Finding, Input};
use crate::journal::Journal;
use crate::netlink::{self, LinkState, Netlink, Notice, RouteSpec};
use crate::output::{Emitter, FaultState, Mode};
use crate::remedy::{self, Kernel, Maps, Remedy, RemedyConfig};
use active::{Active, Tries};
use ladder::Ladder;
pub use safety::SafetyConfig;
use safety::{Budgets, Host};

/// How long a change has to verify before it is rolled back.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(2);
/// One step of the engine's loop taking this long is logged (control requests wait for it).
const SLOW_STEP: Duration = Duration::from_millis(250);
/// How often, at most, the engine publishes its status for `status` to answer with while the
/// engine is busy (docs/control.md).
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// How often verification re-queries the kernel.
const VERIFY_POLL: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub mode: Mode,
    /// Interfaces to keep up (`--keep-up IF`); also the interfaces `link_down` watches.
    pub keep_up: Vec<String>,
    /// Where the journal lives (created 0700 in enforce mode).
    pub state_dir: PathBuf,
    /// The daemon's network namespace inode, reported in events.
    pub netns: u32,
    pub verify_timeout: Duration,
    /// Thresholds of every detector.
    pub detect: DetectConfig,
    /// Write every detector input to this file (`--record`), for `guardian replay`.
    pub record: Option<PathBuf>,
    /// Per-remedy modes and parameters.
    pub remedies: RemedyConfig,
    /// Budgets, blast radius, protected subjects, effect deadline, confidence.
    pub safety: SafetyConfig,
}

impl EngineConfig {
    pub fn new(mode: Mode, keep_up: Vec<String>, state_dir: PathBuf, netns: u32) -> Self {
        EngineConfig {
            mode,
            keep_up,
            state_dir,
            netns,
            verify_timeout: DEFAULT_VERIFY_TIMEOUT,
            detect: DetectConfig::default(),
            record: None,
            remedies: RemedyConfig::default(),
            safety: SafetyConfig::default(),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig::new(
            Mode::Observe,
            Vec::new(),
            PathBuf::from("/var/lib/guardian"),
            0,
        )
    }
}

/// Configuration the engine refuses at start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("interface {0} named by --keep-up does not exist in this network namespace")]
    MissingKeepUp(String),
}

/// Routes worth protecting: main-table unicast routes someone configured. Routes the kernel
/// derives from addresses, learns from router advertisements or from redirects come and go
/// with their source and are not restored.
pub fn protected(r: &RouteSpec) -> bool {
    r.is_main_unicast()
        && !matches!(
            r.protocol,
            netlink::RTPROT_KERNEL | netlink::RTPROT_RA | netlink::RTPROT_REDIRECT
        )
}

/// Runs the engine in the current network namespace until `shutdown` is cancelled.
pub async fn run(
    cfg: EngineConfig,
    emitter: Emitter,
    mut inputs: detect::feed::FeedRx,
    maps: Maps,
    ready: tokio::sync::oneshot::Sender<()>,
    shutdown: CancellationToken,
    control: control::Wiring,
) -> anyhow::Result<()> {
    let control::Wiring {
        rx: mut requests,
        tally,
    } = control;
    let mut sub = netlink::subscribe().context("subscribing to link and route changes")?;
    let nl = Netlink::connect().context("opening the netlink request socket")?;
    let links = nl.dump_links().await.context("dumping links")?;
    let routes = nl.dump_routes().await.context("dumping routes")?;
    for name in &cfg.keep_up {
        if !links.iter().any(|l| &l.name == name) {
            return Err(EngineError::MissingKeepUp(name.clone()).into());
        }
    }
    let baseline: Vec<RouteSpec> = routes.into_iter().filter(protected).collect();
    // The journal is kept in enforce mode, and read at start in any mode when it exists, so
    // that a change a crashed enforcing daemon left half-done is settled by the next start.
    let journal_exists = cfg.state_dir.join(crate::journal::FILE_NAME).exists();
    let lock = match cfg.mode {
        Mode::Enforce => Some(crate::journal::lock(&cfg.state_dir)?),
        Mode::Observe if journal_exists => Some(crate::journal::lock(&cfg.state_dir)?),
        Mode::Observe => None,
    };
    let journal = match lock {
        Some(_) => {
            crate::journal::compact(&cfg.state_dir, crate::journal::ROTATE_BYTES)?;
            Some(Journal::open(&cfg.state_dir)?)
        }
        None => None,
    };
    let ladder = match cfg.mode {
        Mode::Enforce => Ladder::load(&cfg.state_dir),
        Mode::Observe => Ladder::in_memory(),
    };
    tracing::info!(
        mode = ?cfg.mode,
        keep_up = ?cfg.keep_up,
        links = links.len(),
        protected_routes = baseline.len(),
        "engine started"
    );
    let base = Baseline {
        keep_up: cfg.keep_up.clone(),
        links: links.clone(),
        routes: baseline.clone(),
    };
    let recorder = match &cfg.record {
        Some(path) => Some(
            Recorder::create(path, emitter.host(), cfg.netns, &cfg.detect, &base)
                .with_context(|| format!("creating the record file {}", path.display()))?,
        ),
        None => None,
    };
    let kernel = Kernel::new(nl, cfg.netns, maps);
    let mut engine = Engine::new(
        cfg,
        emitter,
        kernel,
        &base,
        journal,
        recorder,
        shutdown.clone(),
    );
    engine.ladder = ladder;
    engine.ctl = control::State::new(tally);
    engine.ctl.lock = lock;
    engine.recover().await;
    let _ = ready.send(());
    let mut published: Option<Instant> = None;
    loop {
        let next = engine.next_deadline();
        let step = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = async { tokio::time::sleep_until(next.expect("guarded").into()).await }, if next.is_some() => Step::Settle,
            n = sub.next() => Step::Net(n.ok_or_else(|| anyhow::anyhow!("the netlink subscription closed"))?),
            // Before the inputs: an operator's request must not wait behind a storm of them.
            Some(req) = requests.recv() => Step::Control(req),
            Some(input) = inputs.recv() => Step::Input(input),
        };
        let started = Instant::now();
        let what = match step {
            Step::Settle => {
                engine.settle(Instant::now()).await;
                "settling changes"
            }
            Step::Net(Notice::Event(ev)) => {
                engine.process(vec![ev]).await;
                "a netlink event"
            }
            Step::Net(Notice::Overrun) => {
                tracing::warn!("netlink notifications were lost; re-reading links and routes");
                engine.resync().await;
                "a netlink resync"
            }
            Step::Control(req) => {
                engine.on_control(req).await;
                "a control request"
            }
            Step::Input(input) => {
                engine.observe(input).await;
                "an input"
            }
        };
        engine.publish_gauges();
        if published.is_none_or(|t| t.elapsed() >= PUBLISH_EVERY) {
            let now = Instant::now();
            engine.ctl.tally.publish(now, engine.status(now));
            published = Some(now);
        }
        // Everything else (control requests included) waits while the engine works: say so.
        let took = started.elapsed();
        if took >= SLOW_STEP {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                "the engine spent long on {what}"
            );
        }
    }
    tracing::debug!("engine stopping");
    engine.revert_temporary().await;
    drop(engine);
    Ok(())
}

/// What woke the engine's loop.
enum Step {
    Settle,
    Net(Notice),
    Control(control::Request),
    Input(Input),
}

struct Engine {
    cfg: EngineConfig,
    emitter: Emitter,
    kernel: Kernel,
    detectors: Vec<Box<dyn Detector + Send + Sync>>,
    remedies: Vec<Box<dyn Remedy>>,
    incidents: Incidents,
    recorder: Option<Recorder>,
    links: HashMap<u32, LinkState>,
    baseline: Vec<RouteSpec>,
    journal: Option<Journal>,
    shutdown: CancellationToken,
    budgets: Budgets,
    ladder: Ladder,
    /// Changes waiting for their effect, and live temporary mitigations.
    active: Vec<Active>,
    tries: HashMap<IncidentKey, Tries>,
    /// How often a remedy acted on a fault's subject (hold-time doubling).
    recurrences: HashMap<(&'static str, String), u32>,
    /// Open incidents, recent ones, the lock taken at runtime: what the control socket needs.
    ctl: control::State,
}

impl Engine {
    fn new(
        cfg: EngineConfig,
        emitter: Emitter,
        kernel: Kernel,
        base: &Baseline,
        journal: Option<Journal>,
        recorder: Option<Recorder>,
        shutdown: CancellationToken,
    ) -> Self {
        let detectors = detect::all(&cfg.detect, base);
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
            journal,
            shutdown,
            budgets: Budgets::default(),
            ladder: Ladder::in_memory(),
            active: Vec::new(),
            tries: HashMap::new(),
            recurrences: HashMap::new(),
            ctl: control::State::new(Default::default()),
        }
    }

    /// What the safety rules need to know about the host.
    fn host(&self) -> Host {
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
        }
    }

    /// Runs one input through every detector (recording it first) and acts on the findings.
    async fn observe(&mut self, input: Input) {
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
        for f in detect::observe_all(&mut self.detectors, &input, now) {
            self.on_finding(f, now).await;
        }
    }

    async fn on_finding(&mut self, f: Finding, now: Instant) {
        let Some(id) = self.incidents.track(&f, now) else {
            tracing::debug!(fault = f.fault.as_str(), key = %f.key, "update or clear of an unknown fault");
            return;
        };
        tracing::info!(fault = f.fault.as_str(), key = %f.key, incident = %id, state = ?f.state, "fault");
        self.emitter.emit(fault_body(&f, &id, self.cfg.netns));
        self.ctl_track(&f, &id);
        let key: IncidentKey = (f.fault.as_str(), f.key.clone());
        if f.state == FaultState::Cleared {
            self.tries.remove(&key);
            self.on_cleared(f.fault.as_str(), &f.key).await;
        } else {
            self.try_remedy(&f, &key).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keep_up_is_one_clear_sentence() {
        let e: anyhow::Error = EngineError::MissingKeepUp("eth9".into()).into();
        assert_eq!(
            e.to_string(),
            "interface eth9 named by --keep-up does not exist in this network namespace"
        );
    }

    #[test]
    fn kernel_ra_and_other_table_routes_are_not_protected() {
        let r = RouteSpec::new("10.9.0.0".parse().unwrap(), 24).dev(3);
        assert!(protected(&r));
        let mut k = r.clone();
        k.protocol = netlink::RTPROT_KERNEL;
        assert!(!protected(&k));
        let mut ra = r.clone();
        ra.protocol = netlink::RTPROT_RA;
        assert!(!protected(&ra));
        let mut local = r.clone();
        local.table = 255;
        assert!(!protected(&local));
    }

    #[test]
    fn run_is_send() {
        fn is_send<T: Send>(_: &T) {}
        let fut = async {
            let (emitter, _writer) = crate::output::open(None, "h".into()).await.unwrap();
            let (_tx, rx) = detect::feed::channel();
            run(
                EngineConfig::default(),
                emitter,
                rx,
                Maps::default(),
                tokio::sync::oneshot::channel().0,
                CancellationToken::new(),
                control::Wiring::detached(),
            )
            .await
        };
        is_send(&fut);
    }

    #[test]
    fn default_verify_timeout_is_two_seconds() {
        assert_eq!(
            EngineConfig::default().verify_timeout,
            Duration::from_secs(2)
        );
    }
}
