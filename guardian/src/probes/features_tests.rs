//! Unit tests of the per-feature availability (probes/features.rs).
use super::*;

fn offsets(err: bool, family: bool) -> Offsets {
    Offsets {
        rtx_err: if err { 76 } else { Offsets::ABSENT },
        rtx_family: if family { 28 } else { Offsets::ABSENT },
        ..Offsets::default()
    }
}

fn get<'a>(f: &'a [Feature], name: &str) -> &'a Feature {
    f.iter().find(|x| x.feature == name).unwrap()
}

#[test]
fn kernel_versions_parse_debian_and_upstream_releases() {
    assert_eq!(kernel_version("6.1.0-57-amd64"), Some((6, 1)));
    assert_eq!(kernel_version("6.12.107+deb12-amd64"), Some((6, 12)));
    assert_eq!(kernel_version("5.10.0-35-amd64"), Some((5, 10)));
    assert_eq!(kernel_version("garbage"), None);
}

#[test]
fn kernel_618_has_everything() {
    let f = from_offsets(&offsets(true, true), Some((6, 18)));
    assert!(f.iter().all(|x| x.state == State::Available), "{f:?}");
}

#[test]
fn kernel_61_adds_failed_retransmits_from_the_mib_and_misses_go_uncounted() {
    let f = from_offsets(&offsets(false, true), Some((6, 1)));
    assert_eq!(get(&f, "exact_retransmits").state, State::Degraded);
    assert!(get(&f, "exact_retransmits")
        .reason
        .contains("TCPRetransFail"));
    assert_eq!(get(&f, "retransmit_flows").state, State::Available);
    assert_eq!(get(&f, "recursion_misses").state, State::Degraded);
    assert!(get(&f, "recursion_misses").reason.contains("6.7"));
}

#[test]
fn kernel_510_without_family_uncovers_only_mtu_blackhole() {
    let f = from_offsets(&offsets(false, false), Some((5, 10)));
    assert_eq!(get(&f, "retransmit_flows").state, State::Unavailable);
    let c = coverage(&f, &["link_down", "mtu_blackhole", "retransmit_storm"]);
    assert_eq!(
        c["covered"],
        serde_json::json!(["link_down", "retransmit_storm"])
    );
    assert_eq!(c["uncovered"][0]["fault"], "mtu_blackhole");
    assert!(c["uncovered"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("family"));
    assert!(get(&f, "recursion_misses").reason.contains("5.12"));
}

#[test]
fn dns_falls_back_to_clsact_and_says_so() {
    assert_eq!(dns(&["tcx", "tcx"], 1, None).state, State::Available);
    let d = dns(&["clsact", "clsact"], 1, None);
    assert_eq!(d.state, State::Degraded);
    assert!(d.reason.contains("clsact"));
    assert!(d.uncovers.is_empty());
    let none = dns(&[], 0, None);
    assert_eq!(none.uncovers, &["dns_failure"]);
    let failed = dns(
        &[],
        1,
        Some("attaching guardian_dns_egress (tcx) to x: refused"),
    );
    assert_eq!(failed.state, State::Unavailable);
    assert_eq!(failed.uncovers, &["dns_failure"]);
}

#[test]
fn without_xdp_syn_flood_is_uncovered() {
    let c = coverage(&[xdp(0)], &["syn_flood", "link_down"]);
    assert_eq!(c["uncovered"][0]["fault"], "syn_flood");
    assert_eq!(
        coverage(&[xdp(2)], &["syn_flood"])["covered"][0],
        "syn_flood"
    );
}

#[test]
fn sock_ops_without_netns_cookie_names_the_kernel_limit() {
    let log = "loading or attaching guardian_failfast (sock_ops) to /sys/fs/cgroup: ... \
               21: (85) call bpf_get_netns_cookie#122\nunknown func bpf_get_netns_cookie#122";
    let f = sock_ops(Err(log));
    assert_eq!(f.state, State::Unavailable);
    assert!(f.reason.contains("before Linux 5.15"), "{}", f.reason);
    assert!(
        !f.reason.contains("#122"),
        "one sentence, not the verifier's log"
    );
    let other = sock_ops(Err("no cgroup v2"));
    assert_eq!(other.reason, "no cgroup v2");
    assert_eq!(sock_ops(Ok(())).state, State::Available);
}

#[test]
fn binds_through_the_tracepoints_are_degraded_but_cover_port_conflict() {
    let f = binds(Err("bind4 on /sys/fs/cgroup/unified: refused"));
    assert_eq!(f.state, State::Degraded);
    assert!(f.reason.contains("slow path"), "{}", f.reason);
    assert!(f
        .reason
        .ends_with("bind4 on /sys/fs/cgroup/unified: refused"));
    assert!(f.uncovers.is_empty(), "port_conflict is still seen");
    assert_eq!(binds(Ok(())).state, State::Available);
}

#[test]
fn http_and_tls_not_asked_for_uncover_their_faults_only() {
    let h = http(None);
    assert_eq!(h.state, State::Unavailable);
    assert_eq!(h.uncovers, &["http_5xx", "http_429", "http_latency"]);
    let t = tls(None);
    assert_eq!(t.state, State::Unavailable);
    assert_eq!(t.uncovers, &["tls_handshake_failure"]);
    assert_eq!(http(Some(Ok(None))).state, State::Available);
    assert!(http(Some(Ok(None))).uncovers.is_empty());
    // The packet programs refused: the syscall hook still covers the faults, at a cost.
    let f = http(Some(Ok(Some("no cgroup v2 mount found"))));
    assert_eq!(f.state, State::Degraded);
    assert!(f.uncovers.is_empty());
    assert!(
        f.reason.contains("no cgroup v2 mount found"),
        "{}",
        f.reason
    );
}

#[test]
fn tls_without_a_libssl_is_degraded_and_failures_are_named() {
    let none = tls(Some(Ok((0, &[]))));
    assert_eq!(none.state, State::Degraded);
    assert!(none.reason.contains("statically linked"), "{}", none.reason);
    assert!(none.uncovers.is_empty(), "a later process may map one");
    let ok = tls(Some(Ok((2, &[]))));
    assert_eq!(ok.state, State::Available);
    assert!(ok.reason.contains("2 libssl.so.3"), "{}", ok.reason);
    let failed = ["/x/libssl.so.3: SSL_read: no such symbol".to_string()];
    let part = tls(Some(Ok((1, &failed))));
    assert_eq!(part.state, State::Degraded);
    assert!(part.reason.contains("no such symbol"), "{}", part.reason);
    let refused = tls(Some(Err(TlsDown::Refused("perf_event_open: ENOENT"))));
    assert_eq!(refused.state, State::Unavailable);
    assert_eq!(refused.uncovers, &["tls_handshake_failure"]);
    assert!(refused
        .reason
        .starts_with("uprobes cannot be attached here: perf_event_open"));
    // Not tried: the socket I/O hook they rely on failed; the reason says so, not "uprobes".
    let no_http = tls(Some(Err(TlsDown::NoHttp(
        "tracefs: no syscalls:sys_enter_write",
    ))));
    assert_eq!(no_http.state, State::Unavailable);
    assert_eq!(no_http.uncovers, &["tls_handshake_failure"]);
    assert!(no_http
        .reason
        .starts_with("not attached: they need a hook on the socket I/O"));
    assert!(no_http
        .reason
        .ends_with("which failed: tracefs: no syscalls:sys_enter_write"));
}
