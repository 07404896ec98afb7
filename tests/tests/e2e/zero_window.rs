//! `zero_window_stall` (issue #18 item 3, "slow clients") against a real nginx from Debian: a
//! python3 client in another namespace asks for a large file with a 4 KiB receive buffer and
//! stops reading. The daemon's fault event must name that flow as the kernel shows it
//! (`ss -tino`: the persist timer, the send queue, the probes; nstat's `TcpExtTCPWinProbe`
//! moved), name nginx as its holder, and clear once the client reads again. A normal fast
//! download of the same file opens nothing.
use std::time::Duration;

use guardian_tests::flows::{detect_config, is_fault_on};
use guardian_tests::*;
use serde_json::Value;

use super::http::{nginx_static_conf, start_nginx};

const SUBNET: u8 = 236;
const PORT: u16 = 8090;
/// The file nginx serves: far more than the client's buffer and nginx's send buffer hold.
const SIZE: usize = 8 << 20;

/// Connects with a 4 KiB receive buffer, asks for `path`, reads nothing until the file `go`
/// exists (at most 60 s), then reads to the end and writes the byte count to `go.done`.
const SLOW_CLIENT: &str = r#"
import os, socket, sys, time
host, port, path, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = socket.socket()
c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
c.settimeout(30)
c.connect((host, port))
c.sendall(("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path).encode())
deadline = time.time() + 60
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.05)
n = 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    n += len(b)
open(go + ".done", "w").write(str(n))
"#;

/// `TcpExtTCPWinProbe` of `ns`, as nstat reads it (absolute, history untouched).
fn win_probes(ns: &Netns) -> u64 {
    ns.run(&["nstat", "-asz", "TcpExtTCPWinProbe"])
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("TcpExtTCPWinProbe"))
                .then(|| f.next()?.parse().ok())
                .flatten()
        })
        .unwrap_or(0)
}

/// The kernel's view of the server's flows to port `PORT` under the persist timer:
/// (remote `addr:port`, Send-Q, backoff) per flow, from `ss -tino`.
fn ss_persist(ns: &Netns) -> Vec<(String, u64, u64)> {
    let out = ns.run(&[
        "ss",
        "-Htino",
        "state",
        "established",
        &format!("sport = :{PORT}"),
    ]);
    let mut v = Vec::new();
    let mut lines = out.lines().peekable();
    while let Some(l) = lines.next() {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Recv-Q Send-Q Local Peer timer:(...) ; the tcp_info line follows.
        let info = lines.next_if(|n| n.starts_with(char::is_whitespace));
        if f.len() < 5 || !l.contains("timer:(persist") {
            continue;
        }
        let backoff = info
            .and_then(|i| {
                i.split_whitespace()
                    .find_map(|w| w.strip_prefix("backoff:"))
                    .and_then(|b| b.parse().ok())
            })
            .unwrap_or(0);
        v.push((f[3].to_string(), f[1].parse().unwrap_or(0), backoff));
    }
    v
}

fn stall(e: &Value, netns: u64, state: &str) -> bool {
    is_fault_on(e, "zero_window_stall", state, netns, None, Some(PORT))
}

#[test]
fn a_client_that_stops_reading_opens_zero_window_stall_as_ss_shows_it() {
    require_root();
    let c = Netns::new("zw-c");
    let s = Netns::new("zw-s");
    let v = pair(&c, &s, SUBNET);
    let dir = TempDir::new("zw");
    let conf = nginx_static_conf(dir.path(), &format!("{}:{PORT}", v.b_addr));
    std::fs::write(dir.path().join("www/big.bin"), vec![b'z'; SIZE]).unwrap();
    let nginx = start_nginx(&s, dir.path(), &conf, PORT);
    let cfg = detect_config(
        &dir,
        "[zero_window_stall]\nstall_ms = 2000\nclear_after_ms = 500\nupdate_every_ms = 500\n",
    );
    let mut d = Daemon::start(
        &s,
        &[
            "--interval-ms",
            "200",
            "--detect-config",
            cfg.to_str().unwrap(),
        ],
    );
    d.wait_attached();
    let sn = s.inode();
    let url = format!("http://{}:{PORT}/big.bin", v.b_addr);

    // A normal fast download: the whole file, and no stall reported for longer than stall_ms.
    let got = c.run(&[
        "curl",
        "-s",
        "--max-time",
        "20",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        &url,
    ]);
    assert_eq!(got.trim(), SIZE.to_string(), "curl downloaded the file");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !d.events().iter().any(|e| e["fault"] == "zero_window_stall"),
        "a fast download opened zero_window_stall: {:?}",
        d.events()
    );

    // The slow client: asks, then stops reading.
    let probes_before = win_probes(&s);
    let go = dir.path().join("go");
    let go_s = go.to_str().unwrap().to_string();
    let addr = v.b_addr.to_string();
    c.spawn(&[
        "python3",
        "-c",
        SLOW_CLIENT,
        &addr,
        &PORT.to_string(),
        "/big.bin",
        &go_s,
    ]);
    let kernel = poll(Duration::from_secs(10), Duration::from_millis(100), || {
        let p = ss_persist(&s);
        (p.len() == 1).then(|| p[0].clone())
    })
    .unwrap_or_else(|| panic!("ss shows no persist timer: {:?}", ss_persist(&s)));
    let remote = kernel.0.clone();
    assert!(remote.starts_with(&format!("{}:", v.a_addr)), "{remote}");
    let (_, ev) = d.wait_for_after(0, |e| stall(e, sn, "opened"), Duration::from_secs(10));
    eprintln!("{ev}");
    // The kernel's view, right after: the stall goes on, so its queue has not moved.
    let now = ss_persist(&s);
    assert_eq!(now.len(), 1, "still stalled: {now:?}");
    let (ss_remote, ss_queued, ss_backoff) = now[0].clone();
    let ev_flow = &ev["evidence"]["flows"][0];
    assert_eq!(ev["evidence"]["stalled_flows"], 1, "{ev}");
    assert_eq!(ev_flow["remote"], ss_remote.as_str(), "{ev}");
    assert_eq!(ev_flow["local"], format!("{}:{PORT}", v.b_addr), "{ev}");
    assert_eq!(ev_flow["queued"], ss_queued, "the Send-Q ss shows: {ev}");
    assert_eq!(ev["evidence"]["queued_bytes"], ss_queued, "{ev}");
    assert!(ss_queued > 0);
    assert_eq!(ev_flow["snd_wnd"], 0, "the peer's window: {ev}");
    let stalled_ms = ev_flow["stalled_ms"].as_u64().unwrap();
    assert!((2000..10_000).contains(&stalled_ms), "{ev}");
    let probes = ev_flow["probes"].as_u64().unwrap();
    assert!(
        probes >= 1 && probes <= ss_backoff,
        "probes {probes}, ss backoff {ss_backoff}: {ev}"
    );
    let moved = win_probes(&s) - probes_before;
    assert!(
        moved >= probes,
        "nstat TcpExtTCPWinProbe moved by {moved}, {probes} probes"
    );
    assert_eq!(ev["evidence"]["owners"][0]["pid"], nginx, "{ev}");
    assert_eq!(ev["evidence"]["owners"][0]["comm"], "nginx", "{ev}");
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .contains("stalled on a zero window"),
        "{ev}"
    );

    // The client reads again: the flow leaves the persist state and the fault clears.
    std::fs::write(&go, "").unwrap();
    d.wait_for_after(0, |e| stall(e, sn, "cleared"), Duration::from_secs(15));
    let done = dir.path().join("go.done");
    let read = poll(Duration::from_secs(20), Duration::from_millis(100), || {
        std::fs::read_to_string(&done).ok()
    })
    .expect("the client finished reading");
    assert!(
        read.trim().parse::<usize>().unwrap() > SIZE,
        "the whole response: {read}"
    );
    assert!(ss_persist(&s).is_empty());
    let events = d.finish();
    let opened: Vec<_> = events
        .iter()
        .filter(|e| e["fault"] == "zero_window_stall" && e["state"] == "opened")
        .collect();
    assert_eq!(opened.len(), 1, "one stall, one incident: {opened:?}");
    assert!(
        events
            .iter()
            .filter(|e| is_type(e, "remedy"))
            .all(|r| r["fault"] != "zero_window_stall"),
        "report only"
    );
}
