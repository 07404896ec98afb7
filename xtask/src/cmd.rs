//! Small helpers to run external commands with readable errors.

use std::env;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Builds a `Command` from a program and its arguments.
pub fn new<P, I, S>(program: P, args: I) -> Command
where
    P: AsRef<OsStr>,
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// A `cargo` command: the cargo that started us (`$CARGO`) or `cargo` from PATH.
/// The packages every host-side cargo invocation selects (all but the eBPF crates). Cargo
/// unifies dependency features over the selected packages, so building `-p guardian` in one
/// step and testing `--workspace` in the next compiled guardian and part of its dependency
/// tree twice (about 2 minutes of a fresh-clone CI run); one selection everywhere shares them.
pub const HOST_PACKAGES: [&str; 5] = [
    "--workspace",
    "--exclude",
    "guardian-ebpf",
    "--exclude",
    "guardian-lab-ebpf",
];

/// The features of a test build: guardian's `crash-points` hook (`GUARDIAN_CRASH_POINT`, used
/// by the crash-safety tests). Every cargo step of `cargo xtask test` and `reliability` passes
/// them, so guardian is compiled once per run; production builds (`build`, `install`, `run`,
/// `lab`, `bench`) pass none, and their binary has no such hook.
pub const TEST_FEATURES: [&str; 2] = ["--features", "guardian/crash-points"];

pub fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// Renders a command line for messages, e.g. `LLVM_PREFIX=/usr cargo install x`
/// (only variables set explicitly on the command are shown).
pub fn display(cmd: &Command) -> String {
    let mut out = String::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            out.push_str(&format!(
                "{}={} ",
                key.to_string_lossy(),
                value.to_string_lossy()
            ));
        }
    }
    let program = Path::new(cmd.get_program());
    // Show `cargo` rather than `/root/.rustup/toolchains/.../bin/cargo`.
    let name = if program.file_name() == Some(OsStr::new("cargo")) {
        "cargo".into()
    } else {
        program.to_string_lossy()
    };
    out.push_str(&name);
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

fn spawn_error(cmd: &Command, err: std::io::Error) -> anyhow::Error {
    let program = cmd.get_program().to_string_lossy().into_owned();
    if err.kind() == std::io::ErrorKind::NotFound {
        anyhow::anyhow!(
            "`{program}` was not found in PATH (needed for `{}`)",
            display(cmd)
        )
    } else {
        anyhow::anyhow!("could not start `{}`: {err}", display(cmd))
    }
}

/// Runs a command with inherited stdio; fails unless it exits with status 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().map_err(|e| spawn_error(cmd, e))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Runs a command quietly and reports only whether it exited with status 0.
/// A command that cannot be started counts as failed.
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a command and returns its stdout (lossy UTF-8), regardless of exit status.
/// Errors only if the command cannot be started.
pub fn stdout_any(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| spawn_error(cmd, e))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command and returns its stdout; fails unless it exits with status 0.
pub fn stdout(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(cmd, e))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr.trim();
        if stderr.is_empty() {
            bail!("`{}` failed ({})", display(cmd), out.status);
        }
        bail!("`{}` failed ({}): {stderr}", display(cmd), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Finds an executable by name in PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.metadata().is_ok_and(|m| is_executable(&m)))
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.is_file() && m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(m: &std::fs::Metadata) -> bool {
    m.is_file()
}

/// The repository root: the workspace that `cargo xtask` was run in.
///
/// `cargo locate-project` answers from the working directory, so one xtask binary shared by
/// several checkouts (one `CARGO_TARGET_DIR` for git worktrees) still tests the checkout it
/// was run from, not the one that compiled it last. The compile-time path is the fallback
/// when cargo cannot answer or the workspace found is not guardian's.
pub fn repo_root() -> Result<PathBuf> {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(root) = ROOT.get() {
        return Ok(root.clone());
    }
    let root = match located_workspace() {
        Some(root) => root,
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask has no parent directory")?
            .to_path_buf(),
    };
    Ok(ROOT.get_or_init(|| root).clone())
}

/// The workspace root that `cargo locate-project --workspace` reports for the working
/// directory, when it holds this xtask crate.
fn located_workspace() -> Option<PathBuf> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let manifest = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    let root = manifest.parent()?.to_path_buf();
    root.join("xtask/Cargo.toml").is_file().then_some(root)
}

/// The cargo target directory (`$CARGO_TARGET_DIR` or `<root>/target`), absolute.
pub fn target_dir() -> Result<PathBuf> {
    let root = repo_root()?;
    Ok(match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    })
}

/// Formats a duration as seconds with one decimal, e.g. `3.2s`.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
