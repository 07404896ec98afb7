//! `guardian rollback ID | --all`: reverts changes the journal says are still in place, by
//! hand, with the daemon stopped (it holds the state directory's lock while it runs; through
//! a running daemon this is a control-socket request).
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

use crate::engine::recover;
use crate::journal::{self, JournalPhase};
use crate::netlink::Netlink;
use crate::probes::Maps;
use crate::remedy::Kernel;

/// Which changes to revert.
pub enum Which {
    One(String),
    All,
}

pub use crate::engine::recover::RollbackError;

/// Reverts, appends a `reverted` (or `failed`) record per change, prints one line per change.
/// Returns how many could not be reverted.
pub async fn rollback(
    state_dir: &Path,
    which: Which,
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let _lock = journal::lock(state_dir)?;
    let path = state_dir.join(journal::FILE_NAME);
    let records = if path.exists() {
        journal::read_all(&path)?
    } else {
        Vec::new()
    };
    let changes = journal::fold(&records);
    let id = match &which {
        Which::One(id) => Some(id.as_str()),
        Which::All => None,
    };
    let chosen = recover::choose(changes, id)?;
    if chosen.is_empty() {
        writeln!(out, "nothing to roll back")?;
        return Ok(0);
    }
    let own = crate::netns::current().context("reading /proc/self/ns/net")?;
    recover::same_netns(&chosen, own)?;
    let nl = Netlink::connect().context("opening the netlink request socket")?;
    let mut kernel = Kernel::new(nl, own, Maps::default());
    let mut j = journal::Journal::open(state_dir)?;
    let mut failed = 0;
    for c in chosen {
        let s = recover::revert(&mut kernel, &c).await;
        let mut r = c.first.clone();
        r.phase = s.phase;
        r.ts = crate::output::rfc3339(chrono::Utc::now());
        r.error = Some(s.reason.clone());
        j.append(&r)?;
        if s.phase != JournalPhase::Reverted {
            failed += 1;
        }
        writeln!(
            out,
            "{} {} {}: {}",
            c.first.id,
            c.first.remedy,
            phase_name(s.phase),
            s.reason
        )?;
    }
    Ok(failed)
}

fn phase_name(p: JournalPhase) -> &'static str {
    match p {
        JournalPhase::Reverted => "reverted",
        _ => "FAILED",
    }
}

/// `guardian rollback`: exit 0 when everything chosen was reverted, 1 when something could
/// not be, 65 for an unknown or finished id, 77 without root.
pub fn main(state_dir: &Path, which: Which) -> std::process::ExitCode {
    use std::process::ExitCode;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("guardian: rollback changes links, routes and sysctls: run it as root");
        return ExitCode::from(77);
    }
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
    match rt.block_on(rollback(state_dir, which, &mut std::io::stdout().lock())) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("guardian: {}", crate::errors::sentence(&e));
            if e.downcast_ref::<RollbackError>().is_some() {
                ExitCode::from(65)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
