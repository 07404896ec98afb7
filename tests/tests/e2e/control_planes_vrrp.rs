//! guardian in enforce mode beside two real keepalived (VRRP v3, unicast peers) in two
//! namespaces: a failover and a fail-back move the virtual IP and its `virtual_routes` route
//! (`proto keepalived`), then the master's keepalived stops (SIGTERM); guardian reports each loss
//! of the route with keepalived's VRRP process as its author and the owner `control_plane`,
//! restores nothing and rolls back nothing.
use std::fs::File;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use guardian_tests::truth::route_show;
use guardian_tests::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// A daemon started inside a namespace, stopped with SIGTERM on drop (so it takes back what it
/// installed), killed after 5 s if it has not exited. Drops before the namespaces it runs in.
struct Running {
    what: String,
    child: Child,
}

impl Running {
    fn start(ns: &Netns, argv: &[&str], log: &Path) -> Running {
        let out = File::create(log).expect("log file");
        let child = ns
            .command(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {argv:?}: {e}"));
        Running {
            what: format!("{} in {}", argv[0], ns.name()),
            child,
        }
    }

    /// SIGTERM, then wait (bounded); SIGKILL if it is still there. True when it exited in time.
    fn stop(&mut self) -> bool {
        if let Ok(Some(_)) = self.child.try_wait() {
            return true;
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} ignored SIGTERM for 5 s: killed", self.what);
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// No remedy changed anything (so none had to be rolled back).
fn nothing_changed(events: &[Value]) {
    let acted: Vec<&Value> = events
        .iter()
        .filter(|e| {
            is_type(e, "remedy")
                && matches!(
                    str_field(e, "result"),
                    Some("applied" | "verified" | "failed" | "rolled_back")
                )
        })
        .collect();
    assert!(acted.is_empty(), "guardian changed something: {acted:?}");
}

/// One keepalived's configuration: the instance, its peer, the VIP and the virtual route; its
/// priority drops by 100 while `track` holds 1.
fn config(
    iface: &str,
    prio: u8,
    me: &str,
    peer: &str,
    vip: &str,
    route: &str,
    track: &Path,
) -> String {
    format!(
        "global_defs {{ router_id gt_{prio} }}\n\
         track_file prio_down {{ file \"{}\" }}\n\
         vrrp_instance VI_66 {{\n  state {}\n  interface {iface}\n  virtual_router_id 66\n  \
         priority {prio}\n  version 3\n  advert_int 0.5\n  unicast_src_ip {me}\n  \
         unicast_peer {{ {peer} }}\n  track_file {{ prio_down weight -100 }}\n  \
         virtual_ipaddress {{ {vip}/24 dev {iface} }}\n  virtual_routes {{ {route} }}\n}}\n",
        track.display(),
        if prio > 100 { "MASTER" } else { "BACKUP" },
    )
}

fn has_vip(ns: &Netns, vip: &str) -> bool {
    let out = ns.run(&["ip", "-j", "-4", "addr", "show"]);
    let v: Value = serde_json::from_str(&out).expect("ip -j addr");
    v.as_array().into_iter().flatten().any(|l| {
        l["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["local"] == vip)
    })
}

/// Waits (bounded) until the VIP and the virtual route are on `on` and on neither `off`.
fn wait_holder(on: &Netns, off: &Netns, vip: &str, prefix: &str) -> Duration {
    let t = Instant::now();
    let held = poll(Duration::from_secs(10), Duration::from_millis(20), || {
        (has_vip(on, vip)
            && !has_vip(off, vip)
            && route_show(on, prefix).contains("proto keepalived")
            && route_show(off, prefix).is_empty())
        .then_some(())
    });
    assert!(
        held.is_some(),
        "VIP {vip} and {prefix} never settled on {}: {} has {:?}, {} has {:?}",
        on.name(),
        on.name(),
        route_show(on, prefix),
        off.name(),
        route_show(off, prefix)
    );
    t.elapsed()
}

#[test]
fn keepalived_fails_over_and_back_and_guardian_leaves_it_to_keepalived() {
    require_root();
    let a = Netns::new("vrrp-a");
    let b = Netns::new("vrrp-b");
    let v = pair(&a, &b, 66);
    let dir = TempDir::new("vrrp");
    let (vip, prefix) = ("10.77.66.100", "10.254.66.0/24");
    let route = |iface: &str| format!("{prefix} via 10.77.66.254 dev {iface}");
    let (track_a, track_b) = (dir.path().join("a.track"), dir.path().join("b.track"));
    std::fs::write(&track_a, "0\n").unwrap();
    std::fs::write(&track_b, "0\n").unwrap();
    let (ip_a, ip_b) = (v.a_addr.to_string(), v.b_addr.to_string());
    let conf_a = config(&v.a_if, 150, &ip_a, &ip_b, vip, &route(&v.a_if), &track_a);
    let conf_b = config(&v.b_if, 100, &ip_b, &ip_a, vip, &route(&v.b_if), &track_b);
    let mut keepalived = Vec::new();
    for (ns, name, conf) in [(&b, "b", conf_b), (&a, "a", conf_a)] {
        let p = |ext: &str| dir.path().join(format!("{name}.{ext}"));
        std::fs::write(p("conf"), conf).unwrap();
        let (c, pid, vpid) = (p("conf"), p("pid"), p("vrrp.pid"));
        let argv = [
            "keepalived",
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--vrrp",
            "--use-file",
            c.to_str().unwrap(),
            "--pid",
            pid.to_str().unwrap(),
            "--vrrp_pid",
            vpid.to_str().unwrap(),
        ];
        keepalived.push(Running::start(ns, &argv, &p("log")));
    }
    let took = wait_holder(&a, &b, vip, prefix);
    eprintln!("a is master after {took:?}: {}", route_show(&a, prefix));

    let (mut d, _sock) = {
        let sock = dir.path().join("guardian.sock");
        let state = dir.path().join("state");
        let (s, st) = (sock.to_str().unwrap(), state.to_str().unwrap());
        let mut d = Daemon::start(&a, &["--mode", "enforce", "--state-dir", st, "--socket", s]);
        d.wait_attached();
        (d, sock)
    };
    let n = d.count();

    // Failover: a's priority drops to 50, b (100, preempting) takes the VIP and the route.
    std::fs::write(&track_a, "1\n").unwrap();
    let took = wait_holder(&b, &a, vip, prefix);
    eprintln!("failover to b took {took:?}");
    let (_, lost) = d.wait_for_after(
        n,
        |e| is_fault(e, "route_lost", "opened"),
        Duration::from_secs(10),
    );
    eprintln!("keepalived withdrew: {lost}");
    let ev = &lost["evidence"];
    assert_eq!(ev["protocol"], "keepalived", "{lost}");
    assert_eq!(ev["owner"], "control_plane", "{lost}");
    assert_eq!(ev["by"]["comm"], "keepalived", "{lost}");
    assert_eq!(str_field(&lost, "severity"), Some("info"), "{lost}");
    let (_, skipped) = d.wait_for_after(
        n,
        |e| is_remedy(e, "route_restore", "skipped"),
        Duration::from_secs(5),
    );
    eprintln!("guardian: {skipped}");
    assert!(
        str_field(&skipped, "reason").is_some_and(|r| r.contains("control plane")),
        "{skipped}"
    );
    // keepalived's intended state holds on a: no VIP, no route (guardian put nothing back).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        route_show(&a, prefix),
        "",
        "guardian put keepalived's route back"
    );
    assert!(!has_vip(&a, vip) && has_vip(&b, vip));

    // Fail-back: a's priority is 150 again; it preempts b.
    std::fs::write(&track_a, "0\n").unwrap();
    let took = wait_holder(&a, &b, vip, prefix);
    eprintln!("fail-back to a took {took:?}");
    let (_, back) = d.wait_for_after(
        n,
        |e| is_fault(e, "route_lost", "cleared"),
        Duration::from_secs(10),
    );
    eprintln!("keepalived re-added: {back}");
    assert_eq!(back["evidence"]["by"]["comm"], "keepalived", "{back}");

    // a's keepalived stops (SIGTERM): its VRRP process sends priority 0, removes its route and
    // VIP and exits, perhaps before guardian looks: the loss still names that process.
    let vrrp_pid: u64 = std::fs::read_to_string(dir.path().join("a.vrrp.pid"))
        .expect("a's vrrp pid file")
        .trim()
        .parse()
        .expect("a pid");
    let n = d.count();
    assert!(
        keepalived[1].stop(),
        "a's keepalived did not stop on SIGTERM"
    );
    let took = wait_holder(&b, &a, vip, prefix);
    eprintln!("failover to b after SIGTERM took {took:?}");
    let (_, gone) = d.wait_for_after(
        n,
        |e| is_fault(e, "route_lost", "opened"),
        Duration::from_secs(10),
    );
    eprintln!("keepalived stopped: {gone}");
    let by = &gone["evidence"]["by"];
    assert_eq!(by["pid"].as_u64(), Some(vrrp_pid), "{gone}");
    assert!(by["comm"] == "keepalived" || by["exited"] == true, "{gone}");
    assert_eq!(gone["evidence"]["owner"], "control_plane", "{gone}");
    d.wait_for_after(
        n,
        |e| is_remedy(e, "route_restore", "skipped"),
        Duration::from_secs(5),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        route_show(&a, prefix),
        "",
        "guardian put keepalived's route back"
    );

    let events = d.finish();
    for k in &mut keepalived {
        assert!(k.stop(), "{} did not stop on SIGTERM", k.what);
    }
    nothing_changed(&events);
    assert!(
        !events
            .iter()
            .any(|e| is_fault(e, "route_lost", "opened")
                && e["evidence"]["owner"] != "control_plane"),
        "a loss not attributed to the control plane"
    );
    validate_values(&events);
}
