//! `cargo xtask lab -- ARGS`: setup, release build, then `guardian lab ARGS` (the fault lab:
//! every scenario by default, 5 runs each; see docs/lab.md).
use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::run;

#[derive(Debug, Args)]
pub struct LabArgs {
    /// Arguments for `guardian lab`, after `--`, e.g. `cargo xtask lab -- link_down --runs 1`
    #[arg(last = true, value_name = "LAB_ARGS")]
    pub args: Vec<OsString>,
}

pub fn lab(a: LabArgs) -> Result<ExitCode> {
    let mut args = vec![OsString::from("lab")];
    args.extend(a.args);
    run::run(run::RunArgs { args })
}
