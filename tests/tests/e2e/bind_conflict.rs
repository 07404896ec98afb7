//! A failed bind (EADDRINUSE) is reported as an observation naming the process, thread and port.
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use guardian_tests::*;

const SUBNET: u8 = 4;
const PORT: u16 = 47004;

#[test]
fn bind_eaddrinuse_is_observed_with_pid_comm_and_port() {
    require_root();
    let a = Netns::new("bind-a");
    let b = Netns::new("bind-b");
    let v = pair(&a, &b, SUBNET);

    let mut d = Daemon::start(&a, &["--interval-ms", "500"]);
    d.wait_attached();

    let addr = SocketAddr::from((v.a_addr, PORT));
    let holder = run_in_netns(&a, move || TcpListener::bind(addr).expect("first bind"));
    let (errno, tid) = in_netns_named(&a, "gt-binder", move || {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        let err = TcpListener::bind(addr).expect_err("second bind must fail");
        (err.raw_os_error(), tid)
    })
    .join()
    .expect("binder thread");
    assert_eq!(errno, Some(libc::EADDRINUSE));

    let obs = d.wait_for(
        |e| {
            is_type(e, "observation")
                && str_field(e, "kind") == Some("bind_conflict")
                && e["port"] == PORT
        },
        Duration::from_secs(10),
    );
    eprintln!("observed: {obs}");
    assert_eq!(str_field(&obs, "error"), Some("EADDRINUSE"));
    assert_eq!(u64_field(&obs, "pid"), std::process::id() as u64);
    assert_eq!(u64_field(&obs, "tid"), tid as u64);
    assert_eq!(str_field(&obs, "comm"), Some("gt-binder"));
    assert_eq!(u64_field(&obs, "netns"), a.inode());
    assert_eq!(str_field(&obs, "family"), Some("ipv4"));
    assert_eq!(str_field(&obs, "addr"), Some(v.a_addr.to_string().as_str()));

    drop(holder);
    let events = d.finish();
    let fin = final_counters(&events, a.inode()).expect("final counters for A");
    assert!(u64_field(fin, "bind_eaddrinuse") >= 1, "{fin}");
}

/// A socket of `ty` (SOCK_STREAM, SOCK_DGRAM) bound to `addr`, with SO_REUSEPORT if asked
/// (and SO_REUSEADDR for TCP, as servers set it): (fd, 0) or (fd, errno). The caller closes it.
fn raw_bind(addr: SocketAddr, ty: libc::c_int, reuseport: bool) -> (libc::c_int, i32) {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket/setsockopt/bind on a descriptor this function creates.
    unsafe {
        let fd = libc::socket(family, ty, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let one: libc::c_int = 1;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let opt = |o| libc::setsockopt(fd, libc::SOL_SOCKET, o, (&one as *const i32).cast(), len);
        if ty == libc::SOCK_STREAM {
            opt(libc::SO_REUSEADDR);
        }
        if reuseport {
            opt(libc::SO_REUSEPORT);
        }
        (fd, bind_fd(fd, addr))
    }
}

/// bind(2) of `fd` to `addr`: 0 or the errno.
fn bind_fd(fd: libc::c_int, addr: SocketAddr) -> i32 {
    // SAFETY: zeroed sockaddr structures are valid; the one passed lives across the call.
    let r = unsafe {
        match addr {
            SocketAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                let len = std::mem::size_of_val(&sa) as libc::socklen_t;
                libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), len)
            }
            SocketAddr::V6(a) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                let len = std::mem::size_of_val(&sa) as libc::socklen_t;
                libc::bind(fd, (&sa as *const libc::sockaddr_in6).cast(), len)
            }
        }
    };
    if r == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

/// What is reported is exactly the binds that failed on a taken port, each one counted: a
/// wildcard bind under a listener on one address, IPv6, UDP, and a socket that retries its
/// bind; not a bind to an address the host does not have, not one that succeeds beside a
/// holder through SO_REUSEPORT. Here through the cgroup programs.
#[test]
fn only_binds_that_fail_on_a_taken_port_are_reported_each_one_counted() {
    require_root();
    let a = Netns::new("bindx-a");
    let b = Netns::new("bindx-b");
    let v = pair(&a, &b, SUBNET);
    let d = Daemon::start(&a, &["--interval-ms", "300"]);
    binds_are_reported_exactly(d, &a, v.a_addr, true);
}

/// The same binds, the same reports, where there is no cgroup v2 to attach to (a host or
/// container that mounts only cgroup v1): the daemon, in a mount namespace without the cgroup
/// v2 mount, falls back to the bind tracepoints and says why.
#[test]
fn without_cgroup_v2_the_bind_tracepoints_report_the_same() {
    require_root();
    let a = Netns::new("bindy-a");
    let b = Netns::new("bindy-b");
    let v = pair(&a, &b, SUBNET);
    let dir = TempDir::new("bindy");
    let unshare = guardian_tests::links::without_cgroup2(dir.path(), &guardian_bin());
    let d = Daemon::start_with(&unshare, &a, &["--interval-ms", "300"]);
    binds_are_reported_exactly(d, &a, v.a_addr, false);
}

fn binds_are_reported_exactly(mut d: Daemon, a: &Netns, ip: std::net::Ipv4Addr, cgroup: bool) {
    let att = d.wait_attached();
    let binds = &att["detail"]["binds"];
    eprintln!("binds watched by: {binds}");
    if cgroup {
        assert!(binds["cgroup"].is_string(), "{binds}");
    } else {
        assert!(
            str_field(binds, "cgroup_error").is_some_and(|e| e.contains("no cgroup v2")),
            "{binds}"
        );
        assert_eq!(
            binds["tracepoints"][1]["tracepoint"],
            "syscalls:sys_exit_bind"
        );
    }
    let base = 47100u16;
    let results = run_in_netns(a, move || {
        let (tcp, udp) = (libc::SOCK_STREAM, libc::SOCK_DGRAM);
        let sa = |ip: std::net::IpAddr, p: u16| SocketAddr::from((ip, p));
        let (v4, lo6) = (std::net::IpAddr::V4(ip), "::1".parse().unwrap());
        let any4: std::net::IpAddr = "0.0.0.0".parse().unwrap();
        let listen = |fd| assert_eq!(unsafe { libc::listen(fd, 8) }, 0);
        let mut keep = Vec::new();
        let mut out = Vec::new();
        // 1. A listener on the veth address; the wildcard on its port.
        let (h, e) = raw_bind(sa(v4, base), tcp, false);
        assert_eq!(e, 0);
        listen(h);
        keep.push(h);
        let (f, e) = raw_bind(sa(any4, base), tcp, false);
        out.push(("wildcard under a listener", base, e));
        keep.push(f);
        // 2. IPv6 on loopback.
        let (h, e) = raw_bind(sa(lo6, base + 1), tcp, false);
        assert_eq!(e, 0);
        listen(h);
        keep.push(h);
        let (f, e) = raw_bind(sa(lo6, base + 1), tcp, false);
        out.push(("ipv6", base + 1, e));
        keep.push(f);
        // 3. UDP.
        let (h, e) = raw_bind(sa(any4, base + 2), udp, false);
        assert_eq!(e, 0);
        keep.push(h);
        let (f, e) = raw_bind(sa(any4, base + 2), udp, false);
        out.push(("udp", base + 2, e));
        keep.push(f);
        // 4. One socket that binds twice to the port of 1 (both fail), then closes.
        let (f, e) = raw_bind(sa(v4, base), tcp, false);
        out.push(("retry, first", base, e));
        out.push(("retry, second", base, bind_fd(f, sa(v4, base))));
        unsafe { libc::close(f) };
        // 5. A port held by a socket that is bound but not listening (without SO_REUSEADDR,
        // as an orphan or a client holds one): the kernel finds no holder, the daemon checks
        // that the address is local and reports it; the kernel's counter does not count it.
        let h = unsafe { libc::socket(libc::AF_INET, tcp, 0) };
        assert_eq!(bind_fd(h, sa(v4, base + 5)), 0);
        keep.push(h);
        let (f, e) = raw_bind(sa(v4, base + 5), tcp, false);
        out.push(("held, not listening", base + 5, e));
        keep.push(f);
        // Not conflicts: 6. an address nobody here has; 7. SO_REUSEPORT beside a listener.
        let (f, e) = raw_bind(sa("10.250.0.1".parse().unwrap(), base + 3), tcp, false);
        out.push(("not local", base + 3, e));
        keep.push(f);
        let (h, e) = raw_bind(sa(v4, base + 4), tcp, true);
        assert_eq!(e, 0);
        listen(h);
        keep.push(h);
        let (f, e) = raw_bind(sa(v4, base + 4), tcp, true);
        out.push(("reuseport", base + 4, e));
        keep.push(f);
        // Close everything: a failed bind is reported when its socket binds again or closes.
        for fd in keep {
            unsafe { libc::close(fd) };
        }
        out
    });
    eprintln!("binds: {results:?}");
    let errno = |what: &str| results.iter().find(|r| r.0 == what).map(|r| r.2);
    for what in [
        "wildcard under a listener",
        "ipv6",
        "udp",
        "retry, first",
        "retry, second",
    ] {
        assert_eq!(errno(what), Some(libc::EADDRINUSE), "{what}");
    }
    assert_eq!(errno("not local"), Some(libc::EADDRNOTAVAIL));
    assert_eq!(errno("reuseport"), Some(0));

    let ino = a.inode();
    d.wait_for(
        move |e| is_counters(e, ino) && e["bind_eaddrinuse"].as_u64() >= Some(5),
        Duration::from_secs(10),
    );
    // A margin for a wrong sixth report to arrive.
    std::thread::sleep(Duration::from_millis(700));
    let events = d.finish();
    let fin = final_counters(&events, ino).expect("final counters");
    // The cgroup programs count the five they name themselves (the sixth is the daemon's);
    // the tracepoints see bind's EADDRINUSE and count all six.
    let counted = if cgroup { 5 } else { 6 };
    assert_eq!(u64_field(fin, "bind_eaddrinuse"), counted, "{fin}");
    let seen: Vec<(u64, Option<&str>, Option<&str>)> = events
        .iter()
        .filter(|e| is_type(e, "observation") && str_field(e, "kind") == Some("bind_conflict"))
        .map(|e| {
            (
                u64_field(e, "port"),
                str_field(e, "family"),
                str_field(e, "addr"),
            )
        })
        .collect();
    eprintln!("observed: {seen:?}");
    let on = |p: u16| seen.iter().filter(|s| s.0 == p as u64).count();
    assert_eq!(
        on(base),
        3,
        "wildcard + the retrying socket's two: {seen:?}"
    );
    assert!(
        seen.contains(&(base as u64 + 1, Some("ipv6"), Some("::1"))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(base as u64 + 2, Some("ipv4"), Some("0.0.0.0"))),
        "{seen:?}"
    );
    assert_eq!(on(base + 3) + on(base + 4), 0, "{seen:?}");
    // Checked by the daemon (the address is local), so observed; not in the kernel's counter.
    assert!(
        seen.contains(&(base as u64 + 5, Some("ipv4"), Some(&*ip.to_string()))),
        "{seen:?}"
    );
}

/// `guardian run` holds no syscall tracepoint (any one puts every syscall of every task on
/// the kernel's slow path): the kernel's own description of the daemon's BPF links
/// (`/proc/PID/fdinfo`: `tp_name` of each perf and raw tracepoint link) names its TCP and
/// socket tracepoints and none on a syscall; the cgroup links are the bind programs' five.
#[test]
fn guardian_run_holds_no_syscall_tracepoint() {
    require_root();
    let a = Netns::new("bindtp");
    let mut d = Daemon::start(&a, &[]);
    d.wait_attached();
    let pid = d.pid().expect("daemon pid");
    let links = guardian_tests::links::of(pid);
    let tps = guardian_tests::links::tracepoints(&links);
    let cgroup_links = links.iter().filter(|l| l.kind == "cgroup").count();
    d.finish();
    eprintln!("tracepoint links: {tps:?}; cgroup links: {cgroup_links}");
    // The control: the kernel names the daemon's tracepoints.
    assert!(tps.contains(&"inet_sock_set_state".to_string()), "{tps:?}");
    let syscalls: Vec<&String> = tps.iter().filter(|t| t.starts_with("sys_")).collect();
    assert!(syscalls.is_empty(), "syscall hooks: {syscalls:?}");
    // bind4, bind6, post_bind4, post_bind6, sock_release, and sock_ops.
    assert_eq!(cgroup_links, 6, "cgroup links");
}
