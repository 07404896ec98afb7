//! The real guardian daemon inside a benchmark namespace, lighter than the e2e harness's
//! `Daemon`: benchmarks read only the few events they need (an overload run writes millions of
//! lines, which the harness would parse and schema-check one by one).
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use guardian_tests::{Netns, TempDir};
use serde_json::Value;

pub struct Guardian {
    child: Option<Child>,
    dir: TempDir,
    events: PathBuf,
}

impl Guardian {
    /// `guardian run --events FILE --state-dir DIR ARGS...` in `ns`, waiting until it is
    /// attached (at most 30 s).
    pub fn start(bin: &Path, ns: &Netns, args: &[&str]) -> Result<Guardian> {
        Self::start_at(bin, &ns.path(), args)
    }

    /// [`Guardian::start`] in the namespace that `netns` enters (`/proc/self/ns/net`: this
    /// process's own, the root namespace for `scale`).
    pub fn start_at(bin: &Path, netns: &Path, args: &[&str]) -> Result<Guardian> {
        let dir = TempDir::new("bench-daemon");
        let events = dir.path().join("events.ndjson");
        let state = dir.path().join("state");
        // Never rotate the events file: a storm writes hundreds of MB, and the benchmarks count
        // every line of one file (with the default 100 MiB rotation, lines went to .1 … .5
        // and older ones were deleted: the overload accounting came out 842,257 short).
        // No per-key observation limit either: the overload benchmark measures what the
        // event path itself sustains (tests/tests/e2e/overload.rs runs both).
        let config = dir.path().join("guardian.toml");
        std::fs::write(
            &config,
            "[sinks]\nmax_bytes = 0\nobservations_per_sec = 0\n",
        )?;
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", netns.display()))
            .arg("--")
            .arg(bin)
            .arg("run")
            .arg("--events")
            .arg(&events)
            .arg("--state-dir")
            .arg(&state)
            .arg("--config")
            .arg(&config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.path().join("stderr.log"))?);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut g = Guardian {
            child: Some(child),
            dir,
            events,
        };
        g.wait_attached(Duration::from_secs(30))?;
        Ok(g)
    }

    /// The daemon's pid (nsenter execs it in place, so it is the child's).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn wait_attached(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if !self.lines_with("\"phase\":\"attached\"")?.is_empty() {
                return Ok(());
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "guardian exited with {st} before attaching: {}",
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "guardian did not attach within {timeout:?}: {}",
            self.stderr_tail()
        )
    }

    /// Whether a line of the daemon's log contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        std::fs::read_to_string(self.dir.path().join("stderr.log"))
            .is_ok_and(|t| t.contains(needle))
    }

    /// Runs `warm` (TLS traffic) until the daemon reads TLS statuses from OpenSSL's record
    /// layer and has detached `SSL_write`'s uprobes (guardian/src/probes/tls_record.rs), at
    /// most `timeout`: a benchmark then measures what it costs from then on, not its first
    /// seconds. Returns whether it switched (not before Linux 6.3).
    pub fn settle_tls(
        &self,
        mut warm: impl FnMut() -> Result<()>,
        timeout: Duration,
    ) -> Result<bool> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.logged("SSL_write's uprobes detached") {
                return Ok(true);
            }
            warm()?;
        }
        Ok(self.logged("SSL_write's uprobes detached"))
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
    }

    /// Every event whose line contains `needle`, parsed (other lines are not parsed).
    pub fn lines_with(&self, needle: &str) -> Result<Vec<Value>> {
        let file = match File::open(&self.events) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line?;
            if line.contains(needle) {
                if let Ok(v) = serde_json::from_str(&line) {
                    out.push(v);
                }
            }
        }
        Ok(out)
    }

    /// How many lines contain `needle` (nothing is parsed).
    pub fn count_lines(&self, needle: &str) -> Result<u64> {
        let file = File::open(&self.events)?;
        let mut n = 0;
        for line in BufReader::new(file).lines() {
            n += u64::from(line?.contains(needle));
        }
        Ok(n)
    }

    /// SIGTERM, then up to 15 s for a clean exit (SIGKILL after that).
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Some(st) = child.try_wait()? {
                if !st.success() {
                    bail!(
                        "guardian exited with {st} after SIGTERM: {}",
                        self.stderr_tail()
                    );
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("guardian did not exit within 15 s of SIGTERM")
    }
}

impl Drop for Guardian {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// user + system CPU time of a process so far, in seconds (`/proc/PID/stat`).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    guardian_tests::pressure::cpu_seconds(pid).with_context(|| format!("reading /proc/{pid}/stat"))
}

/// Resident set size in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// A `kB` field of `/proc/PID/status`, e.g. `VmHWM:` (peak RSS).
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    guardian_tests::pressure::status_kib(pid, field)
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}
