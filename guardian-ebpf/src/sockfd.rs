//! The socket behind a descriptor of the current task, and its local address: a walk of
//! `current->files->fdt->fd[fd]->private_data` to the `struct socket` (checked through
//! `socket->file`) and its `sock_common`, at offsets userspace derived from BTF. Shared by the
//! HTTP responses (`http.rs`) and the TLS ends (`ends.rs`). Where the socket tracepoints run
//! (tls_sock.rs), a TLS connection's handle is its socket and no walk is needed (`Handle`).
use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use guardian_common::{http::HttpKey, AF_INET, AF_INET6};

use crate::http::HTTP_OFFSETS;
use crate::kernel::{global, read, read_pair};

/// A connection's socket as a program holds it: a descriptor of the current task (the syscall
/// hook), or the `struct sock *` itself (the socket tracepoints: tls_sock.rs). A caller that
/// has the socket says so with the variant, so that the verifier, which sees that program's
/// branch only, never finds a descriptor's arithmetic done on a socket pointer.
#[derive(Clone, Copy)]
pub(crate) enum Handle {
    Fd(u64),
    Sock(u64),
}

impl Handle {
    /// A handle kept as a number in a map (`HsCall::fd`): a socket's address is above any
    /// descriptor (at most 2^31).
    #[inline(always)]
    pub(crate) fn stored(v: u64) -> Handle {
        if v > u64::from(u32::MAX) {
            Handle::Sock(v)
        } else {
            Handle::Fd(v)
        }
    }

    /// The `struct sock *`: the handle itself, or the walk from the descriptor.
    #[inline(always)]
    pub(crate) fn sock(self) -> Option<*const u8> {
        match self {
            Handle::Sock(sk) => Some(sk as *const u8),
            Handle::Fd(fd) => sock_of_fd(fd),
        }
    }
}

/// The `struct sock *` of socket `fd` of the current task; None when the fd is not a socket
/// or a read fails.
#[inline(always)]
fn sock_of_fd(fd: u64) -> Option<*const u8> {
    let o = global(&HTTP_OFFSETS);
    unsafe {
        let task = bpf_get_current_task() as *const u8;
        let files = read::<*const u8>(task, o.task_files)?;
        let fdt = read::<*const u8>(files, o.files_fdt)?;
        // `max_fds` (an int) and `fd`: one read where `fd` is the next 8 bytes (the 64-bit
        // layout). `max_fds` is the low half of its 8 bytes either way (little-endian BPF).
        let (max, fds) = read_pair(fdt, o.fdt_max_fds, o.fdt_fd)?;
        let fds = fds as *const *const u8;
        if fd >= max as u32 as u64 {
            return None;
        }
        let file = bpf_probe_read_kernel(fds.add(fd as usize)).ok()?;
        if file.is_null() {
            return None;
        }
        let sock = read::<*const u8>(file, o.file_private)?;
        if sock.is_null() {
            return None;
        }
        // `socket->file` points back at the file only for a socket; `file` and `sk` are
        // neighbours in `struct socket` (one read).
        let (back, sk) = read_pair(sock, o.socket_file, o.socket_sk)?;
        if back != file as u64 || sk == 0 {
            return None;
        }
        Some(sk as *const u8)
    }
}

/// Fills `family`, `port` and `addr` of `k` with the local address of `sk`; leaves them 0
/// when it is not an inet socket or a read fails.
#[inline(always)]
pub(crate) fn local_of_sock(sk: *const u8, k: &mut HttpKey) {
    let o = global(&HTTP_OFFSETS);
    unsafe {
        let family: u16 = read(sk, o.skc_family).unwrap_or(0);
        let port: u16 = read(sk, o.skc_num).unwrap_or(0);
        if family == AF_INET {
            if let Some(a) = read::<[u8; 4]>(sk, o.skc_rcv_saddr) {
                k.addr[..4].copy_from_slice(&a);
            }
        } else if family == AF_INET6 {
            if let Some(a) = read::<[u8; 16]>(sk, o.skc_v6_rcv_saddr) {
                k.addr = a;
            }
        } else {
            return;
        }
        k.family = family;
        k.port = port;
    }
}
