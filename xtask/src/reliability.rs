//! `cargo xtask reliability`: the long versions of the reliability tests (docs/reliability.md):
//! 100 kill -9 cycles, 60 s of interface flapping and of a spoofed SYN flood with `status`
//! polled throughout, a 30 s ring-buffer storm (memory bound, loss accounting), clean detach, capabilities and the control socket's permission checks.
//! `cargo xtask test` runs the same tests in their short form. Built, like `cargo xtask test`,
//! with guardian's test-only `crash-points` feature.
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;

use crate::{cmd, run, setup, test};

/// (module of the e2e test binary, i.e. the file tests/tests/e2e/MODULE.rs; environment that
/// lengthens it).
const SUITE: &[(&str, &[(&str, &str)])] = &[
    ("crash_safety", &[("GT_CRASH_CYCLES", "100")]),
    (
        "adversarial",
        &[("GT_FLAP_SECS", "60"), ("GT_FLOOD_SECS", "60")],
    ),
    ("overload", &[("GT_STORM_SECS", "30")]),
    ("clean_detach", &[]),
    ("privileges", &[]),
    ("control", &[]),
    ("operator_errors", &[]),
    ("config_files", &[]),
];

pub fn reliability() -> Result<ExitCode> {
    setup::setup()?;
    let bin = run::build_release(&cmd::TEST_FEATURES)?;
    let root = cmd::repo_root()?;
    let start = Instant::now();
    for (module, env) in SUITE {
        // `MODULE::` matches exactly that module's tests (no module name ends with another's).
        let filter = format!("{module}::");
        let mut c = cmd::cargo(["test", "--release"]);
        c.args(cmd::HOST_PACKAGES).args(cmd::TEST_FEATURES).args([
            "--test",
            "e2e",
            "--",
            "--test-threads=1",
            "--nocapture",
            &filter,
        ]);
        c.current_dir(&root)
            .env(test::BIN_ENV, &bin)
            .env(test::SCHEMA_ENV, root.join(test::SCHEMA_PATH))
            .envs(env.iter().copied());
        eprintln!("==> {module}: {}", cmd::display(&c));
        let t = Instant::now();
        cmd::run(&mut c)?;
        eprintln!("ok: {module} ({})", cmd::secs(t.elapsed()));
    }
    eprintln!("ok: reliability suite ({})", cmd::secs(start.elapsed()));
    Ok(ExitCode::SUCCESS)
}
