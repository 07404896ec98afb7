//! The kernel clocks the eBPF programs stamp their maps with, read from userspace through
//! nix (no `unsafe` here): `bpf_ktime_get_ns` is CLOCK_MONOTONIC, `bpf_ktime_get_boot_ns` is
//! CLOCK_BOOTTIME.
use nix::time::{clock_gettime, ClockId};

/// `clock` in nanoseconds; 0 if the kernel refuses it (it never does for these two clocks,
/// which every Linux has).
fn ns(clock: ClockId) -> u64 {
    clock_gettime(clock)
        .map(|ts| ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64)
        .unwrap_or(0)
}

/// `bpf_ktime_get_ns()`'s clock (CLOCK_MONOTONIC).
pub fn monotonic_ns() -> u64 {
    ns(ClockId::CLOCK_MONOTONIC)
}

/// `bpf_ktime_get_boot_ns()`'s clock (CLOCK_BOOTTIME).
pub fn boot_ns() -> u64 {
    ns(ClockId::CLOCK_BOOTTIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_advance_and_boottime_is_not_behind_monotonic() {
        let (m0, b0) = (monotonic_ns(), boot_ns());
        std::thread::sleep(std::time::Duration::from_millis(2));
        let (m1, b1) = (monotonic_ns(), boot_ns());
        assert!(m0 > 0 && m1 >= m0 + 2_000_000, "{m0} {m1}");
        assert!(b1 >= b0 + 2_000_000, "{b0} {b1}");
        // Boot time counts suspend too, so it is never behind the monotonic clock.
        assert!(b1 + 1_000_000 >= m1, "{b1} {m1}");
    }
}
