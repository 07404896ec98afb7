//! A lab daemon: the guardian binary (see `guardian_bin` in main.rs), entered into a lab
//! namespace with `nsenter --net=`, running `guardian run --mode enforce` with the scenario's
//! config; its NDJSON events tailed from a file; stopped with SIGTERM (SIGKILL if it does not
//! exit).
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::topology::Netns;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Io(String),
    #[error("the daemon exited ({status}) before {waiting_for}: {stderr}")]
    Exited {
        status: String,
        waiting_for: String,
        stderr: String,
    },
    #[error("no {0} within {1:?}")]
    Timeout(String, Duration),
}

/// A directory under the system's temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<TempDir, DaemonError> {
        let p = std::env::temp_dir().join(format!("glab-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)
            .map_err(|e| DaemonError::Io(format!("creating {}: {e}", p.display())))?;
        Ok(TempDir(p))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the daemon is started with, besides `run --mode enforce --events --state-dir`.
#[derive(Debug, Clone, Default)]
pub struct DaemonPlan {
    /// `--config` file contents (TOML), if any.
    pub config: Option<String>,
    /// Extra `guardian run` arguments (`--keep-up`, `--xdp`, `--interval-ms`, ...).
    pub args: Vec<String>,
}

pub struct LabDaemon {
    child: Option<Child>,
    dir: TempDir,
    events_path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    events: Vec<Value>,
}

impl LabDaemon {
    /// Starts `nsenter --net=/run/netns/NS <guardian> run --mode enforce ...`.
    pub fn start(exe: &Path, ns: &Netns, plan: &DaemonPlan) -> Result<LabDaemon, DaemonError> {
        let dir = TempDir::new(&format!("daemon-{}", ns.name().trim_start_matches("glab-")))?;
        let io = |what: &str, e: std::io::Error| DaemonError::Io(format!("{what}: {e}"));
        let events_path = dir.path().join("events.ndjson");
        let state = dir.path().join("state");
        let mut cmd = ns.command(exe);
        cmd.args(["run", "--mode", "enforce", "--events"])
            .arg(&events_path)
            .arg("--state-dir")
            .arg(&state);
        if let Some(cfg) = &plan.config {
            let p = dir.path().join("guardian.toml");
            std::fs::write(&p, cfg).map_err(|e| io("writing the daemon's config", e))?;
            cmd.arg("--config").arg(p);
        }
        cmd.args(&plan.args)
            .env("GUARDIAN_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                File::create(dir.path().join("stderr.log"))
                    .map_err(|e| io("creating the daemon's log", e))?,
            );
        let child = cmd.spawn().map_err(|e| io("starting the daemon", e))?;
        Ok(LabDaemon {
            child: Some(child),
            dir,
            events_path,
            offset: 0,
            partial: Vec::new(),
            events: Vec::new(),
        })
    }

    fn refresh(&mut self) {
        let Ok(mut f) = File::open(&self.events_path) else {
            return;
        };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_end(&mut buf).is_err() {
            return;
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                self.events.push(v);
            }
        }
    }

    /// Events so far.
    pub fn events(&mut self) -> &[Value] {
        self.refresh();
        &self.events
    }

    pub fn count(&mut self) -> usize {
        self.events().len()
    }

    fn stderr_tail(&self) -> String {
        let s = std::fs::read(self.dir.path().join("stderr.log")).unwrap_or_default();
        let tail = String::from_utf8_lossy(&s[s.len().saturating_sub(600)..]).into_owned();
        tail.trim().replace('\n', " | ")
    }

    /// The first event at index ≥ `from` matching `pred`, waiting up to `timeout`.
    pub fn wait_for(
        &mut self,
        from: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<(usize, Value), DaemonError> {
        let deadline = Instant::now() + timeout;
        let mut next = from;
        loop {
            self.refresh();
            while next < self.events.len() {
                if pred(&self.events[next]) {
                    return Ok((next, self.events[next].clone()));
                }
                next += 1;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    self.refresh();
                    return Err(DaemonError::Exited {
                        status: st.to_string(),
                        waiting_for: what.to_string(),
                        stderr: self.stderr_tail(),
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(DaemonError::Timeout(what.to_string(), timeout));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then SIGKILL after 10 s; all the events it wrote.
    pub fn stop(&mut self) -> Result<&[Value], DaemonError> {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            let status = loop {
                match c.try_wait() {
                    Ok(Some(st)) => break Some(st),
                    _ if Instant::now() >= deadline => break None,
                    _ => std::thread::sleep(Duration::from_millis(10)),
                }
            };
            match status {
                Some(st) if st.success() => {}
                Some(st) => {
                    return Err(DaemonError::Exited {
                        status: st.to_string(),
                        waiting_for: "a clean stop".into(),
                        stderr: self.stderr_tail(),
                    })
                }
                None => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return Err(DaemonError::Io(
                        "the daemon did not exit within 10 s of SIGTERM".into(),
                    ));
                }
            }
        }
        self.refresh();
        Ok(&self.events)
    }
}

impl Drop for LabDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Event predicates.
pub fn is_fault(e: &Value, fault: &str, state: &str) -> bool {
    e["type"] == "fault" && e["fault"] == fault && e["state"] == state
}

pub fn is_remedy(e: &Value, remedy: &str, result: &str) -> bool {
    e["type"] == "remedy" && e["remedy"] == remedy && e["result"] == result
}

/// An event's `ts` as a system time.
pub fn event_time(e: &Value) -> Option<std::time::SystemTime> {
    let ts = e["ts"].as_str()?;
    let t = chrono::DateTime::parse_from_rfc3339(ts).ok()?;
    Some(t.with_timezone(&chrono::Utc).into())
}

/// Milliseconds from `a` to `b` (negative if `b` is earlier).
pub fn millis(a: std::time::SystemTime, b: std::time::SystemTime) -> f64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs_f64() * 1e3,
        Err(e) => -e.duration().as_secs_f64() * 1e3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_times_and_predicates() {
        let a = json!({"type":"fault","fault":"link_down","state":"opened","ts":"2026-11-22T11:00:00.000000000Z"});
        let b = json!({"type":"remedy","remedy":"link_up","result":"verified","ts":"2026-11-22T11:00:00.012500000Z"});
        assert!(is_fault(&a, "link_down", "opened"));
        assert!(!is_fault(&a, "link_down", "cleared"));
        assert!(is_remedy(&b, "link_up", "verified"));
        let (ta, tb) = (event_time(&a).unwrap(), event_time(&b).unwrap());
        assert!((millis(ta, tb) - 12.5).abs() < 1e-6);
        assert!((millis(tb, ta) + 12.5).abs() < 1e-6);
        assert!(event_time(&json!({"ts": "nope"})).is_none());
    }
}
