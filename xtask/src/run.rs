//! `cargo xtask build` and `cargo xtask run`, and the release build the other tasks share.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;

use crate::{cmd, setup};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Arguments for guardian; put them after `--`, e.g. `cargo xtask run -- --help`
    #[arg(last = true, value_name = "GUARDIAN_ARGS")]
    pub args: Vec<OsString>,
}

/// `cargo xtask build`: setup, then a release build of guardian.
pub fn build() -> Result<ExitCode> {
    setup::setup()?;
    let bin = build_guardian()?;
    eprintln!("built: {}", bin.display());
    Ok(ExitCode::SUCCESS)
}

/// The production release build of the host packages (guardian, guardian-lab, ...) in the repo
/// root; returns guardian's absolute path. Expects setup to have run (toolchain env and PATH).
pub fn build_guardian() -> Result<PathBuf> {
    build_release(&[])
}

/// `cargo build --release <host packages> FEATURES`; returns guardian's absolute path.
/// `cargo xtask test` and `reliability` pass [`cmd::TEST_FEATURES`].
pub fn build_release(features: &[&str]) -> Result<PathBuf> {
    let mut build = cmd::cargo(["build", "--release"]);
    build.args(cmd::HOST_PACKAGES).args(features);
    build.current_dir(cmd::repo_root()?);
    eprintln!("==> build: {}", cmd::display(&build));
    let start = Instant::now();
    cmd::run(&mut build)?;
    eprintln!("ok: build ({})", cmd::secs(start.elapsed()));
    let bin = guardian_bin()?;
    if !bin.is_file() {
        bail!("the build succeeded but {} does not exist", bin.display());
    }
    Ok(bin)
}

/// Absolute path of the release guardian binary.
pub fn guardian_bin() -> Result<PathBuf> {
    Ok(cmd::target_dir()?.join("release/guardian"))
}

/// Absolute path of the release guardian-lab binary (built with guardian).
pub fn lab_bin() -> Result<PathBuf> {
    Ok(cmd::target_dir()?.join("release/guardian-lab"))
}

/// `cargo xtask run -- ARGS`: setup, build, then replace this process with guardian
/// so that signals (Ctrl-C, SIGTERM) reach it directly and its exit code is ours.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    setup::setup()?;
    let bin = build_guardian()?;
    let mut guardian = Command::new(&bin);
    guardian.args(&args.args);
    eprintln!("==> run: {}", cmd::display(&guardian));
    exec(guardian)
}

#[cfg(unix)]
pub fn exec(mut command: Command) -> Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    // exec only returns on failure.
    let err = command.exec();
    bail!("could not execute {}: {err}", cmd::display(&command))
}

#[cfg(not(unix))]
pub fn exec(mut command: Command) -> Result<ExitCode> {
    let status = command.status()?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}
