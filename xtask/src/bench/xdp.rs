//! XDP cost. Two measurements, each against a no-op XDP program timed in the same run:
//!
//! 1. The program alone: BPF_PROG_TEST_RUN, `repeat` = 10^6, on a 74-byte TCP SYN, a 66-byte
//!    TCP ACK and a 60-byte UDP frame, `xdp_noop` and `guardian_xdp` interleaved round by
//!    round. The goal (≤ 15 ns over the no-op) is for the packets that are not SYNs, the
//!    common path every packet takes; a SYN's extra cost (counted per source and per port)
//!    is reported on its own line.
//! 2. Packets per second through a veth pair: an AF_PACKET blaster in namespace A sends to
//!    namespace B, where B's end runs (a) no XDP program, (b) `xdp_noop`, (c) `xdp_noop` and
//!    `tc_noop` at tcx ingress (what entering the tcx hook costs, whatever the program), (d)
//!    the real daemon with `--xdp` (its XDP program, plus the tcx DNS programs it adds on that
//!    interface).
//!    The frames carry a destination MAC no one has, so B's stack drops them at once and the
//!    time goes to the driver and the programs. Everything runs on the sender's CPU (veth
//!    processes inline), so 1/rate is the full per-packet cost and the difference of 1/rate
//!    between (c) and (b) is what guardian adds per packet.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use guardian_tests::{pair, Netns, Veth};
use serde_json::json;

use super::daemon::Guardian;
use super::report::{Measured, Table};
use super::stats::{median, spread};
use super::xdp_prog::{self, TestRun, DNS_EGRESS, DNS_INGRESS, GUARDIAN, NOOP, TC_NOOP};
use super::{blast::Blast, frames, Ctx};

const SUBNET: u8 = 200;
const GOAL_NS: f64 = 15.0;
/// A SYN's cost over the no-op (program alone).
const GOAL_SYN_NS: f64 = 40.0;
/// guardian's daemon (XDP + tcx) over the no-op XDP program, per packet through the veth.
const GOAL_VETH_NS: f64 = 30.0;

pub fn run(ctx: &Ctx) -> Result<Measured> {
    let object = xdp_prog::object_path()?;
    let mut m = Measured::default();
    let runs = test_runs(ctx, &object)?;
    let (prog_table, overhead) = test_run_table(&runs);
    m.tables.push(prog_table);
    let (tc_table, tc_not_dns) = tc_test_run_table(&runs);
    m.tables.push(tc_table);
    let (rate_table, rates) = packet_rates(ctx, &object)?;
    m.tables.push(rate_table);
    let common = overhead
        .iter()
        .filter(|(p, _)| !p.contains("syn") && !p.contains("dns"))
        .map(|(_, o)| *o)
        .fold(f64::MIN, f64::max);
    let dns_answer = overhead
        .iter()
        .find(|(p, _)| p.contains("dns_answer"))
        .map(|(_, o)| *o);
    let syn = overhead
        .iter()
        .filter(|(p, _)| p.contains("syn"))
        .map(|(_, o)| *o)
        .fold(f64::MIN, f64::max);
    m.headline.push((
        "XDP program cost over a no-op, packets that are not SYNs (BPF_PROG_TEST_RUN, worst of TCP ACK/UDP)".into(),
        format!("{common:+.1} ns/packet"),
    ));
    m.headline.push((
        "XDP program cost over a no-op, a TCP SYN (counted per source and per port)".into(),
        format!("{syn:+.1} ns/packet"),
    ));
    if let Some(ns) = dns_answer {
        m.notes.push(format!(
            "A DNS answer arriving on an `--xdp` interface is counted by the XDP program \
             ({ns:+.1} ns over the no-op, program alone), so no tcx program sits on that \
             interface's ingress; the tcx ingress program (table below) is attached only where \
             guardian has no XDP program. A UDP packet from another port leaves after its \
             source port (the UDP row)."
        ));
    }
    m.headline.push((
        "tcx DNS programs' cost over a no-op tc program, a packet that is not DNS (BPF_PROG_TEST_RUN, worst of ingress/egress)".into(),
        format!("{tc_not_dns:+.1} ns/packet"),
    ));
    if let Some(hook) = rates.tc_hook_ns() {
        m.notes.push(format!(
            "Entering the tcx hook at all (xdp_noop + tc_noop vs xdp_noop, packet rate): \
             {hook:+.1} ns/packet; this is the kernel's cost of any tcx program on the \
             interface, which `[interfaces] dns = []` avoids where DNS is not wanted."
        ));
    }
    // The packet-rate difference is a note, not a headline: on this 2-core machine the
    // generator's noise is larger than the program's cost.
    if let Some(per_packet) = rates.guardian_over_noop_ns() {
        m.notes.push(format!(
            "Packet rate through the veth, guardian daemon vs the no-op program: \
             {per_packet:+.1} ns/packet (generator noise dominates; see the spread)."
        ));
    }
    m.goals.push((
        format!(
            "≤ {GOAL_NS} ns per packet over the no-op for packets that are not SYNs (program \
             alone, worst of TCP ACK and UDP)"
        ),
        common <= GOAL_NS,
    ));
    m.goals.push((
        format!("≤ {GOAL_SYN_NS} ns over the no-op for a TCP SYN (program alone)"),
        syn <= GOAL_SYN_NS,
    ));
    if let Some(per_packet) = rates.guardian_over_noop_ns() {
        m.goals.push((
            format!(
                "≤ +{GOAL_VETH_NS} ns per packet through the veth, guardian run --xdp (XDP + \
                 tcx) vs xdp_noop (measured {per_packet:+.1} ns)"
            ),
            per_packet <= GOAL_VETH_NS,
        ));
    }
    m.notes.push(
        "The program-alone numbers are the precise ones: the packet-rate run adds the \
         generator, the veth and the machine's other load to every packet, and its spread \
         shows how much of the difference is noise."
            .into(),
    );
    m.raw = json!({ "test_run": runs, "packet_rate": rates.samples });
    Ok(m)
}

fn test_runs(ctx: &Ctx, object: &std::path::Path) -> Result<Vec<TestRun>> {
    let rounds = if ctx.quick { "3" } else { "7" };
    let mut c = Command::new(&ctx.xtask);
    c.args([
        "bench-helper",
        "xdp-test-run",
        "--repeat",
        "1000000",
        "--rounds",
        rounds,
    ])
    .arg("--object")
    .arg(object);
    let out = crate::cmd::stdout(&mut c)?;
    serde_json::from_str(out.trim()).context("xdp-test-run printed no JSON")
}

/// (table, guardian − no-op ns per packet kind).
fn test_run_table(runs: &[TestRun]) -> (Table, Vec<(String, f64)>) {
    let mut t = Table::new(
        "XDP program alone: BPF_PROG_TEST_RUN, 10^6 runs per sample, median ns/run (spread)",
        &[
            "frame",
            "xdp_noop",
            "guardian_xdp",
            "guardian − no-op",
            "ratio",
        ],
    );
    let mut overheads = Vec::new();
    let runs: Vec<&TestRun> = runs
        .iter()
        .filter(|r| r.program == NOOP || r.program == GUARDIAN)
        .collect();
    let mut packets: Vec<&str> = runs.iter().map(|r| r.packet.as_str()).collect();
    packets.dedup();
    packets.sort();
    packets.dedup();
    for packet in packets {
        let ns = |prog: &str| -> Vec<f64> {
            runs.iter()
                .filter(|r| r.packet == packet && r.program == prog)
                .map(|r| f64::from(r.ns_per_run))
                .collect()
        };
        let (noop, guardian) = (ns(NOOP), ns(GUARDIAN));
        let over = median(&guardian) - median(&noop);
        overheads.push((packet.to_string(), over));
        t.row(&[
            packet.to_string(),
            format!("{:.0} ({})", median(&noop), spread(&noop, 0)),
            format!("{:.0} ({})", median(&guardian), spread(&guardian, 0)),
            format!("{over:+.1} ns"),
            format!("{:.2}×", median(&guardian) / median(&noop)),
        ]);
    }
    (t, overheads)
}

/// (table, worst of the DNS programs − tc_noop on the frame that is not DNS).
fn tc_test_run_table(runs: &[TestRun]) -> (Table, f64) {
    let mut t = Table::new(
        "tcx DNS programs alone: BPF_PROG_TEST_RUN, 10^6 runs per sample, median ns/run (spread)",
        &["program", "frame", "tc_noop", "program", "program − no-op"],
    );
    let ns = |prog: &str, packet: &str| -> Vec<f64> {
        runs.iter()
            .filter(|r| r.packet == packet && r.program == prog)
            .map(|r| f64::from(r.ns_per_run))
            .collect()
    };
    let mut packets: Vec<&str> = runs
        .iter()
        .filter(|r| r.program == TC_NOOP)
        .map(|r| r.packet.as_str())
        .collect();
    packets.sort();
    packets.dedup();
    let mut not_dns = f64::MIN;
    for program in [DNS_INGRESS, DNS_EGRESS] {
        for packet in &packets {
            let (noop, prog) = (ns(TC_NOOP, packet), ns(program, packet));
            if noop.is_empty() || prog.is_empty() {
                continue;
            }
            let over = median(&prog) - median(&noop);
            if !packet.starts_with("dns") {
                not_dns = not_dns.max(over);
            }
            t.row(&[
                program.to_string(),
                packet.to_string(),
                format!("{:.0} ({})", median(&noop), spread(&noop, 0)),
                format!("{:.0} ({})", median(&prog), spread(&prog, 0)),
                format!("{over:+.1} ns"),
            ]);
        }
    }
    (t, not_dns)
}

#[derive(Default)]
struct Rates {
    samples: Vec<serde_json::Value>,
    none: Vec<f64>,
    noop: Vec<f64>,
    noop_tc: Vec<f64>,
    guardian: Vec<f64>,
}

impl Rates {
    fn tc_hook_ns(&self) -> Option<f64> {
        if self.noop.is_empty() || self.noop_tc.is_empty() {
            return None;
        }
        Some(1e9 / median(&self.noop_tc) - 1e9 / median(&self.noop))
    }

    fn guardian_over_noop_ns(&self) -> Option<f64> {
        if self.noop.is_empty() || self.guardian.is_empty() {
            return None;
        }
        Some(1e9 / median(&self.guardian) - 1e9 / median(&self.noop))
    }
}

fn packet_rates(ctx: &Ctx, object: &std::path::Path) -> Result<(Table, Rates)> {
    let a = Netns::new("bench-xdp-a");
    let b = Netns::new("bench-xdp-b");
    let v = pair(&a, &b, SUBNET);
    let (rounds, secs) = if ctx.quick { (1, 2.0) } else { (3, 3.0) };
    let mut rates = Rates::default();
    for round in 0..rounds {
        for config in ["none", "xdp_noop", "noop_tc", "guardian"] {
            // The attachment lives exactly as long as this guard.
            let held: Box<dyn std::any::Any> = match config {
                "none" => Box::new(()),
                "xdp_noop" => Box::new(Held::attach(ctx, &b, object, NOOP, &v.b_if)?),
                "noop_tc" => Box::new((
                    Held::attach(ctx, &b, object, NOOP, &v.b_if)?,
                    Held::attach(ctx, &b, object, TC_NOOP, &v.b_if)?,
                )),
                _ => Box::new(Guardian::start(&ctx.guardian, &b, &["--xdp", &v.b_if])?),
            };
            // Let the daemon finish its start-up work before measuring.
            std::thread::sleep(Duration::from_secs(1));
            let before = rx_packets(&b, &v.b_if)?;
            let blast = blast(ctx, &a, &v, secs)?;
            let after = rx_packets(&b, &v.b_if)?;
            drop(held);
            let pps = (after - before) as f64 / blast.secs;
            eprintln!(
                "  round {round} {config:>9}: {:.0} kpps received ({} sent, {} received)",
                pps / 1e3,
                blast.sent,
                after - before
            );
            rates
                .samples
                .push(json!({"round": round, "config": config, "sent": blast.sent,
                "received": after - before, "secs": blast.secs, "pps": pps}));
            match config {
                "none" => rates.none.push(pps),
                "xdp_noop" => rates.noop.push(pps),
                "noop_tc" => rates.noop_tc.push(pps),
                _ => rates.guardian.push(pps),
            }
        }
    }
    let mut t = Table::new(
        &format!(
            "Packet rate through a veth pair: 60-byte UDP frames from an AF_PACKET blaster, \
             {rounds} × {secs:.0} s per configuration, interleaved"
        ),
        &[
            "receiving end of the veth",
            "median kpps (spread)",
            "ns/packet",
            "vs no-op",
        ],
    );
    let noop_ns = 1e9 / median(&rates.noop);
    for (label, xs) in [
        ("no XDP program", &rates.none),
        ("xdp_noop (baseline)", &rates.noop),
        ("xdp_noop + tc_noop at tcx ingress", &rates.noop_tc),
        ("guardian run --xdp (XDP + tcx)", &rates.guardian),
    ] {
        let kpps: Vec<f64> = xs.iter().map(|p| p / 1e3).collect();
        let ns = 1e9 / median(xs);
        t.row(&[
            label.to_string(),
            format!("{:.0} ({})", median(&kpps), spread(&kpps, 0)),
            format!("{ns:.0}"),
            format!("{:+.1} ns", ns - noop_ns),
        ]);
    }
    Ok((t, rates))
}

fn blast(ctx: &Ctx, a: &Netns, v: &Veth, secs: f64) -> Result<Blast> {
    let mut c = a.command(ctx.xtask.to_str().context("non UTF-8 xtask path")?);
    c.args(["bench-helper", "blast", "--iface", &v.a_if, "--kind", "udp"])
        .args([
            "--max-packets",
            "100000000",
            "--max-secs",
            &secs.to_string(),
        ])
        .args(["--dst-mac", &mac_text(frames::OTHER_HOST_MAC)])
        .args([
            "--src",
            &v.a_addr.to_string(),
            "--dst",
            &v.b_addr.to_string(),
        ]);
    let out = crate::cmd::stdout(&mut c)?;
    serde_json::from_str(out.trim()).context("the blaster printed no JSON")
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Packets the interface received (`ip -s` stats64), read inside its namespace.
pub fn rx_packets(ns: &Netns, iface: &str) -> Result<u64> {
    let out = ns.output(&["ip", "-j", "-s", "link", "show", "dev", iface]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("ip -j -s link show dev {iface}"))?;
    v[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .with_context(|| format!("no rx packet count for {iface}"))
}

/// An `xtask bench-helper xdp-attach` process holding a program on an interface; dropping it
/// closes the helper's stdin, which detaches the program and ends the helper.
pub struct Held {
    child: std::process::Child,
}

impl Held {
    pub fn attach(
        ctx: &Ctx,
        ns: &Netns,
        object: &std::path::Path,
        program: &str,
        iface: &str,
    ) -> Result<Held> {
        let mut c = ns.command(ctx.xtask.to_str().context("non UTF-8 xtask path")?);
        c.args([
            "bench-helper",
            "xdp-attach",
            "--program",
            program,
            "--iface",
            iface,
        ])
        .arg("--object")
        .arg(object)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
        let mut child = c.spawn().context("starting xdp-attach")?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("no stdout")?;
        BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "attached" {
            let _ = child.kill();
            let _ = child.wait();
            bail!("could not attach {program} to {iface}");
        }
        Ok(Held { child })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
