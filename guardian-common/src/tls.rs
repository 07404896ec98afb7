//! Types for the TLS handshake outcomes (OpenSSL uprobes): successes, failures and aborts per
//! (namespace, process, role, listener address:port, peer address), counted in the kernel.

/// A handshake call (`SSL_do_handshake`/`SSL_accept`/`SSL_connect`) between its uprobe and
/// uretprobe, keyed by pid_tgid. `depth` counts nested calls (`SSL_accept` calls
/// `SSL_do_handshake`): only the outermost return is judged. `fd` is the descriptor of the
/// last read(2)/write(2) made inside it (`u64::MAX`: none seen).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HsCall {
    pub ssl: u64,
    pub fd: u64,
    pub depth: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<HsCall>() == 24);

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
    /// Returned <= 0, then `SSL_get_error` said `SSL_ERROR_SSL`: a protocol failure (an alert
    /// received or sent, a certificate rejected, no shared cipher or version).
    pub failed: u64,
    /// Returned <= 0, then `SSL_ERROR_SYSCALL` or `SSL_ERROR_ZERO_RETURN`: the peer closed or
    /// reset before the handshake ended (a TCP health check, a scanner, a crash).
    pub aborted: u64,
}
const _: () = assert!(core::mem::size_of::<HsStats>() == 24);

/// `SSL_get_error` values (openssl/ssl.h).
pub const SSL_ERROR_SSL: i32 = 1;
pub const SSL_ERROR_SYSCALL: i32 = 5;
pub const SSL_ERROR_ZERO_RETURN: i32 = 6;

/// Which counter an `SSL_get_error` value after a failed handshake return goes to: 1 failed,
/// 2 aborted, 0 none (`WANT_READ`/`WANT_WRITE`...: a non-blocking handshake in progress).
#[inline(always)]
pub fn outcome(err: i32) -> u8 {
    match err {
        SSL_ERROR_SSL => 1,
        SSL_ERROR_SYSCALL | SSL_ERROR_ZERO_RETURN => 2,
        _ => 0,
    }
}

/// A failed handshake return waiting for the `SSL_get_error` that classifies it, keyed by
/// pid_tgid. `armed` is set when `SSL_get_error` is entered for the same `ssl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HsPending {
    pub key: HsKey,
    pub ssl: u64,
    pub armed: u64,
}
const _: () = assert!(core::mem::size_of::<HsPending>() == 64);

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
    fn classifies_errors() {
        assert_eq!(outcome(SSL_ERROR_SSL), 1);
        assert_eq!(outcome(SSL_ERROR_SYSCALL), 2);
        assert_eq!(outcome(SSL_ERROR_ZERO_RETURN), 2);
        // WANT_READ, WANT_WRITE: a non-blocking handshake that goes on.
        assert_eq!(outcome(2), 0);
        assert_eq!(outcome(3), 0);
    }

    #[test]
    fn alert_roles() {
        // An accepted connection inherits its listener's backlog (nginx: 511).
        assert_eq!(alert_role(511), ROLE_SERVER);
        assert_eq!(alert_role(1), ROLE_SERVER);
        assert_eq!(alert_role(0), ROLE_CLIENT);
    }
}
