//! `cargo xtask lab -- ARGS`: setup, the production release build, then `guardian-lab ARGS`
//! (the fault lab, running the freshly built guardian: every scenario by default, 5 runs each;
//! see docs/lab.md).
use std::ffi::OsString;
use std::process::{Command, ExitCode};

use anyhow::{bail, Result};
use clap::Args;

use crate::{cmd, run, setup, test};

#[derive(Debug, Args)]
pub struct LabArgs {
    /// Arguments for `guardian-lab`, after `--`, e.g. `cargo xtask lab -- link_down --runs 1`
    #[arg(last = true, value_name = "LAB_ARGS")]
    pub args: Vec<OsString>,
}

pub fn lab(a: LabArgs) -> Result<ExitCode> {
    setup::setup()?;
    let guardian = run::build_guardian()?;
    let bin = run::lab_bin()?;
    if !bin.is_file() {
        bail!("the build succeeded but {} does not exist", bin.display());
    }
    let mut lab = Command::new(&bin);
    lab.args(&a.args).env(test::BIN_ENV, &guardian);
    eprintln!("==> lab: {}", cmd::display(&lab));
    run::exec(lab)
}
