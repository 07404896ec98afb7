//! Prometheus metrics: the `metrics` facade's recorder (metrics-exporter-prometheus, without
//! its HTTP listener) and a minimal HTTP/1.1 responder for `GET /metrics`.
//!
//! The responder is written here because the exporter's `http-listener` feature pulls in hyper
//! and hyper-util for what is one read-only route; this is ~60 lines on the tokio we already
//! run, answers one request per connection and closes it, which is all a scraper needs.
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::config::Metrics;
use crate::preflight::PreflightError;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder (once per process) and sets `guardian_build_info`.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            crate::output::count::describe();
            metrics::describe_gauge!("guardian_build_info", "Always 1; the version as a label.");
            metrics::describe_gauge!(
                "guardian_health_score",
                "Health 0-100 per layer (2, 3, 4) and overall."
            );
            metrics::describe_gauge!(
                "guardian_active_mitigations",
                "Temporary mitigations in place now."
            );
            metrics::gauge!("guardian_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
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

/// Serves scrapes until `shutdown`.
pub async fn serve(
    listener: std::net::TcpListener,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = listener.accept() => r?,
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), respond(stream, &handle)).await;
        });
    }
}

async fn respond(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", handle.render()),
        ("GET" | "HEAD", _) => ("404 Not Found", "try /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", String::new()),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, req: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_the_text_format_on_metrics_only() {
        let handle = install();
        crate::output::count::count(&crate::output::Body::Loss(crate::output::Loss {
            source: crate::model::LossSource::Ringbuf,
            lost: 7,
            total: 7,
        }));
        let cfg = Metrics {
            listen: "127.0.0.1:0".into(),
            ..Metrics::default()
        };
        let l = bind(&cfg).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(l, handle, stop.clone()));
        let ok = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(
            ok.contains("# TYPE guardian_loss_events_total counter"),
            "{ok}"
        );
        assert!(ok.contains("guardian_loss_events_total 7"), "{ok}");
        assert!(ok.contains("guardian_events_total{type=\"loss\""), "{ok}");
        assert!(
            ok.contains(&format!(
                "guardian_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{ok}"
        );
        let body_len: usize = ok
            .split("Content-Length: ")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(ok.split_once("\r\n\r\n").unwrap().1.len(), body_len);
        assert!(get(addr, "GET / HTTP/1.1\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 404"));
        assert!(get(addr, "POST /metrics HTTP/1.1\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 405"));
        let head = get(addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(head.ends_with("\r\n\r\n"), "no body for HEAD: {head}");
        stop.cancel();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn remote_addresses_need_allow_remote() {
        let mut cfg = Metrics {
            listen: "0.0.0.0:9464".into(),
            ..Metrics::default()
        };
        assert!(bind(&cfg)
            .unwrap_err()
            .to_string()
            .contains("not a loopback address"));
        cfg.allow_remote = true;
        assert!(cfg.addr().is_ok());
    }
}
