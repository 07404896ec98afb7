//! Who is at each end of a TLS connection's socket, for the handshake and alert keys: one walk
//! of the task's fd table (`sock_of_fd`; none from the socket tracepoints, which have the
//! socket), then the addresses from `sock_common`.
use guardian_common::{tls::ROLE_CLIENT, AF_INET, AF_INET6};

use crate::http::HTTP_OFFSETS;
use crate::kernel::{global, read, read_into};
use crate::sockfd::Handle;

/// The listener and the peer of a connection, written into the caller's map key in place.
/// For a server, `addr:port` is its local address (the listener) and `peer` the client's
/// address; for a client, `addr:port` is the server it connected to and `peer` its own
/// address.
///
/// In place rather than returned: returned addresses were copied between three structures
/// on the way to the key, and LLVM split them into a value per byte, which the stack then
/// held in an 8-byte slot each (296 bytes of `tls_hs_exit`'s 488). 6.1's verifier rounds
/// each frame up to 32 bytes and counted 512 + 32 with the `memset` subprogram it calls,
/// over its limit of 512: every `--http` run on 6.1 went without TLS. The key's address goes
/// to a helper, so LLVM keeps it in memory.
pub(crate) struct Ends<'a> {
    pub family: &'a mut u16,
    pub port: &'a mut u16,
    pub addr: &'a mut [u8; 16],
    pub peer: &'a mut [u8; 16],
}

/// The ends of socket `h` for a process in `role`, into `out`; the role, or None when it is
/// not an inet socket (`out` untouched). `role` may be read from the socket itself once found
/// (`role_of`).
#[inline(always)]
pub(crate) fn ends(h: Handle, role_of: impl FnOnce(*const u8) -> u8, out: Ends) -> Option<u8> {
    ends_of_sock(h.sock()?, role_of, out)
}

/// The ends of socket `sk`, as [`ends`].
#[inline(always)]
pub(crate) fn ends_of_sock(
    sk: *const u8,
    role_of: impl FnOnce(*const u8) -> u8,
    out: Ends,
) -> Option<u8> {
    let o = global(&HTTP_OFFSETS);
    // SAFETY: kernel reads at BTF offsets, checked by the helper.
    let family: u16 = unsafe { read(sk, o.skc_family) }.unwrap_or(0);
    if family != AF_INET && family != AF_INET6 {
        return None;
    }
    let role = role_of(sk);
    let client = role == ROLE_CLIENT;
    // The listener is the local end for a server, the remote one for a client.
    let (local, remote) = if client {
        (out.peer, out.addr)
    } else {
        (out.addr, out.peer)
    };
    // SAFETY: kernel reads at BTF offsets into the key's own arrays.
    unsafe {
        if family == AF_INET {
            read_into(local.as_mut_ptr() as *mut [u8; 4], sk, o.skc_rcv_saddr);
            read_into(remote.as_mut_ptr() as *mut [u8; 4], sk, o.skc_daddr);
        } else {
            read_into(local as *mut [u8; 16], sk, o.skc_v6_rcv_saddr);
            read_into(remote as *mut [u8; 16], sk, o.skc_v6_daddr);
        }
    }
    *out.family = family;
    *out.port = if client {
        // The server this process connected to.
        u16::from_be(unsafe { read(sk, o.skc_dport) }.unwrap_or(0))
    } else {
        // The accepted socket's own port is the listener's: `inet_sport` (network order),
        // which stays when the peer's close already released the port (`skc_num` is 0 then).
        match u16::from_be(unsafe { read(sk, o.inet_sport) }.unwrap_or(0)) {
            0 => unsafe { read(sk, o.skc_num) }.unwrap_or(0),
            p => p,
        }
    };
    Some(role)
}
