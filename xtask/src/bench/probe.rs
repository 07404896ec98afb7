//! Probe cost: TCP throughput (iperf3, namespace A → namespace B over a veth pair) in four
//! configurations, alternating run by run:
//!
//! - (a) `none`: nothing attached;
//! - (b) `guardian`: the daemon in B without `--xdp` (tracepoints and sock_ops: guardian's
//!   probes on the TCP path);
//! - (c) `xdp_noop`: the no-op XDP program on B's veth;
//! - (d) `guardian --xdp`: the daemon in B with `--xdp` on B's veth (everything, XDP and tcx
//!   included).
//!
//! Attaching *any* XDP program to a veth changes how the veth carries TCP: the kernel clears
//! the software GSO features (TSO among them) of the peer (`veth_xdp_set` / `veth_fix_features`
//! in drivers/net/veth.c), so A's stack segments every send into MTU-sized packets, and each
//! one goes through XDP. That penalty is the veth's, not guardian's, so the ratios keep it
//! apart: b/a is guardian's probes on the TCP path (the goal), d/c guardian's XDP against the
//! cheapest XDP program, c/a the veth's own XDP penalty. Each run also records the mean size
//! of the packets B received (bytes / packets on B's veth) and, when `ethtool` is installed,
//! whether A's veth had TCP segmentation offload on: both show the mechanism directly.
use std::time::Duration;

use anyhow::{bail, Context, Result};
use guardian_tests::{pair, poll, Netns};
use serde_json::json;

use super::daemon::Guardian;
use super::report::{Measured, Table};
use super::stats::{median, spread};
use super::xdp::Held;
use super::xdp_prog::NOOP;
use super::Ctx;

const SUBNET: u8 = 201;
const PORT: &str = "20201";
const GOAL: f64 = 0.98;
/// guardian --xdp (XDP + tcx DNS programs) against the no-op XDP program, d/c.
const GOAL_XDP: f64 = 0.95;

/// The configurations, in the order the runs alternate, with their table labels.
const CONFIGS: [(&str, &str); 4] = [
    ("none", "(a) none (baseline)"),
    ("guardian", "(b) guardian run (tracepoints, sock_ops)"),
    ("xdp_noop", "(c) xdp_noop on the receiving veth"),
    ("guardian_xdp", "(d) guardian run --xdp (all programs)"),
];

/// One iperf3 run's measurements.
struct Run {
    gbps: f64,
    /// Mean bytes per packet B's veth received during the run.
    rx_bytes_per_packet: f64,
    /// A's veth "tcp-segmentation-offload" during the run, if ethtool could tell.
    sender_tso: Option<bool>,
}

pub fn run(ctx: &Ctx) -> Result<Measured> {
    let a = Netns::new("bench-probe-a");
    let b = Netns::new("bench-probe-b");
    let v = pair(&a, &b, SUBNET);
    b.spawn(&["iperf3", "-s", "-p", PORT]);
    let listening = poll(Duration::from_secs(5), Duration::from_millis(50), || {
        let out = b.output(&["ss", "-Htln", &format!("sport = :{PORT}")]);
        (!out.stdout.is_empty()).then_some(())
    });
    if listening.is_none() {
        bail!("iperf3 -s did not start listening in 5 s (is iperf3 installed?)");
    }
    let (runs, secs) = if ctx.quick { (3, 3) } else { (5, 6) };
    let object = super::xdp_prog::object_path()?;
    let mut by_config: Vec<Vec<Run>> = CONFIGS.iter().map(|_| Vec::new()).collect();
    let mut samples = Vec::new();
    for i in 0..runs * CONFIGS.len() {
        let c = i % CONFIGS.len();
        let config = CONFIGS[c].0;
        // Attached for exactly as long as this guard lives.
        let held: Box<dyn std::any::Any> = match config {
            "none" => Box::new(()),
            "guardian" => Box::new(Guardian::start(&ctx.guardian, &b, &[])?),
            "xdp_noop" => Box::new(Held::attach(ctx, &b, &object, NOOP, &v.b_if)?),
            _ => Box::new(Guardian::start(&ctx.guardian, &b, &["--xdp", &v.b_if])?),
        };
        let sender_tso = tso(&a, &v.a_if);
        let before = rx_counts(&b, &v.b_if)?;
        let gbps = iperf(&a, &v.b_addr.to_string(), secs)?;
        let after = rx_counts(&b, &v.b_if)?;
        drop(held);
        let rx_bytes_per_packet = (after.1 - before.1) as f64 / (after.0 - before.0).max(1) as f64;
        eprintln!(
            "  run {i:>2} {config:>12}: {gbps:.2} Gbit/s, {rx_bytes_per_packet:.0} B/packet received"
        );
        samples.push(json!({"run": i, "config": config, "gbit_s": gbps,
            "rx_bytes_per_packet": rx_bytes_per_packet, "sender_tso": sender_tso}));
        by_config[c].push(Run {
            gbps,
            rx_bytes_per_packet,
            sender_tso,
        });
    }
    let med: Vec<f64> = by_config
        .iter()
        .map(|rs| median(&rs.iter().map(|r| r.gbps).collect::<Vec<_>>()))
        .collect();
    let (b_a, d_c, c_a) = (med[1] / med[0], med[3] / med[2], med[2] / med[0]);
    let mut t = Table::new(
        &format!(
            "iperf3 -t {secs}, one TCP stream A → B, {runs} runs each, the four interleaved \
             (Gbit/s)"
        ),
        &[
            "attached in B",
            "median",
            "spread (min–max)",
            "ratio",
            "B's mean rx packet",
            "A's veth TSO",
        ],
    );
    let ratios = [
        "1.000 (a/a)".to_string(),
        format!("{b_a:.3} (b/a)"),
        format!("{c_a:.3} (c/a)"),
        format!("{d_c:.3} (d/c)"),
    ];
    for (c, (_, label)) in CONFIGS.iter().enumerate() {
        let rs = &by_config[c];
        let gbps: Vec<f64> = rs.iter().map(|r| r.gbps).collect();
        let size: Vec<f64> = rs.iter().map(|r| r.rx_bytes_per_packet).collect();
        t.row(&[
            label.to_string(),
            format!("{:.2}", med[c]),
            spread(&gbps, 2),
            ratios[c].clone(),
            format!("{:.0} B", median(&size)),
            tso_text(rs),
        ]);
    }
    Ok(Measured {
        tables: vec![t],
        headline: vec![
            (
                "TCP throughput, guardian's probes (no XDP) vs none (b/a, ratio of medians)".into(),
                format!("{b_a:.3}"),
            ),
            (
                "TCP throughput, guardian --xdp vs a no-op XDP program on the veth (d/c)".into(),
                format!("{d_c:.3}"),
            ),
            (
                "TCP throughput, any XDP program on a veth vs none: the veth's own penalty (c/a)"
                    .into(),
                format!("{c_a:.3}"),
            ),
        ],
        goals: vec![
            (
                format!("guardian's probes on the TCP path: throughput ratio b/a ≥ {GOAL}"),
                b_a >= GOAL,
            ),
            (
                format!(
                    "guardian --xdp against the no-op XDP program: throughput ratio d/c ≥ \
                     {GOAL_XDP}"
                ),
                d_c >= GOAL_XDP,
            ),
        ],
        notes: vec![format!(
            "c/a = {c_a:.3} is a property of veth, not of guardian: with any XDP program on a \
             veth the kernel turns off segmentation offload on its peer, so TCP crosses it in \
             MTU-sized packets (see B's mean received packet above) instead of 64 KB ones. \
             guardian's XDP program against the no-op under that same penalty: d/c = {d_c:.3}."
        )],
        raw: json!(samples),
    })
}

/// (packets, bytes) B's interface has received (`ip -s` stats64).
fn rx_counts(ns: &Netns, iface: &str) -> Result<(u64, u64)> {
    let out = ns.output(&["ip", "-j", "-s", "link", "show", "dev", iface]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("ip -j -s link show dev {iface}"))?;
    let rx = &v[0]["stats64"]["rx"];
    match (rx["packets"].as_u64(), rx["bytes"].as_u64()) {
        (Some(p), Some(b)) => Ok((p, b)),
        _ => bail!("no rx counts for {iface}"),
    }
}

/// Whether `iface` has TCP segmentation offload on (`ethtool -k`); None without ethtool.
fn tso(ns: &Netns, iface: &str) -> Option<bool> {
    let out = ns.output(&["ethtool", "-k", iface]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("tcp-segmentation-offload: "))
        .map(|v| v.starts_with("on"))
}

fn tso_text(rs: &[Run]) -> String {
    let on = rs.iter().filter(|r| r.sender_tso == Some(true)).count();
    let off = rs.iter().filter(|r| r.sender_tso == Some(false)).count();
    match (on, off) {
        (0, 0) => "? (no ethtool)".into(),
        (_, 0) => "on".into(),
        (0, _) => "off".into(),
        _ => format!("on {on}, off {off}"),
    }
}

/// One iperf3 client run; the receiver's throughput in Gbit/s.
fn iperf(a: &Netns, server: &str, secs: u32) -> Result<f64> {
    let out = a.output(&[
        "iperf3",
        "-c",
        server,
        "-p",
        PORT,
        "-t",
        &secs.to_string(),
        "-J",
    ]);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("iperf3 -J printed no JSON")?;
    if let Some(e) = v["error"].as_str() {
        bail!("iperf3: {e}");
    }
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e9)
        .context("iperf3 reported no received throughput")
}
