//! Per-namespace sysctls under `/proc/sys`, read and written from a thread that entered the
//! namespace (`net.*` sysctls are per network namespace).
//!
//! Writes are restricted to [`ALLOWED`]: the only keys any guardian remedy may ever change.
//! `net.ipv4.tcp_tw_recycle` is never on it (it broke clients behind NAT and is gone since
//! Linux 4.12); neither is anything outside `net.*`. The change kind built on these
//! (`Action::SetSysctl`) is in `remedy/exec/sysctl.rs`.
use std::path::{Path, PathBuf};

/// The keys guardian may change, in any namespace.
pub const ALLOWED: &[&str] = &[
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_mtu_probing",
];

/// Whether guardian may write `key`.
pub fn allowed(key: &str) -> bool {
    ALLOWED.contains(&key)
}

/// `/proc/sys/net/ipv4/tcp_tw_reuse` for `net.ipv4.tcp_tw_reuse`.
pub fn proc_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key.replace('.', "/"))
}

/// Collapses whitespace (`32768\t60999\n` → `32768 60999`), the form values are compared in.
pub fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads a sysctl in the namespace at `ns` (None: the caller's).
pub fn read(ns: Option<&Path>, key: &str) -> std::io::Result<String> {
    let path = proc_path(key);
    crate::netns::within(ns, move || std::fs::read_to_string(path)).map(|v| normalize(&v))
}

/// Writes an allowed sysctl in the namespace at `ns` (None: the caller's). A key not on
/// [`ALLOWED`] is refused with `PermissionDenied` before anything is opened.
pub fn write(ns: Option<&Path>, key: &str, value: &str) -> std::io::Result<()> {
    if !allowed(key) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{key} is not a sysctl guardian may change"),
        ));
    }
    let path = proc_path(key);
    let value = format!("{}\n", normalize(value));
    crate::netns::within(ns, move || std::fs::write(path, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_normalization() {
        assert_eq!(
            proc_path("net.ipv4.tcp_tw_reuse"),
            Path::new("/proc/sys/net/ipv4/tcp_tw_reuse")
        );
        assert_eq!(normalize("32768\t60999\n"), "32768 60999");
    }

    #[test]
    fn only_allowed_keys_are_written() {
        assert!(allowed("net.ipv4.tcp_tw_reuse"));
        assert!(!allowed("net.ipv4.tcp_tw_recycle"));
        assert!(!allowed("kernel.panic"));
        let e = write(None, "net.ipv4.tcp_tw_recycle", "1").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        let e = write(None, "net.ipv4.ip_forward", "1").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
    }
}
