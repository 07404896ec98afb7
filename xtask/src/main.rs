//! Developer tasks for guardian, run as `cargo xtask <command>` (alias in .cargo/config.toml).

mod bench;
mod cmd;
mod fleet;
mod fuzz;
mod install;
mod kernel;
mod lab;
mod package;
mod reliability;
mod run;
mod setup;
mod systemd;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Set up, build, run and test guardian",
    long_about = "Set up, build, run and test guardian.\n\n\
        Every command first runs `setup`, which needs Linux, root and a kernel with BTF, \
        and which installs whatever is missing (Debian packages, the pinned nightly Rust \
        with rust-src, bpf-linker)."
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install or verify everything the build and tests need (idempotent, non-interactive)
    Setup,
    /// Setup, then build guardian in release mode (target/release/guardian)
    Build,
    /// Setup, build, then run target/release/guardian with the arguments after `--`
    Run(run::RunArgs),
    /// Setup, then fmt, clippy, release build, unit tests and end-to-end tests
    Test(test::TestArgs),
    /// Setup, then run every fuzz target (cargo-fuzz, pinned nightly) N times from its seeds
    Fuzz(fuzz::FuzzArgs),
    /// Setup, build, then run guardian's benchmarks and regenerate docs/benchmarks.md
    Bench(bench::BenchArgs),
    /// Pieces of `bench` that run inside a namespace (internal)
    #[command(subcommand, hide = true)]
    BenchHelper(bench::helper::Helper),
    /// Setup, build, then install the binary, the systemd unit and (if absent) the config
    Install(install::InstallArgs),
    /// Setup, build, then run the fault lab (`guardian-lab`) with the arguments after `--`
    Lab(lab::LabArgs),
    /// Setup, build, then the long reliability tests (100 crash cycles, 60 s floods and flapping)
    Reliability,
    /// Setup, build, then three guardian nodes scraped by a real Prometheus: one fleet alert
    Fleet,
    /// Setup, build, then a .deb and an OCI image (FROM scratch) in target/package/
    Package(package::PackageArgs),
    /// Setup, build, then the .deb under a real systemd (nspawn --boot): ready, reload, watchdog
    Systemd(systemd::SystemdArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Task::Setup => setup::setup().map(|_| ExitCode::SUCCESS),
        Task::Build => run::build(),
        Task::Run(args) => run::run(args),
        Task::Test(args) => test::test(args),
        Task::Fuzz(args) => fuzz::fuzz(args),
        Task::Bench(args) => bench::bench(args),
        Task::BenchHelper(h) => bench::helper::run(h),
        Task::Install(args) => install::install(args),
        Task::Lab(args) => lab::lab(args),
        Task::Reliability => reliability::reliability(),
        Task::Fleet => fleet::fleet(),
        Task::Package(args) => package::package(args),
        Task::Systemd(args) => systemd::systemd(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}
