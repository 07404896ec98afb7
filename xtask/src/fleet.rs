//! `cargo xtask fleet`: the three-node Prometheus check (tests/tests/e2e/fleet.rs, ignored by
//! `cargo xtask test` because it takes about a minute): three guardian daemons in namespaces,
//! a real Prometheus scraping them with docs/deploy/prometheus-rules.yaml, and one
//! destination-level alert for two troubled nodes. The fast part (promtool check and test
//! rules) runs in `cargo xtask test` (e2e module prometheus_rules).
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;

use crate::{cmd, run, setup, test};

pub fn fleet() -> Result<ExitCode> {
    setup::setup()?;
    let bin = run::build_release(&cmd::TEST_FEATURES)?;
    let root = cmd::repo_root()?;
    let start = Instant::now();
    let mut c = cmd::cargo(["test", "--release"]);
    c.args(cmd::HOST_PACKAGES).args(cmd::TEST_FEATURES).args([
        "--test",
        "e2e",
        "--",
        "--ignored",
        "--nocapture",
        "--exact",
        "fleet::two_troubled_nodes_raise_one_destination_alert",
    ]);
    c.current_dir(&root)
        .env(test::BIN_ENV, &bin)
        .env(test::SCHEMA_ENV, root.join(test::SCHEMA_PATH));
    eprintln!("==> fleet: {}", cmd::display(&c));
    cmd::run(&mut c)?;
    eprintln!("ok: fleet ({})", cmd::secs(start.elapsed()));
    Ok(ExitCode::SUCCESS)
}
