//! guardian in enforce mode beside a real DHCP client (ISC dhclient and Debian's
//! dhclient-script, in mount and UTS namespaces of their own so the host's /etc/resolv.conf
//! stays byte-identical and its hostname untouched) served by a real dnsmasq: a lease change to
//! a new gateway. dhclient-script never runs `ip route del`: the old default route goes with the
//! old address (`ip addr flush` on release), which the kernel removes without any RTM_DELROUTE:
//! guardian learns it from the address removal and names the process that removed it.
//! After `guardian baseline accept default`, a link bounce brings back dhclient's new gateway,
//! not the old one.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use guardian_tests::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// Runs dhclient with /etc overlaid by a tmpfs (its resolv.conf, hooks' files) in the private
/// mount namespace that `unshare --mount --uts` made (the UTS one keeps dhclient-script's
/// `hostname` away from the host's): `$1` is the tmpfs mount point.
const ISOLATED_DHCLIENT: &str = "set -e\nM=$1; shift\nmount -t tmpfs gt-dhclient \"$M\"\n\
    mkdir \"$M/upper\" \"$M/work\"\n\
    mount -t overlay gt-dhclient-etc -o \"lowerdir=/etc,upperdir=$M/upper,workdir=$M/work\" /etc\n\
    exec dhclient \"$@\"\n";

/// A daemon started inside a namespace, stopped with SIGTERM on drop, killed after 5 s if it
/// has not exited.
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

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait (bounded); SIGKILL if it is still there.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} ignored SIGTERM for 5 s: killed", self.what);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server's addresses: gateway A (the first lease's router, dnsmasq's own) and gateway B.
const GW_A: &str = "10.77.67.1";
const GW_B: &str = "10.77.67.3";

/// The scene: a DHCP server namespace and a client namespace. Fields drop in order: the
/// daemons stop before their namespaces are deleted.
struct Scene {
    dhclient: Option<Running>,
    dnsmasq: Option<Running>,
    dir: TempDir,
    iface: String,
    srv_if: String,
    cli: Netns,
    srv: Netns,
}

impl Scene {
    fn new() -> Scene {
        let srv = Netns::new("dhcp-s");
        let cli = Netns::new("dhcp-c");
        let v = pair(&srv, &cli, 67);
        cli.run(&["ip", "addr", "flush", "dev", &v.b_if]);
        srv.run(&["ip", "addr", "add", &format!("{GW_B}/24"), "dev", &v.a_if]);
        let dir = TempDir::new("dhcp");
        std::fs::write(dir.path().join("isolated-dhclient.sh"), ISOLATED_DHCLIENT).unwrap();
        let mut s = Scene {
            dhclient: None,
            dnsmasq: None,
            dir,
            iface: v.b_if.clone(),
            srv_if: v.a_if.clone(),
            cli,
            srv,
        };
        s.serve("50", "59", GW_A);
        s
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// (Re)starts dnsmasq as the only DHCP server: addresses .LO-.HI, this router, itself as
    /// the DNS server (so dhclient-script writes a resolv.conf).
    fn serve(&mut self, lo: &str, hi: &str, router: &str) {
        if let Some(mut old) = self.dnsmasq.take() {
            old.stop();
        }
        let p = |n: &str| self.path(n).to_str().unwrap().to_string();
        let args = [
            "dnsmasq".to_string(),
            "--keep-in-foreground".into(),
            "--conf-file=/dev/null".into(),
            "--port=0".into(),
            format!("--interface={}", self.srv_if),
            "--bind-interfaces".into(),
            "--dhcp-authoritative".into(),
            format!("--dhcp-range=10.77.67.{lo},10.77.67.{hi},255.255.255.0,120"),
            format!("--dhcp-option=3,{router}"),
            format!("--dhcp-option=6,{GW_A}"),
            format!("--dhcp-leasefile={}", p(&format!("dnsmasq-{lo}.leases"))),
            format!("--pid-file={}", p("dnsmasq.pid")),
            "--log-dhcp".into(),
            "--log-facility=-".into(),
        ];
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.path(&format!("dnsmasq-{lo}.log"));
        self.dnsmasq = Some(Running::start(&self.srv, &argv, &log));
    }

    /// dhclient's argv (in its own mount namespace, tmpfs at `mnt`) with `extra` options.
    fn dhclient_argv(&self, mnt: &str, extra: &[&str]) -> Vec<String> {
        let m = self.path(mnt);
        std::fs::create_dir_all(&m).unwrap();
        let mut a: Vec<String> = [
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "sh",
        ]
        .map(String::from)
        .to_vec();
        a.push(self.path("isolated-dhclient.sh").display().to_string());
        a.push(m.display().to_string());
        a.extend(extra.iter().map(|s| s.to_string()));
        for (opt, file) in [("-lf", "dhclient.leases"), ("-pf", "dhclient.pid")] {
            a.push(opt.into());
            a.push(self.path(file).display().to_string());
        }
        a.push(self.iface.clone());
        a
    }

    /// Starts dhclient in the foreground and waits (bounded) for its default route via `gw`.
    fn lease(&mut self, mnt: &str, gw: &str) {
        let args = self.dhclient_argv(mnt, &["-d", "-v"]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.path(&format!("dhclient-{mnt}.log"));
        self.dhclient = Some(Running::start(&self.cli, &argv, &log));
        let want = format!("default via {gw} dev {}", self.iface);
        let got = poll(Duration::from_secs(15), Duration::from_millis(50), || {
            let r = self.cli.run(&["ip", "-4", "route", "show", "default"]);
            (r.trim() == want).then_some(())
        });
        if got.is_none() {
            let l = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("no `{want}` from dhclient:\n{l}");
        }
    }

    /// `dhclient -r`: the running dhclient is stopped, dhclient-script runs RELEASE (`ip addr
    /// flush`, which takes the default route with it), DHCPRELEASE is sent.
    fn release(&mut self) {
        let args = self.dhclient_argv("release", &["-r", "-v"]);
        let mut argv: Vec<&str> = vec!["timeout", "10"];
        argv.extend(args.iter().map(String::as_str));
        let out = self.cli.output(&argv);
        assert!(out.status.success(), "dhclient -r: {out:?}");
        if let Some(mut d) = self.dhclient.take() {
            d.stop();
        }
    }

    fn default_routes(&self) -> String {
        self.cli.run(&["ip", "-4", "route", "show", "default"])
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

fn enforcing(s: &Scene) -> Daemon {
    let (sock, state) = (s.path("guardian.sock"), s.path("state"));
    let (so, st) = (sock.to_str().unwrap(), state.to_str().unwrap());
    let mut d = Daemon::start(
        &s.cli,
        &["--mode", "enforce", "--state-dir", st, "--socket", so],
    );
    d.wait_attached();
    d
}

/// The first lease (router A), guardian started, then the lease change to router B.
fn lease_change(s: &mut Scene) -> Daemon {
    s.lease("first", GW_A);
    // dhclient-script wrote its resolv.conf inside its own mount namespace only.
    let pid = s.dhclient.as_ref().unwrap().pid();
    let theirs = format!("/proc/{pid}/root/etc/resolv.conf");
    let want = format!("nameserver {GW_A}");
    let wrote = poll(Duration::from_secs(5), Duration::from_millis(20), || {
        let r = std::fs::read_to_string(&theirs).unwrap_or_default();
        r.contains(&want).then_some(())
    });
    assert!(
        wrote.is_some(),
        "dhclient-script wrote no `{want}` in its /etc/resolv.conf"
    );
    let mut d = enforcing(s);
    s.serve("60", "69", GW_B);
    s.release();
    s.lease("second", GW_B);
    d.count();
    d
}

#[test]
fn a_dhcp_lease_change_to_a_new_gateway_is_left_to_dhclient() {
    require_root();
    let host_resolv = std::fs::read("/etc/resolv.conf").ok();
    let mut s = Scene::new();
    let mut d = lease_change(&mut s);
    // dhclient's intended state holds: only the new gateway, and it stays so.
    std::thread::sleep(Duration::from_millis(500));
    let routes = s.default_routes();
    assert_eq!(
        routes.trim(),
        format!("default via {GW_B} dev {}", s.iface),
        "after the lease change"
    );
    let before_accept = d.count();
    let events = d.events();
    for e in events.iter().filter(|e| e["fault"] == "route_lost") {
        eprintln!("guardian said: {e}");
    }
    nothing_changed(&events);
    validate_values(&events);

    // The documented path after a lease change: accept the new default route. A link bounce
    // then brings back dhclient's gateway B (the kernel flushed it), never the stale A.
    let out = std::process::Command::new(guardian_bin())
        .args(["baseline", "accept", "default", "--socket"])
        .arg(s.path("guardian.sock"))
        .output()
        .expect("guardian baseline accept");
    assert!(out.status.success(), "{out:?}");
    eprintln!("accept: {}", String::from_utf8_lossy(&out.stdout).trim());
    s.cli.link_set(&s.iface, false);
    s.cli.link_set(&s.iface, true);
    let (_, healed) = d.wait_for_after(
        before_accept,
        |e| is_remedy(e, "route_restore", "verified"),
        Duration::from_secs(10),
    );
    eprintln!("after a link bounce: {healed}");
    let healed_route = healed["change"]["after"]["route"].as_str().unwrap_or("");
    assert!(healed_route.contains(&format!("via {GW_B} ")), "{healed}");
    let routes = s.default_routes();
    assert_eq!(routes.trim(), format!("default via {GW_B} dev {}", s.iface));
    let events = d.finish();
    assert!(
        !events
            .iter()
            .any(|e| matches!(str_field(e, "result"), Some("failed" | "rolled_back"))),
        "a remedy failed or was rolled back"
    );
    validate_values(&events);
    s.dhclient.take();
    assert_eq!(
        std::fs::read("/etc/resolv.conf").ok(),
        host_resolv,
        "the host's /etc/resolv.conf changed"
    );
}

/// A link bounce after the lease change: the kernel flushes dhclient's route via B, and
/// guardian must not put back the stale gateway A it saw at start (its baseline). The kernel
/// removed A's route with the released address without any RTM_DELROUTE; guardian learns it
/// from the address removal (RTM_DELADDR), reports A's loss as deleted by the process that
/// removed the address (a warning, not restored), and a later link bounce does not turn it
/// back into a fault to heal (docs/remedies.md, "DHCP").
#[test]
fn a_link_bounce_after_a_lease_change_does_not_bring_back_the_old_gateway() {
    require_root();
    let mut s = Scene::new();
    let mut d = lease_change(&mut s);
    let (_, lost) = d.wait_for_after(
        0,
        |e| e["fault"] == "route_lost" && e["state"] == "opened",
        Duration::from_secs(5),
    );
    eprintln!("guardian said: {lost}");
    let ev = &lost["evidence"];
    assert_eq!(lost["severity"], "warning", "{lost}");
    assert_eq!(ev["route"]["gateway"], GW_A, "not the old gateway: {lost}");
    let by = ev["by_text"].as_str().unwrap_or("");
    assert!(
        by.contains("which removed address 10.77.67.5"),
        "the loss is not attributed to the address removal: {lost}"
    );
    let n = d.count();
    s.cli.link_set(&s.iface, false);
    s.cli.link_set(&s.iface, true);
    let restored = d.try_wait_for_after(
        n,
        |e| is_remedy(e, "route_restore", "verified"),
        Duration::from_secs(3),
    );
    let routes = s.default_routes();
    assert!(
        restored.is_none(),
        "guardian restored: {restored:?}; now {routes}"
    );
    assert!(
        !routes.contains(GW_A),
        "the stale gateway is back: {routes}"
    );
    let events = d.finish();
    nothing_changed(&events);
}
