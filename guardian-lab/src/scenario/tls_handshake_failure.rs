//! `tls_handshake_failure`: Debian's python3 serves TLS (OpenSSL, libssl.so.3) in the server's
//! namespace; 20 clients speak plaintext HTTP to its port, so each of its `SSL_do_handshake`
//! calls fails with `SSL_ERROR_SSL` (wrong version number). guardian (`--http`, OpenSSL
//! uprobes) reports the listener and the peer (detection only: the remedy is the report).
//! Stopping leaves only good handshakes; the fault clears once its window holds no failure.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use super::tls_server::{good_handshake, make_ca, make_leaf, TlsServer};
use super::{ensure, Scenario, Spec};
use crate::daemon::{DaemonPlan, TempDir};
use crate::topology::{pair, Netns, Veth};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "tls_handshake_failure",
    remedy: None,
    about: "20 plaintext clients fail their handshakes with a python3/OpenSSL server (uprobes, --http); reported",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(5),
    clear_timeout: Duration::from_secs(15),
    build,
};

const PORT: u16 = 5195;
const N: usize = 20;

/// Fields drop in order: the server before its namespace.
struct Hs {
    _server: TlsServer,
    c: Netns,
    s: Netns,
    v: Veth,
    dir: TempDir,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let c = Netns::new("th-c")?;
    let s = Netns::new("th-s")?;
    let v = pair(&c, &s, 249)?;
    let dir = TempDir::new("tls-hs")?;
    make_ca(dir.path())?;
    let leaf = make_leaf(dir.path(), "server", &v.b_addr.to_string(), 365 * 86_400)?;
    let server = TlsServer::start(&s, SocketAddr::from((v.b_addr, PORT)), &leaf)?;
    Ok(Box::new(Hs {
        _server: server,
        c,
        s,
        v,
        dir,
    }))
}

impl Hs {
    fn dst(&self) -> SocketAddr {
        SocketAddr::from((self.v.b_addr, PORT))
    }
}

/// One plaintext request to a TLS port; returns once the server closed (its handshake failed).
fn plaintext(dst: SocketAddr) -> std::io::Result<()> {
    let mut c = TcpStream::connect_timeout(&dst, Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(2)))?;
    c.write_all(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")?;
    let mut buf = [0u8; 512];
    // The server answers with an alert and closes; a reset (it closed with our bytes unread)
    // is a close too.
    loop {
        match c.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

impl Scenario for Hs {
    fn daemon_ns(&self) -> &Netns {
        &self.s
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: Some(
                "[detect.tls_handshake_failure]\nmin_per_s = 0.05\nwindow_ms = 2000\nclear_after_ms = 1000\n"
                    .into(),
            ),
            args: vec!["--interval-ms".into(), "200".into(), "--http".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        // A good handshake first: the server works, and the listener is known.
        ensure(
            good_handshake(&self.c, self.dir.path(), self.dst())?,
            || "a verifying client could not complete a handshake before the fault".into(),
        )?;
        std::thread::sleep(Duration::from_millis(600));
        let dst = self.dst();
        // The condition holds from the first failed handshake on (one failure over the window
        // is above `min_per_s` and the ratio).
        let (done, first) = self.c.within(move || {
            let mut first = None;
            let done = (0..N)
                .filter(|_| {
                    let ok = plaintext(dst).is_ok();
                    first.get_or_insert_with(SystemTime::now);
                    ok
                })
                .count();
            (done, first)
        })?;
        ensure(done == N, || {
            format!("{done} of {N} plaintext clients to {dst} saw the server close")
        })?;
        Ok(first.unwrap_or_else(SystemTime::now))
    }

    fn stop(&mut self) -> Result<(), LabError> {
        // Good handshakes only from now on.
        for _ in 0..3 {
            ensure(
                good_handshake(&self.c, self.dir.path(), self.dst())?,
                || "a verifying client could not complete a handshake after the fault".into(),
            )?;
        }
        Ok(())
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        ensure(
            good_handshake(&self.c, self.dir.path(), self.dst())?,
            || "a verifying client cannot complete a handshake at the end".into(),
        )
    }
}
