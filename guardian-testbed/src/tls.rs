//! Certificates for the TLS tests and lab scenarios, made with the openssl CLI: a CA, then
//! leaves signed by `openssl ca` with explicit validity dates (an expired or soon-expiring
//! certificate is a date range, not a clock change).
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{run_cmd, Error, Result};

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
            &format!("/CN={cn}"),
            "-days",
            "30",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    )
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
            &format!("subjectAltName={san}"),
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
            &gentime(start_s),
            "-enddate",
            &gentime(end_s),
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
