//! `cargo xtask test`: setup, lint, build, unit tests and end-to-end tests.

use std::ffi::OsString;
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;

use crate::{cmd, kernel, run, setup};

/// Env var telling the end-to-end tests which guardian binary to run.
pub const BIN_ENV: &str = "GUARDIAN_BIN";
/// Env var telling the end-to-end tests which guardian-lab binary to run.
pub const LAB_BIN_ENV: &str = "GUARDIAN_LAB_BIN";
/// Env var telling the end-to-end tests where the event JSON schema is.
pub const SCHEMA_ENV: &str = "GUARDIAN_SCHEMA";
pub const SCHEMA_PATH: &str = "docs/schema/events.schema.json";

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Run only the unit tests: skip the release build and the end-to-end tests
    #[arg(long, conflicts_with = "e2e")]
    pub unit: bool,
    /// Run only the end-to-end tests: skip the unit tests
    #[arg(long)]
    pub e2e: bool,
    /// Skip the lint steps (cargo fmt --check and cargo clippy)
    #[arg(long)]
    pub no_lint: bool,
    /// Run the end-to-end tests (or the filter) inside a QEMU VM booted with Debian's kernel
    /// 6.1, 6.12 or 5.10, or each of them (`all`), instead of on this machine; only the
    /// release build runs on the host (docs/kernels.md)
    #[arg(long, value_name = "VERSION|all", conflicts_with = "unit")]
    pub kernel: Option<String>,
    /// Skip the end-to-end smoke subset inside a VM with Debian 12's kernel (6.1) that a full
    /// run does after the host's end-to-end tests
    #[arg(long)]
    pub no_vm: bool,
    /// With --kernel and no filter: which end-to-end tests the VM runs
    #[arg(long, value_enum, default_value_t = kernel::Suite::Kernel, requires = "kernel")]
    pub suite: kernel::Suite,
    /// With --kernel: how long one VM may run before it is killed
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub vm_timeout: u64,
    /// Test-name filter (and other libtest options) for the end-to-end runner, after `--`
    #[arg(last = true, value_name = "FILTER")]
    pub filter: Vec<OsString>,
}

pub fn test(args: TestArgs) -> Result<ExitCode> {
    if args.unit && !args.filter.is_empty() {
        bail!("a test-name filter applies to the end-to-end tests, which --unit skips");
    }
    let kernels = args.kernel.as_deref().map(kernel::labels).transpose()?;
    let start = Instant::now();
    setup::setup()?;
    let root = cmd::repo_root()?;
    let cargo = |args: &[&str]| {
        let mut c = cmd::cargo(args);
        c.current_dir(&root);
        c
    };
    // `cargo SUBCOMMAND [--release] <host packages> <test features> EXTRA...`: the same
    // packages and features in every step, so that guardian is compiled once (with its
    // test-only crash-point hook, which the crash-safety tests use).
    let host = |sub: &[&str], extra: &[&str]| {
        let mut c = cargo(sub);
        c.args(cmd::HOST_PACKAGES)
            .args(cmd::TEST_FEATURES)
            .args(extra);
        c
    };
    let mut steps = 0;

    if let Some(kernels) = kernels {
        step("build", host(&["build", "--release"], &[]))?;
        let bins = vm_binaries(host(
            &["test", "--release"],
            &["--test", "e2e", "--no-run", "--message-format=json"],
        ))?;
        let timeout = std::time::Duration::from_secs(args.vm_timeout);
        let filter = if args.filter.is_empty() {
            args.suite.filters()
        } else {
            args.filter.clone()
        };
        kernel::run(&kernels, &bins, &filter, timeout)?;
        eprintln!(
            "ok: the VM runs passed ({} including setup)",
            cmd::secs(start.elapsed())
        );
        return Ok(ExitCode::SUCCESS);
    }

    if !args.no_lint {
        step("fmt", cargo(&["fmt", "--all", "--", "--check"]))?;
        // Without the eBPF objects (AYA_BUILD_SKIP): the lints read the host code only, and
        // the build scripts would otherwise compile both eBPF crates, with `core`, once more
        // (48 s of a CI run). In the release profile: the proc macros and build scripts it
        // compiles (ring's C, syn, the derives) are the build step's too. No code here is
        // `cfg(debug_assertions)`, so the profile hides nothing from the lints.
        let mut clippy = host(
            &["clippy", "--release"],
            &["--all-targets", "--", "-D", "warnings"],
        );
        clippy.env("AYA_BUILD_SKIP", "1");
        step("clippy", clippy)?;
        steps += 2;
    }
    if !args.unit {
        step("build", host(&["build", "--release"], &[]))?;
        steps += 1;
    }
    if !args.e2e {
        step(
            "unit tests",
            // Same profile and packages as the build step: the dependencies and the eBPF
            // object are compiled once. `--lib --bins`: the unit tests, not the end-to-end
            // ones (guardian-tests' integration tests, next step).
            host(&["test", "--release"], &["--lib", "--bins"]),
        )?;
        steps += 1;
    }
    if !args.unit {
        let bin = run::guardian_bin()?;
        let lab = run::lab_bin()?;
        let schema = root.join(SCHEMA_PATH);
        for b in [&bin, &lab] {
            if !b.is_file() {
                bail!("the build succeeded but {} does not exist", b.display());
            }
        }
        if !schema.is_file() {
            bail!("the event schema {} does not exist", schema.display());
        }
        // One test binary (tests/tests/e2e/main.rs); a filter such as `replay::` picks a module.
        let mut e2e = host(
            &["test", "--release"],
            &["--test", "e2e", "--", "--test-threads=1"],
        );
        e2e.args(&args.filter)
            .env(BIN_ENV, &bin)
            .env(LAB_BIN_ENV, &lab)
            .env(SCHEMA_ENV, &schema);
        step("e2e tests", e2e)?;
        steps += 1;
        // What can differ per kernel, on Debian 12's own kernel (docs/kernels.md): attach
        // (doctor's proof, every test's `attached`), exact retransmits, link heal, route
        // restore and one XDP fault; doctor proves the clsact fallback for tcx. Not when a
        // filter picks tests: the developer is after those.
        if !args.no_vm && args.filter.is_empty() {
            let vm = Instant::now();
            let bins = vm_binaries(host(
                &["test", "--release"],
                &["--test", "e2e", "--no-run", "--message-format=json"],
            ))?;
            let smoke: Vec<std::ffi::OsString> = kernel::SMOKE.iter().map(Into::into).collect();
            let timeout = std::time::Duration::from_secs(args.vm_timeout);
            kernel::run(&["6.1"], &bins, &smoke, timeout)
                .map_err(|e| e.context("step `kernel 6.1 smoke` failed"))?;
            eprintln!("ok: kernel 6.1 smoke ({})", cmd::secs(vm.elapsed()));
            steps += 1;
        }
    }
    eprintln!(
        "ok: all {steps} test steps passed ({} including setup)",
        cmd::secs(start.elapsed())
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs one named step, printing its command and elapsed time; an error names the step.
fn step(name: &str, mut command: Command) -> Result<()> {
    eprintln!("==> {name}: {}", cmd::display(&command));
    let start = Instant::now();
    let result = cmd::run(&mut command);
    let elapsed = cmd::secs(start.elapsed());
    match result {
        Ok(()) => {
            eprintln!("ok: {name} ({elapsed})");
            Ok(())
        }
        Err(e) => Err(e.context(format!("step `{name}` failed after {elapsed}"))),
    }
}

/// Compiles the end-to-end test binary (`cargo test --no-run --message-format=json`) and
/// returns it with the release binaries, for a VM to run.
fn vm_binaries(mut compile: Command) -> Result<kernel::Binaries> {
    eprintln!("==> e2e build: {}", cmd::display(&compile));
    let out = cmd::stdout(&mut compile)?;
    let e2e = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "e2e")
        .find_map(|v| v["executable"].as_str().map(std::path::PathBuf::from))
        .ok_or_else(|| anyhow::anyhow!("cargo built no e2e test executable"))?;
    Ok(kernel::Binaries {
        guardian: run::guardian_bin()?,
        lab: run::lab_bin()?,
        schema: cmd::repo_root()?.join(SCHEMA_PATH),
        e2e,
    })
}
