//! The daemon under test: spawned inside a namespace, its NDJSON tailed, stopped with SIGTERM.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::events::is_lifecycle;
use crate::netns::Netns;
use crate::util::TempDir;

/// Env var with the path of the guardian binary to test.
pub const BIN_ENV: &str = "GUARDIAN_BIN";

/// Env var with the path of the guardian-lab binary to test.
pub const LAB_BIN_ENV: &str = "GUARDIAN_LAB_BIN";

/// The guardian binary: `$GUARDIAN_BIN`, which must be set (no silent fallback to a stale build).
pub fn guardian_bin() -> PathBuf {
    bin_from_env(BIN_ENV, "guardian")
}

/// The lab binary: `$GUARDIAN_LAB_BIN`, which must be set, like [`guardian_bin`].
pub fn guardian_lab_bin() -> PathBuf {
    bin_from_env(LAB_BIN_ENV, "guardian-lab")
}

fn bin_from_env(var: &str, name: &str) -> PathBuf {
    let bin = std::env::var_os(var).unwrap_or_else(|| {
        panic!(
            "{var} is not set: point it at the {name} binary, e.g. \
             `{var}=$PWD/target/release/{name}`, or run `cargo xtask test`"
        )
    });
    let bin = PathBuf::from(bin);
    assert!(bin.is_file(), "{var}={} is not a file", bin.display());
    bin
}

/// A running `guardian run` inside a namespace. Killed (SIGKILL) on drop if still running; on a
/// panic its stderr and last events are printed.
pub struct Daemon {
    child: Option<Child>,
    status: Option<ExitStatus>,
    netns: String,
    dir: TempDir,
    events_path: PathBuf,
    stderr_path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    lines: Vec<String>,
    events: Vec<Value>,
    dumped: bool,
}

impl Daemon {
    /// Starts `nsenter --net=/run/netns/NAME $GUARDIAN_BIN run --events FILE ARGS...`.
    pub fn start(ns: &Netns, args: &[&str]) -> Daemon {
        Daemon::start_with(&guardian_bin(), ns, args)
    }

    /// Like [`Daemon::start`] with an explicit binary (the harness tests use a stand-in).
    pub fn start_with(bin: &Path, ns: &Netns, args: &[&str]) -> Daemon {
        Daemon::start_env(bin, ns, args, &[])
    }

    /// Like [`Daemon::start_with`] with extra environment variables for the daemon.
    pub fn start_env(bin: &Path, ns: &Netns, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        crate::require_root();
        let dir = TempDir::new(&format!("daemon-{}", ns.name().trim_start_matches("gt-")));
        let events_path = dir.path().join("events.ndjson");
        let stderr_path = dir.path().join("stderr.log");
        let stdout_path = dir.path().join("stdout.log");
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", ns.path().display()))
            .arg("--")
            .arg(bin)
            .arg("run")
            .arg("--events")
            .arg(&events_path)
            .args(args)
            // Recording replay fixtures from the real scenarios: GT_RECORD_DIR=DIR writes each
            // daemon's detector inputs to DIR/<namespace>.record.ndjson.
            .args(
                std::env::var_os("GT_RECORD_DIR")
                    .map(|d| {
                        let mut p = std::path::PathBuf::from(d);
                        p.push(format!("{}.record.ndjson", ns.name()));
                        vec![std::ffi::OsString::from("--record"), p.into_os_string()]
                    })
                    .unwrap_or_default(),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).expect("create stdout log"))
            .stderr(File::create(&stderr_path).expect("create stderr log"));
        eprintln!(
            "starting in {}: {} run {}",
            ns.name(),
            bin.display(),
            args.join(" ")
        );
        // nsenter execs the daemon (no fork without --pid/--fork): the child pid is the daemon's.
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn nsenter {}: {e}", bin.display()));
        Daemon {
            child: Some(child),
            status: None,
            netns: ns.name().to_owned(),
            dir,
            events_path,
            stderr_path,
            offset: 0,
            partial: Vec::new(),
            lines: Vec::new(),
            events: Vec::new(),
            dumped: false,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// A directory owned by this daemon's guard (removed with it), e.g. for `--state-dir`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn events_path(&self) -> &Path {
        &self.events_path
    }

    /// Reads newly appended complete lines.
    fn refresh(&mut self) {
        let Ok(mut f) = File::open(&self.events_path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return;
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                self.events.push(v);
            }
            self.lines.push(line);
        }
    }

    /// Whether the process has exited (and records its status).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    self.status = Some(st);
                    self.child = None;
                }
            }
        }
        self.status
    }

    /// Every event parsed so far (lines that are not JSON are left out: see [`Daemon::lines`]).
    pub fn events(&mut self) -> Vec<Value> {
        self.refresh();
        self.events.clone()
    }

    /// Every complete line written so far, raw.
    pub fn lines(&mut self) -> Vec<String> {
        self.refresh();
        self.lines.clone()
    }

    /// How many events have been parsed so far; pass it to [`Daemon::wait_for_after`] to wait
    /// only for later events.
    pub fn count(&mut self) -> usize {
        self.refresh();
        self.events.len()
    }

    /// Waits for the first event (from the start of the stream) matching `pred`; panics with
    /// the daemon's stderr and last events on timeout or if the daemon exits first.
    pub fn wait_for(&mut self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        self.wait_for_after(0, pred, timeout).1
    }

    /// Like [`Daemon::wait_for`], looking only at events with index ≥ `start`; returns the
    /// index of the match too.
    pub fn wait_for_after(
        &mut self,
        start: usize,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> (usize, Value) {
        match self.try_wait_for_after(start, pred, timeout) {
            Some(hit) => hit,
            None => self.fail(&format!(
                "no matching event within {timeout:?} (after event #{start})"
            )),
        }
    }

    /// Like [`Daemon::wait_for_after`] but returns `None` on timeout (still panics if the
    /// daemon exits).
    pub fn try_wait_for_after(
        &mut self,
        start: usize,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<(usize, Value)> {
        let deadline = Instant::now() + crate::util::scaled(timeout);
        let mut next = start;
        loop {
            self.refresh();
            while next < self.events.len() {
                if pred(&self.events[next]) {
                    return Some((next, self.events[next].clone()));
                }
                next += 1;
            }
            if let Some(st) = self.exited() {
                self.refresh();
                if let Some(i) = (next..self.events.len()).find(|&i| pred(&self.events[i])) {
                    return Some((i, self.events[i].clone()));
                }
                self.fail(&format!("the daemon exited ({st}) before a matching event"));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for `lifecycle` `attached` (programs loaded and attached).
    pub fn wait_attached(&mut self) -> Value {
        self.wait_for(|e| is_lifecycle(e, "attached"), Duration::from_secs(60))
    }

    /// Sends SIGTERM, waits up to 10 s, asserts exit status 0 and returns every event.
    pub fn stop(&mut self) -> Vec<Value> {
        self.terminate();
        self.refresh();
        self.events.clone()
    }

    /// Sends SIGTERM, waits up to 10 s and asserts exit status 0, without reading the events
    /// (a storm's millions of lines are streamed from [`Daemon::events_path`] instead).
    pub fn terminate(&mut self) {
        if let Some(child) = self.child.as_ref() {
            // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let Some(st) = self.exited() else {
            self.kill();
            self.fail("the daemon did not exit within 10 s of SIGTERM");
        };
        if !st.success() {
            self.fail(&format!("the daemon exited with {st} after SIGTERM, not 0"));
        }
    }

    /// The end of every test: SIGTERM and exit 0, every line valid against the schema,
    /// `lifecycle` `stopping` and `detached` present. Returns every event.
    pub fn finish(&mut self) -> Vec<Value> {
        let events = self.stop();
        let lines = self.lines.clone();
        if !self.partial.is_empty() {
            let tail = String::from_utf8_lossy(&self.partial).into_owned();
            self.fail(&format!(
                "the event file ends with an unterminated line: {tail}"
            ));
        }
        if let Err(e) = crate::schema::validate_lines(&lines) {
            self.fail(&format!("schema validation: {e}"));
        }
        for phase in ["started", "attached", "stopping", "detached"] {
            if !events.iter().any(|e| is_lifecycle(e, phase)) {
                self.fail(&format!("no lifecycle event with phase {phase}"));
            }
        }
        eprintln!(
            "daemon in {}: {} events, all valid",
            self.netns,
            events.len()
        );
        events
    }

    /// SIGKILL, as a crash would: no shutdown path runs. Returns the events written until then.
    pub fn kill9(&mut self) -> Vec<Value> {
        self.kill();
        self.refresh();
        self.events.clone()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            if let Ok(st) = child.wait() {
                self.status = Some(st);
            }
        }
    }

    /// The daemon's stderr log, whole.
    pub fn stderr_log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    /// The daemon's stderr (last 8 KiB) and last 30 lines of events, for failure messages.
    pub fn diagnostics(&mut self) -> String {
        let stderr = std::fs::read(&self.stderr_path).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(8192)..]);
        // A storm's millions of unread lines are not worth parsing for a failure message.
        let unread =
            std::fs::metadata(&self.events_path).map_or(0, |m| m.len().saturating_sub(self.offset));
        if unread > 64 << 20 {
            let mut tail = Vec::new();
            if let Ok(mut f) = File::open(&self.events_path) {
                let _ = f.seek(SeekFrom::End(-8192));
                let _ = f.read_to_end(&mut tail);
            }
            return format!(
                "--- guardian in {} stderr ({}):\n{stderr}\n--- last 8 KiB of {} ({unread} bytes unread):\n{}",
                self.netns,
                self.stderr_path.display(),
                self.events_path.display(),
                String::from_utf8_lossy(&tail)
            );
        }
        self.refresh();
        let from = self.lines.len().saturating_sub(30);
        let mut s = format!(
            "--- guardian in {} (status: {}) stderr ({}):\n{stderr}\n--- last {} of {} events ({}):\n",
            self.netns,
            self.status.map_or("running".to_owned(), |s| s.to_string()),
            self.stderr_path.display(),
            self.lines.len() - from,
            self.lines.len(),
            self.events_path.display(),
        );
        for l in &self.lines[from..] {
            s.push_str(l);
            s.push('\n');
        }
        if !self.partial.is_empty() {
            s.push_str(&format!(
                "(unterminated) {}\n",
                String::from_utf8_lossy(&self.partial)
            ));
        }
        if let (Some(pid), None) = (self.pid(), self.status) {
            s.push_str(&format!(
                "--- kernel: {}\n",
                crate::links::recursion_misses(pid)
            ));
        }
        s
    }

    /// Panics with `msg` and the diagnostics.
    pub fn fail(&mut self, msg: &str) -> ! {
        let d = self.diagnostics();
        self.dumped = true;
        panic!("{msg}\n{d}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let running = self.child.is_some() && self.exited().is_none();
        if std::thread::panicking() && !self.dumped {
            eprintln!("{}", self.diagnostics());
        }
        if running {
            self.kill();
        }
    }
}
