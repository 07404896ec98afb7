//! Types for the HTTP signals (syscall tracepoints): responses by status class per (namespace,
//! process, local socket address), and their latency, counted in the kernel.

/// Offsets the HTTP programs need: syscall tracepoint fields (tracefs) and the kernel
/// structures walked from a file descriptor to its socket's local address (BTF). Derived at
/// load time; `ABSENT` (u16::MAX) where this kernel lacks one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpOffsets {
    /// `syscalls:sys_enter_read` fd, buf.
    pub read_fd: u16,
    pub read_buf: u16,
    /// `syscalls:sys_enter_recvfrom` fd, ubuf.
    pub recvfrom_fd: u16,
    pub recvfrom_buf: u16,
    /// `syscalls:sys_enter_write` fd, buf.
    pub write_fd: u16,
    pub write_buf: u16,
    /// `syscalls:sys_enter_sendto` fd, buff.
    pub sendto_fd: u16,
    pub sendto_buf: u16,
    /// `syscalls:sys_enter_writev` fd, vec.
    pub writev_fd: u16,
    pub writev_vec: u16,
    /// `syscalls:sys_enter_write` count, `sys_enter_sendto` len and `sys_enter_writev` vlen:
    /// the cheap test for a 7-byte TLS alert record (one compare before any read).
    pub write_count: u16,
    pub sendto_len: u16,
    pub writev_vlen: u16,
    /// `syscalls:sys_enter_sendmsg` fd, msg.
    pub sendmsg_fd: u16,
    pub sendmsg_msg: u16,
    /// `syscalls:sys_exit_*` ret.
    pub exit_ret: u16,
    /// `struct task_struct.files`, `struct files_struct.fdt`, `struct fdtable.fd` and
    /// `.max_fds`, `struct file.private_data`.
    pub task_files: u16,
    pub files_fdt: u16,
    pub fdt_fd: u16,
    pub fdt_max_fds: u16,
    pub file_private: u16,
    /// `struct socket.sk` and `.file` (the back pointer that proves the file is a socket).
    pub socket_sk: u16,
    pub socket_file: u16,
    /// `struct sock_common.skc_num` (local port, host order), `.skc_family`,
    /// `.skc_rcv_saddr` and `.skc_v6_rcv_saddr` (ABSENT without IPv6).
    pub skc_num: u16,
    pub skc_family: u16,
    pub skc_rcv_saddr: u16,
    pub skc_v6_rcv_saddr: u16,
    /// `struct sock_common.skc_daddr` and `.skc_v6_daddr` (the peer, for the TLS handshakes;
    /// ABSENT without IPv6).
    pub skc_daddr: u16,
    pub skc_v6_daddr: u16,
    /// `struct sock_common.skc_dport` (network order).
    pub skc_dport: u16,
    /// `struct inet_sock.inet_sport` (network order): the local port, kept when a socket
    /// closes (`skc_num` is zeroed when the port is released).
    pub inet_sport: u16,
    /// `struct sock.sk_max_ack_backlog` (u32): non-zero on a listener and on the connections
    /// it accepted (copied at accept), 0 on a connecting socket: the role of a TLS alert's
    /// writer.
    pub sk_max_ack_backlog: u16,
    /// `struct pt_regs` members of a syscall's first three arguments and of its number
    /// (x86-64: `di`, `si`, `dx`, `orig_ax`), read at the raw `sys_exit` tracepoint
    /// (`sys_exit.rs`). ABSENT elsewhere: the syscall tracepoints are used.
    pub regs_arg0: u16,
    pub regs_arg1: u16,
    pub regs_arg2: u16,
    pub regs_nr: u16,
    /// `struct task_struct.thread_info.status` (x86-64): `TS_COMPAT` marks a 32-bit syscall,
    /// whose number is of another table.
    pub task_status: u16,
    /// `struct task_struct.pid` and `.tgid` (x86-64 `sys_exit.rs`): the thread and process
    /// ids read from the task it already holds, where `bpf_get_current_pid_tgid` would be one
    /// more helper call per syscall it acts on.
    pub task_pid: u16,
    pub task_tgid: u16,
}
const _: () = assert!(core::mem::size_of::<HttpOffsets>() == 78);

/// x86-64 syscall numbers (`arch/x86/entry/syscalls/syscall_64.tbl`: an ABI, fixed for good)
/// that `sys_exit.rs` acts on.
pub mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const WRITEV: u64 = 20;
    pub const SENDTO: u64 = 44;
    pub const RECVFROM: u64 = 45;
    pub const SENDMSG: u64 = 46;
    pub const CLOSE: u64 = 3;
    pub const DUP2: u64 = 33;
    pub const ACCEPT: u64 = 43;
    pub const ACCEPT4: u64 = 288;
    pub const DUP3: u64 = 292;
    /// `thread_info.status` bit of a 32-bit (ia32) syscall on x86-64 (`TS_COMPAT`).
    pub const TS_COMPAT: u32 = 0x0002;
}

impl HttpOffsets {
    pub const ABSENT: u16 = u16::MAX;
    pub const NONE: HttpOffsets = HttpOffsets {
        read_fd: Self::ABSENT,
        read_buf: Self::ABSENT,
        recvfrom_fd: Self::ABSENT,
        recvfrom_buf: Self::ABSENT,
        write_fd: Self::ABSENT,
        write_buf: Self::ABSENT,
        sendto_fd: Self::ABSENT,
        sendto_buf: Self::ABSENT,
        writev_fd: Self::ABSENT,
        writev_vec: Self::ABSENT,
        write_count: Self::ABSENT,
        sendto_len: Self::ABSENT,
        writev_vlen: Self::ABSENT,
        sendmsg_fd: Self::ABSENT,
        sendmsg_msg: Self::ABSENT,
        exit_ret: Self::ABSENT,
        task_files: Self::ABSENT,
        files_fdt: Self::ABSENT,
        fdt_fd: Self::ABSENT,
        fdt_max_fds: Self::ABSENT,
        file_private: Self::ABSENT,
        socket_sk: Self::ABSENT,
        socket_file: Self::ABSENT,
        skc_num: Self::ABSENT,
        skc_family: Self::ABSENT,
        skc_rcv_saddr: Self::ABSENT,
        skc_v6_rcv_saddr: Self::ABSENT,
        skc_daddr: Self::ABSENT,
        skc_v6_daddr: Self::ABSENT,
        skc_dport: Self::ABSENT,
        inet_sport: Self::ABSENT,
        sk_max_ack_backlog: Self::ABSENT,
        regs_arg0: Self::ABSENT,
        regs_arg1: Self::ABSENT,
        regs_arg2: Self::ABSENT,
        regs_nr: Self::ABSENT,
        task_status: Self::ABSENT,
        task_pid: Self::ABSENT,
        task_tgid: Self::ABSENT,
    };
}

/// A read(2)/recvfrom(2) between its enter and exit tracepoints, keyed by pid_tgid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadArgs {
    pub fd: u64,
    pub buf: u64,
}
const _: () = assert!(core::mem::size_of::<ReadArgs>() == 16);

/// A service: the server process and the local address of the socket it answered on (the
/// listener's port; the address is the one the connection was accepted on).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HttpKey {
    pub netns: u32,
    pub tgid: u32,
    /// `AF_INET`, `AF_INET6`, or 0 when the socket could not be resolved.
    pub family: u16,
    /// Local port, host byte order (0: unresolved).
    pub port: u16,
    /// IPv4 in the first 4 bytes, or IPv6.
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<HttpKey>() == 28);

/// A connection's entry in `HTTP_INFLIGHT`, by (tgid << 32 | fd): the request in flight and
/// the service it is answered for, found by the first response's walk from the fd to the
/// socket and kept for the connection's later responses (`sys_exit.rs` drops the entry when
/// the fd is closed, or replaced by accept(2) or dup2(2)).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpConn {
    /// Request start (ktime ns); 0 between requests.
    pub start: u64,
    pub svc: HttpKey,
    /// 1 once `svc` holds the service.
    pub known: u32,
}
const _: () = assert!(core::mem::size_of::<HttpConn>() == 40);

/// Slots of `TLS_TGIDS` (guardian-ebpf/src/gate.rs): one byte per process id modulo this, set
/// to 1 for a process that uses OpenSSL (a power of two).
pub const TLS_TGID_SLOTS: u32 = 1 << 16;
const _: () = assert!(TLS_TGID_SLOTS.is_power_of_two());

/// The `TLS_TGIDS` slot of process `tgid`. Two processes may share one (ids 65 536 apart):
/// the other then has its reads looked at as before, which costs time, never a count.
pub fn tls_tgid_slot(tgid: u32) -> u32 {
    tgid & (TLS_TGID_SLOTS - 1)
}

/// Buckets of `HTTP_SEEN` (guardian-ebpf/src/http.rs), a power of two.
pub const SEEN_BUCKETS: u32 = 1 << 16;
const _: () = assert!(SEEN_BUCKETS.is_power_of_two());

/// The `HTTP_SEEN` bucket of a connection key (tgid << 32 | fd): a multiplicative hash.
pub fn seen_bucket(key: u64) -> u32 {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SEEN_BUCKETS.trailing_zeros())) as u32
}

/// Latency buckets: bucket `i` counts responses with latency below `LAT_BOUND_US[i]`
/// microseconds (and not below the previous bound); the last bucket is everything above.
pub const LAT_BUCKETS: usize = 16;
pub const LAT_BOUND_US: [u64; LAT_BUCKETS - 1] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Responses of one service (per-CPU; userspace sums the CPUs). Only final responses
/// (status 200 to 599) are counted; 1xx interim responses are skipped.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpStats {
    pub s2xx: u64,
    pub s3xx: u64,
    pub s4xx: u64,
    /// Of `s4xx`.
    pub s429: u64,
    pub s5xx: u64,
    /// Of `s5xx`.
    pub s500: u64,
    pub s502: u64,
    pub s503: u64,
    pub s504: u64,
    /// Sum of the latencies (request line read to status line written), nanoseconds.
    pub lat_sum_ns: u64,
    pub lat: [u64; LAT_BUCKETS],
}
const _: () = assert!(core::mem::size_of::<HttpStats>() == 80 + 8 * LAT_BUCKETS);

/// The bucket of a latency in nanoseconds.
#[inline(always)]
pub fn lat_bucket(ns: u64) -> usize {
    let us = ns / 1000;
    let mut i = 0;
    while i < LAT_BUCKETS - 1 {
        if us < LAT_BOUND_US[i] {
            return i;
        }
        i += 1;
    }
    LAT_BUCKETS - 1
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 502 Bad Gateway`): the first
/// 12 bytes are enough; None for anything else.
#[inline(always)]
pub fn parse_status(b: &[u8; 16]) -> Option<u16> {
    if b[0] != b'H' || b[1] != b'T' || b[2] != b'T' || b[3] != b'P' || b[4] != b'/' {
        return None;
    }
    if b[5] != b'1' || b[6] != b'.' || b[8] != b' ' {
        return None;
    }
    let d = |c: u8| c.is_ascii_digit().then_some((c - b'0') as u16);
    let code = d(b[9])? * 100 + d(b[10])? * 10 + d(b[11])?;
    if b[12] != b' ' && b[12] != b'\r' {
        return None;
    }
    Some(code)
}

/// Whether a buffer read by a server starts an HTTP/1.x request (a method and a space).
#[inline(always)]
pub fn is_request_start(b: &[u8; 8]) -> bool {
    matches!(
        &b[..4],
        b"GET " | b"POST" | b"PUT " | b"HEAD" | b"DELE" | b"PATC" | b"OPTI"
    )
}

/// An OpenSSL connection of a process (`SSL *`), for the TLS uprobes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsKey {
    pub ssl: u64,
    pub tgid: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<TlsKey>() == 16);

/// Whether a read(2) that returned `n` bytes starting with `b` read a TLS application-data
/// record (content type 23, version 3.x): over an established TLS connection, a request (or
/// its first part) from the peer. OpenSSL reads a record's 5-byte header on its own first.
#[inline(always)]
pub fn is_tls_app_data(b: &[u8; 5], n: i64) -> bool {
    n >= 5 && b[0] == 23 && b[1] == 3 && b[2] <= 4
}

/// A plaintext TLS alert record (RFC 8446 §6, RFC 5246 §7.2): content type 21, record
/// version 3.1 to 3.4, length 2, level 1 (warning) or 2 (fatal), then the description. Alerts
/// sent before the keys are set (handshake failures) are cleartext whatever the TLS stack;
/// later ones are encrypted (type 23) and are not seen. Fixed budget: 7 bytes.
/// Returns (level, description).
#[inline(always)]
pub fn parse_tls_alert(b: &[u8; 7]) -> Option<(u8, u8)> {
    if b[0] != 21 || b[1] != 3 || !(1..=4).contains(&b[2]) || b[3] != 0 || b[4] != 2 {
        return None;
    }
    if b[5] != 1 && b[5] != 2 {
        return None;
    }
    Some((b[5], b[6]))
}

/// The IANA name of a TLS alert description (`handshake_failure`, `bad_certificate`...);
/// `unknown` for a code without one.
pub fn tls_alert_name(desc: u8) -> &'static str {
    match desc {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        121 => "ech_required",
        _ => "unknown",
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` integers, no padding beyond explicit fields.
    unsafe impl aya::Pod for super::HttpOffsets {}
    unsafe impl aya::Pod for super::HttpKey {}
    unsafe impl aya::Pod for super::HttpStats {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_buckets_are_in_range_and_spread_a_process_fds() {
        // A bitmap of the buckets (no_std: no sets here).
        let mut used = [0u64; (SEEN_BUCKETS / 64) as usize];
        let mut distinct = 0;
        for fd in 3..1027u64 {
            let b = seen_bucket((4242 << 32) | fd);
            assert!(b < SEEN_BUCKETS);
            let (w, bit) = ((b / 64) as usize, 1u64 << (b % 64));
            if used[w] & bit == 0 {
                used[w] |= bit;
                distinct += 1;
            }
        }
        // 1024 fds of one process: nearly all in buckets of their own.
        assert!(distinct > 1000, "{distinct}");
        assert!(seen_bucket(u64::MAX) < SEEN_BUCKETS);
    }

    #[test]
    fn tls_tgid_slots_are_in_range_and_distinct_for_nearby_processes() {
        assert_eq!(tls_tgid_slot(1234), 1234);
        // Ids 65 536 apart share a slot; the largest pid_max (2^22) stays in range.
        assert_eq!(tls_tgid_slot(1234 + TLS_TGID_SLOTS), 1234);
        assert!(tls_tgid_slot(1 << 22) < TLS_TGID_SLOTS);
        assert!(tls_tgid_slot(u32::MAX) < TLS_TGID_SLOTS);
        assert_ne!(tls_tgid_slot(4000), tls_tgid_slot(4001));
    }

    fn b16(s: &str) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..s.len().min(16)].copy_from_slice(&s.as_bytes()[..s.len().min(16)]);
        b
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(&b16("HTTP/1.1 502 Bad G")), Some(502));
        assert_eq!(parse_status(&b16("HTTP/1.0 200 OK\r\n")), Some(200));
        assert_eq!(parse_status(&b16("HTTP/1.1 429\r\n")), Some(429));
        assert_eq!(parse_status(&b16("HTTP/2 200 OK")), None);
        assert_eq!(parse_status(&b16("HTTP/1.1 2x0 OK")), None);
        assert_eq!(parse_status(&b16("GET / HTTP/1.1")), None);
    }

    #[test]
    fn requests() {
        let b = |s: &str| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&s.as_bytes()[..8]);
            b
        };
        assert!(is_request_start(&b("GET / HT")));
        assert!(is_request_start(&b("POST /a ")));
        assert!(!is_request_start(&b("HTTP/1.1")));
        assert!(!is_request_start(&b("\x16\x03\x01\x02\x00\x01\x00\x01")));
    }

    #[test]
    fn tls_app_data_records() {
        assert!(is_tls_app_data(&[23, 3, 3, 0, 40], 5));
        assert!(is_tls_app_data(&[23, 3, 1, 0x40, 0], 16389));
        // A handshake record (ClientHello), an alert, a short read, plaintext.
        assert!(!is_tls_app_data(&[22, 3, 1, 2, 0], 517));
        assert!(!is_tls_app_data(&[21, 3, 3, 0, 2], 7));
        assert!(!is_tls_app_data(&[23, 3, 3, 0, 40], 4));
        assert!(!is_tls_app_data(b"GET /", 80));
    }

    #[test]
    fn buckets() {
        assert_eq!(lat_bucket(0), 0);
        assert_eq!(lat_bucket(499_999), 0);
        assert_eq!(lat_bucket(500_000), 1);
        assert_eq!(lat_bucket(1_000_000_000), 11);
        assert_eq!(lat_bucket(u64::MAX), LAT_BUCKETS - 1);
    }

    #[test]
    fn tls_alerts() {
        // A fatal handshake_failure in a TLS 1.2 record, as GnuTLS, Go or OpenSSL write it.
        assert_eq!(parse_tls_alert(&[21, 3, 3, 0, 2, 2, 40]), Some((2, 40)));
        // TLS 1.0 record version (a ClientHello-time alert), warning level.
        assert_eq!(parse_tls_alert(&[21, 3, 1, 0, 2, 1, 112]), Some((1, 112)));
        // Not an alert: a handshake record, an encrypted record, SSL 3.0, a longer record,
        // a bad level.
        assert_eq!(parse_tls_alert(&[22, 3, 1, 0, 2, 2, 40]), None);
        assert_eq!(parse_tls_alert(&[23, 3, 3, 0, 2, 2, 40]), None);
        assert_eq!(parse_tls_alert(&[21, 3, 0, 0, 2, 2, 40]), None);
        assert_eq!(parse_tls_alert(&[21, 3, 3, 0, 19, 2, 40]), None);
        assert_eq!(parse_tls_alert(&[21, 3, 3, 0, 2, 3, 40]), None);
        assert_eq!(parse_tls_alert(b"HTTP/1."), None);
        assert_eq!(tls_alert_name(40), "handshake_failure");
        assert_eq!(tls_alert_name(48), "unknown_ca");
        assert_eq!(tls_alert_name(45), "certificate_expired");
        assert_eq!(tls_alert_name(200), "unknown");
    }
}
