//! `guardian lab`: builds small topologies of network namespaces (`glab-*`, always removed),
//! runs the real daemon in one of them in enforce mode, injects each fault of the catalogue
//! with the lab's own eBPF programs or `ip`, and measures detection latency and time to a
//! verified heal. Prints a table per fault, writes every run as JSON and an SVG chart of MTTR.
//!
//! - `topology`: namespaces and veths (guards).
//! - `daemon`: the lab daemon (this binary, `guardian run` in a namespace) and its events.
//! - `inject`: the eBPF injectors (loss, ICMP suppression, delay, a no-op XDP).
//! - `scenario`: one file per fault.
//! - `runner`: one run of one scenario, the measured numbers.
//! - `report` / `chart`: table, JSON, SVG.
use std::path::PathBuf;
use std::process::ExitCode;

pub mod chart;
pub mod daemon;
pub mod inject;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod topology;

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  guardian lab                      # every scenario, 5 runs each\n  guardian lab link_down route_lost --runs 1 --json lab.json --svg mttr.svg\n  guardian lab --list"
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

/// The `guardian lab` command. Exit codes: 0 every run healed (or, for detection-only faults,
/// was detected), 1 some run did not, 2 unknown scenario, 73 cannot write an output, 77 not
/// root.
pub fn main(args: LabArgs) -> ExitCode {
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
                    "guardian: no scenario named {name:?} (`guardian lab --list` lists them)."
                );
                return ExitCode::from(2);
            }
        }
    }
    if specs.is_empty() {
        specs = scenario::ALL.iter().collect();
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "guardian: the lab creates network namespaces and loads eBPF programs: run it as root."
        );
        return ExitCode::from(77);
    }
    // One lab at a time: the lab owns every `glab-*` namespace and sweeps stale ones, so a
    // second run would delete the first one's. The lock goes with the process (flock).
    let _lock = match lock() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("guardian: {e}");
            return ExitCode::from(75); // EX_TEMPFAIL
        }
    };
    for name in topology::sweep_stale() {
        tracing::warn!("removed a stale lab namespace {name}");
    }
    let started = std::time::Instant::now();
    let results = runner::run_all(&specs, args.runs);
    let wall = started.elapsed();
    let summary = report::summarize(&specs, &results);
    print!("{}", report::table(&summary));
    println!("{} runs in {:.1} s", results.len(), wall.as_secs_f64());
    let mut code = if results.iter().all(|r| r.ok()) { 0 } else { 1 };
    if let Some(p) = &args.json {
        let doc = report::json(&results, &summary, args.runs, wall);
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        if let Err(e) = std::fs::write(p, text + "\n") {
            eprintln!("guardian: cannot write {}: {e}.", p.display());
            code = 73;
        }
    }
    if let Some(p) = &args.svg {
        if let Err(e) = std::fs::write(p, chart::svg(&summary)) {
            eprintln!("guardian: cannot write {}: {e}.", p.display());
            code = 73;
        }
    }
    let left = topology::existing();
    if !left.is_empty() {
        eprintln!(
            "guardian: lab namespaces were left behind: {}.",
            left.join(", ")
        );
        code = 1;
    }
    ExitCode::from(code)
}

/// Where the one-lab-at-a-time lock lives.
const LOCK_PATH: &str = "/run/guardian-lab.lock";

/// Takes the lab lock, or says that another lab runs.
fn lock() -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_PATH)
        .map_err(|e| format!("cannot open the lab lock {LOCK_PATH}: {e}."))?;
    // SAFETY: flock on an fd we own; released when the file is closed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "another guardian lab is running (it holds {LOCK_PATH}); wait for it to finish."
        ));
    }
    Ok(f)
}
