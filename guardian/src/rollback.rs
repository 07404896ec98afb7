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
    journal::check_dir(state_dir)?;
    let path = state_dir.join(journal::FILE_NAME);
    let loaded = if path.exists() {
        let key = journal::Key::load(state_dir)?;
        journal::read_checked(&path, key.as_ref())?
    } else {
        journal::Loaded::default()
    };
    for r in &loaded.rejected {
        writeln!(out, "skipped journal line {}: {}", r.line, r.why)?;
    }
    let changes = journal::fold(&loaded.records);
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
    let guard = guard(&nl, own).await?;
    let mut kernel = Kernel::new(nl, own, Maps::default());
    let mut j = journal::Journal::open(state_dir)?;
    let mut failed = 0;
    for c in chosen {
        let s = recover::revert(&mut kernel, &c, &guard).await;
        let mut r = c.first.clone();
        r.phase = s.phase;
        r.ts = crate::output::rfc3339(chrono::Utc::now());
        r.error = Some(s.reason.clone());
        if s.phase != c.last {
            j.append(&r)?;
        }
        if !matches!(s.phase, JournalPhase::Reverted | JournalPhase::Superseded) {
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
        JournalPhase::Superseded => "superseded",
        _ => "FAILED",
    }
}

/// The undo checks with the default safety rules (the daemon's config is not read here) and
/// the live links and default routes.
async fn guard(nl: &Netlink, own: u32) -> anyhow::Result<recover::Guard> {
    let links = nl.dump_links().await.context("dumping links")?;
    let routes = nl.dump_routes().await.context("dumping routes")?;
    let names: std::collections::HashMap<u32, String> =
        links.iter().map(|l| (l.ifindex, l.name.clone())).collect();
    let default_route_interfaces = routes
        .iter()
        .filter(|r| r.is_default())
        .filter_map(|r| r.oif.and_then(|i| names.get(&i).cloned()))
        .collect();
    Ok(recover::Guard {
        own_netns: own,
        safety: crate::engine::SafetyConfig::default(),
        host: crate::engine::safety::Host {
            default_route_interfaces,
            managed_interfaces: links.len().max(1),
            // Undos only remove limits; protected sources guard new ones.
            protected_sources: Default::default(),
        },
        links: names,
    })
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
