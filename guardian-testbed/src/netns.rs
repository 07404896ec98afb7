//! A named network namespace guard ([`NetNs`]): deleted, with every process spawned in it, on
//! drop; commands and threads run inside it.
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;

use nix::sched::{setns, CloneFlags};

use crate::{host_ip, link_line_oper_up, run_cmd, Error, Result};

/// Where `ip netns add` puts named namespaces.
const RUN_NETNS: &str = "/run/netns";

/// A named network namespace, deleted (with the processes it spawned) when dropped.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    children: Mutex<Vec<Child>>,
}

impl NetNs {
    /// Creates the namespace `name` (replacing a leftover of that name: the caller's naming
    /// scheme makes it the caller's) and brings its loopback up.
    pub fn create(name: &str) -> Result<NetNs> {
        if PathBuf::from(format!("{RUN_NETNS}/{name}")).exists() {
            let _ = host_ip(&["netns", "del", name]);
        }
        host_ip(&["netns", "add", name])?;
        let ns = NetNs {
            name: name.to_string(),
            children: Mutex::new(Vec::new()),
        };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`, the file to `setns` into.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("{RUN_NETNS}/{}", self.name))
    }

    /// The namespace's inode number (`stat -L -c %i /run/netns/NAME`).
    pub fn inode(&self) -> Result<u64> {
        std::fs::metadata(self.path())
            .map(|m| m.ino())
            .map_err(|source| Error::Io {
                what: format!("stat {}", self.path().display()),
                source,
            })
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        c
    }

    fn argv_command<'a>(&self, argv: &'a [&'a str]) -> Result<(Command, &'a [&'a str])> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| Error::Other("empty command".into()))?;
        Ok((self.command(prog), args))
    }

    /// Runs `argv` inside the namespace; its output, whatever the exit status.
    pub fn output(&self, argv: &[&str]) -> Result<Output> {
        let (mut c, args) = self.argv_command(argv)?;
        c.args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn {
                cmd: format!("nsenter {argv:?}"),
                source,
            })
    }

    /// Runs `argv` inside the namespace; its stdout, or an error with its stderr.
    pub fn run(&self, argv: &[&str]) -> Result<String> {
        let (mut c, args) = self.argv_command(argv)?;
        c.args(args);
        run_cmd(c, format!("{} (in netns {})", argv.join(" "), self.name))
    }

    /// Starts `argv` in the background inside the namespace (no stdio); it is killed when the
    /// guard drops. Returns its pid.
    pub fn spawn(&self, argv: &[&str]) -> Result<u32> {
        let (mut c, args) = self.argv_command(argv)?;
        let child = c
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| Error::Spawn {
                cmd: format!("{} (in netns {})", argv.join(" "), self.name),
                source,
            })?;
        let pid = child.id();
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        Ok(pid)
    }

    /// Sets a sysctl inside the namespace, e.g. `net.ipv4.tcp_syn_retries`.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.run(&["sysctl", "-q", "-w", &format!("{key}={value}")])
            .map(drop)
    }

    /// `ip link set IFACE up|down` inside the namespace.
    pub fn link_set(&self, iface: &str, up: bool) -> Result<()> {
        self.run(&["ip", "link", "set", iface, if up { "up" } else { "down" }])
            .map(drop)
    }

    /// Whether `iface` is operationally up (`/sys` is the host's under nsenter, so ask `ip`).
    pub fn oper_up(&self, iface: &str) -> bool {
        self.run(&["ip", "-o", "link", "show", "dev", iface])
            .is_ok_and(|s| link_line_oper_up(&s))
    }

    /// `ip -o route show table main`, for comparing an end state with the start.
    pub fn routes(&self) -> Result<String> {
        self.run(&["ip", "-o", "route", "show", "table", "main"])
    }

    /// A handle that lets another thread join this namespace ([`Entry::enter`]).
    pub fn entry(&self) -> Result<Entry> {
        let file = File::open(self.path()).map_err(|source| Error::Io {
            what: format!("opening {}", self.path().display()),
            source,
        })?;
        Ok(Entry {
            file,
            ns: self.name.clone(),
        })
    }

    /// Starts `f` on a thread named `thread_name` that joins this namespace first (sockets it
    /// opens, and threads it spawns, live there); `f` does not run if joining fails.
    pub fn spawn_within<T: Send + 'static>(
        &self,
        thread_name: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<JoinHandle<Result<T>>> {
        let entry = self.entry()?;
        std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || {
                entry.enter()?;
                Ok(f())
            })
            .map_err(|source| Error::Io {
                what: "spawning a thread".into(),
                source,
            })
    }

    /// Runs `f` on a thread inside this namespace and waits for it.
    pub fn within<T: Send + 'static>(
        &self,
        thread_name: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        self.spawn_within(thread_name, f)?
            .join()
            .map_err(|_| Error::Other(format!("a thread in {} panicked", self.name)))?
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|e| e.into_inner()));
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = host_ip(&["netns", "del", &self.name]) {
            eprintln!("warning: removing namespace {}: {e}", self.name);
        }
    }
}

/// An open namespace file, to join from another thread.
#[derive(Debug)]
pub struct Entry {
    file: File,
    ns: String,
}

impl Entry {
    /// Moves the calling thread into the namespace (`setns(CLONE_NEWNET)`).
    pub fn enter(self) -> Result<()> {
        setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|source| Error::Setns {
            ns: self.ns,
            source,
        })
    }
}

/// The named namespaces whose names start with `prefix`.
pub fn existing(prefix: &str) -> Vec<String> {
    std::fs::read_dir(RUN_NETNS)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes every named namespace whose name starts with `prefix` (leftovers of a killed run);
/// returns the names it deleted.
pub fn sweep(prefix: &str) -> Vec<String> {
    existing(prefix)
        .into_iter()
        .filter(|name| host_ip(&["netns", "del", name]).is_ok())
        .collect()
}

/// Whether a namespace named by a run of process ids (`gt-<tag>-<pid>[-<n>]`) is an orphan:
/// no number in its name is a live process, so the run that made it is gone without its
/// drop (killed: a CI job cancelled, a session's end). A live run always has its own pid in
/// the name, so its namespaces are never taken; a tag with digits only makes an orphan look
/// alive (kept), never the reverse.
pub fn is_orphan(name: &str, alive: impl Fn(u32) -> bool) -> bool {
    let mut numbers = name
        .split('-')
        .filter_map(|p| p.parse::<u32>().ok())
        .peekable();
    numbers.peek().is_some() && !numbers.any(alive)
}

/// Deletes the orphans (see [`is_orphan`]) among the named namespaces that start with
/// `prefix`, after killing what still runs inside them; returns their names.
pub fn sweep_orphans(prefix: &str) -> Vec<String> {
    let alive = |pid: u32| PathBuf::from(format!("/proc/{pid}")).exists();
    existing(prefix)
        .into_iter()
        .filter(|name| is_orphan(name, alive))
        .filter(|name| kill_and_delete(name))
        .collect()
}

/// SIGKILLs the processes in namespace `name` (`ip netns pids`), then deletes it; whether the
/// delete succeeded.
fn kill_and_delete(name: &str) -> bool {
    use nix::sys::signal::{kill, Signal};
    let pids = host_ip(&["netns", "pids", name]).unwrap_or_default();
    for pid in pids.split_whitespace().filter_map(|p| p.parse().ok()) {
        let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    host_ip(&["netns", "del", name]).is_ok()
}

#[cfg(test)]
mod orphan_tests {
    use super::is_orphan;

    #[test]
    fn only_names_whose_numbers_are_all_dead_processes_are_orphans() {
        let alive = |pid: u32| pid == 4242 || pid == 1;
        assert!(is_orphan("gt-mt-s-16547", alive));
        assert!(is_orphan("gt-h2-s-16547-2", alive));
        // The live run's own namespaces, with or without a counter.
        assert!(!is_orphan("gt-mt-s-4242", alive));
        assert!(!is_orphan("gt-mt-s-4242-3", alive));
        // A counter or a tag digit that happens to be a live pid keeps it: kept, not taken.
        assert!(!is_orphan("gt-x-16547-1", alive));
        // No number at all: not a name of this scheme.
        assert!(!is_orphan("gt-lab", alive));
    }
}
