//! Who is at each end of a TLS connection's socket, for the handshake and alert keys: one walk
//! of the task's fd table (`sock_of_fd`; none from the socket tracepoints, which have the
//! socket), then the addresses from `sock_common`.
use guardian_common::{http::HttpKey, tls::ROLE_CLIENT, AF_INET, AF_INET6};

use crate::http::HTTP_OFFSETS;
use crate::kernel::{global, read};
use crate::sockfd::{local_of_sock, Handle};

/// The listener and the peer of a connection. For a server, `addr:port` is its local address
/// (the listener) and `peer` the client's address; for a client, `addr:port` is the server it
/// connected to and `peer` its own address.
pub(crate) struct Ends {
    pub family: u16,
    pub port: u16,
    pub addr: [u8; 16],
    pub peer: [u8; 16],
}

/// The ends of socket `h` for a process in `role`; None when it is not an inet socket. `role`
/// may be read from the socket itself once found (`role_of`).
#[inline(always)]
pub(crate) fn ends(h: Handle, role_of: impl FnOnce(*const u8) -> u8) -> Option<(u8, Ends)> {
    ends_of_sock(h.sock()?, role_of)
}

/// The ends of socket `sk`, as [`ends`].
#[inline(always)]
pub(crate) fn ends_of_sock(
    sk: *const u8,
    role_of: impl FnOnce(*const u8) -> u8,
) -> Option<(u8, Ends)> {
    let mut local = HttpKey::default();
    local_of_sock(sk, &mut local);
    if local.family == 0 {
        return None;
    }
    let o = global(&HTTP_OFFSETS);
    let mut remote = [0u8; 16];
    // SAFETY: kernel reads at BTF offsets, checked by the helper.
    unsafe {
        if local.family == AF_INET {
            if let Some(a) = read::<[u8; 4]>(sk, o.skc_daddr) {
                remote[..4].copy_from_slice(&a);
            }
        } else if local.family == AF_INET6 {
            if let Some(a) = read::<[u8; 16]>(sk, o.skc_v6_daddr) {
                remote = a;
            }
        }
    }
    let role = role_of(sk);
    let e = if role == ROLE_CLIENT {
        // The listener is the server this process connected to.
        let dport: u16 = unsafe { read(sk, o.skc_dport) }.unwrap_or(0);
        Ends {
            family: local.family,
            port: u16::from_be(dport),
            addr: remote,
            peer: local.addr,
        }
    } else {
        // The accepted socket's own port is the listener's: `inet_sport` (network order),
        // which stays when the peer's close already released the port (`skc_num` is 0 then).
        let sport: u16 = unsafe { read(sk, o.inet_sport) }.unwrap_or(0);
        Ends {
            family: local.family,
            port: match u16::from_be(sport) {
                0 => local.port,
                p => p,
            },
            addr: local.addr,
            peer: remote,
        }
    };
    Some((role, e))
}
