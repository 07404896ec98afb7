//! A tiny UDP DNS resolver and client for the DNS tests, both running on threads inside a
//! test's namespaces.
//!
//! - [`Responder`]: answers every query on `addr:53` with a fixed rcode (SERVFAIL, NOERROR, ...)
//!   or drops it.
//! - [`query_paced`]: sends queries at a fixed rate for a bounded time and counts the answers.
//! - [`answers_are_counted_at_xdp`]: the daemon's XDP program, not a tcx one, counts answers.
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::net::in_netns;
use crate::netns::Netns;
use crate::{bpf_maps, truth, Daemon};

/// What a [`Responder`] does with each query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Responds with this rcode (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED).
    Rcode(u8),
    /// Never responds.
    Drop,
}

pub const NOERROR: Answer = Answer::Rcode(0);
pub const SERVFAIL: Answer = Answer::Rcode(2);

/// A resolver on `addr` (port 53) inside a namespace, until dropped.
pub struct Responder {
    stop: Arc<AtomicBool>,
    queries: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    pub fn start(ns: &Netns, addr: SocketAddr, answer: Answer) -> Responder {
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicU64::new(0));
        let (s, q) = (stop.clone(), queries.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = in_netns(ns, move || {
            let sock = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
            sock.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            tx.send(()).unwrap();
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if n < 12 || buf[2] & 0x80 != 0 {
                    continue; // not a query
                }
                q.fetch_add(1, Ordering::Relaxed);
                if let Answer::Rcode(rcode) = answer {
                    let mut r = buf[..n].to_vec();
                    // QR=1, opcode and RD kept, RA=1, rcode; no answers.
                    r[2] = 0x80 | (buf[2] & 0x79);
                    r[3] = 0x80 | (rcode & 0x0f);
                    r[6..12].fill(0);
                    let _ = sock.send_to(&r, from);
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the responder thread did not bind");
        Responder {
            stop,
            queries,
            thread: Some(thread),
        }
    }

    /// Queries received so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A query for `name` (type A, class IN, recursion desired).
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(32);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// What a paced client saw.
#[derive(Debug, Clone, Default)]
pub struct Paced {
    /// When the first query was sent.
    pub started: Option<SystemTime>,
    pub sent: u64,
    /// Responses by rcode (index 0..16).
    pub rcodes: [u64; 16],
}

impl Paced {
    pub fn answered(&self) -> u64 {
        self.rcodes.iter().sum()
    }
}

/// From a thread inside `ns`, sends `rate` queries per second to `server` for `duration`,
/// reading responses meanwhile (and for `linger` after the last query).
pub fn query_paced(
    ns: &Netns,
    server: SocketAddr,
    rate: u32,
    duration: Duration,
    linger: Duration,
) -> JoinHandle<Paced> {
    in_netns(ns, move || {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let sock = UdpSocket::bind(bind).expect("bind client");
        sock.connect(server).expect("connect client");
        sock.set_read_timeout(Some(Duration::from_millis(2)))
            .unwrap();
        let every = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
        let mut out = Paced::default();
        let start = Instant::now();
        out.started = Some(SystemTime::now());
        let mut next = start;
        let mut buf = [0u8; 512];
        let end = start + duration;
        // Replies are awaited `linger` times GUARDIAN_TIME_SCALE: a TCG guest answers late.
        while Instant::now() < end + crate::util::scaled(linger) {
            let now = Instant::now();
            if now >= next && now < end {
                let id = out.sent as u16;
                // ECONNREFUSED from an earlier ICMP error is possible: ignore.
                let _ = sock.send(&query(id, "guardian.test"));
                out.sent += 1;
                next += every;
            }
            if let Ok(n) = sock.recv(&mut buf) {
                if n >= 4 && buf[2] & 0x80 != 0 {
                    out.rcodes[(buf[3] & 0x0f) as usize] += 1;
                }
            }
        }
        out
    })
}

/// On an interface that has guardian's XDP program, that program counts the DNS answers: only
/// the egress DNS program is attached there (tcx or clsact), and the XDP program's switch for
/// the interface (`DNS_AT_XDP`, read from the kernel) is on. The counts the test then asserts
/// can only come from the XDP program.
pub fn answers_are_counted_at_xdp(attached: &Value, d: &Daemon, ns: &Netns, iface: &str) {
    let detail = &attached["detail"];
    let dirs: Vec<&str> = detail["tcx"]
        .as_array()
        .unwrap_or_else(|| panic!("no tcx in {detail}"))
        .iter()
        .filter(|t| t["iface"] == iface)
        .filter_map(|t| t["direction"].as_str())
        .collect();
    assert_eq!(dirs, ["egress"], "DNS programs on {iface}: {detail}");
    let xdp = detail["xdp"]
        .as_array()
        .and_then(|x| x.iter().find(|x| x["iface"] == iface))
        .unwrap_or_else(|| panic!("no xdp entry for {iface}: {detail}"));
    assert_eq!(xdp["dns_answers"], true, "{xdp}");
    let ifindex = truth::link(ns, iface)["ifindex"].as_u64().unwrap() as u32;
    let map = bpf_maps::daemon_map(d.pid().unwrap(), "DNS_AT_XDP");
    let on: Vec<u32> = bpf_maps::entries(map)
        .into_iter()
        .filter(|(_, v)| v.iter().any(|b| *b != 0))
        .map(|(k, _)| u32::from_ne_bytes(k[..4].try_into().unwrap()))
        .collect();
    assert_eq!(on, [ifindex], "DNS_AT_XDP");
}
