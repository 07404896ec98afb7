//! Runs the kernel skipped: a program that fires while it (or, for classic tracepoints, any
//! tracing program) is already running on the same CPU is not run at all, and the kernel counts
//! it in the program's `recursion_misses` (e.g. `sock:inet_sock_set_state` from the softirq
//! that interrupts the same tracepoint in process context). Those are lost events like ring
//! buffer drops, so they are reported as `loss` events with source `recursion:<program>`.
//!
//! aya 0.14's `ProgramInfo` does not expose `recursion_misses`; `/proc/self/fdinfo/<fd>` does
//! (since Linux 5.12), so it is read from there.
use std::os::fd::{AsFd, AsRawFd};

use aya::programs::ProgramFd;

use crate::model::LossSource;

pub struct RecursionMisses {
    programs: Vec<(String, ProgramFd, u64)>,
}

impl RecursionMisses {
    pub fn new(programs: Vec<(String, ProgramFd)>) -> Self {
        Self {
            programs: programs.into_iter().map(|(n, fd)| (n, fd, 0)).collect(),
        }
    }

    /// (source, lost since the last call, total) for every program whose count grew.
    pub fn poll(&mut self) -> Vec<(LossSource, u64, u64)> {
        let mut out = Vec::new();
        for (name, fd, prev) in &mut self.programs {
            let path = format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd());
            let Some(total) = std::fs::read_to_string(path).ok().and_then(|t| parse(&t)) else {
                continue;
            };
            if total > *prev {
                out.push((LossSource::Recursion(name.clone()), total - *prev, total));
                *prev = total;
            }
        }
        out
    }
}

/// The `recursion_misses` line of a BPF program's fdinfo.
fn parse(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("recursion_misses:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_the_kernels_fdinfo() {
        let t = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t5\n\
                 prog_jited:\t1\nprog_tag:\t5f2d3c2d1c0e7b6a\nmemlock:\t4096\nprog_id:\t97\n\
                 run_time_ns:\t0\nrun_cnt:\t0\nrecursion_misses:\t4\nverified_insns:\t321\n";
        assert_eq!(parse(t), Some(4));
    }

    #[test]
    fn absent_or_garbled_is_none() {
        assert_eq!(parse("prog_type:\t5\n"), None);
        assert_eq!(parse("recursion_misses:\tx\n"), None);
    }
}
