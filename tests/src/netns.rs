//! Network namespaces made by a test, veth pairs between them, commands run inside them.
//!
//! Commands run in a namespace through `nsenter --net=/run/netns/NAME`, never `ip netns exec`
//! (which remounts /sys and hides tracefs, bpffs and the cgroup mounts from the daemon).
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::util::poll;

/// A network namespace `gt-<tag>-<pid>` that is deleted (with every process it spawned) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    children: Mutex<Vec<Child>>,
}

impl Netns {
    /// Creates the namespace and brings its loopback up. `tag` should name the test and role,
    /// e.g. `rtx-a`; the process id (and, for a tag used twice in one process, a counter) is
    /// appended so parallel runs and parallel tests do not collide.
    pub fn new(tag: &str) -> Netns {
        crate::require_root();
        static USED: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let mut name = format!("gt-{tag}-{}", std::process::id());
        {
            let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
            let n = used.iter().filter(|u| **u == name).count();
            used.push(name.clone());
            if n > 0 {
                name = format!("{name}-{n}");
            }
        }
        if PathBuf::from(format!("/run/netns/{name}")).exists() {
            // A leftover from an earlier run of a process with our pid: it is ours to remove.
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
        host_cmd("ip", &["netns", "add", &name]);
        let ns = Netns {
            name,
            children: Mutex::new(Vec::new()),
        };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`, the file to `setns` into.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// The namespace's inode number, as guardian reports it in `netns` fields
    /// (`stat -L -c %i /run/netns/NAME`).
    pub fn inode(&self) -> u64 {
        std::fs::metadata(self.path())
            .unwrap_or_else(|e| panic!("stat {}: {e}", self.path().display()))
            .ino()
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs `argv` inside the namespace and returns its output, whatever the exit status.
    pub fn output(&self, argv: &[&str]) -> Output {
        let (prog, args) = argv.split_first().expect("non-empty argv");
        self.command(prog)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("spawn nsenter {argv:?}: {e}"))
    }

    /// Runs `argv` inside the namespace; panics with its stderr unless it succeeds. Returns stdout.
    pub fn run(&self, argv: &[&str]) -> String {
        let out = self.output(argv);
        assert!(
            out.status.success(),
            "in netns {}: {argv:?} failed ({}): {}{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a shell script inside the namespace (`sh -c`); panics unless it succeeds.
    pub fn sh(&self, script: &str) -> String {
        self.run(&["sh", "-c", script])
    }

    /// Starts `argv` in the background inside the namespace; it is killed when the namespace
    /// guard drops. Returns its pid.
    pub fn spawn(&self, argv: &[&str]) -> u32 {
        let (prog, args) = argv.split_first().expect("non-empty argv");
        let child = self
            .command(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {argv:?} in {}: {e}", self.name));
        let pid = child.id();
        self.children.lock().unwrap().push(child);
        pid
    }

    /// Sets a sysctl inside the namespace, e.g. `net.ipv4.tcp_syn_retries`.
    pub fn sysctl(&self, key: &str, value: &str) {
        self.run(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
    }

    /// `ip link set IFACE up|down` inside the namespace.
    pub fn link_set(&self, iface: &str, up: bool) {
        self.run(&["ip", "link", "set", iface, if up { "up" } else { "down" }]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|e| e.into_inner()));
        for mut child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
        match Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::piped())
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "warning: ip netns del {}: {}",
                self.name,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("warning: ip netns del {}: {e}", self.name),
        }
    }
}

/// A veth pair between two namespaces, both ends addressed in `10.77.<subnet>.0/24` and up.
#[derive(Debug, Clone)]
pub struct Veth {
    /// Interface name in namespace A.
    pub a_if: String,
    /// Interface name in namespace B.
    pub b_if: String,
    /// `10.77.<subnet>.1`, on A's end.
    pub a_addr: Ipv4Addr,
    /// `10.77.<subnet>.2`, on B's end.
    pub b_addr: Ipv4Addr,
    pub prefix_len: u8,
}

/// Creates a veth pair `gt<subnet>a` (in `a`) ↔ `gt<subnet>b` (in `b`) with addresses
/// 10.77.`subnet`.1/24 and .2/24, brings both ends and loopbacks up and waits until both ends
/// are operationally up. Pick a distinct `subnet` per test so that tests never share a subnet.
pub fn pair(a: &Netns, b: &Netns, subnet: u8) -> Veth {
    let v = Veth {
        a_if: format!("gt{subnet}a"),
        b_if: format!("gt{subnet}b"),
        a_addr: Ipv4Addr::new(10, 77, subnet, 1),
        b_addr: Ipv4Addr::new(10, 77, subnet, 2),
        prefix_len: 24,
    };
    assert!(v.a_if.len() <= 15 && v.b_if.len() <= 15);
    // Both ends are created directly inside their namespaces: nothing appears in the host's.
    host_cmd(
        "ip",
        &[
            "link",
            "add",
            &v.a_if,
            "netns",
            a.name(),
            "type",
            "veth",
            "peer",
            "name",
            &v.b_if,
            "netns",
            b.name(),
        ],
    );
    for (ns, ifname, addr) in [(a, &v.a_if, v.a_addr), (b, &v.b_if, v.b_addr)] {
        ns.run(&[
            "ip",
            "addr",
            "add",
            &format!("{addr}/{}", v.prefix_len),
            "dev",
            ifname,
        ]);
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns.run(&["ip", "link", "set", ifname, "up"]);
    }
    for (ns, ifname) in [(a, &v.a_if), (b, &v.b_if)] {
        let up = poll(Duration::from_secs(5), Duration::from_millis(20), || {
            crate::truth::oper_up(ns, ifname).then_some(())
        });
        assert!(up.is_some(), "{ifname} in {} did not come up", ns.name());
    }
    v
}

/// Runs a command in the host's namespace; panics with its stderr unless it succeeds.
fn host_cmd(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
