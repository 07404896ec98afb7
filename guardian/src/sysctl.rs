//! Per-namespace sysctls under `/proc/sys`, read and written from a thread that entered the
//! namespace (`net.*` sysctls are per network namespace).
use std::path::{Path, PathBuf};

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
}
