//! The HTTP status programs (guardian-ebpf/src/http.rs): their offsets, from tracefs and BTF,
//! and their hooks, attached only with `guardian run --http`: for TLS where the packet
//! programs read plaintext, two BTF tracepoints on the socket tracepoints (Linux 6.3+;
//! guardian-ebpf/src/tls_sock.rs); else one on the raw `sys_exit` tracepoint where the kernel
//! loads it (x86-64; guardian-ebpf/src/sys_exit.rs), else the syscall tracepoints.
use std::path::Path;

use aya::{
    programs::{
        tp_btf::BtfTracePointLinkId, trace_point::TracePointLinkId, BtfTracePoint, TracePoint,
    },
    Btf, Ebpf,
};
use guardian_common::http::HttpOffsets;

use super::offsets::{KernelBtf, OffsetError, TracepointFields};
use super::ProbeError;

/// The kernel map the sampler reads.
pub const MAP: &str = "HTTP_STATS";

/// The program on the raw `sys_exit` tracepoint: reads and writes in one.
pub const SYS_EXIT: &str = "http_sys_exit";

/// Without it, the read side: the enter programs hand the fd and buffer to the exit one
/// (sys_exit_read and sys_exit_recvfrom share one program).
const READS_PAIR: [(&str, &str); 4] = [
    ("http_read_enter", "sys_enter_read"),
    ("http_read_exit", "sys_exit_read"),
    ("http_recvfrom_enter", "sys_enter_recvfrom"),
    ("http_read_exit", "sys_exit_recvfrom"),
];

const WRITES: [(&str, &str); 4] = [
    ("http_write", "sys_enter_write"),
    ("http_sendto", "sys_enter_sendto"),
    ("http_writev", "sys_enter_writev"),
    ("http_sendmsg", "sys_enter_sendmsg"),
];

/// Every offset the programs read; an error names the first one this kernel lacks.
pub fn derive(tracefs: &Path, btf: &KernelBtf) -> Result<HttpOffsets, OffsetError> {
    let tp = |name: &str| TracepointFields::read(tracefs, "syscalls", name);
    let (read, recvfrom, write) = (
        tp("sys_enter_read")?,
        tp("sys_enter_recvfrom")?,
        tp("sys_enter_write")?,
    );
    let (sendto, writev, sendmsg) = (
        tp("sys_enter_sendto")?,
        tp("sys_enter_writev")?,
        tp("sys_enter_sendmsg")?,
    );
    let exit = tp("sys_exit_read")?;
    let off = |s: &str, p: &[&str]| -> Result<u16, OffsetError> {
        let v = btf.member_offset(s, p)?;
        u16::try_from(v)
            .ok()
            .filter(|v| *v != HttpOffsets::ABSENT)
            .ok_or_else(|| OffsetError::TooLarge {
                what: format!("{s}.{}", p.join(".")),
                value: v,
            })
    };
    Ok(HttpOffsets {
        read_fd: read.required("fd")?,
        read_buf: read.required("buf")?,
        recvfrom_fd: recvfrom.required("fd")?,
        recvfrom_buf: recvfrom.required("ubuf")?,
        write_fd: write.required("fd")?,
        write_buf: write.required("buf")?,
        sendto_fd: sendto.required("fd")?,
        sendto_buf: sendto.required("buff")?,
        writev_fd: writev.required("fd")?,
        writev_vec: writev.required("vec")?,
        write_count: write.required("count")?,
        sendto_len: sendto.required("len")?,
        writev_vlen: writev.required("vlen")?,
        sendmsg_fd: sendmsg.required("fd")?,
        sendmsg_msg: sendmsg.required("msg")?,
        exit_ret: exit.required("ret")?,
        task_files: off("task_struct", &["files"])?,
        files_fdt: off("files_struct", &["fdt"])?,
        fdt_fd: off("fdtable", &["fd"])?,
        fdt_max_fds: off("fdtable", &["max_fds"])?,
        file_private: off("file", &["private_data"])?,
        socket_sk: off("socket", &["sk"])?,
        socket_file: off("socket", &["file"])?,
        skc_num: off("sock_common", &["skc_num"])?,
        skc_family: off("sock_common", &["skc_family"])?,
        skc_rcv_saddr: off("sock_common", &["skc_rcv_saddr"])?,
        // Kernels without IPv6 have no such member: IPv6 services then show no address.
        skc_v6_rcv_saddr: off("sock_common", &["skc_v6_rcv_saddr"]).unwrap_or(HttpOffsets::ABSENT),
        skc_daddr: off("sock_common", &["skc_daddr"])?,
        skc_v6_daddr: off("sock_common", &["skc_v6_daddr"]).unwrap_or(HttpOffsets::ABSENT),
        skc_dport: off("sock_common", &["skc_dport"])?,
        inet_sport: off("inet_sock", &["inet_sport"])?,
        sk_max_ack_backlog: off("sock", &["sk_max_ack_backlog"])?,
        // The registers a syscall's number and first three arguments arrive in, and where a
        // task says its syscall is a 32-bit one (x86-64 only: elsewhere, or without them, the
        // syscall tracepoints take the arguments).
        regs_arg0: x86(btf, "pt_regs", &["di"]),
        regs_arg1: x86(btf, "pt_regs", &["si"]),
        regs_arg2: x86(btf, "pt_regs", &["dx"]),
        regs_nr: x86(btf, "pt_regs", &["orig_ax"]),
        task_status: x86(btf, "task_struct", &["thread_info", "status"]),
        // The task's ids: also read by the packet programs, on any architecture.
        task_pid: optional(btf, "task_struct", &["pid"]),
        task_tgid: optional(btf, "task_struct", &["tgid"]),
    })
}

/// An offset only the x86-64 programs use; ABSENT on other architectures or when BTF lacks
/// it.
fn x86(btf: &KernelBtf, name: &str, path: &[&str]) -> u16 {
    if !cfg!(target_arch = "x86_64") {
        return HttpOffsets::ABSENT;
    }
    optional(btf, name, path)
}

/// An offset some programs can do without: ABSENT when BTF lacks it.
fn optional(btf: &KernelBtf, name: &str, path: &[&str]) -> u16 {
    btf.member_offset(name, path)
        .ok()
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(HttpOffsets::ABSENT)
}

/// Whether `o` has every offset `http_sys_exit` reads.
fn sys_exit_offsets(o: &HttpOffsets) -> bool {
    [
        o.regs_arg0,
        o.regs_arg1,
        o.regs_arg2,
        o.regs_nr,
        o.task_status,
        o.task_pid,
        o.task_tgid,
    ]
    .iter()
    .all(|v| *v != HttpOffsets::ABSENT)
}

/// The switch that turns HTTP/2 following on (guardian-ebpf/src/tls_h2.rs).
const H2_ON: &str = "TLS_H2_ON";

/// The switch that counts plaintext TLS alerts from the packets (guardian-ebpf/src/tls_alert.rs).
const ALERTS_AT_PACKETS: &str = "TLS_ALERT_SKB";

/// Turns HTTP/2 over TLS on when `hooks` see a write's result (`http_sys_exit`, or the socket
/// tracepoints), which the frame walk needs to tell a retried write from a new one; returns
/// whether it is on.
pub fn set_h2(ebpf: &mut Ebpf, hooks: &Hooks) -> Result<bool, String> {
    let on = hooks.fallback().is_none();
    super::switch::set(ebpf, H2_ON, on)?;
    Ok(on)
}

/// Where `hooks` see no write's bytes (the socket tracepoints), has the packet programs count
/// the plaintext TLS alerts instead; an error means alerts are not counted.
pub fn set_alerts(ebpf: &mut Ebpf, hooks: &Hooks) -> Result<(), String> {
    super::switch::set(ebpf, ALERTS_AT_PACKETS, matches!(hooks, Hooks::Sockets(_)))
}

/// The TLS programs on the socket tracepoints (guardian-ebpf/src/tls_sock.rs, Linux 6.3+).
pub const SOCKETS: [(&str, &str); 2] = [
    ("tls_sock_recv", "sock_recv_length"),
    ("tls_sock_send", "sock_send_length"),
];

/// What `attach` or `attach_sockets` attached.
pub enum Hooks {
    /// `http_sys_exit` on the raw `sys_exit` tracepoint.
    SysExit(BtfTracePointLinkId),
    /// The (program, syscall tracepoint) pairs, and why `http_sys_exit` is not used.
    Syscalls(Vec<(&'static str, &'static str)>, String),
    /// The TLS programs on the socket tracepoints (plaintext is the packet programs').
    Sockets(Vec<(&'static str, BtfTracePointLinkId)>),
}

impl Hooks {
    /// Why the syscall tracepoints are used (None: `http_sys_exit` or the socket tracepoints,
    /// which see a write's result, are).
    pub fn fallback(&self) -> Option<&str> {
        match self {
            Hooks::SysExit(_) | Hooks::Sockets(_) => None,
            Hooks::Syscalls(_, why) => Some(why),
        }
    }

    /// (program, hook) pairs, for the `attached` event.
    pub fn names(&self) -> Vec<(&'static str, String)> {
        match self {
            Hooks::SysExit(_) => vec![(SYS_EXIT, "tp_btf:sys_exit".to_string())],
            Hooks::Syscalls(v, _) => v
                .iter()
                .map(|(p, n)| (*p, format!("syscalls:{n}")))
                .collect(),
            Hooks::Sockets(_) => SOCKETS
                .iter()
                .map(|(p, n)| (*p, format!("tp_btf:{n}")))
                .collect(),
        }
    }

    /// Detaches the BTF tracepoints; what was detached, for the `detached` event (the syscall
    /// tracepoints are the caller's `links`).
    pub fn detach(self, ebpf: &mut Ebpf) -> Vec<String> {
        let links = match self {
            Hooks::SysExit(link) => vec![(SYS_EXIT, link)],
            Hooks::Sockets(links) => links,
            Hooks::Syscalls(..) => Vec::new(),
        };
        links
            .into_iter()
            .filter_map(|(prog, link)| match detach_btf(ebpf, prog, link) {
                Ok(()) => Some(format!("tp_btf:{prog}")),
                Err(e) => {
                    tracing::warn!(program = prog, error = %e, "detach failed");
                    None
                }
            })
            .collect()
    }
}

/// Loads and attaches BTF tracepoint program `prog` on tracepoint `tp`.
fn attach_btf(
    ebpf: &mut Ebpf,
    btf: &Btf,
    prog: &'static str,
    tp: &str,
) -> Result<BtfTracePointLinkId, ProbeError> {
    let err = |source| ProbeError::Attach {
        program: prog,
        target: format!("tp_btf {tp}"),
        source,
    };
    let p: &mut BtfTracePoint = ebpf
        .program_mut(prog)
        .ok_or(ProbeError::MissingProgram(prog))?
        .try_into()
        .map_err(err)?;
    if p.fd().is_err() {
        p.load(tp, btf).map_err(err)?;
    }
    p.attach().map_err(err)
}

/// Detaches BTF tracepoint program `prog`'s `link`.
fn detach_btf(ebpf: &mut Ebpf, prog: &str, link: BtfTracePointLinkId) -> Result<(), String> {
    let p: &mut BtfTracePoint = ebpf
        .program_mut(prog)
        .ok_or("not in the object")?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| e.to_string())?;
    p.detach(link).map_err(|e| e.to_string())
}

/// Loads and attaches the TLS programs on the socket tracepoints, both or neither (a kernel
/// before 6.3 has no such tracepoint: the error says which).
pub fn attach_sockets(ebpf: &mut Ebpf, btf: &Btf) -> Result<Hooks, ProbeError> {
    let mut links = Vec::new();
    for (prog, tp) in SOCKETS {
        match attach_btf(ebpf, btf, prog, tp) {
            Ok(link) => links.push((prog, link)),
            Err(e) => {
                Hooks::Sockets(links).detach(ebpf);
                return Err(e);
            }
        }
    }
    Ok(Hooks::Sockets(links))
}

/// Loads and attaches the HTTP programs: `http_sys_exit` where `o` and the kernel allow it,
/// else the syscall tracepoints. On error, the tracepoints attached are in `links` for the
/// caller to detach.
pub fn attach(
    ebpf: &mut Ebpf,
    o: &HttpOffsets,
    btf: Option<&Btf>,
    links: &mut Vec<(&'static str, TracePointLinkId)>,
) -> Result<Hooks, ProbeError> {
    let why = match (sys_exit_offsets(o), btf) {
        (false, _) => "this kernel's BTF lacks a pt_regs or task_struct member it reads (or \
                       this is not x86-64)"
            .to_string(),
        (true, None) => "the kernel's BTF could not be parsed for a BTF tracepoint".to_string(),
        (true, Some(btf)) => match attach_btf(ebpf, btf, SYS_EXIT, "sys_exit") {
            Ok(link) => return Ok(Hooks::SysExit(link)),
            // A kernel whose verifier refuses it (before 5.11: no bpf_get_current_task_btf):
            // the syscall tracepoints work.
            Err(e) => crate::errors::sentence(&anyhow::Error::from(e)),
        },
    };
    tracing::info!(reason = %why, "HTTP through the syscall tracepoints, not one program on sys_exit");
    let mut used = Vec::new();
    for &(prog, name) in READS_PAIR.iter().chain(WRITES.iter()) {
        load(ebpf, (prog, name))?;
        let p: &mut TracePoint = ebpf
            .program_mut(prog)
            .ok_or(ProbeError::MissingProgram(prog))?
            .try_into()
            .map_err(|source| err(prog, name, source))?;
        links.push((
            prog,
            p.attach("syscalls", name)
                .map_err(|source| err(prog, name, source))?,
        ));
        used.push((prog, name));
    }
    Ok(Hooks::Syscalls(used, why))
}

fn err(program: &'static str, name: &str, source: aya::programs::ProgramError) -> ProbeError {
    ProbeError::Attach {
        program,
        target: format!("tracepoint syscalls:{name}"),
        source,
    }
}

/// Loads `prog` unless it is loaded.
fn load(ebpf: &mut Ebpf, (prog, name): (&'static str, &str)) -> Result<(), ProbeError> {
    let p: &mut TracePoint = ebpf
        .program_mut(prog)
        .ok_or(ProbeError::MissingProgram(prog))?
        .try_into()
        .map_err(|source| err(prog, name, source))?;
    if p.fd().is_err() {
        p.load().map_err(|source| err(prog, name, source))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_exit_needs_every_register_and_the_task_fields() {
        let mut o = HttpOffsets::NONE;
        assert!(!sys_exit_offsets(&o));
        (o.regs_arg0, o.regs_arg1, o.regs_arg2, o.regs_nr) = (112, 104, 96, 120);
        assert!(!sys_exit_offsets(&o), "without thread_info.status");
        o.task_status = 12;
        assert!(!sys_exit_offsets(&o), "without the task's ids");
        (o.task_pid, o.task_tgid) = (2464, 2468);
        assert!(sys_exit_offsets(&o));
        o.regs_arg2 = HttpOffsets::ABSENT;
        assert!(!sys_exit_offsets(&o));
    }

    #[test]
    fn the_attached_event_names_the_hook() {
        let t = Hooks::Syscalls(vec![("http_write", "sys_enter_write")], "why".into());
        assert_eq!(t.fallback(), Some("why"));
        assert_eq!(
            t.names(),
            vec![("http_write", "syscalls:sys_enter_write".to_string())]
        );
    }
}
