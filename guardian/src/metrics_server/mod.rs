//! Prometheus metrics: the `metrics` facade's recorder (metrics-exporter-prometheus, without
//! its HTTP listener), every counter and gauge registered at 0 from the start (an `increase()`
//! alert sees the first event), the process collector, the per-destination counters
//! ([`dst`]), and the HTTP endpoint ([`http`]: `/metrics`, `/healthz`).
pub mod dst;
pub mod http;

use std::net::SocketAddr;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::Metrics;
use crate::faults::FaultId;
use crate::health::gauges;
use crate::output::count;
use crate::preflight::PreflightError;

pub use http::serve;

/// The recorder's handle plus what the exporter cannot render itself.
#[derive(Clone)]
pub struct Exporter {
    pub prometheus: PrometheusHandle,
    process: std::sync::Arc<metrics_process::Collector>,
}

impl Exporter {
    /// The whole text exposition: process metrics refreshed now, the recorder's families,
    /// then the per-destination families.
    pub fn render(&self) -> String {
        self.process.collect();
        let mut out = self.prometheus.render();
        dst::TRACKER.render(&mut out);
        crate::owner::metric::render(&mut out);
        out
    }
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Every loss source, as the `source` label of `guardian_loss_events_total` names it:
/// kernel-side losses (`ringbuf`, `map_full`, `h2_desync`, `recursion`) and guardian's own
/// shedding (`detect`, `throttle`, `queue`).
pub const LOSS_SOURCES: [&str; 7] = [
    "ringbuf",
    "map_full",
    "h2_desync",
    "recursion",
    "detect",
    "throttle",
    "queue",
];

/// Event types that carry no fault (their `fault` and `severity` labels are empty).
const PLAIN_EVENTS: [&str; 4] = ["lifecycle", "counters", "observation", "loss"];

pub fn fault_names() -> Vec<&'static str> {
    FaultId::ALL.iter().map(|f| f.as_str()).collect()
}

/// Installs the global recorder (once per process), describes every family and registers
/// its series at 0.
pub fn install() -> Exporter {
    EXPORTER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(gauges::HEAL_DURATION.into()),
                    &gauges::HEAL_BUCKETS,
                )
                .expect("static non-empty buckets")
                .build_recorder();
            let prometheus = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            let process = metrics_process::Collector::default();
            process.describe();
            describe_and_zero();
            Exporter {
                prometheus,
                process: std::sync::Arc::new(process),
            }
        })
        .clone()
}

fn describe_and_zero() {
    count::describe();
    metrics::describe_counter!(
        count::LOSS,
        "Events lost, by source: the kernel's (ringbuf, map_full, h2_desync, recursion) or guardian's own shedding (detect, throttle, queue)."
    );
    http::describe();
    let faults = fault_names();
    gauges::describe(&faults);
    metrics::describe_gauge!("guardian_build_info", "Always 1; the version as a label.");
    metrics::describe_gauge!(
        "guardian_health_score",
        "Health 0-100 per layer (2, 3, 4) and overall."
    );
    metrics::describe_gauge!(
        "guardian_active_mitigations",
        "Temporary mitigations in place now."
    );
    metrics::gauge!(
        "guardian_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "arch" => std::env::consts::ARCH,
    )
    .set(1.0);
    metrics::counter!(count::ROLLBACKS).absolute(0);
    for source in LOSS_SOURCES {
        metrics::counter!(count::LOSS, "source" => source).absolute(0);
    }
    for kind in PLAIN_EVENTS {
        metrics::counter!(count::EVENTS, "type" => kind, "fault" => "", "severity" => "")
            .absolute(0);
    }
    for &fault in &faults {
        for (_, severity) in gauges::SEVERITIES {
            metrics::counter!(count::EVENTS, "type" => "fault", "fault" => fault, "severity" => severity)
                .absolute(0);
        }
    }
    for (layer, score) in crate::health::Health::default().labelled() {
        metrics::gauge!("guardian_health_score", "layer" => layer).set(score as f64);
    }
    metrics::gauge!("guardian_active_mitigations").set(0.0);
}

/// Binds `[metrics] listen` (before anything is attached, so a taken port is a config error).
pub fn bind(cfg: &Metrics) -> Result<std::net::TcpListener, PreflightError> {
    let err = |reason: String| PreflightError::Config {
        path: "metrics.listen".into(),
        reason,
    };
    let addr: SocketAddr = cfg.addr().map_err(err)?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "metrics are exposed beyond this host without authentication (metrics.allow_remote = true)");
    }
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| err(format!("cannot listen on {addr}: {e}")))?;
    l.set_nonblocking(true)
        .map_err(|e| err(format!("cannot listen on {addr}: {e}")))?;
    Ok(l)
}

#[cfg(test)]
mod tests;
