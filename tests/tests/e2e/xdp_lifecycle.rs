//! XDP attachment lifecycle: a stale guardian program left through netlink by an earlier run is
//! replaced, SIGKILL leaves nothing attached (bpf_link), SIGTERM detaches, and another tool's
//! XDP program is never replaced.
use std::{process::Command, time::Duration};

use guardian_tests::{xdp_raw::*, *};

const SUBNET: u8 = 6;

#[test]
fn stale_replaced_kill9_leaves_nothing_foreign_untouched() {
    require_root();
    let a = Netns::new("xdpl-a");
    let b = Netns::new("xdpl-b");
    let v = pair(&a, &b, SUBNET);

    // 1. A stale guardian_xdp, attached in generic mode through netlink, as a killed old run
    //    that used netlink attachment would leave it.
    let stale = attach_via_netlink(&a, &v.a_if, "guardian_xdp", "xdpgeneric");
    let mut d = Daemon::start(&a, &["--xdp", &v.a_if, "--interval-ms", "200"]);
    let attached = d.wait_attached();
    let entry = &attached["detail"]["xdp"][0];
    assert_eq!(entry["iface"], v.a_if.as_str(), "{attached}");
    assert_eq!(entry["replaced_stale"], true, "{attached}");
    // veth has XDP in its driver: the kernel's own report after the attach.
    assert_eq!(entry["mode"], "driver", "{attached}");
    let ours = prog_id(&a, &v.a_if).expect("guardian's XDP program attached");
    assert_ne!(ours, stale, "the stale program must have been replaced");

    // 2. SIGKILL: the bpf_link dies with the process, nothing stays attached.
    d.kill9();
    assert!(
        poll(Duration::from_secs(5), Duration::from_millis(20), || {
            prog_id(&a, &v.a_if).is_none().then_some(())
        })
        .is_some(),
        "XDP still attached to {} after SIGKILL: {:?}",
        v.a_if,
        prog_id(&a, &v.a_if)
    );

    // 3. A clean run detaches on SIGTERM.
    let mut d = Daemon::start(&a, &["--xdp", &v.a_if]);
    let attached = d.wait_attached();
    assert_eq!(attached["detail"]["xdp"][0]["replaced_stale"], false);
    assert!(prog_id(&a, &v.a_if).is_some());
    d.finish();
    assert_eq!(
        prog_id(&a, &v.a_if),
        None,
        "XDP left attached after SIGTERM"
    );

    // 4. Another tool's program: guardian refuses, says why, exits non-zero, leaves it there.
    let foreign = attach_via_netlink(&a, &v.a_if, "other_xdp", "xdp");
    let out = Command::new("nsenter")
        .arg(format!("--net={}", a.path().display()))
        .arg("--")
        .arg(guardian_bin())
        .args(["run", "--xdp", &v.a_if, "--events", "/dev/null"])
        .output()
        .expect("run guardian");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "guardian must refuse: {stderr}");
    assert!(
        stderr.contains("already runs another XDP program"),
        "stderr: {stderr}"
    );
    assert_eq!(
        prog_id(&a, &v.a_if),
        Some(foreign),
        "foreign program touched"
    );
    a.run(&["ip", "link", "set", "dev", &v.a_if, "xdp", "off"]);
}

/// An interface whose driver has no XDP (the namespace's loopback) gets the program in generic
/// mode, and the `attached` event says so, as the kernel reports it (`ip link`: `xdpgeneric`).
#[test]
fn an_interface_without_driver_xdp_is_attached_in_generic_mode() {
    require_root();
    let a = Netns::new("xdpg");
    let mut d = Daemon::start(&a, &["--xdp", "lo"]);
    let attached = d.wait_attached();
    let link = a.run(&["ip", "-d", "link", "show", "lo"]);
    d.finish();
    assert_eq!(
        attached["detail"]["xdp"][0]["mode"], "generic",
        "{attached}"
    );
    assert!(link.contains("xdpgeneric"), "the kernel's view: {link}");
}
