//! `guardian-lab`: the fault lab's command (see the library's documentation and docs/lab.md).
use std::process::ExitCode;

use clap::Parser;
use guardian_lab::LabArgs;

fn main() -> ExitCode {
    let args = LabArgs::parse();
    guardian::logging::init(Default::default(), "info");
    guardian_lab::run(args)
}
