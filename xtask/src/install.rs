//! `cargo xtask install`: the release binary to /usr/local/sbin/guardian, the systemd unit to
//! /etc/systemd/system/guardian.service, and, only if none exists yet, the example config to
//! /etc/guardian/guardian.toml (observe mode). Files are replaced atomically (written beside,
//! then renamed), so upgrading under a running daemon is safe; restart it afterwards.
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use clap::Args;

use crate::{cmd, run, setup};

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Install the binary already built in target/release (no setup, no build).
    #[arg(long)]
    pub no_build: bool,
    /// Install under this directory instead of / (packaging, tests).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

fn put(src: &Path, dst: &Path, mode: u32) -> Result<()> {
    let dir = dst.parent().context("destination has no directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dst.with_extension("xtask-new");
    fs::copy(src, &tmp)
        .with_context(|| format!("copying {} to {}", src.display(), tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, dst).with_context(|| format!("replacing {}", dst.display()))?;
    eprintln!("installed {} ({mode:o})", dst.display());
    Ok(())
}

pub fn install(args: InstallArgs) -> Result<ExitCode> {
    let bin = if args.no_build {
        run::guardian_bin()?
    } else {
        setup::setup()?;
        run::build_guardian()?
    };
    let repo = cmd::repo_root()?;
    let root = &args.root;
    put(&bin, &root.join("usr/local/sbin/guardian"), 0o755)?;
    put(
        &repo.join("docs/deploy/guardian.service"),
        &root.join("etc/systemd/system/guardian.service"),
        0o644,
    )?;
    put(
        &repo.join("docs/operations.md"),
        &root.join("usr/local/share/doc/guardian/operations.md"),
        0o644,
    )?;
    let config = root.join("etc/guardian/guardian.toml");
    if config.exists() {
        eprintln!("kept {} (exists)", config.display());
    } else {
        put(&repo.join("docs/deploy/guardian.toml"), &config, 0o644)?;
    }
    let systemd = fs::read_to_string("/proc/1/comm")
        .unwrap_or_default()
        .trim()
        == "systemd";
    if root == Path::new("/") && systemd {
        cmd::run(Command::new("systemctl").arg("daemon-reload"))?;
        eprintln!("next: systemctl enable --now guardian   (observe mode; see docs/operations.md)");
    }
    Ok(ExitCode::SUCCESS)
}
