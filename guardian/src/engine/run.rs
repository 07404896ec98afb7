//! The engine's loop: start (subscribe, baseline, journal, recovery), then one step at a time
//! (a netlink event, a detector input, a control request, a change coming due) until shutdown.
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::api;
use super::config::{EngineConfig, EngineError};
use super::core::Engine;
use super::incidents;
use super::ladder::Ladder;
use crate::faults::{Baseline, Input};
use crate::journal::Journal;
use crate::model::Mode;
use crate::netlink::{self, Netlink, Notice, RouteSpec};
use crate::output::Emitter;
use crate::probes::Maps;
use crate::record::Recorder;
use crate::remedy::routing::protected;
use crate::remedy::Kernel;

/// One step of the engine's loop taking this long is logged (control requests wait for it).
const SLOW_STEP: Duration = Duration::from_millis(250);
/// How often, at most, the engine publishes its status for `status` to answer with while the
/// engine is busy (docs/control.md).
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// Runs the engine in the current network namespace until `shutdown` is cancelled.
pub async fn run(
    cfg: EngineConfig,
    emitter: Emitter,
    mut inputs: crate::source::feed::FeedRx,
    maps: Maps,
    ready: tokio::sync::oneshot::Sender<()>,
    shutdown: CancellationToken,
    control: api::Wiring,
) -> anyhow::Result<()> {
    let api::Wiring {
        rx: mut requests,
        tally,
    } = control;
    let mut sub = netlink::subscribe().context("subscribing to link and route changes")?;
    let nl = Netlink::connect().context("opening the netlink request socket")?;
    let links = nl.dump_links().await.context("dumping links")?;
    let tables = nl
        .watched_tables()
        .await
        .context("reading the routing rules")?;
    let routes = nl.dump_tables(&tables).await.context("dumping routes")?;
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
        mode = %crate::logging::json(&cfg.mode),
        keep_up = %crate::logging::json(&cfg.keep_up),
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
    engine.tables = tables;
    engine.ctl = incidents::State::new(tally);
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
            Step::Net(Notice::Rules) => {
                engine.rules_changed().await;
                "a rule change"
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
        crate::health::progress::ENGINE.beat();
        if published.is_none_or(|t| t.elapsed() >= PUBLISH_EVERY) {
            let now = Instant::now();
            engine.ctl.tally.publish(now, engine.status(now));
            crate::health::gauges::publish_mode(engine.mode_label());
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
    Control(api::Request),
    Input(Input),
}
