//! `cargo xtask test --kernel <6.1|6.12|5.10|all>`: the end-to-end tests inside QEMU VMs
//! booted with Debian's kernels (see docs/kernels.md). Kernels, QEMU and the private apt
//! configuration are cached in `target/kernels/`; each run's output is in
//! `target/kernels/runs/<kernel>/` (console.log, doctor.txt, e2e.txt, their exit codes).

mod apt;
mod vm;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cmd;

/// The factor the end-to-end harness multiplies its latency bounds and waits by (read by
/// guardian-tests, `util::time_scale`): TCG runs the guest several times slower than the host.
pub const TIME_SCALE_ENV: &str = "GUARDIAN_TIME_SCALE";
const DEFAULT_TIME_SCALE: &str = "10";

/// The end-to-end tests `cargo xtask test` runs in a 6.1 VM: what differs per kernel. The
/// doctor test fails when a program a run would load is refused (its proof loads the object
/// with the run's globals: `tls_hs_exit` went over 6.1's stack limit unseen by CI once).
pub const SMOKE: &[&str] = &[
    "doctor::doctor_passes_as_root_and_fails_without_capabilities",
    "retransmits::",
    "link_heal::enforce_brings_a_keep_up_link_back",
    "link_heal::enforce_restores_a_deleted_route",
    "xdp_syn::",
];

/// The kernel suite (`cargo xtask test --kernel V`, or `--suite kernel`): one end-to-end test
/// per feature or program type whose behaviour can differ per kernel (docs/kernels.md), as
/// (libtest filter, what it proves). Latency bounds are scaled by [`TIME_SCALE_ENV`].
pub const SUITE: &[(&str, &str)] = &[
    (
        "doctor::doctor_passes_as_root",
        "doctor proves every feature by attaching (tracepoints, XDP, tcx or clsact, sock_ops)",
    ),
    (
        "kernel_features::",
        "`attached` coverage matches the kernel (tracefs format, tcx); sockstat tw per netns",
    ),
    (
        "retransmits::",
        "exact retransmits = nstat (TCPRetransFail added before 6.17)",
    ),
    (
        "link_heal::enforce_brings_a_keep_up_link_back",
        "link heal (netlink)",
    ),
    (
        "link_heal::enforce_restores_a_deleted_route",
        "route restore (netlink)",
    ),
    ("xdp_syn::", "XDP: SYNs per source"),
    (
        "faults_links_dns::dns_failure",
        "DNS programs through tcx, or clsact before 6.6",
    ),
    (
        "time_wait::",
        "TIME_WAIT: sockstat and sock:inet_sock_set_state",
    ),
    (
        "heal_failfast::enforce_makes_new_connects",
        "sock_ops remedy in a cgroup",
    ),
    (
        "connection_refused::",
        "sk_err read through BTF offsets (tracepoints)",
    ),
    (
        "bind_conflict::bind_eaddrinuse",
        "failed binds: cgroup bind programs, or the bind tracepoints and why",
    ),
    (
        "bind_conflict::only_binds",
        "only binds that fail on a taken port, each counted (either hook)",
    ),
    (
        "attacks_user::nobody_cannot_widen",
        "connect EADDRNOTAVAIL from sock_state (tcp_sock.segs_out through BTF)",
    ),
    (
        "http::nginx",
        "plaintext from the packet programs, TLS through the syscall hook and libssl uprobes (--http)",
    ),
    (
        "http_packets::",
        "cgroup_skb programs (direct packet reads, bpf_skc_to_tcp_sock), or the syscall hook and why",
    ),
    (
        "http_held::",
        "keep-alive connections from before the start: listener ports marked, libssl processes marked",
    ),
    (
        "http_fd_reuse::",
        "--http's sys_exit program (5.11), or the tracepoints and why",
    ),
    (
        "http2::",
        "HTTP/2 over TLS: the SSL_write uprobe's bounded frame walk (verifier), EAGAIN retries",
    ),
    (
        "faults_flows::mtu_blackhole",
        "per-flow retransmits (`family`); on 5.10 the degradation is reported",
    ),
];

/// Which tests a VM runs when no filter is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// [`SUITE`]: what can differ per kernel (the default)
    Kernel,
    /// [`SMOKE`]: CI's subset
    Smoke,
    /// every end-to-end test (hours under TCG)
    All,
}

impl Suite {
    /// The libtest filters of this suite (none for `All`: every test).
    pub fn filters(self) -> Vec<OsString> {
        match self {
            Suite::Kernel => SUITE.iter().map(|(f, _)| f.into()).collect(),
            Suite::Smoke => SMOKE.iter().map(Into::into).collect(),
            Suite::All => Vec::new(),
        }
    }
}

/// The guest's `kinfo` step: the release, and the kallsyms entries of the functions that
/// skip (and, from 6.7, count) recursive tracepoint runs.
const KINFO: &str = "uname -r; grep -E ' (trace_call_bpf|perf_trace_run_bpf_submit|\
    bpf_prog_inc_misses_counters?|bpf_trace_run1|__bpf_trace_run)$' /proc/kallsyms";

/// What the guest runs: the binaries the host built.
pub struct Binaries {
    pub guardian: PathBuf,
    pub lab: PathBuf,
    pub schema: PathBuf,
    pub e2e: PathBuf,
}

/// One kernel's outcome.
struct Outcome {
    label: String,
    package: String,
    boot_secs: Option<f64>,
    total: Duration,
    doctor: Option<i32>,
    e2e: Option<i32>,
    e2e_summary: String,
}

/// The labels `--kernel` accepts: one of [`apt::KERNELS`] or `all`.
pub fn labels(arg: &str) -> Result<Vec<&'static str>> {
    let known: Vec<&'static str> = apt::KERNELS.iter().map(|k| k.label).collect();
    if arg == "all" {
        return Ok(known);
    }
    match known.iter().find(|k| **k == arg) {
        Some(k) => Ok(vec![k]),
        None => bail!(
            "--kernel {arg} is not a kernel the matrix knows: use one of {} or all",
            known.join(", ")
        ),
    }
}

/// Boots each kernel in turn and runs doctor and the end-to-end tests (`filter` as libtest
/// arguments) inside; fails if any kernel's tests fail.
pub fn run(
    kernels: &[&str],
    bins: &Binaries,
    filter: &[OsString],
    timeout: Duration,
) -> Result<()> {
    let root = cmd::target_dir()?.join("kernels");
    if root.starts_with("/tmp") {
        bail!(
            "the target directory {} is under /tmp, which the VM's guest covers with a tmpfs: \
             set CARGO_TARGET_DIR elsewhere for --kernel",
            root.display()
        );
    }
    fs::create_dir_all(&root)?;
    let apt = apt::Apt::new(&root.join("apt"))?;
    let qemu = apt::qemu(&apt, &root)?;
    let mut outcomes = Vec::new();
    for label in kernels {
        let spec = apt::KERNELS
            .iter()
            .find(|k| k.label == *label)
            .context("unknown kernel")?;
        let kernel = apt::kernel(&apt, &root, spec)?;
        outcomes.push(one(&qemu, &root, label, &kernel, bins, filter, timeout)?);
    }
    eprintln!(
        "\nkernel matrix (outputs in {}):",
        root.join("runs").display()
    );
    eprintln!(
        "{:<6} {:<44} {:>7} {:>8} {:>6}  e2e",
        "kernel", "package", "boot", "total", "doctor"
    );
    let mut failed = Vec::new();
    for o in &outcomes {
        eprintln!(
            "{:<6} {:<44} {:>7} {:>8} {:>6}  {}",
            o.label,
            o.package,
            o.boot_secs
                .map(|s| format!("{s:.1}s"))
                .unwrap_or("-".into()),
            cmd::secs(o.total),
            o.doctor.map(|c| c.to_string()).unwrap_or("-".into()),
            o.e2e_summary
        );
        if o.e2e != Some(0) {
            failed.push(o.label.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "the end-to-end tests failed inside the VM on kernel {} (see e2e.txt and \
             console.log under {})",
            failed.join(", "),
            root.join("runs").display()
        );
    }
    Ok(())
}

fn one(
    qemu: &Path,
    root: &Path,
    label: &str,
    kernel: &apt::Kernel,
    bins: &Binaries,
    filter: &[OsString],
    timeout: Duration,
) -> Result<Outcome> {
    let out = root.join("runs").join(label);
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out)?;
    let stage2 = out.join("stage2.sh");
    let initrd = kernel.dir.join("initramfs.cpio");
    vm::initramfs(kernel, &kernel.dir, &initrd, &stage2)?;
    let s = |p: &Path| p.display().to_string();
    let scale = std::env::var(TIME_SCALE_ENV).unwrap_or_else(|_| DEFAULT_TIME_SCALE.into());
    let env = vec![
        (crate::test::BIN_ENV.to_string(), s(&bins.guardian)),
        (crate::test::LAB_BIN_ENV.to_string(), s(&bins.lab)),
        (crate::test::SCHEMA_ENV.to_string(), s(&bins.schema)),
        (TIME_SCALE_ENV.to_string(), scale),
        ("RUST_BACKTRACE".to_string(), "1".to_string()),
    ];
    let mut e2e = format!(
        // --nocapture: the figures the tests print (counts, latencies, sockstat) are the
        // matrix's measurements, kept in e2e.txt.
        "cd {} && {} --test-threads=1 --nocapture",
        vm::quote(&s(&cmd::repo_root()?.join("tests"))),
        vm::quote(&s(&bins.e2e))
    );
    for f in filter {
        e2e.push(' ');
        e2e.push_str(&vm::quote(&f.to_string_lossy()));
    }
    let steps = [
        (
            "doctor",
            format!("{} doctor", vm::quote(&s(&bins.guardian))),
        ),
        // Where the kernel counts skipped tracepoint runs (docs/kernels.md): the symbols,
        // at their link addresses (`nokaslr`), to disassemble in the package's vmlinuz.
        ("kinfo", KINFO.to_string()),
        ("e2e", e2e),
    ];
    vm::modprobe_wrapper(kernel, &out)?;
    fs::write(&stage2, vm::stage2(&out, &env, &steps))?;
    let boot = vm::boot(qemu, kernel, &initrd, &out, timeout)?;
    let rc = |name: &str| -> Option<i32> {
        fs::read_to_string(boot.out.join(format!("{name}.rc")))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let e2e_text = fs::read_to_string(out.join("e2e.txt")).unwrap_or_default();
    let summary = e2e_text
        .lines()
        .rev()
        .find(|l| l.starts_with("test result:"))
        .map(|l| l.trim_start_matches("test result: ").to_string())
        .unwrap_or_else(|| "no result (see console.log)".into());
    if rc("e2e") != Some(0) {
        let tail: Vec<&str> = e2e_text.lines().rev().take(60).collect();
        eprintln!("--- e2e.txt (last lines) on {label} ---");
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
    }
    Ok(Outcome {
        label: label.to_string(),
        package: kernel.package.clone(),
        boot_secs: boot.boot_secs,
        total: boot.total,
        doctor: rc("doctor"),
        e2e: rc("e2e"),
        e2e_summary: summary,
    })
}
