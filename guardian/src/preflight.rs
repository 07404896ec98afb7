//! Checks made before anything is loaded, each failing with one sentence an operator can act on.
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::probes;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("guardian needs root (CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN) to load its eBPF programs: run it as root")]
    NotRoot,
    #[error("this kernel exposes no BTF at {0}: guardian needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")]
    NoBtf(String),
    #[error("tracefs is not mounted: run `mount -t tracefs nodev /sys/kernel/tracing`")]
    NoTracefs,
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },
    #[error("interface {iface} named by {flag} does not exist in this network namespace")]
    UnknownInterface { iface: String, flag: &'static str },
    #[error("{0}; guardian will not start on a journal it cannot read (it could not settle or roll back what it records): inspect it, move it aside, and start again")]
    Journal(String),
    #[error("{0}")]
    UnsafeDir(String),
    /// Another guardian runs in this network namespace (75), or its lock cannot be taken.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error("cannot identify this network namespace (/proc/self/ns/net): {0}")]
    Netns(std::io::Error),
}

impl From<ConfigError> for PreflightError {
    fn from(e: ConfigError) -> Self {
        PreflightError::Config {
            path: e.location(),
            reason: e.reason(),
        }
    }
}

impl PreflightError {
    /// Exit codes of sysexits.h: 77 (EX_NOPERM) for privileges, 78 (EX_CONFIG) for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            PreflightError::NotRoot => 77,
            PreflightError::Journal(_) => 65,
            PreflightError::Lock(e) => e.exit_code(),
            _ => 78,
        }
    }
}

pub struct Environment {
    pub tracefs: PathBuf,
    pub btf: PathBuf,
}

pub fn check() -> Result<Environment, PreflightError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(PreflightError::NotRoot);
    }
    let btf = probes::btf_path();
    if !btf.exists() {
        return Err(PreflightError::NoBtf(btf.display().to_string()));
    }
    let tracefs = probes::tracefs_path().ok_or(PreflightError::NoTracefs)?;
    Ok(Environment {
        tracefs,
        btf: btf.to_path_buf(),
    })
}

/// The write-ahead journal in `state_dir`, when there is one, must be readable to the end (a
/// torn last line from a crash is fine): the engine settles and rolls back from it.
pub fn journal_readable(state_dir: &std::path::Path) -> Result<(), PreflightError> {
    let path = state_dir.join(crate::journal::FILE_NAME);
    if !path.exists() {
        return Ok(());
    }
    crate::journal::read_all(&path)
        .map(|_| ())
        .map_err(|e| PreflightError::Journal(e.to_string()))
}

/// The state directory and the control socket's directory must not be writable by group or
/// others (nor owned by another user): refused, not just warned about (docs/security.md).
pub fn dirs_safe(
    state_dir: &std::path::Path,
    socket: &std::path::Path,
) -> Result<(), PreflightError> {
    crate::journal::check_dir(state_dir).map_err(|e| PreflightError::UnsafeDir(e.to_string()))?;
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::journal::check_dir(dir).map_err(|_| {
            PreflightError::UnsafeDir(format!(
                "the control socket's directory {} can be written by others: anyone could put their own socket in guardian's place; run `chmod go-w {}` or pass --socket in a directory only root can write",
                dir.display(),
                dir.display()
            ))
        })?;
    }
    Ok(())
}

/// One guardian per network namespace ([`crate::lock`]): taken before anything is attached,
/// held until the returned lock is dropped.
pub fn netns_lock() -> Result<crate::lock::NetnsLock, PreflightError> {
    let netns = crate::netns::current().map_err(PreflightError::Netns)?;
    Ok(crate::lock::lock_netns(
        std::path::Path::new(crate::lock::DIR),
        netns,
    )?)
}

pub fn interfaces_exist(names: &[String], flag: &'static str) -> Result<(), PreflightError> {
    for name in names {
        if nix::net::if_::if_nametoindex(name.as_str()).is_err() {
            return Err(PreflightError::UnknownInterface {
                iface: name.clone(),
                flag,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_error_keeps_its_sentence_and_exit_code() {
        let e = ConfigError {
            file: Some("/etc/g.toml".into()),
            at: Some((3, 1)),
            key: Some("safety.max_targets".into()),
            what: "expected at least 1".into(),
        };
        let p: PreflightError = e.into();
        assert_eq!(
            p.to_string(),
            "/etc/g.toml:3:1: safety.max_targets: expected at least 1"
        );
        assert_eq!(p.exit_code(), 78);
    }
}
