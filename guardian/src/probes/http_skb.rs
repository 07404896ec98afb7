//! The packet half of `guardian run --http` (guardian-ebpf/src/http_skb.rs): plaintext HTTP/1.x
//! requests and responses read from the segments of every socket, by two cgroup socket-buffer
//! programs on the cgroup v2 root. With them attached, TLS takes the socket tracepoints (Linux
//! 6.3+), or the syscall hook (`http.rs`), which then leaves plaintext to them
//! (`HTTP_PLAIN_AT_SYSCALLS`).
//!
//! The programs look at a segment's payload only on a marked local port (`HTTP_PORTS`), which
//! a listener's SYN marks. A connection accepted before the attach (guardian restarted under a
//! load balancer's pooled keep-alive connections, say) may never see a new SYN on its port, so
//! the attach also marks the ports of every TCP listener that exists at that moment, in every
//! namespace ([`mark_listeners`]).
use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
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

/// The port bitmap the programs read (one bit per local port, 1024 words of 64).
const PORTS: &str = "HTTP_PORTS";

pub struct Attachment {
    pub cgroup: PathBuf,
    links: Vec<(&'static str, CgroupSkbLinkId)>,
    /// Listener ports marked at the attach, or why none were.
    pub listeners: Result<usize, String>,
}

impl Attachment {
    /// For the `attached` event.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "cgroup": self.cgroup,
            "programs": PROGRAMS.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            "listener_ports": match &self.listeners {
                Ok(n) => serde_json::json!(n),
                Err(e) => serde_json::json!({ "error": e }),
            },
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
        listeners: Ok(0),
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
    // After the attach: a listener created in between has its SYNs seen, one created before
    // is found here. Not fatal: its ports are marked by their next SYN.
    a.listeners = mark_listeners(ebpf);
    match &a.listeners {
        Ok(n) => tracing::debug!(ports = n, "listener ports marked for the packet programs"),
        Err(e) => {
            tracing::warn!(error = %e, "listener ports not marked: connections accepted before the attach are seen only once their port accepts another")
        }
    }
    Ok(a)
}

/// The local ports of the listening sockets (state `0A`) in one `/proc/net/tcp` or `tcp6`
/// text.
pub fn listen_ports(text: &str) -> impl Iterator<Item = u16> + '_ {
    text.lines().skip(1).filter_map(|l| {
        let mut f = l.split_whitespace();
        let local = f.nth(1)?;
        (f.nth(1)? == "0A").then_some(())?;
        u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
    })
}

/// The port bitmap's words that `ports` set: word index, bits.
pub fn port_words(ports: impl IntoIterator<Item = u16>) -> BTreeMap<u32, u64> {
    let mut w = BTreeMap::new();
    for p in ports {
        *w.entry(u32::from(p >> 6)).or_insert(0) |= 1u64 << (p & 63);
    }
    w
}

/// Marks in `HTTP_PORTS` the local ports of every TCP listener of the host, read from the
/// `/proc/PID/net/tcp{,6}` of one process per namespace (a listener is held by a process, so
/// every namespace with one is found). Returns how many distinct ports were marked.
pub fn mark_listeners(ebpf: &mut Ebpf) -> Result<usize, String> {
    let dir = std::fs::read_dir("/proc").map_err(|e| format!("reading /proc: {e}"))?;
    let mut seen_ns = HashSet::new();
    let mut ports = HashSet::new();
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        // A process that exits meanwhile is skipped; its namespace is another's too, or empty.
        let Ok(ns) = std::fs::metadata(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        if !seen_ns.insert((ns.dev(), ns.ino())) {
            continue;
        }
        for f in ["tcp", "tcp6"] {
            if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{f}")) {
                ports.extend(listen_ports(&text));
            }
        }
    }
    let map = ebpf
        .map_mut(PORTS)
        .ok_or_else(|| format!("map {PORTS} is missing from the eBPF object"))?;
    let mut a: Array<_, u64> = Array::try_from(map).map_err(|e| e.to_string())?;
    for (i, bits) in port_words(ports.iter().copied()) {
        // A read and a write, like the programs' own marking: a bit the kernel sets in
        // between may be lost, and its port's next SYN sets it again.
        let old = a.get(&i, 0).map_err(|e| format!("{PORTS}[{i}]: {e}"))?;
        a.set(i, old | bits, 0)
            .map_err(|e| format!("{PORTS}[{i}]: {e}"))?;
    }
    Ok(ports.len())
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
    super::switch::set(ebpf, PLAIN, on)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_listeners_of_proc_net_tcp() {
        let tcp = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
";
        assert_eq!(listen_ports(tcp).collect::<Vec<_>>(), [8080, 80]);
        let tcp6 = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0
";
        assert_eq!(listen_ports(tcp6).collect::<Vec<_>>(), [8081]);
        assert_eq!(listen_ports("header only\n").count(), 0);
    }

    #[test]
    fn ports_become_the_programs_bits() {
        // The programs test bit `port & 63` of word `port >> 6`.
        let w = port_words([80, 8080, 8081, 0, 65535]);
        assert_eq!(w[&1], 1 << 16);
        assert_eq!(w[&126], (1 << 16) | (1 << 17));
        assert_eq!(w[&0], 1);
        assert_eq!(w[&1023], 1 << 63);
        assert_eq!(w.len(), 4);
    }
}
