//! `guardian-lab`: builds small topologies of network namespaces (`glab-*`, always removed),
//! runs the real daemon (the `guardian` binary) in one of them in enforce mode, injects each
//! fault of the catalogue with the lab's own eBPF programs or `ip`, and measures detection
//! latency and time to a verified heal. Prints a table per fault, writes every run as JSON and
//! an SVG chart of MTTR.
//!
//! - `topology`: namespaces and veths (the shared guardian-testbed harness, `glab-` names).
//! - `daemon`: the lab daemon (`guardian run` in a namespace) and its events.
//! - `inject`: the eBPF injectors (loss, ICMP suppression, delay, a no-op XDP).
//! - `scenario`: one file per fault.
//! - `runner`: one run of one scenario, the measured numbers.
//! - `report` / `chart`: table, JSON, SVG.
//! - `lock`: one lab at a time.
//!
//! The binary (main.rs) parses [`LabArgs`] and calls [`run`].
use std::path::PathBuf;
use std::process::ExitCode;

pub mod chart;
pub mod daemon;
pub mod inject;
pub mod lock;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod topology;

/// The variable that names the guardian binary the lab runs (when `--guardian` is not given).
const BIN_ENV: &str = "GUARDIAN_BIN";

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "guardian-lab",
    version,
    about = "Fault lab: inject every fault in namespaces it creates, run guardian there, \
             measure detection and heal",
    after_help = "The daemon run is --guardian PATH, else $GUARDIAN_BIN, else the `guardian` \
                  next to this program.\n\nExamples:\n  guardian-lab                      \
                  # every scenario, 5 runs each\n  guardian-lab link_down route_lost --runs 1 \
                  --json lab.json --svg mttr.svg\n  guardian-lab --list"
)]
pub struct LabArgs {
    /// Scenarios to run (fault names; default: all). See --list.
    #[arg(value_name = "SCENARIO")]
    pub scenarios: Vec<String>,
    /// Runs per scenario.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Write every run's numbers to this file (JSON).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Render the MTTR chart to this file (SVG).
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
    /// The guardian binary to run as the lab daemon (default: $GUARDIAN_BIN, else `guardian`
    /// in this program's directory).
    #[arg(long, value_name = "PATH")]
    pub guardian: Option<PathBuf>,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Topo(#[from] topology::TopoError),
    #[error(transparent)]
    Daemon(#[from] daemon::DaemonError),
    #[error(transparent)]
    Inject(#[from] inject::InjectError),
    #[error("end state: {0}")]
    EndState(String),
    #[error("{0}")]
    Other(String),
}

/// The guardian binary the lab runs: `--guardian`, else `$GUARDIAN_BIN`, else `guardian` in
/// the directory of this program (where `cargo build` puts both).
fn guardian_bin(flag: Option<PathBuf>) -> Result<PathBuf, String> {
    let bin = match flag.or_else(|| std::env::var_os(BIN_ENV).map(PathBuf::from)) {
        Some(p) => p,
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this program's path: {e}."))?
            .with_file_name("guardian"),
    };
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "the guardian binary {} does not exist: build it (`cargo build --release`) or name \
             it with --guardian PATH or {BIN_ENV}.",
            bin.display()
        ))
    }
}

/// The lab. Exit codes: 0 every run healed (or, for detection-only faults, was detected), 1
/// some run did not, 2 unknown scenario, 66 no guardian binary, 73 cannot write an output, 75
/// another lab runs, 77 not root.
pub fn run(args: LabArgs) -> ExitCode {
    if args.list {
        for s in scenario::ALL {
            println!(
                "{:<26} {:<20} {}",
                s.fault,
                s.remedy.unwrap_or("(detection only)"),
                s.about
            );
        }
        return ExitCode::SUCCESS;
    }
    let mut specs = Vec::new();
    for name in &args.scenarios {
        match scenario::find(name) {
            Some(s) => specs.push(s),
            None => {
                eprintln!(
                    "guardian-lab: no scenario named {name:?} (`guardian-lab --list` lists them)."
                );
                return ExitCode::from(2);
            }
        }
    }
    if specs.is_empty() {
        specs = scenario::ALL.iter().collect();
    }
    let bin = match guardian_bin(args.guardian.clone()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("guardian-lab: {e}");
            return ExitCode::from(66); // EX_NOINPUT
        }
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "guardian-lab: the lab creates network namespaces and loads eBPF programs: run it \
             as root."
        );
        return ExitCode::from(77);
    }
    // One lab at a time: the lab owns every `glab-*` namespace and sweeps stale ones, so a
    // second run would delete the first one's.
    let _lock = match lock::take() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("guardian-lab: {e}");
            return ExitCode::from(75); // EX_TEMPFAIL
        }
    };
    for name in topology::sweep_stale() {
        tracing::warn!("removed a stale lab namespace {name}");
    }
    let started = std::time::Instant::now();
    let results = runner::run_all(&bin, &specs, args.runs);
    let wall = started.elapsed();
    let summary = report::summarize(&specs, &results);
    print!("{}", report::table(&summary));
    println!("{} runs in {:.1} s", results.len(), wall.as_secs_f64());
    let mut code = if results.iter().all(|r| r.ok()) { 0 } else { 1 };
    if let Some(p) = &args.json {
        let doc = report::json(&results, &summary, args.runs, wall);
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        if let Err(e) = std::fs::write(p, text + "\n") {
            eprintln!("guardian-lab: cannot write {}: {e}.", p.display());
            code = 73;
        }
    }
    if let Some(p) = &args.svg {
        if let Err(e) = std::fs::write(p, chart::svg(&summary)) {
            eprintln!("guardian-lab: cannot write {}: {e}.", p.display());
            code = 73;
        }
    }
    let left = topology::existing();
    if !left.is_empty() {
        eprintln!(
            "guardian-lab: lab namespaces were left behind: {}.",
            left.join(", ")
        );
        code = 1;
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guardian_binary_is_the_flag_or_must_exist() {
        let here = std::env::current_exe().unwrap();
        assert_eq!(guardian_bin(Some(here.clone())), Ok(here));
        let err = guardian_bin(Some("/nonexistent/guardian".into())).unwrap_err();
        assert!(err.contains("/nonexistent/guardian"), "{err}");
    }

    #[test]
    fn the_command_line_parses() {
        use clap::{CommandFactory, Parser};
        LabArgs::command().debug_assert();
        let a = LabArgs::try_parse_from(["guardian-lab", "link_down", "--runs", "1"]).unwrap();
        assert_eq!(a.scenarios, ["link_down"]);
        assert_eq!(a.runs, 1);
        assert!(LabArgs::try_parse_from(["guardian-lab", "--runs", "0"]).is_err());
    }
}
