//! Command line.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::output::Mode;

#[derive(Debug, Parser)]
#[command(
    name = "guardian",
    version,
    about = "Watches the kernel's network stack through eBPF and heals layer 2-4 faults",
    after_help = "Examples:\n  guardian run --xdp eth0 --keep-up eth0            # observe only (default)\n  guardian run --keep-up eth0 --mode enforce --events /var/log/guardian.ndjson"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the probes, watch, detect and (in enforce mode) heal; NDJSON events on stdout.
    Run(RunArgs),
    /// Check whether guardian can run here: kernel, BTF, tracefs, capabilities, the
    /// tracepoint fields and structure members it reads, program types, XDP conflicts.
    /// Exits 1 when a required check fails.
    Doctor {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also check that this interface is free for guardian's XDP program (repeatable).
        #[arg(long = "xdp", value_name = "IFACE")]
        xdp: Vec<String>,
    },
    /// Run the detectors over a file written by `run --record` and print the fault events
    /// they would have emitted (deterministic: same file, same output).
    Replay {
        /// The record file.
        file: PathBuf,
    },
    /// Revert changes guardian made, as recorded in its journal (the daemon must be stopped).
    #[command(
        after_help = "Examples:\n  guardian rollback 187a3f0c2b9d4e10-0001\n  guardian rollback --all --state-dir /var/lib/guardian"
    )]
    Rollback {
        /// The change's id (`rollback_id` in remedy events).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Revert every change that is still in place, newest first.
        #[arg(long)]
        all: bool,
        /// Where the journal lives.
        #[arg(long, default_value = "/var/lib/guardian", value_name = "DIR")]
        state_dir: PathBuf,
    },
    /// Fault lab: inject every fault in namespaces it creates, measure detection and heal.
    Lab(crate::lab::LabArgs),
    /// Print the version.
    Version,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Append events to this file instead of writing them to stdout.
    #[arg(long, value_name = "PATH")]
    pub events: Option<PathBuf>,
    /// Attach the XDP counters to this interface (repeatable).
    #[arg(long = "xdp", value_name = "IFACE")]
    pub xdp: Vec<String>,
    /// Keep this interface up: a link_down on it is healed with link_up (repeatable).
    #[arg(long = "keep-up", value_name = "IFACE")]
    pub keep_up: Vec<String>,
    /// observe: detect and plan, change nothing. enforce: apply, verify, roll back.
    #[arg(long, value_enum, default_value_t = Mode::Observe)]
    pub mode: Mode,
    /// Milliseconds between counters events.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub interval_ms: u64,
    /// Where the write-ahead journal lives.
    #[arg(long, default_value = "/var/lib/guardian", value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Host name written in every event (default: the system's).
    #[arg(long)]
    pub host: Option<String>,
    /// Configuration file (TOML): `[detect.<fault>]`, `[remedies]` (modes and one table
    /// per remedy) and `[safety]`. Unset keys keep their defaults.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Detector thresholds only (TOML; one table per fault at top level, e.g. `[syn_flood]`);
    /// replaces the config file's `[detect]`.
    #[arg(long, value_name = "PATH")]
    pub detect_config: Option<PathBuf>,
    /// Also write every detector input to this file, for `guardian replay`.
    #[arg(long, value_name = "PATH")]
    pub record: Option<PathBuf>,
    /// Milliseconds a remedy has to verify before it is rolled back.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub verify_timeout_ms: u64,
}
