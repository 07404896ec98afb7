//! What this kernel offers guardian, per feature: available, degraded (works with less, and
//! why) or unavailable. The daemon reports it in the `attached` event (`coverage`: which faults
//! are covered and which are not, and why); `doctor` proves each feature by loading and
//! attaching it (see `prove`). Measured per kernel in docs/kernels.md.
use guardian_common::Offsets;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Available,
    Degraded,
    Unavailable,
}

#[derive(Debug, Clone, Serialize)]
pub struct Feature {
    pub feature: &'static str,
    pub state: State,
    /// What works, or what is missing and why.
    pub reason: String,
    /// The faults this feature's absence leaves undetected.
    #[serde(skip)]
    pub uncovers: &'static [&'static str],
}

impl Feature {
    pub fn new(feature: &'static str, state: State, reason: impl Into<String>) -> Self {
        Feature {
            feature,
            state,
            reason: reason.into(),
            uncovers: &[],
        }
    }

    fn uncovering(mut self, faults: &'static [&'static str]) -> Self {
        self.uncovers = faults;
        self
    }
}

/// `(major, minor)` of a kernel release such as `6.1.0-57-amd64`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The running kernel's `(major, minor)`.
pub fn running_kernel() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    kernel_version(release.trim())
}

/// The features that follow from the tracepoint layouts and the kernel version alone.
pub fn from_offsets(o: &Offsets, kernel: Option<(u32, u32)>) -> Vec<Feature> {
    let mut out = Vec::new();
    out.push(if o.rtx_err != Offsets::ABSENT {
        Feature::new(
            "exact_retransmits",
            State::Available,
            "tcp_retransmit_skb reports failed transmits (`err`, Linux 6.17+)",
        )
    } else {
        Feature::new(
            "exact_retransmits",
            State::Degraded,
            "tcp_retransmit_skb has no `err` (before Linux 6.17) and does not fire for a \
             retransmission whose transmit failed: those are added from the namespace's \
             TcpExtTCPRetransFail each tick (exact except failures in a namespace's first tick)",
        )
    });
    let flow_fields = [
        o.rtx_family,
        o.rtx_sport,
        o.rtx_dport,
        o.rtx_daddr,
        o.rtx_daddr_v6,
    ];
    out.push(if flow_fields.contains(&Offsets::ABSENT) {
        Feature::new(
            "retransmit_flows",
            State::Unavailable,
            "tcp_retransmit_skb lacks a flow field (`family` is missing before Linux 5.11): \
             no per-flow retransmit pattern",
        )
        .uncovering(&["mtu_blackhole"])
    } else {
        Feature::new(
            "retransmit_flows",
            State::Available,
            "per-flow retransmit pattern from tcp_retransmit_skb",
        )
    });
    out.push(recursion_misses(kernel));
    out
}

/// Runs the kernel skips when a tracing program is already running on the CPU: the kernel
/// reports them in the program's fdinfo since 5.12, but counts them for classic tracepoint
/// programs (`trace_call_bpf`) only since 6.7.
pub fn recursion_misses(kernel: Option<(u32, u32)>) -> Feature {
    match kernel {
        Some(v) if v >= (6, 7) => Feature::new(
            "recursion_misses",
            State::Available,
            "skipped tracepoint runs are counted (loss events, source recursion:<program>)",
        ),
        Some(v) if v >= (5, 12) => Feature::new(
            "recursion_misses",
            State::Degraded,
            "before Linux 6.7 the kernel does not count skipped runs of tracepoint programs \
             (recursion_misses stays 0): such losses go unreported",
        ),
        _ => Feature::new(
            "recursion_misses",
            State::Degraded,
            "before Linux 5.12 programs have no recursion_misses: skipped tracepoint runs go \
             unreported",
        ),
    }
}

/// The DNS programs' attachment: tcx, clsact fallback, or none (with why).
pub fn dns(modes: &[&'static str], dns_ifaces: usize, error: Option<&str>) -> Feature {
    if let Some(e) = error {
        return Feature::new("dns_tc", State::Unavailable, e.to_string())
            .uncovering(&["dns_failure"]);
    }
    if dns_ifaces == 0 {
        return Feature::new(
            "dns_tc",
            State::Unavailable,
            "no DNS interface: the DNS programs attach to the --xdp interfaces, or to \
             `[interfaces] dns` when it is set",
        )
        .uncovering(&["dns_failure"]);
    }
    if modes.contains(&"clsact") {
        Feature::new(
            "dns_tc",
            State::Degraded,
            "no tcx on this kernel (before Linux 6.6): attached as clsact filters, which a \
             SIGKILLed guardian leaves behind until its next start removes them",
        )
    } else {
        Feature::new("dns_tc", State::Available, "attached through tcx")
    }
}

/// The fail-fast sock_ops program: attached, or unavailable with why. Before Linux 5.15 a
/// sock_ops program cannot call `bpf_get_netns_cookie` (the policies are keyed by namespace)
/// and the verifier refuses it (measured on 5.10): one sentence instead of the verifier's log.
pub fn sock_ops(result: Result<(), &str>) -> Feature {
    match result {
        Ok(()) => Feature::new("sock_ops", State::Available, "attached"),
        Err(e) if e.contains("bpf_get_netns_cookie") => Feature::new(
            "sock_ops",
            State::Unavailable,
            "sock_ops programs cannot call bpf_get_netns_cookie before Linux 5.15: the \
             sockopt_failfast remedy is off",
        ),
        Err(e) => Feature::new("sock_ops", State::Unavailable, e.to_string()),
    }
}

/// How failed binds are watched (`port_conflict` is covered either way): the cgroup programs,
/// or the syscall tracepoints with why.
pub fn binds(result: Result<(), &str>) -> Feature {
    match result {
        Ok(()) => Feature::new(
            "binds",
            State::Available,
            "cgroup bind programs on the cgroup v2 root: no syscall tracepoint",
        ),
        Err(e) => Feature::new(
            "binds",
            State::Degraded,
            format!(
                "the bind syscall tracepoints instead, which put every syscall of every task \
                 on the kernel's tracing slow path: {e}"
            ),
        ),
    }
}

/// The XDP program: attached to the `--xdp` interfaces, or not asked for.
pub fn xdp(xdp_ifaces: usize) -> Feature {
    if xdp_ifaces == 0 {
        Feature::new(
            "xdp",
            State::Unavailable,
            "no --xdp interface: SYNs are not counted per source and port",
        )
        .uncovering(&["syn_flood"])
    } else {
        Feature::new(
            "xdp",
            State::Available,
            format!("attached to {xdp_ifaces} interface(s)"),
        )
    }
}

/// The faults that need HTTP responses seen (`--http`).
const HTTP_FAULTS: &[&str] = &["http_5xx", "http_429", "http_latency"];

/// HTTP status per service (`--http`): `Ok(None)` when the packet programs read plaintext,
/// `Ok(Some(why))` when they were refused and the syscall hook reads it, `Err` when neither
/// does. `None` when `--http` was not given.
pub fn http(result: Option<Result<Option<&str>, &str>>) -> Feature {
    match result {
        None => Feature::new(
            "http",
            State::Unavailable,
            "not asked for (--http): HTTP status and latency are not counted",
        )
        .uncovering(HTTP_FAULTS),
        Some(Ok(None)) => Feature::new(
            "http",
            State::Available,
            "plaintext read from every socket's packets (cgroup programs; the attached event \
             names them)",
        ),
        // The packet programs were refused: the syscall hook reads plaintext, at the cost of
        // a program on every syscall of every task.
        Some(Ok(Some(why))) => Feature::new(
            "http",
            State::Degraded,
            format!(
                "plaintext read at the syscalls, which costs every syscall of every task: the \
                 packet programs were refused ({why})"
            ),
        ),
        Some(Err(e)) => {
            Feature::new("http", State::Unavailable, e.to_string()).uncovering(HTTP_FAULTS)
        }
    }
}

/// TLS through OpenSSL: uprobes on every `libssl.so.3` found (`libs` attached, `failed` with
/// why). `None` when `--http` was not given. No library found is degraded, not unavailable:
/// guardian rescans for processes that map one later, but a TLS stack linked statically
/// (Go's crypto/tls, rustls, BoringSSL builds) or without symbols is never seen.
pub fn tls(result: Option<Result<(usize, &[String]), TlsDown<'_>>>) -> Feature {
    const TLS_FAULTS: &[&str] = &["tls_handshake_failure"];
    match result {
        None => Feature::new(
            "tls_uprobes",
            State::Unavailable,
            "not asked for (--http, without --http-no-tls): TLS handshakes and HTTP over TLS \
             are not seen",
        )
        .uncovering(TLS_FAULTS),
        Some(Err(TlsDown::Refused(e))) => Feature::new(
            "tls_uprobes",
            State::Unavailable,
            format!("uprobes cannot be attached here: {e}"),
        )
        .uncovering(TLS_FAULTS),
        Some(Err(TlsDown::NoHttp(e))) => Feature::new(
            "tls_uprobes",
            State::Unavailable,
            format!(
                "not attached: they need a hook on the socket I/O (request starts, sockets, how \
                 a handshake's reads ended), the socket tracepoints or the HTTP syscall \
                 tracepoints, which failed: {e}"
            ),
        )
        .uncovering(TLS_FAULTS),
        Some(Ok((0, []))) => Feature::new(
            "tls_uprobes",
            State::Degraded,
            "no libssl.so.3 on this host or mapped by a running process yet: TLS is seen once \
             a process maps one; statically linked TLS stacks (Go, rustls, BoringSSL) never",
        ),
        Some(Ok((libs, []))) => Feature::new(
            "tls_uprobes",
            State::Available,
            format!(
                "attached to {libs} libssl.so.3 file(s); statically linked TLS stacks are not seen"
            ),
        ),
        Some(Ok((libs, failed))) => Feature::new(
            "tls_uprobes",
            State::Degraded,
            format!(
                "attached to {libs} libssl.so.3 file(s); not to {}: {}",
                failed.len(),
                failed.join("; ")
            ),
        ),
    }
}

/// Why the TLS uprobes are not attached: refused themselves, or not tried because the hook on
/// the socket I/O they rely on failed.
pub enum TlsDown<'a> {
    Refused(&'a str),
    NoHttp(&'a str),
}

/// The `coverage` of the `attached` event: the features, and every registered fault as
/// covered or not (with the reasons of the features that leave it uncovered).
pub fn coverage(features: &[Feature], all_faults: &[&str]) -> serde_json::Value {
    let mut covered = Vec::new();
    let mut uncovered = Vec::new();
    for fault in all_faults {
        let why: Vec<String> = features
            .iter()
            .filter(|f| f.uncovers.contains(fault))
            .map(|f| format!("{}: {}", f.feature, f.reason))
            .collect();
        if why.is_empty() {
            covered.push(serde_json::json!(fault));
        } else {
            uncovered.push(serde_json::json!({"fault": fault, "reason": why.join("; ")}));
        }
    }
    serde_json::json!({"features": features, "covered": covered, "uncovered": uncovered})
}

#[cfg(test)]
#[path = "features_tests.rs"]
mod tests;
