//! The fleet view end to end (`cargo xtask fleet`; ignored by the default run, about a
//! minute): three guardian daemons, each in its own namespace acting as a node
//! (`[metrics] destinations = "own"`: one node's traffic each, as separate hosts would have),
//! scraped by a real Prometheus (Debian's) in a fourth namespace that also holds the
//! destination 10.99.0.7. Nodes 1 and 2 fail to connect to it, node 1 alone also to
//! 10.99.0.8, node 3 is quiet. The shipped rules (docs/deploy/prometheus-rules.yaml) must raise
//! ONE `GuardianDestinationDegraded{dst="10.99.0.7"}`, with no node label, and none for
//! 10.99.0.8. Prometheus runs with its own data directory under a temp dir and is killed with
//! its namespace.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use guardian_tests::*;
use serde_json::Value;

const DST: &str = "10.99.0.7";
const LONE: &str = "10.99.0.8";

/// `GET path` from inside `ns`; the body (HTTP/1.0, so never chunked).
fn http_get(ns: &Netns, addr: &'static str, path: String) -> Option<String> {
    run_in_netns(ns, move || {
        let mut s =
            TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).ok()?;
        let (head, body) = resp.split_once("\r\n\r\n")?;
        // Prometheus answers in the request's version, guardian always in HTTP/1.1.
        let status = head.split_whitespace().nth(1)?;
        (status == "200").then(|| body.to_owned())
    })
}

/// Refused connects from `ns` to each of `dsts` port 81, ten per second, until `stop` (at
/// most 180 s).
fn failing_connects(
    ns: &Netns,
    dsts: &[&'static str],
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    let dsts: Vec<SocketAddr> = dsts
        .iter()
        .map(|d| format!("{d}:81").parse().unwrap())
        .collect();
    in_netns(ns, move || {
        let start = Instant::now();
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(180) {
            for d in &dsts {
                n += connect_refused_n(*d, 1, Duration::from_secs(1));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        n
    })
}

#[test]
#[ignore = "about a minute: run by `cargo xtask fleet`"]
fn two_troubled_nodes_raise_one_destination_alert() {
    require_root();
    let core = Netns::new("flt-core");
    core.sh(&format!(
        "ip addr add {DST}/32 dev lo && ip addr add {LONE}/32 dev lo"
    ));
    let dir = TempDir::new("fleet");
    let cfg = dir.path().join("guardian.toml");
    std::fs::write(
        &cfg,
        "[metrics]\nlisten = \"0.0.0.0:9464\"\nallow_remote = true\ndestinations = \"own\"\n",
    )
    .unwrap();
    let mut nodes = Vec::new();
    let mut targets = Vec::new();
    for i in 0..3u8 {
        let ns = Netns::new(&format!("flt-n{i}"));
        let v = pair(&ns, &core, 231 + i);
        ns.sh(&format!("ip route add 10.99.0.0/24 via {}", v.b_addr));
        targets.push(format!("'{}:9464'", v.a_addr));
        let mut d = Daemon::start(
            &ns,
            &["--config", cfg.to_str().unwrap(), "--interval-ms", "500"],
        );
        d.wait_attached();
        nodes.push((ns, v, d));
    }

    let rules = workspace_root().join("docs/deploy/prometheus-rules.yaml");
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: guardian\n    static_configs:\n      - targets: [{}]\n",
            rules.display(),
            targets.join(", ")
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("prometheus.log");
    core.spawn(&[
        "sh",
        "-c",
        &format!(
            "exec prometheus --config.file={} --storage.tsdb.path={} --web.listen-address=127.0.0.1:9090 >{} 2>&1",
            prom_cfg.display(),
            data.display(),
            log.display()
        ),
    ]);
    let prom_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let ready = poll(Duration::from_secs(30), Duration::from_millis(250), || {
        http_get(&core, "127.0.0.1:9090", "/-/ready".into())
    });
    assert!(ready.is_some(), "Prometheus is not ready:\n{}", prom_log());
    let up = poll(Duration::from_secs(30), Duration::from_millis(500), || {
        let b = http_get(
            &core,
            "127.0.0.1:9090",
            "/api/v1/query?query=sum(up)".into(),
        )?;
        let v: Value = serde_json::from_str(&b).ok()?;
        (v["data"]["result"][0]["value"][1].as_str() == Some("3")).then_some(())
    });
    assert!(
        up.is_some(),
        "Prometheus scrapes all three nodes:\n{}",
        prom_log()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let loads = [
        failing_connects(&nodes[0].0, &[DST, LONE], stop.clone()),
        failing_connects(&nodes[1].0, &[DST], stop.clone()),
    ];
    // Each node counts its own failures only.
    let seen = poll(Duration::from_secs(20), Duration::from_millis(500), || {
        let b = http_get(&nodes[1].0, "127.0.0.1:9464", "/metrics".into())?;
        let line = format!("guardian_dst_connect_failures_total{{dst=\"{DST}\"}} ");
        let n: f64 = b
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))?
            .parse()
            .ok()?;
        (n >= 5.0).then_some(())
    });
    assert!(
        seen.is_some(),
        "node 1 counts its failed connects toward {DST}"
    );
    let alerts_url = "/api/v1/alerts".to_string();
    let firing = poll(Duration::from_secs(150), Duration::from_secs(1), || {
        let b = http_get(&core, "127.0.0.1:9090", alerts_url.clone())?;
        let v: Value = serde_json::from_str(&b).ok()?;
        let fired: Vec<Value> = v["data"]["alerts"]
            .as_array()?
            .iter()
            .filter(|a| a["labels"]["alertname"] == "GuardianDestinationDegraded")
            .cloned()
            .collect();
        fired
            .iter()
            .any(|a| a["state"] == "firing")
            .then_some(fired)
    });
    stop.store(true, Ordering::Relaxed);
    let made: Vec<usize> = loads.into_iter().map(|h| h.join().unwrap()).collect();
    let fired = firing.unwrap_or_else(|| {
        panic!(
            "no destination alert fired (connects {made:?}):\n{}",
            prom_log()
        )
    });
    assert_eq!(
        fired.len(),
        1,
        "one alert for the destination, not one per node: {fired:#?}"
    );
    let a = &fired[0];
    assert_eq!(a["labels"]["dst"], DST, "{a:#}");
    assert_eq!(a["labels"]["scope"], "destination", "{a:#}");
    assert!(
        a["labels"].get("instance").is_none(),
        "no node label: {a:#}"
    );
    assert_eq!(
        a["value"].as_str().map(|v| v.parse::<f64>().unwrap()),
        Some(2.0),
        "two nodes: {a:#}"
    );
    // The lone destination troubles one node: counted, not alerted.
    let lone = http_get(
        &core,
        "127.0.0.1:9090",
        "/api/v1/query?query=guardian:dst_troubled_nodes:count".into(),
    )
    .expect("query");
    let v: Value = serde_json::from_str(&lone).unwrap();
    let by_dst: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["dst"].as_str().unwrap_or("").to_owned(),
                r["value"][1].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(
        by_dst.contains(&(LONE.to_owned(), "1".to_owned())),
        "{by_dst:?}"
    );
    assert!(
        by_dst.contains(&(DST.to_owned(), "2".to_owned())),
        "{by_dst:?}"
    );
    for (_, _, mut d) in nodes {
        let events = d.finish();
        assert!(events.iter().any(|e| is_lifecycle(e, "detached")));
    }
}
