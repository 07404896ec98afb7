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

/// (program, tracepoint): sys_exit_read and sys_exit_recvfrom share one program.
pub const TRACEPOINTS: [(&str, &str); 8] = [
    ("http_read_enter", "sys_enter_read"),
    ("http_read_exit", "sys_exit_read"),
    ("http_recvfrom_enter", "sys_enter_recvfrom"),
    ("http_read_exit", "sys_exit_recvfrom"),
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
    })
}

/// Loads and attaches every HTTP program; on error, what was attached is returned with it so
/// the caller detaches it.
pub fn attach(
    ebpf: &mut Ebpf,
    links: &mut Vec<(&'static str, TracePointLinkId)>,
) -> Result<(), ProbeError> {
    for (prog, name) in TRACEPOINTS {
        let err = |source| ProbeError::Attach {
            program: prog,
            target: format!("tracepoint syscalls:{name}"),
            source,
        };
        let p: &mut TracePoint = ebpf
            .program_mut(prog)
            .ok_or(ProbeError::MissingProgram(prog))?
            .try_into()
            .map_err(err)?;
        if p.fd().is_err() {
            p.load().map_err(err)?;
        }
        links.push((prog, p.attach("syscalls", name).map_err(err)?));
    }
    Ok(())
}
