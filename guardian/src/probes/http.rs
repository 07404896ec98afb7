//! The HTTP status programs (guardian-ebpf/src/http.rs): their offsets, from tracefs and BTF,
//! and their syscall tracepoints, attached only with `guardian run --http`.
use std::path::Path;

use aya::{
    programs::{trace_point::TracePointLinkId, TracePoint},
    Ebpf,
};
use guardian_common::http::HttpOffsets;

use super::offsets::{KernelBtf, OffsetError, TracepointFields};
use super::ProbeError;

/// The kernel map the sampler reads.
pub const MAP: &str = "HTTP_STATS";

/// The read side where the kernel has `bpf_task_pt_regs` (5.15) and the offsets of the
/// argument registers are known (x86-64): exit programs only.
const READS_REGS: [(&str, &str); 2] = [
    ("http_read_regs", "sys_exit_read"),
    ("http_read_regs", "sys_exit_recvfrom"),
];

/// The read side elsewhere: the enter programs hand the fd and buffer to the exit one
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
        // The registers a syscall's first two arguments arrive in (x86-64 only: elsewhere, or
        // without them, the enter programs take the arguments).
        regs_arg0: regs(btf, "di"),
        regs_arg1: regs(btf, "si"),
    })
}

fn regs(btf: &KernelBtf, member: &str) -> u16 {
    if !cfg!(target_arch = "x86_64") {
        return HttpOffsets::ABSENT;
    }
    btf.member_offset("pt_regs", &[member])
        .ok()
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(HttpOffsets::ABSENT)
}

/// Loads and attaches every HTTP program, the read side without enter programs when `o`
/// allows it and the kernel loads that program; returns the (program, tracepoint) pairs
/// attached. On error, what was attached is in `links` for the caller to detach.
pub fn attach(
    ebpf: &mut Ebpf,
    o: &HttpOffsets,
    links: &mut Vec<(&'static str, TracePointLinkId)>,
) -> Result<Vec<(&'static str, &'static str)>, ProbeError> {
    let regs = o.regs_arg0 != HttpOffsets::ABSENT && o.regs_arg1 != HttpOffsets::ABSENT;
    let reads: &[(&'static str, &'static str)] = match regs.then(|| load(ebpf, READS_REGS[0])) {
        Some(Ok(())) => &READS_REGS,
        Some(Err(e)) => {
            // Before 5.15 (no bpf_task_pt_regs) the verifier refuses it: the pair works.
            tracing::debug!(error = %e, "reads through the enter programs");
            &READS_PAIR
        }
        None => &READS_PAIR,
    };
    let mut used = Vec::new();
    for &(prog, name) in reads.iter().chain(WRITES.iter()) {
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
    Ok(used)
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
