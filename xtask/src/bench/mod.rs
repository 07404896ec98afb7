//! `cargo xtask bench [NAME]... [--quick] [--doc]`: guardian's benchmarks.
//!
//! Each benchmark measures its baseline in the same run and reports a ratio against it, with
//! the command line and the machine's facts; results are merged into
//! `target/bench/results.json`, from which the tables of docs/benchmarks.md and the README's
//! headline figures are regenerated (never typed by hand). All traffic stays inside network
//! namespaces the benchmark creates (and always removes), in 10.77.200.0/24–10.77.219.0/24.
mod blast;
mod churn;
mod daemon;
mod decode;
mod doc;
mod facts;
mod footprint;
mod frames;
pub mod helper;
mod http;
mod http_attr;
mod http_load;
mod http_report;
mod http_share;
mod http_sys;
mod overload;
mod peers;
mod perf_share;
mod probe;
mod report;
mod scale;
mod scale_load;
mod stats;
mod xdp;
mod xdp_prog;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use clap::Args;

use crate::{run, setup};
use report::{Measured, Outcome, Results};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Benchmarks to run (default: all): xdp, probe, decode, overload, peers, footprint, scale,
    /// http, http-share
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Shorter runs (about 2 minutes in all) for a quick look; noisier
    #[arg(long)]
    pub quick: bool,
    /// With `scale`: also create and delete one namespace per second for 60 s and report the
    /// daemon's memory, descriptors and threads before and after
    #[arg(long)]
    pub churn: bool,
    /// Only regenerate docs/benchmarks.md and the README's numbers from results.json
    #[arg(long)]
    pub doc: bool,
}

/// What every benchmark gets.
pub struct Ctx {
    pub quick: bool,
    /// `scale --churn`.
    pub churn: bool,
    /// target/release/guardian, freshly built.
    pub guardian: PathBuf,
    /// This xtask binary, for the helpers that run inside namespaces.
    pub xtask: PathBuf,
}

type BenchFn = fn(&Ctx) -> Result<Measured>;

const BENCHES: &[(&str, &str, BenchFn)] = &[
    ("xdp", "XDP cost per packet", xdp::run),
    ("probe", "TCP throughput with guardian attached", probe::run),
    (
        "decode",
        "ring buffer records decoded per second",
        decode::run,
    ),
    (
        "overload",
        "event storm: losses, responsiveness, memory",
        overload::run,
    ),
    (
        "peers",
        "guardian vs bpftrace and libbpf-tools on one workload",
        peers::run,
    ),
    ("footprint", "idle RSS and CPU", footprint::run),
    (
        "scale",
        "CPU and RSS with 1 to 500 namespaces and 10 000 sockets",
        scale::run,
    ),
    (
        "http",
        "nginx requests/s and CPU per request with guardian --http",
        http::run,
    ),
    (
        "http-share",
        "the share of the CPU guardian --http takes under nginx's load, one run at a time",
        http_share::run,
    ),
];

pub fn bench(args: BenchArgs) -> Result<ExitCode> {
    for n in &args.names {
        if !BENCHES.iter().any(|(name, ..)| name == n) {
            let known: Vec<&str> = BENCHES.iter().map(|(n, ..)| *n).collect();
            bail!("unknown benchmark `{n}`: choose from {}", known.join(", "));
        }
    }
    let path = report::results_path()?;
    let mut results = Results::load(&path)?;
    if args.doc {
        return write_docs(&results).map(|_| ExitCode::SUCCESS);
    }
    setup::setup()?;
    // BENCH_GUARDIAN=PATH: measure that build of the daemon (an older one, say) and skip the
    // build.
    let guardian = match std::env::var_os("BENCH_GUARDIAN") {
        Some(p) => PathBuf::from(p),
        None => run::build_guardian()?,
    };
    let ctx = Ctx {
        quick: args.quick,
        churn: args.churn,
        guardian,
        xtask: std::env::current_exe()?,
    };
    let quick = if args.quick { " --quick" } else { "" };
    eprintln!("==> machine: {}", facts::Machine::read().summary());
    let mut failed = Vec::new();
    for (name, title, f) in BENCHES {
        if !args.names.is_empty() && !args.names.iter().any(|n| n == name) {
            continue;
        }
        let churn = if args.churn && *name == "scale" {
            " --churn"
        } else {
            ""
        };
        let command = format!("cargo xtask bench {name}{quick}{churn}");
        let machine = facts::Machine::read();
        eprintln!(
            "\n==> bench {name} ({title}): {command}\n    {}",
            machine.summary()
        );
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| f(&ctx)))
            .unwrap_or_else(|p| Err(anyhow::anyhow!("{}", panic_message(&p))));
        match result {
            Ok(m) => {
                let o = Outcome {
                    name: name.to_string(),
                    command,
                    quick: args.quick,
                    machine,
                    finished_unix: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    duration_s: start.elapsed().as_secs_f64(),
                    tables: m.tables,
                    headline: m.headline,
                    goals: m.goals,
                    notes: m.notes,
                    raw: m.raw,
                };
                o.print();
                results.benches.insert(name.to_string(), o);
                results.save(&path)?;
            }
            Err(e) => {
                eprintln!("error: benchmark {name} failed: {e:#}");
                failed.push(*name);
            }
        }
    }
    eprintln!("\nresults: {}", path.display());
    write_docs(&results)?;
    if !failed.is_empty() {
        bail!(
            "{} benchmark(s) failed: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn write_docs(results: &Results) -> Result<()> {
    let missing = doc::regenerate(results)?;
    if !missing.is_empty() {
        eprintln!(
            "note: no results yet for {} (their doc blocks were left as they were)",
            missing.join(", ")
        );
    }
    Ok(())
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
}
