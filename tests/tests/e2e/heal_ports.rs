//! `port_conflict` remedies with the real daemon:
//! - `report_holder` names the process that holds the port (pid, comm, inode) and changes
//!   nothing.
//! - `socket_destroy`: a server without SO_REUSEADDR exits while its peer keeps the connection
//!   open, leaving an orphaned FIN_WAIT2 socket (no file, inode 0) on the port; the restarted
//!   server's bind fails with EADDRINUSE. `report_holder` skips (no process to name); with the
//!   port in `remedies.socket_destroy.allow_ports` the orphan is destroyed (`verified`: it is
//!   gone from the socket table) and the retried bind succeeds. Without the policy it skips
//!   and the orphan stays.
use std::io::Read;
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, SystemTime};

use guardian_tests::sockets::*;
use guardian_tests::*;

use super::sysctl_common::*;

/// A TCP socket bound to `addr` WITHOUT SO_REUSEADDR (what collides with orphans).
fn bind_plain(addr: SocketAddrV4) -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket calls on a descriptor we own; the sockaddr is fully initialised.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let owned = OwnedFd::from_raw_fd(fd);
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of_val(&sa) as libc::socklen_t;
        if libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(owned)
    }
}

fn fin_wait2(ns: &Netns, port: u16) -> usize {
    ns.run(&[
        "ss",
        "-Htan",
        "state",
        "fin-wait-2",
        &format!("sport = :{port}"),
    ])
    .lines()
    .count()
}

#[test]
fn report_holder_names_the_process() {
    require_root();
    let mut heals = Vec::new();
    for _ in 0..gt_runs() {
        let a = Netns::new("hp-rh-a");
        let b = Netns::new("hp-rh-b");
        let v = pair(&a, &b, 127);
        let (_state, mut d) = start(&a, "[detect.port_conflict]\nclear_after_ms = 1000\n", false);
        let addr = SocketAddr::from((v.a_addr, 5127));
        let holder = run_in_netns(&a, move || TcpListener::bind(addr).expect("first bind"));
        let inode = socket_inode(holder.as_raw_fd());
        let errno = run_in_netns(&a, move || {
            TcpListener::bind(addr).unwrap_err().raw_os_error()
        });
        assert_eq!(errno, Some(libc::EADDRINUSE));
        let ns = a.inode();
        let (i, open) = d.wait_for_after(
            0,
            |e| is_fault_in(e, "port_conflict", "opened", ns),
            Duration::from_secs(5),
        );
        let ev = remedy_ev(&mut d, i, &open, "report_holder", "verified", 5);
        eprintln!("{ev}");
        let h = &ev["change"]["after"]["holders"][0];
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(h["pid"], std::process::id(), "{ev}");
        assert_eq!(h["comm"], comm.trim_end(), "{ev}");
        assert_eq!(h["inode"].as_u64(), Some(inode), "{ev}");
        assert_eq!(h["state"], "listen");
        heals.push(heal_ms(&open, &ev));
        d.finish();
        drop(holder);
    }
    report("report_holder(port_conflict)", heals);
}

/// The orphan scenario; `allow` puts the port in the policy, `observe` runs the daemon in
/// observe mode. Returns (fault, last event).
fn orphan(
    subnet: u8,
    port: u16,
    allow: bool,
    observe: bool,
) -> (serde_json::Value, serde_json::Value) {
    let a = Netns::new("hp-sd-a");
    let b = Netns::new("hp-sd-b");
    let v = pair(&a, &b, subnet);
    let policy = if allow {
        format!("[remedies.socket_destroy]\nallow_ports = [{port}]\n")
    } else {
        String::new()
    };
    let cfg = format!("[detect.port_conflict]\nclear_after_ms = 1000\n{policy}");
    let (_state, mut d) = start(&a, &cfg, observe);
    let laddr = SocketAddrV4::new(v.a_addr, port);
    // The first server: listens, accepts one connection, then exits (closes everything).
    let server = run_in_netns(&a, move || {
        let fd = bind_plain(laddr).expect("first bind");
        // SAFETY: listen(2) on our descriptor.
        assert_eq!(unsafe { libc::listen(fd.as_raw_fd(), 8) }, 0);
        TcpListener::from(fd)
    });
    let mut peer = run_in_netns(&b, move || {
        TcpStream::connect_timeout(&SocketAddr::V4(laddr), Duration::from_secs(2)).expect("connect")
    });
    let (conn, _) = server.accept().expect("accept");
    drop(conn);
    drop(server);
    assert!(
        poll(Duration::from_secs(2), Duration::from_millis(10), || {
            (fin_wait2(&a, port) == 1).then_some(())
        })
        .is_some(),
        "an orphaned FIN_WAIT2 socket holds the port"
    );
    // The restarted server cannot bind.
    let t0 = SystemTime::now();
    let err = run_in_netns(&a, move || bind_plain(laddr).map(drop).unwrap_err());
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    let ns = a.inode();
    let (i, open) = d.wait_for_after(
        0,
        |e| is_fault_in(e, "port_conflict", "opened", ns),
        Duration::from_secs(5),
    );
    let skipped = remedy_ev(&mut d, i, &open, "report_holder", "skipped", 5);
    let why = skipped["reason"].as_str().unwrap();
    assert!(
        why.contains("orphaned") && why.contains("fin-wait-2"),
        "{skipped}"
    );
    let last = if observe {
        let ev = remedy_ev(&mut d, i, &open, "socket_destroy", "planned", 5);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(fin_wait2(&a, port), 1, "observe mode destroys nothing");
        ev
    } else if allow {
        let ev = remedy_ev(&mut d, i, &open, "socket_destroy", "verified", 5);
        assert_eq!(ev["change"]["before"]["orphaned"][0]["state"], "fin-wait-2");
        assert_eq!(fin_wait2(&a, port), 0, "the orphan is gone");
        let again = run_in_netns(&a, move || bind_plain(laddr).map(drop));
        assert!(again.is_ok(), "the retried bind succeeds: {again:?}");
        // The peer was reset.
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let r = peer.read(&mut [0u8; 16]);
        eprintln!("peer read after destroy: {r:?}");
        ev
    } else {
        let ev = remedy_ev(&mut d, i, &open, "socket_destroy", "skipped", 5);
        let want = format!("port {port} is not in remedies.socket_destroy.allow_ports");
        assert_eq!(ev["reason"], want.as_str(), "{ev}");
        assert_eq!(fin_wait2(&a, port), 1, "the orphan stays");
        ev
    };
    eprintln!("bind failed at {t0:?}; {last}");
    let events = d.finish();
    assert!(!events
        .iter()
        .any(|e| is_remedy(e, "socket_destroy", "failed")));
    drop(peer);
    (open, last)
}

#[test]
fn socket_destroy_frees_a_port_held_by_an_orphan() {
    require_root();
    let mut heals = Vec::new();
    for _ in 0..gt_runs() {
        let (open, verified) = orphan(128, 5128, true, false);
        heals.push(heal_ms(&open, &verified));
    }
    report("socket_destroy(port_conflict)", heals);
}

#[test]
fn socket_destroy_needs_the_port_in_the_policy() {
    require_root();
    orphan(129, 5129, false, false);
}

#[test]
fn socket_destroy_in_observe_mode_only_plans() {
    require_root();
    orphan(129, 5129, true, true);
}
