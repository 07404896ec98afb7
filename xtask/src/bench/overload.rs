//! stub
use anyhow::{bail, Result};

use super::report::Measured;
use super::Ctx;

pub fn run(_ctx: &Ctx) -> Result<Measured> {
    bail!("not implemented yet")
}
