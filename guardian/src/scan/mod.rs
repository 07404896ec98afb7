//! `guardian scan`: an immediate one-shot diagnosis of this network namespace, without the
//! daemon: interfaces, routes, listeners and their accept queues, local port usage per remote,
//! TIME_WAIT, the ephemeral range, sysctls. Each line ok / warn / bad with its threshold.
pub mod checks;
pub mod collect;

use std::fmt::Write as _;
use std::process::ExitCode;

use serde_json::json;

pub use checks::{Check, Level};

/// The human screen: one line per check, grouped by section.
pub fn render(checks: &[Check]) -> String {
    let mut o = String::new();
    let mut section = "";
    for c in checks {
        if c.section != section {
            section = c.section;
            let _ = writeln!(o, "{section}");
        }
        let mark = match c.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Bad => "BAD ",
        };
        let _ = writeln!(o, "  {mark} {:<28} {}", c.name, c.value);
        if c.level != Level::Ok {
            let _ = writeln!(o, "       {:<28} ({})", "", c.threshold);
        }
    }
    let count = |l| checks.iter().filter(|c| c.level == l).count();
    let _ = writeln!(
        o,
        "{} ok, {} warn, {} bad",
        count(Level::Ok),
        count(Level::Warn),
        count(Level::Bad)
    );
    o
}

/// Scans the caller's namespace; exits 1 when a line is bad.
pub fn main(json: bool) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("guardian: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let facts = match rt.block_on(collect::collect()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("guardian: {}", crate::errors::sentence(&e));
            return ExitCode::FAILURE;
        }
    };
    let checks = checks::evaluate(&facts);
    let out = if json {
        let worst = checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok);
        format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({
                "worst": worst,
                "checks": checks,
                "facts": {
                    "time_wait": facts.time_wait,
                    "ephemeral_range": [facts.ephemeral_range.0, facts.ephemeral_range.1],
                    "ephemeral_in_use": facts.ephemeral_in_use,
                    "ports_per_remote": facts.ports_per_remote,
                    "tcp_states": facts.states,
                    "listeners": facts.listeners,
                    "interfaces": facts.stats,
                    "sysctls": facts.sysctls,
                },
            }))
            .unwrap_or_default()
        )
    } else {
        render(&checks)
    };
    print!("{out}");
    if checks.iter().any(|c| c.level == Level::Bad) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
