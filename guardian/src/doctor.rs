//! `guardian doctor`: can guardian run here, and if not, why. Every check says what it found;
//! the exit status is non-zero when a required check fails.
use aya::programs::ProgramType;
use serde::Serialize;

use crate::probes::{self, offsets, xdp};

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Not needed by what guardian runs today; reported for the operator.
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// A failure of a required check means guardian cannot run here.
    pub required: bool,
}

fn check(name: &str, required: bool, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        status: match (ok, required) {
            (true, _) => Status::Ok,
            (false, true) => Status::Fail,
            (false, false) => Status::Warn,
        },
        detail: detail.into(),
        required,
    }
}

/// Capabilities guardian uses, by bit number (linux/capability.h).
pub const CAPS: [(&str, u32, &str); 4] = [
    ("CAP_BPF", 39, "load programs and create maps"),
    ("CAP_PERFMON", 38, "tracepoints and reading kernel memory"),
    ("CAP_NET_ADMIN", 12, "XDP/tcx attachment, links and routes"),
    (
        "CAP_SYS_ADMIN",
        21,
        "entering other network namespaces (setns) for per-namespace gauges",
    ),
];

/// The effective capability mask from `/proc/self/status` (`CapEff:` hex).
pub fn cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// The mount point of the cgroup v2 hierarchy, from `/proc/self/mountinfo`.
pub fn cgroup2_mount(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        (fstype == "cgroup2").then(|| left.split_whitespace().nth(4).map(str::to_string))?
    })
}

/// Whether `fstype` is mounted at `path`, from `/proc/self/mountinfo`.
pub fn mounted(mountinfo: &str, path: &str, fstype: &str) -> bool {
    mountinfo.lines().any(|l| {
        let Some((left, right)) = l.split_once(" - ") else {
            return false;
        };
        left.split_whitespace().nth(4) == Some(path)
            && right.split_whitespace().next() == Some(fstype)
    })
}

fn program_type(name: &str, ty: ProgramType, required: bool, why: &str) -> Check {
    match aya::sys::is_program_supported(ty) {
        Ok(true) => check(name, required, true, format!("loads ({why})")),
        Ok(false) => check(
            name,
            required,
            false,
            format!("refused by this kernel ({why})"),
        ),
        Err(e) => check(name, required, false, format!("probe failed: {e} ({why})")),
    }
}

/// Runs every check. `xdp_ifaces` are the interfaces the operator means to pass to `--xdp`.
pub fn run(xdp_ifaces: &[String]) -> Vec<Check> {
    let mut out = Vec::new();
    let uname = nix::sys::utsname::uname()
        .map(|u| {
            format!(
                "{} {}",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy()
            )
        })
        .unwrap_or_else(|e| format!("uname failed: {e}"));
    out.push(check("kernel", true, cfg!(target_os = "linux"), uname));
    out.push(check(
        "ebpf_object",
        true,
        probes::has_object(),
        if probes::has_object() {
            "embedded in this binary"
        } else {
            "missing: this binary was built with AYA_BUILD_SKIP; rebuild with `cargo xtask build`"
        },
    ));

    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = cap_eff(&status).unwrap_or(0);
    for (cap, bit, why) in CAPS {
        let has = eff & (1 << bit) != 0;
        out.push(check(cap, true, has, why));
    }

    let btf = probes::btf_path();
    let btf_ok = btf.exists();
    out.push(check(
        "btf",
        true,
        btf_ok,
        if btf_ok {
            btf.display().to_string()
        } else {
            format!(
                "{} missing: the kernel needs CONFIG_DEBUG_INFO_BTF=y",
                btf.display()
            )
        },
    ));

    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let tracefs = probes::tracefs_path();
    out.push(check(
        "tracefs",
        true,
        tracefs.is_some(),
        match &tracefs {
            Some(p) => p.display().to_string(),
            None => "not mounted: mount -t tracefs nodev /sys/kernel/tracing".into(),
        },
    ));
    let bpffs = mounted(&mountinfo, "/sys/fs/bpf", "bpf");
    out.push(check(
        "bpffs",
        false,
        bpffs,
        if bpffs {
            "/sys/fs/bpf".to_string()
        } else {
            "not mounted (guardian pins nothing; mount -t bpf bpf /sys/fs/bpf for bpftool)".into()
        },
    ));
    let cg = cgroup2_mount(&mountinfo);
    out.push(check(
        "cgroup_v2",
        false,
        cg.is_some(),
        cg.unwrap_or_else(|| "no cgroup2 mount (needed by sock_ops remedies)".into()),
    ));

    // The real thing: every tracepoint field and kernel structure member guardian reads.
    if let (Some(tfs), true) = (&tracefs, btf_ok) {
        let derived = offsets::KernelBtf::open(btf).and_then(|b| offsets::derive(tfs, &b));
        out.push(match derived {
            Ok(o) => check(
                "offsets",
                true,
                true,
                format!(
                    "all tracepoint fields and BTF members found (tcp_retransmit_skb {} `err`; sock.sk_err {})",
                    if o.rtx_err == guardian_common::Offsets::ABSENT {
                        "without"
                    } else {
                        "with"
                    },
                    if o.sk_err == guardian_common::Offsets::ABSENT {
                        "absent: refused connects count as failures"
                    } else {
                        "found: refused connects apart"
                    }
                ),
            ),
            Err(e) => check("offsets", true, false, e.to_string()),
        });
    }

    out.push(program_type(
        "prog_tracepoint",
        ProgramType::TracePoint,
        true,
        "counters",
    ));
    out.push(program_type(
        "prog_xdp",
        ProgramType::Xdp,
        true,
        "--xdp counters",
    ));
    out.push(program_type(
        "prog_tc",
        ProgramType::SchedClassifier,
        false,
        "tcx DNS",
    ));
    out.push(program_type(
        "prog_sock_ops",
        ProgramType::SockOps,
        false,
        "fail-fast remedy",
    ));
    out.push(program_type(
        "prog_raw_tracepoint",
        ProgramType::RawTracePoint,
        false,
        "tp_btf",
    ));
    out.push(program_type(
        "prog_tracing",
        ProgramType::Tracing,
        false,
        "fentry/iterators; guardian does not need them",
    ));

    for iface in xdp_ifaces {
        let name = format!("xdp_free:{iface}");
        out.push(match nix::net::if_::if_nametoindex(iface.as_str()) {
            Err(_) => check(&name, true, false, "no such interface in this namespace"),
            Ok(ifindex) => match xdp::attached_program(ifindex, iface) {
                Ok(None) => check(&name, true, true, "no XDP program attached"),
                Ok(Some((id, _))) => check(
                    &name,
                    true,
                    false,
                    format!("XDP program id {id} already attached; guardian will not replace another tool's program"),
                ),
                Err(e) => check(&name, true, false, e.to_string()),
            },
        });
    }
    out.push(lock_check(std::path::Path::new(crate::lock::DIR)));
    out.extend(feature_checks());
    out
}

/// Whether `run` would get this namespace's lock ([`crate::lock`]): a daemon already holding
/// it is a warning (it is the one running here), an unsafe lock directory a failure.
pub fn lock_check(dir: &std::path::Path) -> Check {
    let netns = match crate::netns::current() {
        Ok(n) => n,
        Err(e) => return check("netns_lock", true, false, format!("/proc/self/ns/net: {e}")),
    };
    match crate::lock::holder(dir, netns) {
        Ok(None) => check(
            "netns_lock",
            true,
            true,
            format!("no guardian runs in this network namespace (netns {netns})"),
        ),
        Ok(Some(pid)) => check(
            "netns_lock",
            false,
            false,
            format!("guardian pid {pid} runs in this network namespace (netns {netns}): a second `guardian run` here would exit {}", crate::lock::EXIT_HELD),
        ),
        Err(e) => check("netns_lock", true, false, e.to_string()),
    }
}

/// One check per kernel feature (`feature:<name>`), proved by attaching in a throwaway
/// namespace (probes/prove.rs): ok when available, warn when degraded or unavailable (with
/// the reason and the faults it leaves undetected), FAIL only for the tracepoints, without
/// which guardian cannot run.
pub fn feature_checks() -> Vec<Check> {
    match probes::prove::prove() {
        Err(e) => vec![check("features", false, false, e)],
        Ok(features) => features
            .into_iter()
            .map(|f| {
                let required = f.feature == "tracepoints";
                let ok = f.state == probes::features::State::Available;
                let mut detail = match f.state {
                    probes::features::State::Available => f.reason,
                    probes::features::State::Degraded => format!("degraded: {}", f.reason),
                    probes::features::State::Unavailable => format!("unavailable: {}", f.reason),
                };
                if !ok && !f.uncovers.is_empty() {
                    detail.push_str(&format!(" (undetected: {})", f.uncovers.join(", ")));
                }
                check(&format!("feature:{}", f.feature), required, ok, detail)
            })
            .collect(),
    }
}

/// The config `run` would read: whether it is valid (a failure: `run` would exit 78), and a
/// warning per group- or world-writable file, directory or state directory.
pub fn config_checks(config: Option<&std::path::Path>) -> Vec<Check> {
    match crate::config::load(config, None) {
        Err(e) => vec![check(
            "config",
            true,
            false,
            crate::errors::sentence(&anyhow::Error::from(e)),
        )],
        Ok(cfg) => {
            let files = if cfg.files.is_empty() {
                "no config file: the defaults".to_string()
            } else {
                let names: Vec<String> =
                    cfg.files.iter().map(|f| f.display().to_string()).collect();
                format!("valid: {}", names.join(", "))
            };
            let mut out = vec![check("config", true, true, files)];
            let unsafe_paths: Vec<String> =
                crate::config::perms::paths(&cfg.files, &cfg.daemon.state_dir)
                    .iter()
                    .filter_map(|p| crate::config::perms::insecure(p))
                    .collect();
            out.push(if unsafe_paths.is_empty() {
                check(
                    "permissions",
                    false,
                    true,
                    "config files, their directories and the state directory are not writable by others",
                )
            } else {
                check("permissions", false, false, unsafe_paths.join("; "))
            });
            out
        }
    }
}

/// Prints the table (or JSON) and returns whether guardian can run here.
pub fn report(
    checks: &[Check],
    json: bool,
    out: &mut impl std::io::Write,
) -> std::io::Result<bool> {
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    if json {
        serde_json::to_writer_pretty(&mut *out, &serde_json::json!({"ok": ok, "checks": checks}))?;
        writeln!(out)?;
    } else {
        for c in checks {
            let mark = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            writeln!(out, "{mark}  {:<20} {}", c.name, c.detail)?;
        }
        writeln!(
            out,
            "{}",
            if ok {
                "guardian can run here"
            } else {
                "guardian cannot run here: see FAIL above"
            }
        )?;
    }
    Ok(ok)
}

#[cfg(test)]
#[path = "doctor_tests.rs"]
mod tests;
