//! Capabilities: at start, before any other thread exists, the daemon keeps only what it uses
//! during its whole life and drops every other capability from all five sets (so neither it
//! nor anything it executes can regain them).
//!
//! Capability sets are per thread: this runs while the process is still single-threaded, so
//! every thread created afterwards (tokio workers, blocking pool, the short-lived threads that
//! enter other namespaces) inherits the reduced sets. CAP_PERFMON is needed only until the
//! tracepoints are attached, but by then the runtime's threads exist, and dropping it from all
//! of them would need a signal broadcast to every thread (what libpsx does); for one
//! capability that is not worth the unsafe code, so it is kept.
use caps::{CapSet, Capability, CapsHashSet};

/// What guardian uses, and for what.
pub const KEEP: &[(Capability, &str)] = &[
    (Capability::CAP_BPF, "load programs, create and read maps"),
    (Capability::CAP_PERFMON, "attach tracepoints (start only)"),
    (
        Capability::CAP_NET_ADMIN,
        "XDP/tcx/links, routes, sysctls, socket destroy",
    ),
    (
        Capability::CAP_SYS_ADMIN,
        "enter other network namespaces (setns), cgroup attach",
    ),
    (
        Capability::CAP_SYS_PTRACE,
        "read other users' /proc/PID/ns/net and fd tables (report_holder)",
    ),
    (
        Capability::CAP_DAC_READ_SEARCH,
        "read /proc/PID/fd of other users' processes",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("cannot reduce capabilities: {0}")]
    Caps(#[from] caps::errors::CapsError),
}

/// Drops every capability guardian does not use. Returns the names of those dropped from the
/// permitted set. Must be called while the process has a single thread.
pub fn reduce() -> Result<Vec<String>, PrivilegeError> {
    let threads = std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count());
    if threads > 1 {
        tracing::warn!(
            threads,
            "reducing capabilities with more than one thread: only this one is reduced"
        );
    }
    lift_memlock();
    let keep: CapsHashSet = KEEP.iter().map(|(c, _)| *c).collect();
    let permitted = caps::read(None, CapSet::Permitted)?;
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes with the rest.
    // Without CAP_SETPCAP (a container or unit that did not grant it) the bounding set stays
    // as the runtime set it, with a warning; the effective and permitted sets are still cut.
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap)? {
            if let Err(e) = caps::drop(None, CapSet::Bounding, cap) {
                tracing::warn!(capability = %cap, error = %e, "cannot drop from the bounding set");
            }
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    let kept: CapsHashSet = permitted.intersection(&keep).copied().collect();
    caps::set(None, CapSet::Effective, &kept)?;
    caps::set(None, CapSet::Permitted, &kept)?;
    let mut dropped: Vec<String> = permitted.difference(&keep).map(|c| c.to_string()).collect();
    dropped.sort();
    Ok(dropped)
}

/// Before Linux 5.11, BPF maps and programs are charged to RLIMIT_MEMLOCK (64 KiB by default),
/// so map creation fails with EPERM once CAP_SYS_RESOURCE is gone (measured on 5.10,
/// docs/kernels.md). Raise the limit while the capability is still held; from 5.11 on the
/// memory cgroup accounts for BPF memory and the limit is unused.
fn lift_memlock() {
    use nix::sys::resource::{setrlimit, Resource, RLIM_INFINITY};
    if let Err(e) = setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut v = release
            .trim()
            .split(['.', '-'])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        if (v.next().unwrap_or(0), v.next().unwrap_or(0)) < (5, 11) {
            tracing::warn!(error = %e, "cannot lift RLIMIT_MEMLOCK: on this kernel (before 5.11) map creation may fail; grant CAP_SYS_RESOURCE or raise LimitMEMLOCK");
        } else {
            tracing::debug!(error = %e, "cannot lift RLIMIT_MEMLOCK (unused from Linux 5.11)");
        }
    }
}

/// Names of the kept capabilities, e.g. for the `attached` event.
pub fn kept_names() -> Vec<String> {
    KEEP.iter().map(|(c, _)| c.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_exactly_what_doctor_checks_plus_proc_access() {
        let names = kept_names();
        for c in ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"] {
            assert!(names.iter().any(|n| n == c), "{c} in {names:?}");
        }
        assert!(!names
            .iter()
            .any(|n| n == "CAP_SETUID" || n == "CAP_SYS_MODULE"));
        assert_eq!(names.len(), KEEP.len());
    }
}
