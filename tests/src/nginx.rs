//! nginx from Debian for the HTTP and TLS tests: a configuration that keeps everything under
//! the test's directory (one foreground process, killed with its namespace), a self-signed
//! certificate for its TLS listeners, and a start that waits until it listens.
use std::path::Path;

use crate::Netns;

/// An nginx configuration: in the foreground, one process, pid file, error log (at
/// `error_level`) and temporary files under `dir`. With `log_format`, every request goes to
/// `dir/access.log` in that format; without, nothing is logged. `http` holds the servers
/// (and any other `http` directives).
pub fn conf(dir: &Path, error_level: &str, log_format: Option<&str>, http: &str) -> String {
    let d = dir.display();
    let access = match log_format {
        Some(f) => format!("log_format test '{f}';\n    access_log {d}/access.log test;"),
        None => "access_log off;".to_string(),
    };
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log {error_level};
events {{ worker_connections 256; }}
http {{
    {access}
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{http}}}
"#
    )
}

/// A self-signed certificate `dir/cert.pem` and its key `dir/key.pem` for `cn`, made now,
/// valid `days`.
pub fn make_cert(dir: &Path, cn: &str, days: u32) {
    guardian_testbed::tls::self_signed(dir, cn, days, "key.pem", "cert.pem")
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Writes `conf` to `dir/nginx.conf`, checks it (`nginx -t`), starts nginx in `ns` and
/// waits until it listens on `port`; its pid.
pub fn start(ns: &Netns, dir: &Path, conf: &str, port: u16) -> u32 {
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let p = path.to_str().unwrap();
    ns.run(&["nginx", "-t", "-q", "-p", dir.to_str().unwrap(), "-c", p]);
    let pid = ns.spawn(&["nginx", "-p", dir.to_str().unwrap(), "-c", p]);
    ns.wait_listening(port, "nginx");
    pid
}
