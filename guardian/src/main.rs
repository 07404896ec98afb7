use std::process::ExitCode;

use clap::Parser;
use guardian::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GUARDIAN_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    match cli.command {
        Command::Version => {
            println!("guardian {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run(args) => guardian::run::main(args),
        Command::Lab(args) => guardian::lab::main(args),
        Command::Doctor { json, xdp } => {
            let checks = guardian::doctor::run(&xdp);
            match guardian::doctor::report(&checks, json, &mut std::io::stdout().lock()) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("guardian: writing the report: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Rollback { id, all, state_dir } => {
            let which = match id {
                Some(id) if !all => guardian::rollback::Which::One(id),
                _ => guardian::rollback::Which::All,
            };
            guardian::rollback::main(&state_dir, which)
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
    }
}
