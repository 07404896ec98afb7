//! The TLS pieces of the `tls_*` scenarios: certificates made with the openssl CLI (a lab CA,
//! leaves signed by `openssl ca` with explicit validity dates), Debian's python3 as the TLS
//! server (its `_ssl` links libssl.so.3 dynamically and calls `SSL_do_handshake` and
//! `SSL_get_error`, what guardian's uprobes read) and as a verifying client.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::topology::Netns;
use crate::LabError;

/// Debian's interpreter (installed by `cargo xtask setup`), not whatever `python3` is first
/// on the PATH: its `_ssl` links the system's libssl.so.3.
pub const PYTHON: &str = "/usr/bin/python3";

/// Accepts forever, one handshake per connection (failures caught), answers `hello`.
const PY_SERVER: &str = r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
s = socket.create_server((sys.argv[1], int(sys.argv[2])), reuse_port=False)
while True:
    c, _ = s.accept()
    c.settimeout(5)
    try:
        t = ctx.wrap_socket(c, server_side=True)
        t.sendall(b'hello\n')
        t.close()
    except (ssl.SSLError, OSError):
        c.close()
"#;

/// A verifying client: one handshake to host:port with the CA; exits 0 when it read `hello`.
const PY_CLIENT: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=5) as s:
    with ctx.wrap_socket(s, server_hostname=sys.argv[2]) as t:
        sys.exit(0 if t.recv(16).startswith(b'hello') else 1)
"#;

fn openssl(dir: &Path, args: &[&str]) -> Result<(), LabError> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Other(format!("running openssl (is it installed?): {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Other(format!(
            "openssl {}: {}",
            args.first().copied().unwrap_or(""),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// `now + offset_s` as `YYYYMMDDHHMMSSZ`, the format of `openssl ca -startdate/-enddate`.
pub fn gentime(offset_s: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(offset_s))
        .format("%Y%m%d%H%M%SZ")
        .to_string()
}

/// A lab CA in `dir` (`ca.pem`, `ca.key`) and the `openssl ca` configuration that signs leaves.
pub fn make_ca(dir: &Path) -> Result<(), LabError> {
    let io = |e: std::io::Error| LabError::Other(format!("writing the lab CA: {e}"));
    std::fs::create_dir_all(dir.join("newcerts")).map_err(io)?;
    std::fs::write(dir.join("index.txt"), "").map_err(io)?;
    std::fs::write(dir.join("serial"), "1000\n").map_err(io)?;
    let d = dir.display();
    std::fs::write(
        dir.join("ca.cnf"),
        format!(
            "[ca]\ndefault_ca = lab\n[lab]\ndatabase = {d}/index.txt\n\
             new_certs_dir = {d}/newcerts\ncertificate = {d}/ca.pem\nprivate_key = {d}/ca.key\n\
             serial = {d}/serial\ndefault_md = sha256\npolicy = any\ncopy_extensions = copy\n\
             unique_subject = no\n[any]\ncommonName = supplied\n"
        ),
    )
    .map_err(io)?;
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=guardian-lab-ca",
            "-days",
            "30",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    )
}

/// A leaf `name.pem`/`name.key` for `IP:ip`, valid from an hour ago until `end_s` seconds
/// from now, signed by the lab CA.
pub fn make_leaf(dir: &Path, name: &str, ip: &str, end_s: i64) -> Result<Leaf, LabError> {
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            &format!("subjectAltName=IP:{ip}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    )?;
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-notext",
            "-in",
            &csr,
            "-out",
            &pem,
            "-startdate",
            &gentime(-3600),
            "-enddate",
            &gentime(end_s),
        ],
    )?;
    Ok(Leaf {
        pem: dir.join(pem),
        key: dir.join(key),
    })
}

pub struct Leaf {
    pub pem: PathBuf,
    pub key: PathBuf,
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
            .arg(PY_SERVER)
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
