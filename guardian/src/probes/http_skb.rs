//! The packet half of `guardian run --http` (guardian-ebpf/src/http_skb.rs): plaintext HTTP/1.x
//! requests and responses read from the segments of every socket, by two cgroup socket-buffer
//! programs on the cgroup v2 root. With them attached, the syscall hook (`http.rs`) is attached
//! only for TLS, and leaves plaintext to them (`HTTP_PLAIN_AT_SYSCALLS`).
use std::path::PathBuf;

use aya::{
    maps::Array,
    programs::{
        cgroup_skb::CgroupSkbLinkId, links::CgroupAttachMode, CgroupSkb, CgroupSkbAttachType,
    },
    Ebpf,
};

/// The programs and the direction each one is attached to.
pub const PROGRAMS: [(&str, CgroupSkbAttachType); 2] = [
    ("http_ingress", CgroupSkbAttachType::Ingress),
    ("http_egress", CgroupSkbAttachType::Egress),
];

/// The switch the syscall hook reads.
const PLAIN: &str = "HTTP_PLAIN_AT_SYSCALLS";

pub struct Attachment {
    pub cgroup: PathBuf,
    links: Vec<(&'static str, CgroupSkbLinkId)>,
}

impl Attachment {
    /// For the `attached` event.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "cgroup": self.cgroup,
            "programs": PROGRAMS.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        })
    }
}

/// Attaches both programs to the cgroup v2 root, or neither: one sentence on why not.
pub fn attach(ebpf: &mut Ebpf) -> Result<Attachment, String> {
    let cgroup = super::sockops::find_cgroup2()
        .ok_or("no cgroup v2 mount found (looked at /proc/self/mountinfo)")?;
    let file = std::fs::File::open(&cgroup)
        .map_err(|e| format!("opening the cgroup {}: {e}", cgroup.display()))?;
    let mut a = Attachment {
        cgroup,
        links: Vec::new(),
    };
    for (prog, dir) in PROGRAMS {
        let r = program(ebpf, prog).and_then(|p| {
            p.load()?;
            // A cgroup bpf_link: multi-attach, other tools' programs on the root keep running.
            p.attach(&file, dir, CgroupAttachMode::Single)
        });
        match r {
            Ok(id) => a.links.push((prog, id)),
            Err(e) => {
                let why = format!(
                    "{prog} on {}: {}",
                    a.cgroup.display(),
                    super::binds::without_log(&e.to_string())
                );
                detach(ebpf, a);
                return Err(why);
            }
        }
    }
    Ok(a)
}

fn program<'a>(
    ebpf: &'a mut Ebpf,
    prog: &'static str,
) -> Result<&'a mut CgroupSkb, aya::programs::ProgramError> {
    ebpf.program_mut(prog)
        .ok_or(aya::programs::ProgramError::NotLoaded)?
        .try_into()
}

/// Tells the syscall hook whether it reads plaintext HTTP too (the packet programs are not
/// attached).
pub fn set_plain_at_syscalls(ebpf: &mut Ebpf, on: bool) -> Result<(), String> {
    let map = ebpf
        .map_mut(PLAIN)
        .ok_or_else(|| format!("map {PLAIN} is missing from the eBPF object"))?;
    let mut a: Array<_, u32> = Array::try_from(map).map_err(|e| e.to_string())?;
    a.set(0, u32::from(on), 0).map_err(|e| e.to_string())
}

/// Detaches both programs; what was detached.
pub fn detach(ebpf: &mut Ebpf, a: Attachment) -> Vec<String> {
    let mut done = Vec::new();
    for (prog, id) in a.links {
        match program(ebpf, prog).and_then(|p| p.detach(id)) {
            Ok(()) => done.push(format!("cgroup_skb:{prog}:{}", a.cgroup.display())),
            Err(e) => tracing::warn!(program = prog, error = %e, "detach failed"),
        }
    }
    done
}
