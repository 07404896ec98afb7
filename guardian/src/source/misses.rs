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

/// Whether this kernel counts skipped runs of classic tracepoint programs (Linux 6.7:
/// `trace_call_bpf()` calls `bpf_prog_inc_misses_counters()`). Unknown versions count as yes.
pub fn kernel_counts_tracepoint_misses(kernel: Option<(u32, u32)>) -> bool {
    kernel.is_none_or(|v| v >= (6, 7))
}

/// Skipped `sock:inet_sock_set_state` runs where the kernel does not count them (before 6.7),
/// inferred per namespace as a lower bound. A namespace's TIME_WAIT gauge (sockstat or the
/// socket dump: exact) can only grow by hand-offs to a time-wait socket, each of which the
/// program counts in `tw_entries` unless its run was skipped. So at any moment
/// `(gauge - gauge at the first sample) - (entries - entries at the first sample)` is at most
/// the number of runs skipped since; time-wait sockets that expired or were reused meanwhile
/// only lower it. The running maximum, summed over namespaces, is reported as loss source
/// `inferred:<program>`. It stays a lower bound only if the entries compared with a gauge
/// reading were read after it, and the first sample's entries before it (an entry between
/// the two reads would otherwise look skipped): the caller passes both.
#[derive(Debug, Default)]
pub struct InferredTwMisses {
    /// Per namespace: (gauge, entries) at the first sample, and the bound reached so far.
    ns: std::collections::HashMap<u32, ((u64, u64), u64)>,
    /// Bounds of namespaces that are gone (kept in the total, which never goes back).
    gone: u64,
    reported: u64,
}

impl InferredTwMisses {
    /// The program whose runs are inferred.
    pub const PROGRAM: &'static str = "sock_state";

    /// One namespace's gauge, freshly read, and its entries read just before and just after.
    pub fn observe(&mut self, netns: u32, gauge: u64, before: u64, after: u64) {
        let (base, bound) = self.ns.entry(netns).or_insert(((gauge, before), 0));
        let grew = gauge.saturating_sub(base.0);
        let counted = after.saturating_sub(base.1);
        *bound = (*bound).max(grew.saturating_sub(counted));
    }

    /// Namespaces that are gone: their bound stays in the total.
    pub fn retain(&mut self, keep: impl Fn(u32) -> bool) {
        let gone = &mut self.gone;
        self.ns.retain(|ns, (_, bound)| {
            let k = keep(*ns);
            if !k {
                *gone += *bound;
            }
            k
        });
    }

    /// (source, lost since the last call, total) when the total grew.
    pub fn poll(&mut self) -> Option<(LossSource, u64, u64)> {
        let total = self.gone + self.ns.values().map(|(_, b)| b).sum::<u64>();
        (total > self.reported).then(|| {
            let lost = total - self.reported;
            self.reported = total;
            (LossSource::Inferred(Self::PROGRAM.into()), lost, total)
        })
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
    fn only_kernels_before_6_7_need_the_inference() {
        use super::kernel_counts_tracepoint_misses as counts;
        assert!(!counts(Some((6, 1))));
        assert!(!counts(Some((5, 10))));
        assert!(counts(Some((6, 7))));
        assert!(counts(Some((6, 18))));
        assert!(counts(None));
    }

    #[test]
    fn a_gauge_that_grew_more_than_the_entries_counted_is_a_skip() {
        let mut m = super::InferredTwMisses::default();
        m.observe(1, 10, 100, 100); // first sample: the base
        assert_eq!(m.poll(), None);
        m.observe(1, 210, 294, 294); // 200 more time-wait sockets, 194 entries counted
        let (src, lost, total) = m.poll().unwrap();
        assert_eq!(
            (src.to_string().as_str(), lost, total),
            ("inferred:sock_state", 6, 6)
        );
        // Expiries lower the gauge: the bound never goes back, nothing new is reported.
        m.observe(1, 50, 294, 294);
        assert_eq!(m.poll(), None);
        // More entries than growth (reuse, expiries): no skip inferred.
        m.observe(1, 60, 320, 320);
        assert_eq!(m.poll(), None);
    }

    #[test]
    fn entries_made_between_the_reads_are_not_skips() {
        // Seen on 6.1: the first gauge (144) was read mid-burst, the entries (200) after it;
        // all 200 were counted. Taking the base's entries from before the gauge read (144)
        // and the later ones from after it infers nothing.
        let mut m = super::InferredTwMisses::default();
        m.observe(1, 144, 144, 200);
        m.observe(1, 200, 200, 200);
        assert_eq!(m.poll(), None);
        // Pairing the base gauge with entries read after it would have inferred 56.
        let mut wrong = super::InferredTwMisses::default();
        wrong.observe(1, 144, 200, 200);
        wrong.observe(1, 200, 200, 200);
        assert_eq!(wrong.poll().map(|p| p.2), Some(56));
    }

    #[test]
    fn namespaces_add_up_and_a_gone_one_keeps_its_share() {
        let mut m = super::InferredTwMisses::default();
        m.observe(1, 0, 0, 0);
        m.observe(2, 0, 0, 0);
        m.observe(1, 5, 3, 3);
        m.observe(2, 4, 1, 1);
        assert_eq!(m.poll().map(|p| (p.1, p.2)), Some((5, 5)));
        m.retain(|ns| ns == 1);
        m.observe(1, 6, 3, 3);
        assert_eq!(m.poll().map(|p| (p.1, p.2)), Some((1, 6)));
    }

    #[test]
    fn absent_or_garbled_is_none() {
        assert_eq!(parse("prog_type:\t5\n"), None);
        assert_eq!(parse("recursion_misses:\tx\n"), None);
    }
}
