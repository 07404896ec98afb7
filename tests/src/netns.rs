//! Network namespaces made by a test, veth pairs between them, commands run inside them: the
//! shared guardian-testbed harness (also the lab's) with the tests' names (`gt-<tag>-<pid>`,
//! veths `gt<subnet>a|b`) and panics instead of errors, so a failing step fails the test.
//!
//! Commands run in a namespace through `nsenter --net=/run/netns/NAME`, never `ip netns exec`
//! (which remounts /sys and hides tracefs, bpffs and the cgroup mounts from the daemon).
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use guardian_testbed::NetNs;
pub use guardian_testbed::Veth;

/// A network namespace `gt-<tag>-<pid>` that is deleted (with every process it spawned) on drop.
#[derive(Debug)]
pub struct Netns(NetNs);

impl Netns {
    /// Creates the namespace and brings its loopback up. `tag` should name the test and role,
    /// e.g. `rtx-a`; the process id (and, for a tag used twice in one process, a counter) is
    /// appended so parallel runs and parallel tests do not collide.
    pub fn new(tag: &str) -> Netns {
        crate::require_root();
        // Once per test process: the namespaces of runs killed before their drops ran (a
        // cancelled CI job), with whatever still runs inside them.
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| {
            for name in guardian_testbed::sweep_orphans("gt-") {
                eprintln!("removed namespace {name}, left by a test run that was killed");
            }
        });
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
        // A leftover of that name is from an earlier process with our pid: it is ours to remove.
        Netns(NetNs::create(&name).unwrap_or_else(|e| panic!("creating netns {name}: {e}")))
    }

    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// The shared harness's guard, for what this facade does not wrap.
    pub fn testbed(&self) -> &NetNs {
        &self.0
    }

    /// `/run/netns/NAME`, the file to `setns` into.
    pub fn path(&self) -> PathBuf {
        self.0.path()
    }

    /// The namespace's inode number, as guardian reports it in `netns` fields
    /// (`stat -L -c %i /run/netns/NAME`).
    pub fn inode(&self) -> u64 {
        self.0.inode().unwrap_or_else(|e| panic!("{e}"))
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        self.0.command(program)
    }

    /// Runs `argv` inside the namespace and returns its output, whatever the exit status.
    pub fn output(&self, argv: &[&str]) -> Output {
        self.0.output(argv).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `argv` inside the namespace; panics with its stderr unless it succeeds. Returns stdout.
    pub fn run(&self, argv: &[&str]) -> String {
        self.0.run(argv).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs a shell script inside the namespace (`sh -c`); panics unless it succeeds.
    pub fn sh(&self, script: &str) -> String {
        self.run(&["sh", "-c", script])
    }

    /// Starts `argv` in the background inside the namespace; it is killed when the namespace
    /// guard drops. Returns its pid.
    pub fn spawn(&self, argv: &[&str]) -> u32 {
        self.0.spawn(argv).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sets a sysctl inside the namespace, e.g. `net.ipv4.tcp_syn_retries`.
    /// Waits up to 10 s until a TCP socket listens on `port` here; panics naming `what`.
    pub fn wait_listening(&self, port: u16, what: &str) {
        let up = crate::poll(Duration::from_secs(10), Duration::from_millis(50), || {
            let out = self.output(&["ss", "-Htln", &format!("sport = :{port}")]);
            (!String::from_utf8_lossy(&out.stdout).trim().is_empty()).then_some(())
        });
        assert!(up.is_some(), "{what} did not listen on {port}");
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        self.0.sysctl(key, value).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `ip link set IFACE up|down` inside the namespace.
    pub fn link_set(&self, iface: &str, up: bool) {
        self.0.link_set(iface, up).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sets `iface` up or down with one ioctl from a thread inside the namespace (no process,
    /// whose start a latency bound would count); the time just before that call.
    pub fn link_set_timed(&self, iface: &str, up: bool) -> SystemTime {
        self.0
            .link_set_timed(iface, up)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Creates a veth pair `gt<subnet>a` (in `a`) ↔ `gt<subnet>b` (in `b`) with addresses
/// 10.77.`subnet`.1/24 and .2/24, brings both ends and loopbacks up and waits until both ends
/// are operationally up. Pick a distinct `subnet` per test so that tests never share a subnet.
pub fn pair(a: &Netns, b: &Netns, subnet: u8) -> Veth {
    guardian_testbed::pair(&a.0, &b.0, "gt", subnet).unwrap_or_else(|e| {
        panic!(
            "veth pair {subnet} between {} and {}: {e}",
            a.name(),
            b.name()
        )
    })
}

/// A new namespace with inode number `inode`, which a namespace deleted a moment ago had: the
/// kernel gives the lowest free number to the next namespace made, as it does when a pod
/// replaces another. Namespaces are made until one gets it; those that got another number are
/// returned too, kept so that each next one takes the next free number. Panics after 40 tries.
pub fn namespace_with_inode(inode: u64, tag: &str) -> (Netns, Vec<Netns>) {
    let mut others = Vec::new();
    for _ in 0..40 {
        let ns = Netns::new(tag);
        if ns.inode() == inode {
            return (ns, others);
        }
        others.push(ns);
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "no new namespace got inode {inode} in 40 tries: {:?}",
        others.iter().map(Netns::inode).collect::<Vec<_>>()
    );
}
