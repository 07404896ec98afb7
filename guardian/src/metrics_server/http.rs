//! The metrics endpoint: `GET /metrics` (the text exposition) and `GET /healthz` (the
//! engine's progress, for liveness probes), one request per connection.
//!
//! Written here rather than with the exporter's `http-listener` feature, which pulls in hyper
//! and hyper-util for two read-only routes. It stays up under abuse: at most
//! [`MAX_CONNECTIONS`] are served at once (more are closed at once, so they cannot pile up
//! descriptors), each gets [`CONNECTION_TIMEOUT`] in all, and an `accept()` error (EMFILE,
//! ENFILE, ENOBUFS...) backs off and keeps accepting instead of ending the loop.
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Exporter;
use crate::health::progress::{Liveness, Progress};

/// Connections served at once; a scraper and a probe need one each.
pub const MAX_CONNECTIONS: usize = 64;
/// Reading the request and writing the answer, together.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Back-off after a failed `accept()`: doubles from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(20), Duration::from_secs(1));

pub const REFUSED: &str = "guardian_metrics_connections_refused_total";

/// What the endpoint serves.
#[derive(Clone)]
pub struct Endpoint {
    pub exporter: Exporter,
    pub progress: &'static Progress,
    pub stall_limit: Duration,
}

pub fn describe() {
    metrics::describe_counter!(
        REFUSED,
        "Connections to the metrics endpoint closed unanswered: over the connection cap (cap) or lost to a failed accept (accept_error)."
    );
    for reason in ["cap", "accept_error"] {
        metrics::counter!(REFUSED, "reason" => reason).absolute(0);
    }
}

/// Whether an `accept()` error means the listener itself is broken (the only reason to stop).
fn fatal(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EOPNOTSUPP)
    )
}

/// Serves until `shutdown`.
pub async fn serve(
    listener: std::net::TcpListener,
    ep: Endpoint,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = BACKOFF.0;
    let mut warned = false;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if fatal(&e) => return Err(e),
            Err(e) => {
                metrics::counter!(REFUSED, "reason" => "accept_error").increment(1);
                if !warned {
                    tracing::warn!(error = %e, "the metrics endpoint cannot accept a connection; backing off and retrying");
                    warned = true;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF.1);
                continue;
            }
        };
        if warned {
            tracing::info!("the metrics endpoint accepts connections again");
            warned = false;
        }
        backoff = BACKOFF.0;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics::counter!(REFUSED, "reason" => "cap").increment(1);
            drop(stream);
            continue;
        };
        let ep = ep.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, respond(stream, &ep)).await;
            drop(permit);
        });
    }
}

/// `(status line, body)` for a request line's method and path.
pub fn route(method: &str, path: &str, ep: &Endpoint) -> (&'static str, String) {
    match (method, path.split('?').next().unwrap_or("")) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", ep.exporter.render()),
        ("GET" | "HEAD", "/healthz") => healthz(ep.progress.liveness(ep.stall_limit)),
        ("GET" | "HEAD", _) => ("404 Not Found", "try /metrics or /healthz\n".to_string()),
        _ => ("405 Method Not Allowed", String::new()),
    }
}

pub fn healthz(l: Liveness) -> (&'static str, String) {
    match l {
        Liveness::Starting => ("200 OK", "starting: the engine has not begun\n".into()),
        Liveness::Live(age) => (
            "200 OK",
            format!("ok: the engine stepped {:.1} s ago\n", age.as_secs_f64()),
        ),
        Liveness::Stalled(age) => (
            "503 Service Unavailable",
            format!(
                "stalled: the engine has not stepped for {:.1} s\n",
                age.as_secs_f64()
            ),
        ),
    }
}

async fn respond(mut stream: TcpStream, ep: &Endpoint) -> std::io::Result<()> {
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
    let (status, body) = route(method, path, ep);
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
