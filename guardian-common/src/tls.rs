//! Types for the TLS handshake outcomes (OpenSSL uprobes): successes, failures and aborts per
//! (namespace, process, role, listener address:port, peer address), counted in the kernel.

/// A handshake call (`SSL_do_handshake`/`SSL_accept`/`SSL_connect`) between its uprobe and
/// uretprobe, keyed by pid_tgid. `depth` counts nested calls (`SSL_accept` calls
/// `SSL_do_handshake`): only the outermost return is judged. `fd` is the socket of the last
/// read(2)/write(2) made inside it (`u64::MAX`: none seen): its descriptor on the syscall
/// hook, its `struct sock *` on the socket tracepoints (above any descriptor). `last_read` is
/// what the last read(2)/recvfrom(2) inside it returned (`NO_READ`: none returned yet).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HsCall {
    pub ssl: u64,
    pub fd: u64,
    pub depth: u32,
    pub _pad: u32,
    pub last_read: i64,
}
const _: () = assert!(core::mem::size_of::<HsCall>() == 32);

/// `HsCall::last_read` before any read returned.
pub const NO_READ: i64 = i64::MIN;

/// Roles, from `SSL_set_accept_state`/`SSL_accept` (server) and `SSL_set_connect_state`/
/// `SSL_connect` (client).
pub const ROLE_UNKNOWN: u8 = 0;
pub const ROLE_SERVER: u8 = 1;
pub const ROLE_CLIENT: u8 = 2;

/// Who handshook with whom. For a server, `addr:port` is the local address of the accepted
/// connection (the listener) and `peer` the client's address; for a client, `addr:port` is the
/// server it connected to and `peer` its own local address. Peer ports are not kept (a
/// client's ephemeral port would make one key per connection).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HsKey {
    pub netns: u32,
    pub tgid: u32,
    /// `AF_INET`, `AF_INET6`, or 0 when the socket could not be resolved.
    pub family: u16,
    /// Listener port, host byte order.
    pub port: u16,
    pub role: u8,
    pub _pad: [u8; 3],
    pub addr: [u8; 16],
    pub peer: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<HsKey>() == 48);

/// Handshake outcomes of one key (per-CPU; userspace sums the CPUs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HsStats {
    /// Returned 1.
    pub ok: u64,
    /// Returned <= 0 after its last read(2) returned data: a protocol failure (an alert
    /// received or sent, a certificate rejected, no shared cipher or version).
    pub failed: u64,
    /// Returned <= 0 after its last read(2) hit the end of the stream or an error: the peer
    /// closed or reset before the handshake ended (a TCP health check, a scanner, a crash).
    pub aborted: u64,
}
const _: () = assert!(core::mem::size_of::<HsStats>() == 24);

/// `EAGAIN` and `EINTR` as a syscall returns them: OpenSSL's socket BIO retries both
/// (`BIO_sock_should_retry`), so the handshake returns `WANT_READ`.
pub const NEG_EAGAIN: i64 = -11;
pub const NEG_EINTR: i64 = -4;

/// Which counter a handshake call that returned <= 0 goes to, from what the last read(2)
/// inside it returned: 1 failed, 2 aborted, 0 none.
///
/// This is what `SSL_get_error` would say, without a uprobe on it: that function runs after
/// every `SSL_read` that finds no data (once per request on a keep-alive server), and each
/// uprobe hit costs a trap, so it is not probed. OpenSSL returns `WANT_READ` only right after
/// a read that found no data (`EAGAIN`); a read that returned data, and then a return <= 0,
/// is a protocol failure (an alert received, or the local side rejected what it read and sent
/// one); a read that returned 0 or an error is the peer going away. A call with no read
/// returned (`WANT_WRITE` before the first read) is left uncounted.
#[inline(always)]
pub fn judge(last_read: i64) -> u8 {
    match last_read {
        NO_READ | NEG_EAGAIN | NEG_EINTR => 0,
        n if n > 0 => 1,
        _ => 2,
    }
}

/// The length of a write that is one plaintext TLS alert record (5-byte header, level,
/// description): the only writes whose bytes the alert check reads.
pub const ALERT_RECORD_LEN: u64 = 7;

/// Alert levels (RFC 5246 §7.2).
pub const ALERT_WARNING: u8 = 1;
pub const ALERT_FATAL: u8 = 2;

/// Plaintext TLS alerts written by local processes, per (namespace, role of the writer,
/// listener, peer address, level, description). Same address convention as `HsKey`: for a
/// server `addr:port` is its local listener address and `peer` the client's address; for a
/// client `addr:port` is the server it connected to and `peer` its own address. No process:
/// the key stays one per listener and peer whatever the number of workers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AlertKey {
    pub netns: u32,
    /// `AF_INET`, `AF_INET6`, or 0 when the socket could not be resolved.
    pub family: u16,
    /// Listener port, host byte order.
    pub port: u16,
    /// `ROLE_SERVER` (the socket was accepted from a listener) or `ROLE_CLIENT`.
    pub role: u8,
    /// `ALERT_WARNING` or `ALERT_FATAL`.
    pub level: u8,
    /// The alert description (`tls_alert_name`).
    pub desc: u8,
    pub _pad: u8,
    pub addr: [u8; 16],
    pub peer: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<AlertKey>() == 44);

/// The role of the writer of an alert from its socket's `sk_max_ack_backlog`: an accepted
/// connection keeps its listener's (non-zero), a connecting socket has 0.
#[inline(always)]
pub fn alert_role(max_ack_backlog: u32) -> u8 {
    match max_ack_backlog {
        0 => ROLE_CLIENT,
        _ => ROLE_SERVER,
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` integers, explicit padding.
    unsafe impl aya::Pod for super::HsKey {}
    unsafe impl aya::Pod for super::HsStats {}
    unsafe impl aya::Pod for super::AlertKey {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_a_failed_return_by_the_last_read() {
        // A read that returned data (an alert, or a certificate then rejected): failed.
        assert_eq!(judge(7), 1);
        assert_eq!(judge(1400), 1);
        // End of stream, connection reset (-ECONNRESET), broken pipe: aborted.
        assert_eq!(judge(0), 2);
        assert_eq!(judge(-104), 2);
        assert_eq!(judge(-32), 2);
        // No data yet (WANT_READ), or no read at all: a non-blocking handshake that goes on.
        assert_eq!(judge(NEG_EAGAIN), 0);
        assert_eq!(judge(NEG_EINTR), 0);
        assert_eq!(judge(NO_READ), 0);
    }

    #[test]
    fn alert_roles() {
        // An accepted connection inherits its listener's backlog (nginx: 511).
        assert_eq!(alert_role(511), ROLE_SERVER);
        assert_eq!(alert_role(1), ROLE_SERVER);
        assert_eq!(alert_role(0), ROLE_CLIENT);
    }
}
