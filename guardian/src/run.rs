//! `guardian run`: validate, load and attach, run the pipeline, drain, detach.
use std::{process::ExitCode, time::Duration};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::{
    cli::RunArgs,
    config::{Config, ConfigError},
    engine::{self, EngineConfig},
    model::Mode,
    netns,
    output::{self, Body, Emitter, Lifecycle, Phase},
    preflight,
    probes::{self, Probes},
    source::{self, counters::Collector, ringbuf},
};

/// Runs the daemon; the exit code follows sysexits.h for operator mistakes.
pub fn main(args: RunArgs) -> ExitCode {
    // Fatal errors are one JSON object under `--log-format json` (or `[log] format`, once the
    // files are read).
    let mut json = args.log_format == Some(crate::config::LogFormat::Json);
    let checked = preflight::check().and_then(|env| {
        let config = resolve(&args)?;
        json = config.log.format == crate::config::LogFormat::Json;
        validate(&config, &args)?;
        preflight::journal_readable(&config.daemon.state_dir)?;
        let socket = args.socket.as_ref().unwrap_or(&config.control.socket);
        preflight::dirs_safe(&config.daemon.state_dir, socket)?;
        // Before anything is bound or attached: a second daemon here stops now (exit 75).
        let netns_lock = preflight::netns_lock()?;
        Ok((env, config, netns_lock))
    });
    let (env, config, _netns_lock) = match checked {
        Ok(v) => v,
        Err(e) => {
            crate::logging::fatal(json, &e.to_string(), e.exit_code());
            return ExitCode::from(e.exit_code());
        }
    };
    crate::logging::init(json, &config.log.level);
    crate::config::perms::warn(&config.files, &config.daemon.state_dir);
    // Bound before anything is attached: a taken port is a config error (78), not a failure
    // after the probes are loaded.
    let metrics = if config.metrics.enabled {
        match crate::metrics_server::bind(&config.metrics) {
            Ok(l) => Some((l, crate::metrics_server::install())),
            Err(e) => {
                crate::logging::fatal(json, &e.to_string(), e.exit_code());
                return ExitCode::from(e.exit_code());
            }
        }
    } else {
        None
    };
    tracing::info!(files = %crate::logging::json(&config.files), mode = %crate::logging::json(&config.daemon.mode), "configuration loaded");
    // Still single-threaded: the reduced sets are inherited by every thread created later.
    match crate::privileges::reduce() {
        Ok(dropped) => {
            tracing::debug!(dropped = %crate::logging::json(&dropped), "capabilities dropped");
            tracing::info!(kept = %crate::logging::json(&crate::privileges::kept_names()), "capabilities reduced")
        }
        Err(e) => {
            crate::logging::fatal(json, &e.to_string(), 77);
            return ExitCode::from(77);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::logging::fatal(json, &format!("cannot start the async runtime: {e}"), 1);
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, env, config, metrics)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::logging::fatal(json, &crate::errors::sentence(&e), 1);
            ExitCode::FAILURE
        }
    }
}

/// The configuration `guardian run` runs with: the files, then the flags over them.
pub fn resolve(args: &RunArgs) -> Result<Config, ConfigError> {
    crate::config::resolve(
        args.config.as_deref(),
        args.detect_config.as_deref(),
        &args.overrides(),
    )
}

/// Everything about the host that can be checked before anything is attached. Interfaces
/// are named by where they came from: the flag, or the config key.
fn validate(config: &Config, args: &RunArgs) -> Result<(), preflight::PreflightError> {
    for (names, given, flag, key) in [
        (&config.interfaces.xdp, &args.xdp, "--xdp", "interfaces.xdp"),
        (
            &config.interfaces.keep_up,
            &args.keep_up,
            "--keep-up",
            "interfaces.keep_up",
        ),
    ] {
        let (from_flag, from_file): (Vec<String>, Vec<String>) =
            names.iter().cloned().partition(|n| given.contains(n));
        preflight::interfaces_exist(&from_file, key)?;
        preflight::interfaces_exist(&from_flag, flag)?;
    }
    Ok(())
}

fn lifecycle(e: &Emitter, phase: Phase, netns: u32, mode: Mode, detail: serde_json::Value) {
    e.emit(Body::Lifecycle(Lifecycle {
        phase,
        netns,
        version: env!("CARGO_PKG_VERSION"),
        mode,
        detail: Some(detail),
    }));
}

async fn run(
    args: RunArgs,
    env: preflight::Environment,
    config: Config,
    metrics: Option<(std::net::TcpListener, crate::metrics_server::Exporter)>,
) -> anyhow::Result<()> {
    let own_netns = netns::current().context("reading /proc/self/ns/net")?;
    let mode = config.daemon.mode;
    let host = match &config.daemon.host {
        Some(h) => h.clone(),
        None => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into()),
    };
    let (emitter, writer) =
        output::open_sinks(&config.sinks, host).context("opening the events file")?;
    let owners = std::sync::Arc::new(crate::owner::Owners::new(crate::owner::Roots::from_env()));
    let emitter = emitter.with_owners(owners.clone());
    crate::owner::metric::install(owners.clone());
    let writer = tokio::spawn(writer.run());
    // --- sinks, metrics, service manager (operator surface) ---
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    let surface = CancellationToken::new();
    let metrics_on = metrics.is_some();
    let dst_only =
        (config.metrics.destinations == crate::config::DstScope::Own).then_some(own_netns);
    if let Some((listener, exporter)) = metrics {
        let stop = surface.clone();
        let ep = crate::metrics_server::http::Endpoint {
            exporter,
            progress: &crate::health::progress::ENGINE,
            stall_limit: crate::health::progress::stall_limit(config.daemon.interval_ms),
        };
        tokio::spawn(async move {
            if let Err(e) = crate::metrics_server::serve(listener, ep, stop).await {
                tracing::error!(error = %e, "the metrics endpoint stopped");
            }
        });
    }
    let mut watchdog = crate::notify::watchdog_interval().map(|every| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    crate::notify::status("loading the eBPF programs");
    // --- end operator surface ---

    // ---- control socket (crate::control, docs/control.md) ----
    let tally = crate::engine::api::Tally::default();
    let _tally_task = tally.spawn(&emitter);
    let (control_handle, control_wiring) = engine::api::Wiring::channel(tally.clone());
    let control_stop = CancellationToken::new();
    // The flag, else the config file's `[control] socket` when it is not the default; the
    // default path is shared (another guardian there: run without a socket, with a warning).
    let socket = args.socket.clone().or_else(|| {
        (config.control.socket != std::path::Path::new(crate::control::DEFAULT_SOCKET))
            .then(|| config.control.socket.clone())
    });
    let _control_socket = crate::control::server::start(
        socket.as_deref(),
        crate::control::handlers::Ctx::new(
            control_handle.clone(),
            tally,
            &emitter,
            config.daemon.state_dir.clone(),
        ),
        control_stop.clone(),
    )?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    // ---- end control socket ----
    // Installed before loading: a stop requested while the probes load is honoured right after,
    // through the normal drain and detach path.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    lifecycle(
        &emitter,
        Phase::Started,
        own_netns,
        mode,
        serde_json::json!({"pid": std::process::id(), "xdp": config.interfaces.xdp, "keep_up": config.interfaces.keep_up}),
    );

    let opts = probes::LoadOptions {
        tracefs: env.tracefs,
        btf: env.btf,
        xdp_ifaces: config.interfaces.xdp.clone(),
        dns_ifaces: config.interfaces.dns_ifaces().to_vec(),
        cgroup: config.remedies.sockopt_failfast.cgroup.clone(),
        http: args.http,
        http_tls: !args.http_no_tls,
    };
    let mut probes = tokio::task::spawn_blocking(move || Probes::load(&opts))
        .await
        .context("probe loader")??;
    let ring = probes.take_ringbuf()?;
    let samplers = source::samplers(&mut probes)?;
    let maps = probes.remedy_maps()?;
    let mut collector =
        Collector::new(&mut probes, own_netns, config.daemon.interval_ms, samplers)?;
    collector.tell_owners(owners);
    let shutdown = CancellationToken::new();
    let (inputs, inputs_rx) = crate::source::feed::channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let ring_task = tokio::spawn(ringbuf::run(
        ring,
        emitter.clone(),
        inputs.clone(),
        config.sinks.observations_per_sec,
        shutdown.clone(),
    ));
    let engine_task = tokio::spawn(engine::run(
        EngineConfig {
            mode,
            keep_up: config.interfaces.keep_up.clone(),
            state_dir: config.daemon.state_dir.clone(),
            netns: own_netns,
            verify_timeout: Duration::from_millis(config.daemon.verify_timeout_ms),
            detect: config.detect,
            record: args.record.clone(),
            remedies: config.remedies,
            safety: config.safety,
        },
        emitter.clone(),
        inputs_rx,
        maps,
        ready_tx,
        shutdown.clone(),
        control_wiring,
    ));
    // `attached` means everything runs: probes attached, the engine subscribed to netlink,
    // its baseline taken and the journal settled.
    if ready_rx.await.is_ok() {
        lifecycle(
            &emitter,
            Phase::Attached,
            own_netns,
            mode,
            probes.attached_with_coverage(
                &crate::faults::FaultId::ALL
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>(),
            ),
        );
        crate::notify::ready(&format!("attached; {mode:?} mode").to_lowercase());
        // Loading is over: hand its freed BTF and object parses back (idle RSS 43 → 20 MiB).
        crate::memory::release_freed();
    }

    let mut ticker = tokio::time::interval(Duration::from_millis(config.daemon.interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut engine_task = Some(engine_task);
    // libssl copies mapped by processes started later (containers): looked for every 2 s,
    // reading only new processes' maps.
    let mut rescan_at = std::time::Instant::now();
    let reason = loop {
        tokio::select! {
            _ = int.recv() => break "SIGINT",
            _ = term.recv() => break "SIGTERM",
            _ = usr1.recv() => emitter.reopen_sinks(),
            _ = async { watchdog.as_mut().expect("watchdog set").tick().await }, if watchdog.is_some() => {
                crate::notify::watchdog();
            }
            _ = hup.recv() => {
                crate::notify::reloading();
                crate::control::reload::on_sighup(&control_handle, args.config.as_deref(), args.detect_config.as_deref()).await;
                crate::notify::ready("attached; reloaded on SIGHUP");
            }
            _ = ticker.tick() => {
                let tick = tokio::task::block_in_place(|| collector.tick(false));
                if metrics_on { crate::metrics_server::dst::TRACKER.observe(&tick.inputs, dst_only); }
                for body in tick.events {
                    emitter.emit(body);
                }
                for input in tick.inputs {
                    inputs.send(input);
                }
                if rescan_at.elapsed() >= Duration::from_secs(2) {
                    rescan_at = std::time::Instant::now();
                    for lib in tokio::task::block_in_place(|| probes.rescan_tls()) {
                        tracing::info!(lib = %lib.display(), "OpenSSL uprobes attached to a new libssl");
                    }
                }
            }
            res = async { engine_task.as_mut().expect("engine running").await }, if engine_task.is_some() => {
                engine_task = None;
                match res {
                    Ok(Ok(())) => {},
                    Ok(Err(e)) => { tracing::error!(error = %crate::errors::sentence(&e), "engine stopped"); break "engine error"; }
                    Err(e) => { tracing::error!(error = %e, "engine task failed"); break "engine error"; }
                }
            }
        }
    };

    lifecycle(
        &emitter,
        Phase::Stopping,
        own_netns,
        mode,
        serde_json::json!({ "reason": reason }),
    );
    crate::notify::stopping(reason);
    surface.cancel();
    shutdown.cancel();
    control_stop.cancel();
    if let Some(t) = engine_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let detached = tokio::task::block_in_place(|| probes.detach());
    let _ = tokio::time::timeout(Duration::from_secs(2), ring_task).await;
    for body in tokio::task::block_in_place(|| collector.tick(true)).events {
        emitter.emit(body);
    }
    lifecycle(
        &emitter,
        Phase::Detached,
        own_netns,
        mode,
        serde_json::json!({ "detached": detached }),
    );
    drop(emitter);
    writer
        .await
        .context("event writer")?
        .context("writing events")?;
    if reason == "engine error" {
        anyhow::bail!("the remediation engine stopped; see the log above");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        use clap::Parser;
        let dir = std::env::temp_dir().join(format!("guardian-run-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let main = dir.join("guardian.toml");
        std::fs::write(
            &main,
            "[daemon]\nmode = \"enforce\"\ninterval_ms = 100\n[interfaces]\nxdp = [\"eth0\"]\n[log]\nformat = \"json\"\n",
        )
        .unwrap();
        let cli = crate::cli::Cli::parse_from([
            "guardian",
            "run",
            "--config",
            main.to_str().unwrap(),
            "--interval-ms",
            "250",
            "--xdp",
            "eth1",
            "--xdp",
            "eth0",
            "--events",
            "/tmp/e.ndjson",
        ]);
        let crate::cli::Command::Run(args) = cli.command else {
            panic!()
        };
        let c = resolve(&args).unwrap();
        assert_eq!(
            c.daemon.mode,
            crate::model::Mode::Enforce,
            "not given: the file's"
        );
        assert_eq!(c.daemon.interval_ms, 250, "given: the flag's");
        assert_eq!(c.interfaces.xdp, ["eth0", "eth1"], "added, once each");
        assert_eq!(c.log.format, crate::config::LogFormat::Json);
        assert!(!c.sinks.stdout_on(), "--events replaces stdout");
        // A bad flag value that clap cannot check is named as coming from the command line.
        let cli = crate::cli::Cli::parse_from([
            "guardian",
            "run",
            "--config",
            main.to_str().unwrap(),
            "--keep-up",
            "a/b",
        ]);
        let crate::cli::Command::Run(args) = cli.command else {
            panic!()
        };
        let e = resolve(&args).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            e.starts_with("command line: interfaces.keep_up: \"a/b\" is not an interface name"),
            "{e}"
        );
    }
}
