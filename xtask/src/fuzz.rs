//! `cargo xtask fuzz`: runs every fuzz target (fuzz/fuzz_targets) for a fixed number of
//! executions with libFuzzer (cargo-fuzz, on the pinned nightly) and reports executions and
//! crashes. Seeds are committed in fuzz/corpus/<target>; what libFuzzer learns goes to
//! target/fuzz-corpus/<target> so the committed seeds stay as they are.
use std::process::Stdio;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::{cmd, setup};

/// cargo-fuzz, installed from crates.io when missing.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Every target, with extra read-only seed directories (read recursively: the fault folders
/// hold the replay fixtures) and its libFuzzer `-max_len`.
const TARGETS: &[(&str, &[&str], usize)] = &[
    ("config", &[], 4096),
    ("ringbuf_record", &[], 256),
    ("replay", &["guardian/src/faults"], 16384),
    ("control_request", &[], 4096),
];

#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// Targets to run (default: all).
    targets: Vec<String>,
    /// Executions per target.
    #[arg(long, default_value_t = 1_000_000)]
    runs: u64,
}

pub fn fuzz(args: FuzzArgs) -> Result<std::process::ExitCode> {
    let toolchain = setup::setup()?;
    ensure_cargo_fuzz()?;
    let root = cmd::repo_root()?;
    let known: Vec<&str> = TARGETS
        .iter()
        .map(|t| t.0)
        .filter(|t| {
            root.join("fuzz/fuzz_targets")
                .join(format!("{t}.rs"))
                .exists()
        })
        .collect();
    for t in &args.targets {
        if !known.contains(&t.as_str()) {
            bail!(
                "unknown fuzz target {t:?}; expected one of {}",
                known.join(", ")
            );
        }
    }
    let mut summary = Vec::new();
    for (name, extra, max_len) in TARGETS {
        if !known.contains(name)
            || !(args.targets.is_empty() || args.targets.iter().any(|t| t == name))
        {
            continue;
        }
        let work = root.join("target/fuzz-corpus").join(name);
        std::fs::create_dir_all(&work)?;
        // `rustup run`: `$CARGO` is the stable cargo that started xtask, which has no `+toolchain`.
        let mut c = cmd::new("rustup", ["run", &toolchain, "cargo", "fuzz", "run"]);
        c.current_dir(&root)
            .env("AYA_BUILD_SKIP", "1")
            .arg(name)
            .arg(&work)
            .arg(root.join("fuzz/corpus").join(name));
        for e in *extra {
            c.arg(root.join(e));
        }
        c.args([
            "--".to_string(),
            format!("-runs={}", args.runs),
            format!("-max_len={max_len}"),
            "-timeout=10".into(),
            "-rss_limit_mb=2048".into(),
            "-print_final_stats=1".into(),
        ]);
        eprintln!("fuzz: {}", cmd::display(&c));
        let start = Instant::now();
        let out = c
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running {}", cmd::display(&c)))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let execs = stat(&log, "stat::number_of_executed_units:");
        let ok = out.status.success();
        if !ok {
            eprintln!("{log}");
            if !log.contains("Test unit written to") {
                bail!(
                    "`{}` failed without a crash report ({})",
                    cmd::display(&c),
                    out.status
                );
            }
        }
        summary.push((name.to_string(), execs, ok, start.elapsed()));
    }
    println!(
        "{:<16} {:>12} {:>9} {:>8}",
        "target", "executions", "crashes", "time"
    );
    for (name, execs, ok, took) in &summary {
        let execs = execs.map_or("?".into(), |e| e.to_string());
        println!(
            "{name:<16} {execs:>12} {:>9} {:>8}",
            if *ok { 0 } else { 1 },
            cmd::secs(*took)
        );
    }
    if summary.iter().any(|s| !s.2) {
        bail!("a fuzz target crashed: the input is under fuzz/artifacts/<target>/");
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// A `stat::name: value` line of libFuzzer's final statistics.
fn stat(log: &str, key: &str) -> Option<u64> {
    log.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
}

fn ensure_cargo_fuzz() -> Result<()> {
    if cmd::which("cargo-fuzz").is_some() {
        return Ok(());
    }
    eprintln!("installing: cargo-fuzz {CARGO_FUZZ_VERSION} ...");
    cmd::run(&mut cmd::cargo([
        "install",
        "--locked",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_libfuzzer_final_stats() {
        let log = "#1000000\tDONE   cov: 812 ft: 2201 corp: 190/9Kb\n\
                   stat::number_of_executed_units: 1000000\nstat::average_exec_per_sec:     86956\n";
        assert_eq!(
            super::stat(log, "stat::number_of_executed_units:"),
            Some(1_000_000)
        );
        assert_eq!(super::stat(log, "stat::peak_rss_mb:"), None);
    }
}
