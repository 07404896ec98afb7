//! How failed binds are seen (`port_conflict`): cgroup programs on the cgroup v2 root
//! (guardian-ebpf/src/binds.rs), which run only inside bind(2) and when a socket is released,
//! or, where the kernel refuses them, the `syscalls:sys_{enter,exit}_bind` tracepoints.
//!
//! The tracepoints are only the fallback because any `syscalls:` tracepoint puts every
//! syscall of every task on the kernel's tracing slow path: on this project's bench machine
//! that was about 2.7 µs of CPU per nginx keep-alive request (12 %), with no program of
//! guardian's running at all (docs/benchmarks.md).
use std::path::PathBuf;

use aya::{
    programs::{
        cgroup_sock::CgroupSockLinkId, cgroup_sock_addr::CgroupSockAddrLinkId,
        links::CgroupAttachMode, trace_point::TracePointLinkId, CgroupSock, CgroupSockAddr,
        ProgramError,
    },
    Ebpf,
};

use super::error::ProbeError;

/// The fallback: (program, tracepoint category, tracepoint name).
pub const TRACEPOINTS: [(&str, &str, &str); 2] = [
    ("bind_enter", "syscalls", "sys_enter_bind"),
    ("bind_exit", "syscalls", "sys_exit_bind"),
];

/// The cgroup programs: the attempts (sock_addr), then success and release (sock).
pub const ATTEMPTS: [&str; 2] = ["bind4", "bind6"];
pub const OUTCOMES: [&str; 3] = ["bound4", "bound6", "bind_release"];

pub enum Link {
    Attempt(&'static str, CgroupSockAddrLinkId),
    Outcome(&'static str, CgroupSockLinkId),
}

/// How binds are watched.
pub enum Binds {
    /// The cgroup programs, on `cgroup`.
    Cgroup { cgroup: PathBuf, links: Vec<Link> },
    /// The syscall tracepoints (in the caller's tracepoint list), and why not the cgroup
    /// programs.
    Tracepoints { why: String },
}

impl Binds {
    /// For the `attached` event.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Binds::Cgroup { cgroup, .. } => serde_json::json!({
                "cgroup": cgroup,
                "programs": ATTEMPTS.iter().chain(OUTCOMES.iter()).collect::<Vec<_>>(),
            }),
            Binds::Tracepoints { why } => serde_json::json!({
                "tracepoints": TRACEPOINTS.iter().map(|(p, c, n)| serde_json::json!({"program": p, "tracepoint": format!("{c}:{n}")})).collect::<Vec<_>>(),
                "cgroup_error": why,
            }),
        }
    }
}

/// Attaches the cgroup programs to the cgroup v2 root (whatever `sockopt_failfast.cgroup`
/// says: every bind counts), all or none; else the tracepoints through `attach_tp` (an error
/// there is the caller's: without either, no port conflict is seen).
pub fn attach(
    ebpf: &mut Ebpf,
    mut attach_tp: impl FnMut(
        &mut Ebpf,
        &'static str,
        &str,
        &str,
    ) -> Result<TracePointLinkId, ProbeError>,
    tracepoints: &mut Vec<(&'static str, TracePointLinkId)>,
) -> Result<Binds, ProbeError> {
    let mut links = Vec::new();
    match attach_cgroup(ebpf, &mut links) {
        Ok(cgroup) => Ok(Binds::Cgroup { cgroup, links }),
        Err(e) => {
            for l in links {
                let _ = detach_link(ebpf, l);
            }
            tracing::info!(reason = %e, "failed binds through the syscall tracepoints, not the cgroup programs");
            for (prog, category, name) in TRACEPOINTS {
                let link = attach_tp(ebpf, prog, category, name)?;
                tracepoints.push((prog, link));
            }
            Ok(Binds::Tracepoints { why: e })
        }
    }
}

/// `doctor`'s proof: attaches the cgroup programs and detaches them at once (for those
/// milliseconds they also run for the host's binds, into the caller's throwaway maps).
pub fn prove(ebpf: &mut Ebpf) -> Result<(), String> {
    let mut links = Vec::new();
    let r = attach_cgroup(ebpf, &mut links).map(|_| ());
    for l in links {
        let _ = detach_link(ebpf, l);
    }
    r
}

fn attach_cgroup(ebpf: &mut Ebpf, links: &mut Vec<Link>) -> Result<PathBuf, String> {
    let path = super::sockops::find_cgroup2()
        .ok_or("no cgroup v2 mount found (looked at /proc/self/mountinfo)")?;
    let file = std::fs::File::open(&path)
        .map_err(|e| format!("opening the cgroup {}: {e}", path.display()))?;
    let err = |prog: &str, e: ProgramError| {
        format!(
            "{prog} on {}: {}",
            path.display(),
            without_log(&e.to_string())
        )
    };
    for prog in ATTEMPTS {
        let p: &mut CgroupSockAddr = ebpf
            .program_mut(prog)
            .ok_or(format!("program {prog} is missing from the eBPF object"))?
            .try_into()
            .map_err(|e| err(prog, e))?;
        p.load().map_err(|e| err(prog, e))?;
        // A cgroup bpf_link: multi-attach, other tools' programs on the cgroup keep running.
        let id = p
            .attach(&file, CgroupAttachMode::Single)
            .map_err(|e| err(prog, e))?;
        links.push(Link::Attempt(prog, id));
    }
    for prog in OUTCOMES {
        let p: &mut CgroupSock = ebpf
            .program_mut(prog)
            .ok_or(format!("program {prog} is missing from the eBPF object"))?
            .try_into()
            .map_err(|e| err(prog, e))?;
        p.load().map_err(|e| err(prog, e))?;
        let id = p
            .attach(&file, CgroupAttachMode::Single)
            .map_err(|e| err(prog, e))?;
        links.push(Link::Outcome(prog, id));
    }
    Ok(path)
}

/// An error without the verifier's log, which can be thousands of lines: the `attached` event
/// and the daemon's log get the kernel's answer (bpftool can show the rest).
pub(super) fn without_log(e: &str) -> &str {
    e.split(". Verifier output").next().unwrap_or(e)
}

fn detach_link(ebpf: &mut Ebpf, l: Link) -> Result<&'static str, (&'static str, ProgramError)> {
    match l {
        Link::Attempt(prog, id) => {
            let p: &mut CgroupSockAddr = ebpf
                .program_mut(prog)
                .ok_or((prog, ProgramError::NotLoaded))?
                .try_into()
                .map_err(|e| (prog, e))?;
            p.detach(id).map(|()| prog).map_err(|e| (prog, e))
        }
        Link::Outcome(prog, id) => {
            let p: &mut CgroupSock = ebpf
                .program_mut(prog)
                .ok_or((prog, ProgramError::NotLoaded))?
                .try_into()
                .map_err(|e| (prog, e))?;
            p.detach(id).map(|()| prog).map_err(|e| (prog, e))
        }
    }
}

/// Detaches the cgroup programs (the tracepoints are the caller's); what was detached.
pub fn detach(ebpf: &mut Ebpf, b: Binds) -> Vec<String> {
    let Binds::Cgroup { cgroup, links } = b else {
        return Vec::new();
    };
    let mut done = Vec::new();
    for l in links {
        match detach_link(ebpf, l) {
            Ok(prog) => done.push(format!("cgroup:{prog}:{}", cgroup.display())),
            Err((prog, e)) => tracing::warn!(program = prog, error = %e, "detach failed"),
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_reported_without_the_verifiers_log() {
        let e = "the BPF_PROG_LOAD syscall returned Permission denied (os error 13). Verifier \
                 output: 0: R1=ctx() R10=fp0\n150: (61) r4 = *(u32 *)(r2 +0)\ndereference of \
                 modified ctx ptr R2 off=8 disallowed";
        assert_eq!(
            without_log(e),
            "the BPF_PROG_LOAD syscall returned Permission denied (os error 13)"
        );
        assert_eq!(without_log("no cgroup v2"), "no cgroup v2");
    }

    #[test]
    fn the_fallback_names_its_tracepoints_and_why() {
        let b = Binds::Tracepoints {
            why: "bind4 on /sys/fs/cgroup: refused".into(),
        };
        let d = b.describe();
        assert_eq!(d["cgroup_error"], "bind4 on /sys/fs/cgroup: refused");
        assert_eq!(d["tracepoints"][1]["tracepoint"], "syscalls:sys_exit_bind");
        assert!(d.get("cgroup").is_none());
    }
}
