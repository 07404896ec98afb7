//! The TLS pieces of the `tls_*` scenarios: certificates made with the openssl CLI (a lab CA,
//! leaves signed by `openssl ca` with explicit validity dates: guardian-testbed's `tls`), Debian's python3 as the TLS
//! server (its `_ssl` links libssl.so.3 dynamically and calls `SSL_do_handshake`, what
//! guardian's uprobes read) and as a verifying client.
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use guardian_testbed::tls;
pub use guardian_testbed::tls::Leaf;

use crate::topology::Netns;
use crate::LabError;

/// Debian's interpreter (installed by `cargo xtask setup`), not whatever `python3` is first
/// on the PATH: its `_ssl` links the system's libssl.so.3.
pub const PYTHON: &str = "/usr/bin/python3";

/// A verifying client: one handshake to host:port with the CA; exits 0 when it read `hello`.
const PY_CLIENT: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=5) as s:
    with ctx.wrap_socket(s, server_hostname=sys.argv[2]) as t:
        sys.exit(0 if t.recv(16).startswith(b'hello') else 1)
"#;

/// The lab's CA in `dir` (`ca.pem`, `ca.key`, `ca.cnf`).
pub fn make_ca(dir: &Path) -> Result<(), LabError> {
    Ok(tls::make_ca(dir, "guardian-lab-ca")?)
}

/// A leaf `name.pem`/`name.key` for `IP:ip`, valid from an hour ago until `end_s` seconds
/// from now, signed by the lab CA.
pub fn make_leaf(dir: &Path, name: &str, ip: &str, end_s: i64) -> Result<Leaf, LabError> {
    Ok(tls::make_leaf(
        dir,
        name,
        &format!("IP:{ip}"),
        -3600,
        end_s,
    )?)
}

/// python3's TLS server in a namespace; killed (and reaped) when dropped.
pub struct TlsServer {
    child: Child,
}

impl TlsServer {
    /// Starts it on `addr` with `leaf` and waits until it listens.
    pub fn start(ns: &Netns, addr: SocketAddr, leaf: &Leaf) -> Result<TlsServer, LabError> {
        let child = ns
            .command(PYTHON)
            .arg("-c")
            .arg(tls::PY_SERVER)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(&leaf.pem)
            .arg(&leaf.key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| LabError::Other(format!("starting {PYTHON} in {}: {e}", ns.name())))?;
        let s = TlsServer { child };
        let filter = format!("sport = :{}", addr.port());
        let up = crate::topology::wait(Duration::from_secs(10), || {
            ns.run(&["ss", "-Htln", &filter])
                .is_ok_and(|o| !o.trim().is_empty())
        });
        if !up {
            return Err(LabError::Other(format!(
                "the python3 TLS server did not listen on {addr}"
            )));
        }
        Ok(s)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One verifying handshake from `ns` to `addr` with the lab CA in `dir`: whether it completed.
pub fn good_handshake(ns: &Netns, dir: &Path, addr: SocketAddr) -> Result<bool, LabError> {
    let ca = dir.join("ca.pem");
    let out = ns.output(&[
        PYTHON,
        "-c",
        PY_CLIENT,
        &ca.to_string_lossy(),
        &addr.ip().to_string(),
        &addr.port().to_string(),
    ])?;
    Ok(out.status.success())
}
