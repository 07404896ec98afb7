//! The lab's network namespaces (`glab-<tag>`) and veth pairs between them, removed when their
//! guards drop (and swept at the start of every lab run, in case a killed lab left some).
//!
//! Built with `ip` and fixed argument vectors rather than rtnetlink: creating a *named*
//! namespace (the bind mount under /run/netns that `nsenter --net=` needs) is what `ip netns
//! add` does, and rtnetlink offers it only by forking inside an async runtime. Commands run
//! inside a namespace through `nsenter --net=/run/netns/NAME` (never `ip netns exec`, which
//! remounts /sys and hides bpffs and tracefs from the daemon).
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

/// Every namespace the lab creates starts with this.
pub const PREFIX: &str = "glab-";

#[derive(Debug, thiserror::Error)]
pub enum TopoError {
    #[error("running {cmd}: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{cmd} failed: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error("joining namespace {ns}: {source}")]
    Setns {
        ns: String,
        #[source]
        source: nix::Error,
    },
    #[error("{0}")]
    Other(String),
}

fn run_cmd(mut c: Command, what: String) -> Result<String, TopoError> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|source| TopoError::Spawn {
            cmd: what.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(TopoError::Failed {
            cmd: what,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs `ip ARGS` in the lab's own namespace.
fn host_ip(args: &[&str]) -> Result<String, TopoError> {
    let mut c = Command::new("ip");
    c.args(args);
    run_cmd(c, format!("ip {}", args.join(" ")))
}

/// Deletes every `glab-*` namespace (leftovers of a lab that was killed); returns their names.
pub fn sweep_stale() -> Vec<String> {
    let mut gone = Vec::new();
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return gone;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(PREFIX) && host_ip(&["netns", "del", &name]).is_ok() {
            gone.push(name);
        }
    }
    gone
}

/// The `glab-*` namespaces that exist now.
pub fn existing() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(PREFIX))
                .collect()
        })
        .unwrap_or_default()
}

/// A network namespace `glab-<tag>`, deleted (with the processes it spawned) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    children: Mutex<Vec<Child>>,
}

impl Netns {
    /// Creates `glab-<tag>` (replacing a leftover of that name) with its loopback up.
    pub fn new(tag: &str) -> Result<Netns, TopoError> {
        let name = format!("{PREFIX}{tag}");
        if PathBuf::from(format!("/run/netns/{name}")).exists() {
            let _ = host_ip(&["netns", "del", &name]);
        }
        host_ip(&["netns", "add", &name])?;
        let ns = Netns {
            name,
            children: Mutex::new(Vec::new()),
        };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs `argv` inside the namespace; its stdout, or an error with its stderr.
    pub fn run(&self, argv: &[&str]) -> Result<String, TopoError> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| TopoError::Other("empty command".into()))?;
        let mut c = self.command(prog);
        c.args(args);
        run_cmd(c, format!("{} (in {})", argv.join(" "), self.name))
    }

    /// Starts `argv` in the background inside the namespace; killed when the guard drops.
    pub fn spawn(&self, argv: &[&str]) -> Result<(), TopoError> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| TopoError::Other("empty command".into()))?;
        let child = self
            .command(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| TopoError::Spawn {
                cmd: argv.join(" "),
                source,
            })?;
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        Ok(())
    }

    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), TopoError> {
        self.run(&["sysctl", "-q", "-w", &format!("{key}={value}")])
            .map(drop)
    }

    pub fn link_set(&self, iface: &str, up: bool) -> Result<(), TopoError> {
        self.run(&["ip", "link", "set", iface, if up { "up" } else { "down" }])
            .map(drop)
    }

    /// Runs `f` on a thread that has joined this namespace (sockets it opens live there) and
    /// waits for it.
    pub fn within<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, TopoError> {
        self.spawn_within(f)?
            .join()
            .map_err(|_| TopoError::Other(format!("a thread in {} panicked", self.name)))?
    }

    /// Starts `f` on a thread that joins this namespace first (and does not run `f` if it
    /// cannot).
    pub fn spawn_within<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<Result<T, TopoError>>, TopoError> {
        let file = File::open(self.path())
            .map_err(|e| TopoError::Other(format!("opening {}: {e}", self.path().display())))?;
        let ns = self.name.clone();
        std::thread::Builder::new()
            .name("glab".into())
            .spawn(move || {
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|source| TopoError::Setns { ns, source })?;
                drop(file);
                Ok(f())
            })
            .map_err(|e| TopoError::Other(format!("spawning a thread: {e}")))
    }

    /// Whether `iface` is operationally up (`/sys` is the host's under nsenter, so ask `ip`).
    pub fn oper_up(&self, iface: &str) -> bool {
        self.run(&["ip", "-o", "link", "show", "dev", iface])
            .is_ok_and(|s| s.contains("state UP") || s.contains(",LOWER_UP"))
    }

    /// `ip -o route show table main`, for comparing the end state with the start.
    pub fn routes(&self) -> Result<String, TopoError> {
        self.run(&["ip", "-o", "route", "show", "table", "main"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|e| e.into_inner()));
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = host_ip(&["netns", "del", &self.name]) {
            tracing::warn!("removing namespace {}: {e}", self.name);
        }
    }
}

/// A veth pair between two namespaces: `glab<subnet>a` (10.77.`subnet`.1/24) in A and
/// `glab<subnet>b` (.2) in B, both up.
#[derive(Debug, Clone)]
pub struct Veth {
    pub a_if: String,
    pub b_if: String,
    pub a_addr: Ipv4Addr,
    pub b_addr: Ipv4Addr,
}

pub fn pair(a: &Netns, b: &Netns, subnet: u8) -> Result<Veth, TopoError> {
    let v = Veth {
        a_if: format!("glab{subnet}a"),
        b_if: format!("glab{subnet}b"),
        a_addr: Ipv4Addr::new(10, 77, subnet, 1),
        b_addr: Ipv4Addr::new(10, 77, subnet, 2),
    };
    host_ip(&[
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
    ])?;
    for (ns, ifname, addr) in [(a, &v.a_if, v.a_addr), (b, &v.b_if, v.b_addr)] {
        ns.run(&["ip", "addr", "add", &format!("{addr}/24"), "dev", ifname])?;
        ns.link_set(ifname, true)?;
    }
    for (ns, ifname) in [(a, &v.a_if), (b, &v.b_if)] {
        if !wait(Duration::from_secs(5), || ns.oper_up(ifname)) {
            return Err(TopoError::Other(format!(
                "{ifname} in {} did not come up",
                ns.name()
            )));
        }
    }
    Ok(v)
}

/// Polls `cond` every 10 ms until it holds (true) or `timeout` passes (false).
pub fn wait(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
