//! The `http` benchmark's server and load: a real nginx from Debian serving one small static
//! file, plaintext and TLS (a certificate made at run time), and wrk from Debian driving it
//! from another namespace, bounded by `-d` and by `timeout`. CPU time is read per process:
//! nginx's and the daemon's from `/proc/PID/stat` before and after each run, wrk's from its
//! own `wait4` rusage (it exits at the end of the run).
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use guardian_tests::{poll, Netns};

pub const PORT: u16 = 8080;
pub const TLS_PORT: u16 = 8443;
/// Connections wrk keeps open (keep-alive) or cycles through (new connection per request).
pub const CONNECTIONS: u32 = 16;

/// nginx in the foreground, one process and one worker (killed with the namespace), no access
/// log (a log write per request would be the same with and without guardian, but it is not
/// what is measured), a 300-byte file on plaintext and TLS.
fn nginx_conf(dir: &Path, addr: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 1024; }}\nhttp {{\n\
         access_log off;\nkeepalive_requests 1000000;\nclient_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         server {{\nlisten {addr}:{PORT};\nlisten {addr}:{TLS_PORT} ssl;\n\
         ssl_certificate {d}/cert.pem;\nssl_certificate_key {d}/key.pem;\nroot {d}/www;\n}}\n}}\n"
    )
}

/// A self-signed P-256 certificate for `cn`, made now (`openssl req -x509`), as the e2e tests
/// make theirs.
pub fn make_cert(dir: &Path, cn: &str) -> Result<()> {
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={cn}")])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .context("running openssl (is it installed?)")?;
    if !out.status.success() {
        bail!("openssl req: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Starts nginx in `ns` on `addr` (plaintext and TLS) serving `dir/www/index.html`; waits
/// until both ports listen. Returns its pid.
pub fn start_nginx(ns: &Netns, dir: &Path, addr: &str) -> Result<u32> {
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("index.html"), "hello\n".repeat(50))?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir, addr))?;
    let (p, c) = (dir.display().to_string(), conf.display().to_string());
    let test = ns.output(&["nginx", "-t", "-q", "-p", &p, "-c", &c]);
    if !test.status.success() {
        bail!(
            "nginx -t (is nginx installed?): {}",
            String::from_utf8_lossy(&test.stderr)
        );
    }
    let pid = ns.spawn(&["nginx", "-p", &p, "-c", &c]);
    let up = poll(Duration::from_secs(10), Duration::from_millis(50), || {
        let out = ns.output(&["ss", "-Htln"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (text.contains(&format!(":{PORT} ")) && text.contains(&format!(":{TLS_PORT} ")))
            .then_some(())
    });
    if up.is_none() {
        bail!("nginx did not listen on {PORT} and {TLS_PORT} within 10 s");
    }
    Ok(pid)
}

/// One wrk run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WrkRun {
    pub requests: u64,
    /// wrk's own measured duration, seconds.
    pub secs: f64,
    /// Socket errors (connect, read, write, timeout) plus non-2xx/3xx responses.
    pub errors: u64,
    /// wrk's user + system CPU time (rusage), seconds.
    pub cpu_s: f64,
}

impl WrkRun {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.secs.max(1e-9)
    }
}

/// `wrk -t1 -cN -dS URL` from `ns` (with `Connection: close` when `close`: one new connection
/// per request), bounded by `timeout S+15`.
pub fn wrk(ns: &Netns, url: &str, secs: u32, close: bool) -> Result<WrkRun> {
    let mut cmd = ns.command("timeout");
    cmd.args([&(secs + 15).to_string(), "wrk", "-t1"])
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{secs}s"))
        .args(["--timeout", "2s"]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(url).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().context("starting wrk (is it installed?)")?;
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut text)?;
    }
    let (ok, cpu_s) = wait_rusage(child.id())?;
    if !ok {
        bail!("wrk failed: {}", text.trim());
    }
    let mut run = parse_wrk(&text).with_context(|| format!("wrk printed: {text}"))?;
    run.cpu_s = cpu_s;
    Ok(run)
}

/// Waits for child `pid`; (exited with 0, user + system CPU seconds of it and its waited-for
/// children). std's `Child::wait` does not return the rusage.
fn wait_rusage(pid: u32) -> Result<(bool, f64)> {
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own unreaped child, with valid out-pointers.
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut ru) };
    if r != pid as libc::pid_t {
        bail!("wait4({pid}): {}", std::io::Error::last_os_error());
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((ok, tv(ru.ru_utime) + tv(ru.ru_stime)))
}

/// Requests, duration and errors from wrk's report.
pub fn parse_wrk(text: &str) -> Result<WrkRun> {
    let mut run = WrkRun::default();
    let mut found = false;
    for line in text.lines().map(str::trim) {
        if let Some((n, rest)) = line.split_once(" requests in ") {
            run.requests = n.trim().parse().context("request count")?;
            let d = rest.split(',').next().unwrap_or("");
            run.secs = parse_duration(d).context("duration")?;
            found = true;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            run.errors += rest
                .split(',')
                .filter_map(|f| f.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.errors += rest.trim().parse::<u64>().unwrap_or(0);
        }
    }
    if !found || run.secs <= 0.0 {
        bail!("no `N requests in T` line");
    }
    Ok(run)
}

/// wrk's durations: `4.00s`, `1.00m`, `500.00ms`, `10.00us`.
fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = if let Some(v) = s.strip_suffix("us") {
        (v, 1e-6)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1e-3)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60.0)
    } else if let Some(v) = s.strip_suffix('h') {
        (v, 3600.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

/// The libssl functions guardian's uprobes are on, and whether a return probe is too
/// (guardian/src/probes/uprobe.rs).
const SSL_PROBES: [(&str, bool); 7] = [
    ("SSL_write", false),
    ("SSL_write_ex", false),
    ("SSL_do_handshake", true),
    ("SSL_accept", true),
    ("SSL_connect", true),
    ("SSL_set_accept_state", false),
    ("SSL_set_connect_state", false),
];

/// The bpftrace script with an empty program on each of guardian's libssl probes of `lib`.
pub fn bpftrace_script(lib: &str) -> String {
    let entry: Vec<String> = SSL_PROBES
        .iter()
        .map(|(f, _)| format!("uprobe:{lib}:{f}"))
        .collect();
    let ret: Vec<String> = SSL_PROBES
        .iter()
        .filter(|(_, r)| *r)
        .map(|(f, _)| format!("uretprobe:{lib}:{f}"))
        .collect();
    format!("{} {{}}\n{} {{}}\n", entry.join(","), ret.join(","))
}

/// The libssl.so.3 process `pid` has mapped (`/proc/PID/maps`).
pub fn mapped_libssl(pid: u32) -> Result<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("libssl.so.3"))
        .map(str::to_owned)
        .context("nginx has no libssl.so.3 mapped (a static OpenSSL?)")
}

/// guardian-ebpf's `sys_exit_noop` on the hook `guardian run --http` holds here (the raw
/// `sys_exit` tracepoint, a BTF tracepoint: guardian/src/probes/http.rs), attached as the
/// daemon attaches its program (aya): what the hook costs with nothing in it, the floor of
/// reading HTTP from the syscalls. Detached when dropped.
pub struct NoopTracepoints(#[allow(dead_code)] aya::Ebpf);

impl NoopTracepoints {
    pub fn attach() -> Result<NoopTracepoints> {
        let mut ebpf = super::xdp_prog::load_object(&super::xdp_prog::object_path()?)?;
        let btf = aya::Btf::from_sys_fs().context("reading the kernel's BTF")?;
        let p: &mut aya::programs::BtfTracePoint = ebpf
            .program_mut("sys_exit_noop")
            .context("sys_exit_noop is not in guardian's eBPF object")?
            .try_into()?;
        p.load("sys_exit", &btf).context("loading sys_exit_noop")?;
        p.attach().context("attaching sys_exit_noop to sys_exit")?;
        Ok(NoopTracepoints(ebpf))
    }
}

/// guardian-ebpf's `cgroup_skb_noop` on the root cgroup v2's ingress and egress (BPF links,
/// which sit beside anything else attached there; a link takes no attach flags): it runs for every packet of every socket on the host, which
/// is what counting HTTP at the packet level would pay before it parses a byte. Detached
/// when dropped.
pub struct NoopPackets(#[allow(dead_code)] aya::Ebpf);

impl NoopPackets {
    pub fn attach() -> Result<NoopPackets> {
        use aya::programs::{links::CgroupAttachMode, CgroupSkb, CgroupSkbAttachType};
        // The cgroup v2 root: unified, or beside the v1 hierarchies (hybrid). Only v2 has
        // `cgroup.controllers`.
        let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .find(|p| std::path::Path::new(p).join("cgroup.controllers").exists())
            .context("no cgroup v2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")?;
        let cgroup = std::fs::File::open(root).with_context(|| format!("opening {root}"))?;
        let mut ebpf = super::xdp_prog::load_object(&super::xdp_prog::object_path()?)?;
        let p: &mut CgroupSkb = ebpf
            .program_mut("cgroup_skb_noop")
            .context("cgroup_skb_noop is not in guardian's eBPF object")?
            .try_into()?;
        p.load().context("loading cgroup_skb_noop")?;
        for t in [CgroupSkbAttachType::Ingress, CgroupSkbAttachType::Egress] {
            p.attach(&cgroup, t, CgroupAttachMode::Single)
                .with_context(|| format!("attaching cgroup_skb_noop to {root}"))?;
        }
        Ok(NoopPackets(ebpf))
    }
}

/// bpftrace holding empty uprobes on guardian's libssl functions (what the kernel's uprobe
/// mechanism costs alone), until dropped.
pub struct Bpftrace(std::process::Child);

impl Bpftrace {
    pub fn start(lib: &str) -> Result<Bpftrace> {
        let mut child = std::process::Command::new("bpftrace")
            .args(["-e", &bpftrace_script(lib)])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting bpftrace (is it installed?)")?;
        let out = child.stdout.take().context("bpftrace stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("Attaching") {
                    let _ = tx.send(());
                }
            }
        });
        let mut b = Bpftrace(child);
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            bail!("bpftrace did not start attaching within 30 s");
        }
        // It prints the line before attaching; give it time to finish.
        std::thread::sleep(Duration::from_secs(2));
        if let Some(st) = b.0.try_wait()? {
            bail!("bpftrace exited with {st}");
        }
        Ok(b)
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// user + system CPU seconds of a running process (all its threads), `/proc/PID/stat`.
pub fn proc_cpu(pid: u32) -> Result<f64> {
    super::daemon::cpu_seconds(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 4s test @ http://10.77.206.2:8080/index.html
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   520.11us  200.00us   5.00ms   90.00%
    Req/Sec    30.00k     1.00k   32.00k    70.00%
  120345 requests in 4.00s, 60.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  30086.25
Transfer/sec:     15.00MB
";

    #[test]
    fn parses_requests_duration_and_errors() {
        let r = parse_wrk(REPORT).unwrap();
        assert_eq!((r.requests, r.secs, r.errors), (120345, 4.0, 7));
        assert!((r.rps() - 30086.25).abs() < 0.01);
    }

    #[test]
    fn a_report_without_requests_is_an_error() {
        assert!(parse_wrk("unable to connect to 10.77.206.2:8080 Connection refused").is_err());
        assert!(parse_wrk("  0 requests in 0.00s, 0.00B read").is_err());
    }

    #[test]
    fn the_bpftrace_peer_probes_what_guardian_probes() {
        let s = bpftrace_script("/l.so");
        assert!(s.starts_with("uprobe:/l.so:SSL_write,uprobe:/l.so:SSL_write_ex,"));
        assert_eq!(s.matches("uprobe:").count(), 7);
        assert_eq!(s.matches("uretprobe:").count(), 3);
        assert!(s.contains("uretprobe:/l.so:SSL_connect {}"));
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("4.00s"), Some(4.0));
        assert_eq!(parse_duration("1.50m"), Some(90.0));
        assert_eq!(parse_duration("500.00ms"), Some(0.5));
        assert_eq!(parse_duration("x"), None);
    }
}
