//! `cargo xtask bench-helper ...`: the pieces of the benchmarks that must run as their own
//! process inside a namespace (`nsenter --net=... xtask bench-helper ...`). Hidden from help.
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};

use super::{blast, frames, xdp_prog};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Udp,
    Syn,
}

#[derive(Debug, Subcommand)]
pub enum Helper {
    /// Time xdp_noop and guardian_xdp with BPF_PROG_TEST_RUN; JSON on stdout
    XdpTestRun {
        #[arg(long)]
        object: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        repeat: u32,
        #[arg(long, default_value_t = 5)]
        rounds: u32,
    },
    /// Attach an XDP program from the object to IFACE until stdin closes
    XdpAttach {
        #[arg(long)]
        object: PathBuf,
        #[arg(long)]
        program: String,
        #[arg(long)]
        iface: String,
        #[arg(long, default_value_t = 120)]
        max_secs: u64,
    },
    /// Hold SOCKETS loopback sockets in each namespace file given until stdin closes (at most
    /// MAX_SECS); prints `ready` once they are open
    ScaleHold {
        #[arg(long)]
        netns: Vec<PathBuf>,
        #[arg(long)]
        sockets: usize,
        #[arg(long, default_value_t = 600)]
        max_secs: u64,
    },
    /// The `http` benchmark's syscall loops once each (file read+write, TCP ping-pong, HTTP
    /// ping-pong), ns per operation as JSON on stdout: for A/B runs against other builds
    Loops {
        #[arg(long, default_value_t = 300_000)]
        file_ops: u64,
        #[arg(long, default_value_t = 30_000)]
        trips: u64,
        #[arg(long, default_value_t = 30_000)]
        requests: u64,
    },
    /// Send frames out of IFACE with AF_PACKET; JSON on stdout
    Blast {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        dst_mac: String,
        #[arg(long)]
        src: Ipv4Addr,
        #[arg(long)]
        dst: Ipv4Addr,
        #[arg(long, value_enum, default_value_t = Kind::Udp)]
        kind: Kind,
        #[arg(long)]
        max_packets: u64,
        #[arg(long)]
        max_secs: f64,
    },
}

pub fn run(helper: Helper) -> Result<ExitCode> {
    match helper {
        Helper::Loops {
            file_ops,
            trips,
            requests,
        } => {
            use super::http_sys::{file_rw, http_pingpong, tcp_pingpong};
            let (f, t, h) = (
                file_rw(file_ops)?,
                tcp_pingpong(trips)?,
                http_pingpong(requests)?,
            );
            println!(
                "{}",
                serde_json::json!({"file_rw_ns": f, "tcp_round_trip_ns": t, "http_request_ns": h})
            );
        }
        Helper::XdpTestRun {
            object,
            repeat,
            rounds,
        } => xdp_prog::test_run_all(&object, repeat, rounds)?,
        Helper::XdpAttach {
            object,
            program,
            iface,
            max_secs,
        } => xdp_prog::attach_and_hold(&object, &program, &iface, Duration::from_secs(max_secs))?,
        Helper::ScaleHold {
            netns,
            sockets,
            max_secs,
        } => super::scale_load::hold_until_stdin_closes(&netns, sockets, max_secs)?,
        Helper::Blast {
            iface,
            dst_mac,
            src,
            dst,
            kind,
            max_packets,
            max_secs,
        } => {
            let mac = frames::parse_mac(&dst_mac).context("--dst-mac is not a MAC address")?;
            let frame = match kind {
                Kind::Udp => frames::udp(mac, src, dst, 9),
                Kind::Syn => frames::syn(mac, src, dst, 8080),
            };
            let max = Duration::from_secs_f64(max_secs.clamp(0.1, 120.0));
            let b = blast::blast(&iface, &frame, max_packets, max)?;
            println!("{}", serde_json::to_string(&b)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
