use std::process::ExitCode;

use clap::Parser;
use guardian::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` sets up logging itself, from its config (format and level).
    if !matches!(cli.command, Command::Run(_)) {
        guardian::logging::init(false, "info");
    }
    match cli.command {
        Command::Version => {
            println!("guardian {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run(args) => guardian::run::main(args),
        Command::Doctor { json, xdp, config } => {
            let mut checks = guardian::doctor::run(&xdp);
            checks.extend(guardian::doctor::config_checks(config.as_deref()));
            match guardian::doctor::report(&checks, json, &mut std::io::stdout().lock()) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("guardian: writing the report: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Replay { file } => {
            let stdout = std::io::stdout();
            match guardian::replay::replay(&file, &mut stdout.lock()) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("guardian: {}", guardian::errors::sentence(&e));
                    ExitCode::from(65) // EX_DATAERR
                }
            }
        }
        Command::Config(c) => guardian::cmd::config::main(c),
        Command::Completions { shell } => guardian::cmd::shell::completions(shell),
        Command::Manpage => guardian::cmd::shell::manpage(),
        // status, history, stats, mode, heal, events, rollback, scan
        client => guardian::cmd::client::main(client),
    }
}
