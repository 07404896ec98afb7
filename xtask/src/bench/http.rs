//! HTTP cost: a real nginx (Debian's) in namespace S serves a 300-byte file, plaintext and TLS,
//! to wrk (Debian's) in namespace C, over a veth pair, in six configurations that alternate
//! round by round (the order rotates):
//!
//! - `none`: no guardian (the baseline);
//! - `guardian`: `guardian run` in S without `--http`;
//! - `guardian_http`: `guardian run --http` in S (plaintext from the packet programs of
//!   http_skb.rs; for TLS, the program on every syscall's exit of sys_exit.rs and http.rs,
//!   system-wide, and the libssl uprobes of tls.rs and tls_hs.rs on every process that maps
//!   libssl.so.3, nginx and wrk included);
//! - `guardian_http_plain`: `guardian run --http --http-no-tls`: the packet programs alone;
//! - `bpftrace`: no guardian, bpftrace holding *empty* programs on the same libssl functions
//!   (entry and return probes alike): what the kernel's uprobe mechanism costs by itself, for
//!   any tool;
//! - `tracepoints`: no guardian, a no-op program of guardian's object on the same hook (the
//!   raw `sys_exit` tracepoint), attached the same way: the floor of reading HTTP from the
//!   syscalls, as Coroot's agent and guardian do;
//! - `packets`: no guardian, a no-op program of guardian's object on every socket's packets
//!   (cgroup_skb ingress and egress of the root cgroup): the floor of counting HTTP at the
//!   packet level instead, with the socket at hand.
//!
//! Four workloads per configuration and round: plaintext and TLS, each with keep-alive and with
//! a new connection per request (`Connection: close`). Each reports requests/s (wrk) and the
//! CPU time per request: nginx's and the daemon's user + system time over the run
//! (`/proc/PID/stat`) plus wrk's (its rusage), divided by the requests. First, before any HTTP
//! traffic (so that no TIME_WAIT the load leaves behind makes the daemon dump its namespace),
//! per configuration and round: the daemon's CPU over an idle window, and two loops of small
//! syscalls that carry no HTTP (a file read/write loop, a TCP ping-pong), since the syscall
//! hook runs for every process, and one of HTTP requests and responses over loopback in this
//! process (what the programs add to a request, without nginx's and wrk's own work). Last,
//! one more pass of everything under `guardian run --http` with the kernel's BPF run-time
//! statistics on, to say which programs the time goes to.
use std::time::Duration;

use anyhow::Result;
use guardian_tests::{pair, Netns, TempDir};
use serde_json::json;

use super::daemon::Guardian;
use super::http_load::{self as load, WrkRun, PORT, TLS_PORT};
use super::http_report::{self as report, Samples, Workload};
use super::http_sys as sys;
use super::report::Measured;
use super::Ctx;

const SUBNET: u8 = 206;

pub const CONFIGS: [(&str, &str); 7] = [
    ("none", "no guardian (baseline)"),
    ("guardian", "guardian run"),
    ("guardian_http", "guardian run --http"),
    (
        "bpftrace",
        "bpftrace: empty uprobes on the same libssl functions",
    ),
    ("tracepoints", "no-op program on the same syscall hook"),
    (
        "packets",
        "no-op program on every socket's packets (cgroup_skb)",
    ),
    ("guardian_http_plain", "guardian run --http --http-no-tls"),
];

pub const WORKLOADS: [Workload; 4] = [
    Workload {
        key: "plain_keepalive",
        label: "plaintext, keep-alive",
        tls: false,
        close: false,
    },
    Workload {
        key: "tls_keepalive",
        label: "TLS, keep-alive",
        tls: true,
        close: false,
    },
    Workload {
        key: "plain_close",
        label: "plaintext, new connection per request",
        tls: false,
        close: true,
    },
    Workload {
        key: "tls_close",
        label: "TLS, new connection (handshake) per request",
        tls: true,
        close: true,
    },
];

/// What a configuration without guardian holds on the hooks: held only to be dropped (which
/// detaches), never read.
#[allow(dead_code)]
enum Peer {
    Bpftrace(load::Bpftrace),
    Noop(load::NoopTracepoints),
    Packets(load::NoopPackets),
}

/// Settings of one run of the benchmark.
pub struct Plan {
    pub rounds: usize,
    pub secs: u32,
    pub idle_secs: u64,
    pub file_ops: u64,
    pub tcp_trips: u64,
}

pub fn run(ctx: &Ctx) -> Result<Measured> {
    let plan = if ctx.quick {
        Plan {
            rounds: 2,
            secs: 2,
            idle_secs: 3,
            file_ops: 100_000,
            tcp_trips: 10_000,
        }
    } else {
        Plan {
            rounds: 5,
            secs: 3,
            idle_secs: 4,
            file_ops: 300_000,
            tcp_trips: 30_000,
        }
    };
    let cli = Netns::new("bench-http-c");
    let srv = Netns::new("bench-http-s");
    let v = pair(&cli, &srv, SUBNET);
    // New connections: a wide port range, TIME_WAIT reused (the server closes first with
    // `Connection: close`, so most TIME_WAIT is on its side).
    cli.sysctl("net.ipv4.ip_local_port_range", "1024 65000");
    cli.sysctl("net.ipv4.tcp_tw_reuse", "1");
    let dir = TempDir::new("bench-http");
    load::make_cert(dir.path(), "bench.guardian.test")?;
    let addr = v.b_addr.to_string();
    let nginx = load::start_nginx(&srv, dir.path(), &addr)?;
    let libssl = load::mapped_libssl(nginx)?;
    let url = |w: &Workload| {
        if w.tls {
            format!("https://{addr}:{TLS_PORT}/index.html")
        } else {
            format!("http://{addr}:{PORT}/index.html")
        }
    };
    let start = |c: usize| -> Result<(Option<Guardian>, Option<Peer>)> {
        let started = match CONFIGS[c].0 {
            "none" => (None, None),
            "guardian" => (Some(Guardian::start(&ctx.guardian, &srv, &[])?), None),
            "guardian_http" => {
                let g = Guardian::start(&ctx.guardian, &srv, &["--http"])?;
                settle(&g, &cli, &url)?;
                (Some(g), None)
            }
            "bpftrace" => (None, Some(Peer::Bpftrace(load::Bpftrace::start(&libssl)?))),
            "guardian_http_plain" => (
                Some(Guardian::start(
                    &ctx.guardian,
                    &srv,
                    &["--http", "--http-no-tls"],
                )?),
                None,
            ),
            "tracepoints" => (None, Some(Peer::Noop(load::NoopTracepoints::attach()?))),
            _ => (None, Some(Peer::Packets(load::NoopPackets::attach()?))),
        };
        // Past the daemon's start-up work (first samples, uprobe attachment).
        std::thread::sleep(Duration::from_secs(1));
        Ok(started)
    };
    let mut s = Samples::new(CONFIGS.len(), WORKLOADS.len());
    // No HTTP traffic yet: nothing in TIME_WAIT, the daemons idle as on a quiet host.
    for round in 0..plan.rounds {
        for k in 0..CONFIGS.len() {
            let c = (round + k) % CONFIGS.len();
            let (mut g, peer) = start(c)?;
            // The idle window only where there is a daemon to measure.
            let idle = match g.as_ref().map(Guardian::pid) {
                Some(pid) => {
                    let d0 = load::proc_cpu(pid)?;
                    std::thread::sleep(Duration::from_secs(plan.idle_secs));
                    Some((load::proc_cpu(pid)? - d0) / plan.idle_secs as f64 * 100.0)
                }
                None => None,
            };
            let file = sys::file_rw(plan.file_ops)?;
            let tcp = sys::tcp_pingpong(plan.tcp_trips)?;
            let req = sys::http_pingpong(plan.tcp_trips)?;
            eprintln!(
                "  round {round} {:>13} idle daemon {:.2}% CPU; file read+write {file:.0} ns; \
                 TCP round trip {tcp:.0} ns; HTTP request on loopback {req:.0} ns",
                CONFIGS[c].0,
                idle.unwrap_or(f64::NAN)
            );
            s.push_quiet(c, round, idle, [file, tcp, req]);
            if let Some(g) = g.as_mut() {
                g.stop()?;
            }
            drop(peer);
        }
    }
    // Warm-up (nginx's first TLS handshakes, page cache); not recorded.
    for w in &WORKLOADS {
        load::wrk(&cli, &url(w), 1, w.close)?;
    }
    for round in 0..plan.rounds {
        for k in 0..CONFIGS.len() {
            let c = (round + k) % CONFIGS.len();
            let (mut g, peer) = start(c)?;
            let daemon = g.as_ref().map(Guardian::pid);
            let daemon_cpu = || daemon.map_or(Ok(0.0), load::proc_cpu);
            for (w, wl) in WORKLOADS.iter().enumerate() {
                let (n0, d0) = (load::proc_cpu(nginx)?, daemon_cpu()?);
                let r: WrkRun = load::wrk(&cli, &url(wl), plan.secs, wl.close)?;
                let (n1, d1) = (load::proc_cpu(nginx)?, daemon_cpu()?);
                let cpu = (n1 - n0) + (d1 - d0) + r.cpu_s;
                let ns = cpu / r.requests.max(1) as f64 * 1e9;
                eprintln!(
                    "  round {round} {:>13} {:>15}: {:>8.0} req/s, {ns:>6.0} ns CPU/request, {} errors",
                    CONFIGS[c].0,
                    wl.key,
                    r.rps(),
                    r.errors
                );
                s.push_load(c, w, round, r, ns, n1 - n0, d1 - d0);
            }
            if let Some(g) = g.as_mut() {
                g.stop()?;
            }
            drop(peer);
        }
    }
    let attribution = attribute(ctx, &plan, &cli, &srv, &url)?;
    let mut m = report::measured(&plan, &s, &attribution);
    m.raw = json!({"samples": s.raw, "attribution": attribution.raw,
        "rounds": plan.rounds, "secs": plan.secs});
    Ok(m)
}

/// One more pass of every workload, the idle window and the two loops under
/// TLS traffic until `g` reads the record layer (Linux 6.3+), so that `--http` is measured
/// as it runs from then on.
fn settle(g: &Guardian, cli: &Netns, url: &dyn Fn(&Workload) -> String) -> Result<()> {
    let tls = WORKLOADS.iter().find(|w| w.tls).expect("a TLS workload");
    let warm = || load::wrk(cli, &url(tls), 1, tls.close).map(drop);
    let on = g.settle_tls(warm, Duration::from_secs(10))?;
    eprintln!("  TLS statuses from the record layer: {on}");
    Ok(())
}

/// `guardian run --http`, with the kernel's BPF statistics on.
fn attribute(
    ctx: &Ctx,
    plan: &Plan,
    cli: &Netns,
    srv: &Netns,
    url: &dyn Fn(&Workload) -> String,
) -> Result<super::http_attr::Attribution> {
    let mut g = Guardian::start(&ctx.guardian, srv, &["--http"])?;
    settle(&g, cli, url)?;
    std::thread::sleep(Duration::from_secs(1));
    let pid = g.pid();
    let _on = sys::Stats::enable()?;
    let mut a = super::http_attr::Attribution::default();
    let before = sys::snapshot(pid)?;
    std::thread::sleep(Duration::from_secs(plan.idle_secs));
    let idle = sys::delta(&before, &sys::snapshot(pid)?);
    a.push(
        &format!("idle, {} s (per second)", plan.idle_secs),
        plan.idle_secs as f64,
        &idle,
    );
    for w in &WORKLOADS {
        let before = sys::snapshot(pid)?;
        let r = load::wrk(cli, &url(w), plan.secs, w.close)?;
        let d = sys::delta(&before, &sys::snapshot(pid)?);
        a.push(&format!("{} (per request)", w.label), r.requests as f64, &d);
    }
    // The three loops, each between two snapshots: (phase, units, the loop).
    type Loop = fn(u64) -> Result<f64>;
    let loops: [(&str, u64, Loop); 3] = [
        (
            "file read+write loop (per read+write)",
            plan.file_ops,
            sys::file_rw,
        ),
        (
            "TCP ping-pong (per round trip)",
            plan.tcp_trips,
            sys::tcp_pingpong,
        ),
        (
            "HTTP requests on loopback (per request)",
            plan.tcp_trips,
            sys::http_pingpong,
        ),
    ];
    for (phase, n, run) in loops {
        let before = sys::snapshot(pid)?;
        run(n)?;
        let d = sys::delta(&before, &sys::snapshot(pid)?);
        a.push(phase, n as f64, &d);
    }
    g.stop()?;
    Ok(a)
}
