//! `syn_flood`: a listener with a backlog of 8 in a namespace with `tcp_syncookies = 0`, and a
//! bounded hping3 SYN stream (200/s) from A whose RSTs are dropped (nftables) so half-open
//! requests stay queued: the SYN queue fills and drops (`TCPReqQFullDrop`). guardian (in the
//! listener's namespace, XDP on its veth) turns cookies on (`sysctl`, verified once the drops
//! stop). Ends with cookies on in that namespace only (the change is permanent) and a client
//! connecting.
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, SystemTime};

use super::common::idle_listener;
use super::{ensure, Scenario, Spec};
use crate::daemon::DaemonPlan;
use crate::topology::{pair, wait, Netns, Veth};
use crate::LabError;

/// The trigger (SYNs per second to the port) and the flood's rate.
const LIMIT: f64 = 50.0;
const RATE: f64 = 200.0;
const PORT: u16 = 5188;
const COOKIES: &str = "/proc/sys/net/ipv4/tcp_syncookies";

pub const SPEC: Spec = Spec {
    fault: "syn_flood",
    remedy: Some("sysctl"),
    about: "hping3 -S at 200 SYN/s to a backlog-8 listener without syncookies; healed by sysctl (tcp_syncookies = 1)",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(10),
    clear_timeout: Duration::from_secs(8),
    build,
};

struct SynFlood {
    a: Netns,
    b: Netns,
    v: Veth,
    _listener: TcpListener,
    host_cookies: String,
    hping: Option<Child>,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let a = Netns::new("sf-a")?;
    let b = Netns::new("sf-b")?;
    let v = pair(&a, &b, 188)?;
    b.sysctl("net.ipv4.tcp_syncookies", "0")?;
    // A has no socket for B's SYN-ACKs and would answer with RSTs, freeing B's queue.
    a.run(&["nft", "add", "table", "inet", "glab_syn"])?;
    a.run(&[
        "nft",
        "add",
        "chain",
        "inet",
        "glab_syn",
        "out",
        "{ type filter hook output priority 0; policy accept; }",
    ])?;
    a.run(&[
        "nft", "add", "rule", "inet", "glab_syn", "out", "tcp", "flags", "&", "rst", "==", "rst",
        "drop",
    ])?;
    let listener = idle_listener(&b, SocketAddr::from((v.b_addr, PORT)), 8)?;
    let host_cookies = std::fs::read_to_string(COOKIES)
        .map_err(|e| LabError::Other(format!("reading {COOKIES}: {e}")))?;
    Ok(Box::new(SynFlood {
        a,
        b,
        v,
        _listener: listener,
        host_cookies,
        hping: None,
    }))
}

impl SynFlood {
    /// SIGTERM to `timeout` (it passes the signal on to hping3), SIGKILL after 3 s.
    fn end_flood(&mut self) {
        let Some(mut c) = self.hping.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if !wait(Duration::from_secs(3), || {
            matches!(c.try_wait(), Ok(Some(_)))
        }) {
            let _ = c.kill();
        }
        let _ = c.wait();
    }
}

impl Scenario for SynFlood {
    fn daemon_ns(&self) -> &Netns {
        &self.b
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(format!(
                "[detect.syn_flood]\nsyn_per_sec = {LIMIT:.1}\nwindow_ms = 1000\nclear_after_ms = 1000\n"
            )),
            args: vec![
                "--interval-ms".into(), "250".into(),
                "--xdp".into(), self.v.b_if.clone(),
            ],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        let dst = self.v.b_addr.to_string();
        let t = SystemTime::now();
        // 200 SYNs/s, at most 2,000 of them and at most 12 s.
        let child = self
            .a
            .command("timeout")
            .args(["12", "hping3", "-q", "-S", "-p", &PORT.to_string()])
            .args(["-i", "u5000", "-c", "2000", &dst])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| LabError::Other(format!("starting hping3: {e}")))?;
        self.hping = Some(child);
        // The 1 s average exceeds the limit once LIMIT SYNs have arrived.
        Ok(t + Duration::from_secs_f64(LIMIT / RATE))
    }

    fn stop(&mut self) -> Result<(), LabError> {
        self.end_flood();
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        let cookies = self.b.run(&["cat", COOKIES])?;
        ensure(cookies.trim() == "1", || {
            format!(
                "tcp_syncookies is {} in the flooded namespace",
                cookies.trim()
            )
        })?;
        let host = std::fs::read_to_string(COOKIES).unwrap_or_default();
        ensure(host == self.host_cookies, || {
            "the host's tcp_syncookies changed".into()
        })?;
        let dst = SocketAddr::from((self.v.b_addr, PORT));
        let ok = self
            .a
            .within(move || TcpStream::connect_timeout(&dst, Duration::from_secs(2)).is_ok())?;
        ensure(ok, || "a client cannot connect at the end".into())
    }
}

impl Drop for SynFlood {
    fn drop(&mut self) {
        self.end_flood();
    }
}
