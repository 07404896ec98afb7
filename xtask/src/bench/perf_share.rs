//! CPU samples of every CPU (`perf record -a -g -e cpu-clock`) charged to the hooks guardian
//! holds, by their kernel stacks: `cargo xtask bench http-share` (http_share.rs).
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// What a busy sample is charged to, in the order a sample is tested (the first that matches).
pub const FAMILIES: [&str; 6] = [
    "daemon",
    "uprobes",
    "syscall hook",
    "socket tracepoints",
    "packet programs",
    "other programs",
];

/// Kernel frames that mark each family's hook (a sample is the family's when any of its frames
/// is one of these, or starts with one that ends in `*`).
const UPROBE_FRAMES: [&str; 5] = [
    "asm_exc_int3",
    "exc_int3",
    "uprobe_notify_resume",
    "handle_swbp",
    "uprobe_dispatcher",
];
const SYSCALL_FRAMES: [&str; 4] = [
    "syscall_exit_work",
    "syscall_trace_enter",
    "__bpf_trace_sys_exit",
    "__bpf_trace_sys_enter",
];
/// The socket tracepoints' BPF entry (guardian-ebpf/src/tls_sock.rs), which the kernel calls
/// only while a program is attached to them.
const SOCKET_FRAMES: [&str; 2] = [
    "__bpf_trace_sock_send_length",
    "__bpf_trace_sock_recv_length",
];
const PACKET_FRAMES: [&str; 1] = ["__cgroup_bpf_run_filter_skb"];
/// The hooks' own programs, by name (`bpf_prog_<tag>_<name>`): a sample in one of them whose
/// kernel stack the unwinder lost below the program (it then goes on with the task's user
/// frames) still belongs to its hook.
const PACKET_PROGRAMS: [&str; 2] = ["http_ingress", "http_egress"];
const SYSCALL_PROGRAMS: [&str; 1] = ["http_sys_exit"];
const SOCKET_PROGRAMS: [&str; 2] = ["tls_sock_recv", "tls_sock_send"];

/// Whether `frame` is one of the BPF programs named in `names`.
fn is_program(frame: &str, names: &[&str]) -> bool {
    frame.strip_prefix("bpf_prog_").is_some_and(|rest| {
        rest.split_once('_')
            .is_some_and(|(_, name)| names.contains(&name))
    })
}

/// Leaf frames of an idle CPU.
const IDLE_LEAVES: [&str; 5] = [
    "pv_native_safe_halt",
    "native_safe_halt",
    "default_idle",
    "cpu_idle_poll",
    "acpi_idle_do_entry",
];

/// Busy samples of one profile, and how many of them each family took.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Share {
    pub busy: u64,
    pub by: BTreeMap<&'static str, u64>,
}

impl Share {
    /// Percent of the busy samples that guardian took, in all.
    pub fn total_pct(&self) -> f64 {
        self.by.values().sum::<u64>() as f64 / self.busy.max(1) as f64 * 100.0
    }

    pub fn pct(&self, family: &str) -> f64 {
        self.by.get(family).copied().unwrap_or(0) as f64 / self.busy.max(1) as f64 * 100.0
    }
}

/// Classifies the samples of `perf script -F comm,ip,sym` output (a line with the command,
/// then one line per frame, leaf first; a blank line between samples). Idle samples (the leaf
/// is an idle loop) and perf's own are left out of `busy`.
pub fn classify(script: &str) -> Share {
    let mut s = Share::default();
    for sample in script.split("\n\n") {
        let mut lines = sample.lines().filter(|l| !l.trim().is_empty());
        let Some(head) = lines.next() else { continue };
        let comm = head.split_whitespace().next().unwrap_or("");
        let frames: Vec<&str> = lines
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(|f| f.split('+').next().unwrap_or(f))
            .collect();
        if comm == "perf" || frames.first().is_some_and(|f| IDLE_LEAVES.contains(f)) {
            continue;
        }
        s.busy += 1;
        let any = |set: &[&str]| frames.iter().any(|f| set.contains(f));
        let program = |names: &[&str]| frames.iter().any(|f| is_program(f, names));
        let family = if comm.starts_with("guardian") || comm.starts_with("tokio") {
            Some(FAMILIES[0])
        } else if any(&UPROBE_FRAMES) {
            Some(FAMILIES[1])
        } else if any(&SYSCALL_FRAMES) || program(&SYSCALL_PROGRAMS) {
            Some(FAMILIES[2])
        } else if any(&SOCKET_FRAMES) || program(&SOCKET_PROGRAMS) {
            Some(FAMILIES[3])
        } else if any(&PACKET_FRAMES) || program(&PACKET_PROGRAMS) {
            Some(FAMILIES[4])
        } else if frames.iter().any(|f| {
            // A program, or a tracepoint's BPF entry (run only while one is attached; a
            // sample there has no program frame when it lands before or after the program).
            f.starts_with("bpf_prog_")
                || f.starts_with("__cgroup_bpf_run_filter")
                || f.starts_with("__bpf_trace_")
        }) {
            Some(FAMILIES[5])
        } else {
            None
        };
        if let Some(f) = family {
            *s.by.entry(f).or_default() += 1;
        }
    }
    s
}

/// `perf record` of every CPU for `secs`, classified.
pub fn profile(dir: &Path, secs: u64) -> Result<Share> {
    let data = dir.join("perf.data");
    let rec = Command::new("perf")
        .args([
            "record",
            "-q",
            "-a",
            "-g",
            "-e",
            "cpu-clock",
            "-F",
            "1999",
            "-o",
        ])
        .arg(&data)
        .args(["--", "sleep", &secs.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running perf record (is linux-perf installed?)")?;
    if !rec.status.success() {
        bail!(
            "perf record: {}",
            String::from_utf8_lossy(&rec.stderr).trim()
        );
    }
    let out = Command::new("perf")
        .args(["script", "-F", "comm,ip,sym", "-i"])
        .arg(&data)
        .stderr(Stdio::null())
        .output()
        .context("running perf script")?;
    if !out.status.success() {
        bail!("perf script failed");
    }
    let share = classify(&String::from_utf8_lossy(&out.stdout));
    if share.busy == 0 {
        bail!("perf recorded no busy sample");
    }
    Ok(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "\
nginx
\tffffffff81000001 bpf_sk_storage_get+0x10
\tffffffffc0000001 bpf_prog_4c47_http_egress+0x99
\tffffffff81000002 __cgroup_bpf_run_filter_skb+0x20
\tffffffff81000003 ip_finish_output+0x1

wrk
\tffffffff81000004 bpf_trace_run2+0x1
\tffffffff81000005 syscall_exit_work+0x2

nginx
\tffffffff81000006 handle_swbp+0x1
\tffffffff81000007 uprobe_notify_resume+0x1
\tffffffff81000005 syscall_exit_work+0x2

swapper
\tffffffff81000008 pv_native_safe_halt+0x5
\tffffffff81000009 default_idle+0x2

swapper
\tffffffff8100000a net_rx_action+0x5
\tffffffff81000008 pv_native_safe_halt+0x5

guardian
\t55555555 guardian::run+0x1

perf
\tffffffff8100000b do_syscall_64+0x1

nginx
\tffffffff8100000c tcp_sendmsg+0x1

wrk
\tffffffffc0000002 bpf_prog_aa_tcp_probe+0x1
\tffffffff8100000d bpf_trace_run4+0x1

nginx
\tffffffffc0000003 bpf_prog_bea0_http_ingress+0x5
\t7f0000000001 __GI___writev+0x1
\t0 [unknown]

nginx
\tffffffff8100000e bpf_trace_run3+0x1
\tffffffff8100000f __bpf_trace_sock_send_length+0x1
\tffffffff81000010 sock_sendmsg+0x1

nginx
\tffffffffc0000004 bpf_prog_cafe_tls_sock_recv+0x5
\t7f0000000002 __GI___libc_read+0x1

wrk
\tffffffff8100000e bpf_trace_run2+0x1
\tffffffff81000011 __bpf_trace_tcp_retransmit_skb+0x1
";

    #[test]
    fn samples_are_charged_to_the_hook_on_their_stack() {
        let s = classify(SCRIPT);
        // Busy: all but the idle leaf and perf's own (softirq on an idle CPU is busy).
        assert_eq!(s.busy, 11);
        // One under the hook's frame, one in the program whose kernel stack was lost.
        assert_eq!(s.by.get("packet programs"), Some(&2));
        assert_eq!(s.by.get("syscall hook"), Some(&1));
        // A trap taken on the way out of a syscall is the uprobe's, not the hook's.
        assert_eq!(s.by.get("uprobes"), Some(&1));
        assert_eq!(s.by.get("daemon"), Some(&1));
        // The socket tracepoints: in their BPF entry with no program frame, or in a program
        // whose kernel stack was lost.
        assert_eq!(s.by.get("socket tracepoints"), Some(&2));
        // A program, and another tracepoint's BPF entry.
        assert_eq!(s.by.get("other programs"), Some(&2));
        assert!((s.total_pct() - 9.0 / 11.0 * 100.0).abs() < 1e-9);
        assert_eq!(s.pct("absent"), 0.0);
    }

    #[test]
    fn no_hook_no_share() {
        let s = classify("nginx\n\tffffffff8100000c tcp_sendmsg+0x1\n\n");
        assert_eq!((s.busy, s.total_pct()), (1, 0.0));
        assert_eq!(classify(""), Share::default());
    }
}
