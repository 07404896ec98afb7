//! The endpoint end to end on loopback: routes, zero series, the loss `source` label, the
//! connection cap and `/healthz` following the engine's progress.
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::http::{self, Endpoint};
use super::*;
use crate::health::progress::Progress;

async fn get(addr: SocketAddr, req: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

async fn start(
    progress: &'static Progress,
) -> (
    SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let cfg = Metrics {
        listen: "127.0.0.1:0".into(),
        ..Metrics::default()
    };
    let l = bind(&cfg).unwrap();
    let addr = l.local_addr().unwrap();
    let stop = CancellationToken::new();
    let ep = Endpoint {
        exporter: install(),
        progress,
        stall_limit: Duration::from_secs(15),
    };
    let server = tokio::spawn(serve(l, ep, stop.clone()));
    (addr, stop, server)
}

#[tokio::test]
async fn serves_the_text_format_with_every_counter_at_zero() {
    static P: Progress = Progress::new();
    let (addr, stop, server) = start(&P).await;
    let ok = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("Content-Type: text/plain; version=0.0.4"),
        "{ok}"
    );
    for line in [
        "# TYPE guardian_loss_events_total counter",
        "guardian_rollbacks_total 0",
        "guardian_loss_events_total{source=\"throttle\"} ",
        "guardian_events_total{type=\"fault\",fault=\"link_down\",severity=\"critical\"} ",
        "guardian_open_incidents{fault=\"route_lost\",severity=\"error\"} 0",
        "guardian_last_reload_success 1",
        "guardian_metrics_connections_refused_total{reason=\"cap\"} ",
        "# TYPE guardian_dst_connect_failures_total counter",
        "# TYPE process_open_fds gauge",
        "process_resident_memory_bytes ",
    ] {
        assert!(ok.contains(line), "no {line:?} in {ok}");
    }
    assert!(ok.contains(&format!(
        "guardian_build_info{{version=\"{}\",arch=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )));
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

#[tokio::test]
async fn losses_carry_their_source() {
    let exporter = install();
    for (source, lost) in [
        (crate::model::LossSource::Throttle, 5),
        (crate::model::LossSource::Recursion("tp_x".into()), 2),
    ] {
        count::count(&crate::output::Body::Loss(crate::output::Loss {
            source,
            lost,
            total: lost,
        }));
    }
    let text = exporter.render();
    let value = |source: &str| -> u64 {
        let prefix = format!("guardian_loss_events_total{{source=\"{source}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
            .parse()
            .unwrap()
    };
    // Other tests of this process may count too (one global recorder): at least ours.
    assert!(value("throttle") >= 5);
    assert!(value("recursion") >= 2);
    assert!(!text.contains("source=\"recursion:"), "{text}");
}

#[tokio::test]
async fn healthz_follows_the_engine() {
    static P: Progress = Progress::new();
    let (addr, stop, server) = start(&P).await;
    let r = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
    assert!(
        r.starts_with("HTTP/1.1 200 OK") && r.contains("starting"),
        "{r}"
    );
    P.beat();
    let r = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
    assert!(
        r.starts_with("HTTP/1.1 200 OK") && r.contains("ok: the engine stepped"),
        "{r}"
    );
    // The last step was 20 s ago (the clock is the process' own; start it early enough).
    let now = crate::health::progress::now_ms();
    P.beat_at(now.saturating_sub(20_000).max(1));
    let r = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
    if now > 20_000 {
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.contains("stalled"), "{r}");
    }
    stop.cancel();
    server.await.unwrap().unwrap();
}

#[test]
fn healthz_answers() {
    use crate::health::progress::Liveness;
    assert_eq!(http::healthz(Liveness::Starting).0, "200 OK");
    assert_eq!(
        http::healthz(Liveness::Live(Duration::from_secs(1))).0,
        "200 OK"
    );
    let (status, body) = http::healthz(Liveness::Stalled(Duration::from_secs(31)));
    assert_eq!(status, "503 Service Unavailable");
    assert_eq!(body, "stalled: the engine has not stepped for 31.0 s\n");
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_and_the_endpoint_recovers() {
    static P: Progress = Progress::new();
    let (addr, stop, server) = start(&P).await;
    // Idle connections hold every slot; the next ones are closed unanswered at once.
    let mut idle = Vec::new();
    for _ in 0..http::MAX_CONNECTIONS {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = TcpStream::connect(addr).await.unwrap();
    let _ = over.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await;
    let mut out = String::new();
    let read = tokio::time::timeout(Duration::from_secs(3), over.read_to_string(&mut out)).await;
    assert!(read.is_ok(), "an over-cap connection is closed at once");
    assert!(out.is_empty(), "{out}");
    drop(idle);
    let mut answered = false;
    for _ in 0..50 {
        if get(addr, "GET /healthz HTTP/1.1\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 200")
        {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answered,
        "the endpoint answers once the idle connections are gone"
    );
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

#[test]
fn every_loss_source_has_its_label() {
    use crate::model::LossSource::*;
    for s in [
        Ringbuf,
        MapFull,
        Recursion("p".into()),
        Detect,
        Throttle,
        Queue,
    ] {
        let label = s.to_string();
        let label = label.split(':').next().unwrap();
        assert!(LOSS_SOURCES.contains(&label), "{label}");
    }
}
