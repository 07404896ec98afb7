//! Certificates for the TLS tests and lab scenarios, made with the openssl CLI: a CA, then
//! leaves signed by `openssl ca` with explicit validity dates (an expired or soon-expiring
//! certificate is a date range, not a clock change).
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{run_cmd, Error, Result};

/// python3's TLS server (`ssl`, OpenSSL): `ADDR PORT CERT KEY`; accepts forever, one
/// handshake per connection (failures caught, 5 s per client), answers `hello`.
pub const PY_SERVER: &str = r#"
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

/// A leaf certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub pem: PathBuf,
    pub key: PathBuf,
}

/// Runs `openssl ARGS` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let mut c = Command::new("openssl");
    c.current_dir(dir).args(args);
    run_cmd(c, format!("openssl {}", args.join(" "))).map(drop)
}

/// `now + offset_s` (UTC) as `YYYYMMDDHHMMSSZ`, the format of `openssl ca -startdate/-enddate`.
pub fn gentime(offset_s: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(offset_s))
        .format("%Y%m%d%H%M%SZ")
        .to_string()
}

/// The arguments of `openssl req` for a new unencrypted P-256 key.
const NEW_EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// `openssl req` in `dir` with a new key for `/CN=cn`, then `more`.
fn req(dir: &Path, cn: &str, more: &[&str]) -> Result<()> {
    let subj = format!("/CN={cn}");
    let mut args = vec!["req"];
    args.extend(NEW_EC_KEY);
    args.extend(["-subj", &subj]);
    args.extend(more);
    openssl(dir, &args)
}

/// A self-signed certificate `dir/pem` for `cn` and its key `dir/key`, made now, valid `days`.
pub fn self_signed(dir: &Path, cn: &str, days: u32, key: &str, pem: &str) -> Result<()> {
    let days = days.to_string();
    req(
        dir,
        cn,
        &["-x509", "-days", &days, "-keyout", key, "-out", pem],
    )
}

/// A CA named `cn` in `dir` (`ca.pem`, `ca.key`, valid 30 days) and the `openssl ca`
/// configuration (`ca.cnf`) that signs leaves with the dates asked for.
pub fn make_ca(dir: &Path, cn: &str) -> Result<()> {
    let io = |source| Error::Io {
        what: format!("writing the CA files in {}", dir.display()),
        source,
    };
    std::fs::create_dir_all(dir.join("newcerts")).map_err(io)?;
    std::fs::write(dir.join("index.txt"), "").map_err(io)?;
    std::fs::write(dir.join("serial"), "1000\n").map_err(io)?;
    let d = dir.display();
    std::fs::write(
        dir.join("ca.cnf"),
        format!(
            "[ca]\ndefault_ca = signing\n[signing]\ndatabase = {d}/index.txt\n\
             new_certs_dir = {d}/newcerts\ncertificate = {d}/ca.pem\nprivate_key = {d}/ca.key\n\
             serial = {d}/serial\ndefault_md = sha256\npolicy = any\ncopy_extensions = copy\n\
             unique_subject = no\n[any]\ncommonName = supplied\n"
        ),
    )
    .map_err(io)?;
    self_signed(dir, cn, 30, "ca.key", "ca.pem")
}

/// A leaf `name.pem`/`name.key` in `dir` for `san` (e.g. `IP:10.77.218.1`,
/// `DNS:wrong.example`), valid from `start_s` to `end_s` seconds from now (negative: in the
/// past), signed by the CA of [`make_ca`] in `dir`.
pub fn make_leaf(dir: &Path, name: &str, san: &str, start_s: i64, end_s: i64) -> Result<Leaf> {
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    let san = format!("subjectAltName={san}");
    req(
        dir,
        name,
        &["-new", "-addext", &san, "-keyout", &key, "-out", &csr],
    )?;
    let (start, end) = (gentime(start_s), gentime(end_s));
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
            &start,
            "-enddate",
            &end,
        ],
    )?;
    Ok(Leaf {
        pem: dir.join(pem),
        key: dir.join(key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gentime_is_openssl_generalized_time() {
        let t = gentime(0);
        assert_eq!(t.len(), 15, "{t}");
        assert!(
            t.ends_with('Z') && t[..14].bytes().all(|b| b.is_ascii_digit()),
            "{t}"
        );
        assert!(gentime(-86_400) < t && t < gentime(86_400));
    }

    /// The real openssl: a leaf expired two days ago is signed by the CA and carries the
    /// dates asked for.
    #[test]
    fn signs_a_leaf_with_the_dates_asked_for() {
        let dir = std::env::temp_dir().join(format!("testbed-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let r = (|| {
            make_ca(&dir, "testbed-ca")?;
            let leaf = make_leaf(&dir, "old", "IP:10.0.0.1", -30 * 86_400, -2 * 86_400)?;
            let ca = dir.join("ca.pem");
            let mut verify = Command::new("openssl");
            verify.args(["verify", "-CAfile"]).arg(&ca).arg(&leaf.pem);
            let expired = run_cmd(verify, "openssl verify".into());
            let mut dates = Command::new("openssl");
            dates.args([
                "x509",
                "-noout",
                "-enddate",
                "-ext",
                "subjectAltName",
                "-in",
            ]);
            dates.arg(&leaf.pem);
            Ok::<_, Error>((expired, run_cmd(dates, "openssl x509".into())?, leaf))
        })();
        let _ = std::fs::remove_dir_all(&dir);
        let (expired, text, leaf) = r.unwrap();
        let err = expired
            .expect_err("an expired leaf does not verify")
            .to_string();
        assert!(err.contains("expired"), "{err}");
        assert!(text.contains("IP Address:10.0.0.1"), "{text}");
        let year = gentime(-2 * 86_400)[..4].to_string();
        assert!(text.contains(&year), "{text}");
        assert!(leaf.key.ends_with("old.key"));
    }
}
