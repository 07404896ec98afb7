//! `tls_cert_expiry`: Debian's python3 serves TLS (OpenSSL) in the server's namespace with a
//! certificate, made by the lab's CA, that expires in 2 days; one good handshake lets the
//! OpenSSL uprobes see the listener, and guardian (`--http`) reads the certificate from it and
//! warns (detection only). Stopping replaces the server with one presenting a certificate
//! valid for a year on the same port: the new process's handshakes make guardian read the
//! listener's certificate again, and the warning clears.
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::tls_server::{good_handshake, make_ca, make_leaf, Leaf, TlsServer};
use super::{ensure, Scenario, Spec};
use crate::daemon::{DaemonPlan, TempDir};
use crate::topology::{pair, Netns, Veth};
use crate::LabError;

pub const SPEC: Spec = Spec {
    fault: "tls_cert_expiry",
    remedy: None,
    about:
        "a python3/OpenSSL server presents a certificate expiring in 2 days; renewed by a restart",
    detect_timeout: Duration::from_secs(5),
    heal_timeout: Duration::from_secs(5),
    clear_timeout: Duration::from_secs(10),
    build,
};

const PORT: u16 = 5196;

/// Fields drop in order: the server before its namespace.
struct Cert {
    server: Option<TlsServer>,
    c: Netns,
    s: Netns,
    v: Veth,
    dir: TempDir,
    renewed: Leaf,
}

fn build() -> Result<Box<dyn Scenario>, LabError> {
    let c = Netns::new("tc-c")?;
    let s = Netns::new("tc-s")?;
    let v = pair(&c, &s, 250)?;
    let dir = TempDir::new("tls-cert")?;
    make_ca(dir.path())?;
    let ip = v.b_addr.to_string();
    let expiring = make_leaf(dir.path(), "expiring", &ip, 2 * 86_400)?;
    let renewed = make_leaf(dir.path(), "renewed", &ip, 365 * 86_400)?;
    let server = TlsServer::start(&s, SocketAddr::from((v.b_addr, PORT)), &expiring)?;
    Ok(Box::new(Cert {
        server: Some(server),
        c,
        s,
        v,
        dir,
        renewed,
    }))
}

impl Cert {
    fn dst(&self) -> SocketAddr {
        SocketAddr::from((self.v.b_addr, PORT))
    }

    fn handshake(&self, when: &str) -> Result<(), LabError> {
        ensure(
            good_handshake(&self.c, self.dir.path(), self.dst())?,
            || format!("a verifying client could not complete a handshake {when}"),
        )
    }
}

impl Scenario for Cert {
    fn daemon_ns(&self) -> &Netns {
        &self.s
    }

    fn plan(&self) -> DaemonPlan {
        DaemonPlan {
            config: None,
            args: vec!["--interval-ms".into(), "200".into(), "--http".into()],
        }
    }

    fn inject(&mut self) -> Result<SystemTime, LabError> {
        // The certificate is valid (for 2 more days): the handshake completes, and from then
        // on the uprobes know the listener.
        self.handshake("with the expiring certificate")?;
        Ok(SystemTime::now())
    }

    fn stop(&mut self) -> Result<(), LabError> {
        // A renewal as operators do it: the server restarted with the new certificate.
        self.server = None;
        self.server = Some(TlsServer::start(&self.s, self.dst(), &self.renewed)?);
        self.handshake("with the renewed certificate")
    }

    fn check_end(&mut self) -> Result<(), LabError> {
        self.handshake("at the end")
    }
}
