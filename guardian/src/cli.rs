//! Command line.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, Overrides};
use crate::model::Mode;

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
    /// One guardian per network namespace, observe or enforce: a second one exits 75.
    #[command(
        after_help = "Exit codes: 0 stopped, 2 usage, 77 not root, 78 configuration, 75 another guardian already runs in this network namespace (its pid is named; lock /run/guardian/netns-<inode>.lock), 65 unreadable journal, 1 runtime failure."
    )]
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
        /// The config file `run` would read (default /etc/guardian/guardian.toml and its
        /// drop-ins): checked for errors and for group- or world-writable paths.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run the detectors over a file written by `run --record` and print the fault events
    /// they would have emitted (deterministic: same file, same output).
    Replay {
        /// The record file.
        file: PathBuf,
    },
    /// Revert changes guardian made, as recorded in its journal: through the running daemon
    /// when it answers on the control socket and keeps this state directory, otherwise
    /// directly (the daemon must then be stopped).
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
        #[command(flatten)]
        socket: SocketArg,
    },
    /// One screen: health per layer, mode, open incidents, active mitigations with their TTL,
    /// budgets left, success rates (from the running daemon).
    #[command(after_help = "Examples:\n  guardian status\n  guardian status --json | jq .health")]
    Status {
        /// Print the daemon's JSON answer.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Recent remedy actions (from the journal; readable with the daemon stopped) and recent
    /// incidents (from the running daemon).
    #[command(
        after_help = "Examples:\n  guardian history --limit 20\n  guardian history --since 2h --json"
    )]
    History {
        /// At most this many changes and incidents.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Only the last DURATION: 90, 30s, 15m, 2h, 1d.
        #[arg(long, value_name = "DURATION", value_parser = crate::control::history::parse_duration)]
        since: Option<std::time::Duration>,
        #[arg(long)]
        json: bool,
        /// Where the journal lives (read directly when no daemon answers).
        #[arg(long, default_value = "/var/lib/guardian", value_name = "DIR")]
        state_dir: PathBuf,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Counts of events by type and fault, remedy results, success rates, losses.
    #[command(after_help = "Example:\n  guardian stats --json")]
    Stats {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Switch the running daemon: observe | enforce (in memory, until restart), pause |
    /// resume (the pause file in the state directory: survives restarts).
    #[command(
        after_help = "Examples:\n  guardian mode enforce\n  guardian mode pause    # enforce mode only plans until resume"
    )]
    Mode {
        #[arg(value_enum)]
        mode: crate::control::protocol::ModeChange,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Heal an open incident now, even in observe mode (every safety rule, the journal and
    /// verification still apply). SUBJECT as `guardian status` prints it.
    #[command(
        after_help = "Examples:\n  guardian heal link_down eth1\n  guardian heal route_lost 10.9.0.0/24"
    )]
    Heal {
        /// The fault, e.g. link_down.
        fault: String,
        /// Its subject: interface, route prefix, addr:port.
        subject: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// The protected routes (`show`), or adopt the kernel's routes as the ones to protect
    /// (`accept`): a route deleted on purpose stops being reported, a route added since start
    /// is protected from now on. PREFIX limits either to one destination.
    #[command(
        after_help = "Examples:\n  guardian baseline show\n  guardian baseline accept 10.9.0.0/24\n  guardian baseline accept"
    )]
    Baseline {
        /// show or accept.
        action: BaselineAction,
        /// Only routes to this destination (10.9.0.0/24, fd00::/64, default).
        prefix: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Print the live event stream (NDJSON), filtered by the daemon.
    #[command(
        after_help = "Examples:\n  guardian events --follow --type fault --type remedy\n  guardian events --follow --fault syn_flood --severity warning"
    )]
    Events {
        /// Keep following (the only mode: the stream is live).
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only events of this type (repeatable): lifecycle, counters, observation, fault, remedy, loss.
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
        /// Only fault and remedy events of this fault (repeatable).
        #[arg(long = "fault", value_name = "FAULT")]
        faults: Vec<String>,
        /// Only fault events of this severity or worse: critical, error, warning, notice, info.
        #[arg(long, value_name = "SEVERITY")]
        severity: Option<String>,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Diagnose this host's network now, without the daemon: interfaces, routes, listeners,
    /// port usage, TIME_WAIT, the ephemeral range, sysctls. Exits 1 when something is bad.
    #[command(
        after_help = "Examples:\n  guardian scan\n  nsenter --net=/run/netns/web guardian scan --json"
    )]
    Scan {
        #[arg(long)]
        json: bool,
    },
    /// Check the config files without root (`config check [FILE]`: exit 0 and one line, or
    /// `run`'s sentence and exit 78), or print the effective config with every default
    /// (`config dump [FILE]`).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the version.
    Version,
    /// Print a completion script for SHELL on stdout (the package installs bash, zsh and fish).
    #[command(hide = true)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout (the package installs it as guardian.1).
    #[command(hide = true)]
    Manpage,
}

/// The config subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate the whole file and its drop-ins (syntax, unknown keys, types, ranges) with
    /// the sentences and exit code (78) of `guardian run`; exit 0 and one line when valid.
    /// Needs no privileges.
    #[command(
        after_help = "Examples:\n  guardian config check\n  guardian config check ./guardian.toml && install -m 0644 ./guardian.toml /etc/guardian/"
    )]
    Check {
        /// The main file (default /etc/guardian/guardian.toml; missing default: the defaults).
        file: Option<std::path::PathBuf>,
    },
    /// Print the effective config (the files merged, every default filled in) as TOML.
    #[command(after_help = "Example:\n  guardian config dump > effective.toml")]
    Dump {
        /// The main file (default /etc/guardian/guardian.toml).
        file: Option<std::path::PathBuf>,
    },
}

/// `--socket PATH` of the client subcommands.
#[derive(Debug, Clone, clap::Args)]
pub struct SocketArg {
    /// The daemon's control socket.
    #[arg(long = "socket", default_value = crate::control::DEFAULT_SOCKET, value_name = "PATH")]
    pub path: PathBuf,
}

/// `guardian run` flags. Those that also exist in the config file (`[daemon]`, `[sinks]`,
/// `[log]`, `[interfaces]`) are options here so that only a flag actually given overrides the
/// file; the effective values are in [`crate::config::Config`] (see [`RunArgs::overrides`]).
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Append events to this file (`[sinks] file`; rotated by size, reopened on SIGUSR1)
    /// instead of writing them to stdout.
    #[arg(long, value_name = "PATH")]
    pub events: Option<PathBuf>,
    /// Attach the XDP counters to this interface (repeatable; adds to `[interfaces] xdp`).
    #[arg(long = "xdp", value_name = "IFACE")]
    pub xdp: Vec<String>,
    /// Keep this interface up: a link_down on it is healed with link_up (repeatable; adds to
    /// `[interfaces] keep_up`).
    #[arg(long = "keep-up", value_name = "IFACE")]
    pub keep_up: Vec<String>,
    /// observe: detect and plan, change nothing. enforce: apply, verify, roll back
    /// (`[daemon] mode`, default observe).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Milliseconds between counters events (`[daemon] interval_ms`, default 1000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub interval_ms: Option<u64>,
    /// Where the write-ahead journal lives (`[daemon] state_dir`, default /var/lib/guardian).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Host name written in every event (`[daemon] host`; default: the system's).
    #[arg(long)]
    pub host: Option<String>,
    /// Configuration file (TOML; default /etc/guardian/guardian.toml, which may be missing).
    /// Drop-ins: `<dir>/<name>.d/*.toml` beside it (default /etc/guardian/guardian.d/), merged
    /// in name order. See docs/operations.md for every key.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Detector thresholds only (TOML; one table per fault at top level, e.g. `[syn_flood]`);
    /// replaces the config file's `[detect]`.
    #[arg(long, value_name = "PATH")]
    pub detect_config: Option<PathBuf>,
    /// Also write every detector input to this file, for `guardian replay`.
    #[arg(long, value_name = "PATH")]
    pub record: Option<PathBuf>,
    /// Milliseconds a remedy has to verify before it is rolled back (`[daemon]
    /// verify_timeout_ms`, default 2000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub verify_timeout_ms: Option<u64>,
    /// Log format on stderr (`[log] format`): human or json. `GUARDIAN_LOG` sets the filter.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// The control socket (default /run/guardian/guardian.sock; when another guardian already
    /// answers there, this one runs without a socket unless the path was given explicitly).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Count HTTP/1.x responses by status per service: plaintext from every socket's packets
    /// (cgroup programs), TLS through OpenSSL uprobes and the socket tracepoints (Linux 6.3+;
    /// before, a program on every syscall's exit). Off by default.
    #[arg(long)]
    pub http: bool,
    /// With --http, plaintext only: no OpenSSL uprobes, and no program on the socket I/O or
    /// the syscalls.
    #[arg(long, requires = "http")]
    pub http_no_tls: bool,
}

impl RunArgs {
    /// The flags that override the config files.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            mode: self.mode,
            interval_ms: self.interval_ms,
            verify_timeout_ms: self.verify_timeout_ms,
            state_dir: self.state_dir.clone(),
            host: self.host.clone(),
            events: self.events.clone(),
            log_format: self.log_format,
            xdp: self.xdp.clone(),
            keep_up: self.keep_up.clone(),
        }
    }
}

/// `guardian baseline` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BaselineAction {
    /// List the protected routes and whether each is in the kernel's table now.
    Show,
    /// Adopt the kernel's table: absent routes are protected no more, new ones are.
    Accept,
}
