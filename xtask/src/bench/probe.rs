//! Probe cost: TCP throughput (iperf3, namespace A → namespace B over a veth pair) with every
//! guardian program attached — the daemon runs in B with `--xdp` on the receiving veth, so
//! XDP, tcx, the tracepoints and sock_ops are all live — against none, in alternating runs.
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
    let (mut none, mut noop, mut with) = (Vec::new(), Vec::new(), Vec::new());
    let mut samples = Vec::new();
    for i in 0..runs * 3 {
        let config = ["none", "xdp_noop", "guardian"][i % 3];
        // Attached for exactly as long as this guard lives.
        let held: Box<dyn std::any::Any> = match config {
            "none" => Box::new(()),
            "xdp_noop" => Box::new(Held::attach(ctx, &b, &object, NOOP, &v.b_if)?),
            _ => Box::new(Guardian::start(&ctx.guardian, &b, &["--xdp", &v.b_if])?),
        };
        let gbps = iperf(&a, &v.b_addr.to_string(), secs)?;
        drop(held);
        eprintln!("  run {i:>2} {config:>8}: {gbps:.2} Gbit/s");
        samples.push(json!({"run": i, "config": config, "gbit_s": gbps}));
        match config {
            "none" => none.push(gbps),
            "xdp_noop" => noop.push(gbps),
            _ => with.push(gbps),
        }
    }
    let ratio = median(&with) / median(&none);
    let mut t = Table::new(
        &format!("iperf3 -t {secs}, one TCP stream A → B, {runs} runs each, interleaved (Gbit/s)"),
        &[
            "programs attached",
            "median",
            "spread (min–max)",
            "ratio to none",
        ],
    );
    t.row(&[
        "none (baseline)".to_string(),
        format!("{:.2}", median(&none)),
        spread(&none, 2),
        "1.000".into(),
    ]);
    t.row(&[
        "xdp_noop on the receiving veth".to_string(),
        format!("{:.2}", median(&noop)),
        spread(&noop, 2),
        format!("{:.3}", median(&noop) / median(&none)),
    ]);
    t.row(&[
        "guardian run --xdp (all programs)".to_string(),
        format!("{:.2}", median(&with)),
        spread(&with, 2),
        format!("{ratio:.3}"),
    ]);
    Ok(Measured {
        tables: vec![t],
        headline: vec![(
            "TCP throughput with every guardian program attached vs none (ratio of medians)".into(),
            format!("{ratio:.3}"),
        )],
        goals: vec![(format!("throughput ratio ≥ {GOAL}"), ratio >= GOAL)],
        notes: vec![format!(
            "Against the no-op XDP program instead of none, guardian's ratio is {:.3}. The no-op's \
             own ratio to none is what attaching any XDP program to a veth costs: the veth then \
             hands each packet to XDP as a single page (no GRO/GSO-sized packets on that path).",
            median(&with) / median(&noop)
        )],
        raw: json!(samples),
    })
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
