//! The writer: one thread that owns the sinks (stdout and/or the rotated file) and writes
//! what the [`Emitter`]s queue, batched. A thread rather than a task: file writes and
//! rotation are blocking calls, and a slow disk must not stall the runtime's workers.
//!
//! With a file sink, guardian's own record of what it did (`lifecycle` events, and `remedy`
//! events of changes: not those of report-only remedies, nor `planned`, nor `skipped` unless
//! critical) is also written to its own rotated file ([`retained_path`]: `events.ndjson` →
//! `events.remedies.ndjson`). Outsiders cannot fill it: observations, fault events and
//! reports (anyone can fail binds, and open a `port_conflict` per port) rotate the main file
//! only, and changes are bounded by the budgets (docs/security.md, "Event volume").
//!
//! The writer also reports what the bounded queue shed ([`crate::shed`]): after each batch,
//! a `loss` event with source `queue` when the count grew, written like any other line.
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::rotate::RotatingFile;
use super::{Body, Emitter, Loss, TAP_CAPACITY};
use crate::model::LossSource;
use crate::shed::Depth;

/// `[sinks]` in the config file: where events go. Both sinks may be on at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sinks {
    /// Events on stdout. Unset: on unless `file` is set.
    pub stdout: Option<bool>,
    /// Append events to this file (NDJSON), rotated by size; reopened on SIGUSR1.
    pub file: Option<PathBuf>,
    /// Rotate `file` before a write would make it larger than this (0: never rotate).
    pub max_bytes: u64,
    /// Rotated files kept: `file.1` (newest) … `file.<keep>`.
    pub keep: u32,
    /// `observation` events written per second per (namespace, kind, port); the rest are
    /// counted in `loss` events with source `throttle` (0: no limit).
    pub observations_per_sec: u32,
}

impl Default for Sinks {
    fn default() -> Self {
        Sinks {
            stdout: None,
            file: None,
            max_bytes: 100 << 20,
            keep: 5,
            observations_per_sec: 100,
        }
    }
}

impl Sinks {
    /// Whether events go to stdout.
    pub fn stdout_on(&self) -> bool {
        self.stdout.unwrap_or(self.file.is_none())
    }
}

/// An event on its way to the writer, which serializes it.
pub(super) struct Event {
    pub ts: chrono::DateTime<chrono::Utc>,
    pub body: Body,
    pub owner: Option<Arc<crate::owner::Owner>>,
    /// Whether it also goes to the retained file.
    pub retained: bool,
    /// Whether a live subscriber was listening when it was emitted.
    pub tap: bool,
}

// Not boxed: a box is the per-line allocation the writer exists to avoid. The queue's slots
// are this size (about 340 bytes; the channel allocates them 32 at a time).
#[allow(clippy::large_enum_variant)]
pub(super) enum Msg {
    Event(Event),
    Reopen,
}

/// Remedies that only report (their events follow outsiders' activity, not budgets).
const REPORT_ONLY: &[&str] = &["report_holder"];

/// Whether an event is one of guardian's own record (kept in the retained file).
pub(super) fn retained(body: &Body) -> bool {
    use super::RemedyResult::{Planned, Skipped};
    match body {
        Body::Lifecycle(_) => true,
        Body::Remedy(r) => {
            !REPORT_ONLY.contains(&r.remedy.as_str())
                && (!matches!(r.result, Planned | Skipped) || r.severity.is_some())
        }
        _ => false,
    }
}

/// The retained file next to the events file: `events.ndjson` → `events.remedies.ndjson`,
/// `events` → `events.remedies`.
pub fn retained_path(file: &std::path::Path) -> PathBuf {
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    let name = match file.extension() {
        Some(ext) => format!("{stem}.remedies.{}", ext.to_string_lossy()),
        None => format!("{stem}.remedies"),
    };
    file.with_file_name(name)
}

/// The writer side: owns the sinks. `run` ends when every [`Emitter`] has been dropped.
pub struct Writer {
    rx: mpsc::UnboundedReceiver<Msg>,
    stdout: bool,
    file: Option<RotatingFile>,
    /// Lifecycle, fault and remedy events only.
    retained: Option<RotatingFile>,
    queue: Arc<Depth>,
    /// Shed lines already reported in a `loss` event.
    reported: u64,
    lines: super::LineWriter,
    tap: tokio::sync::broadcast::Sender<Arc<str>>,
}

/// Stdout (`None`) or only the file, not rotated: the sinks before `[sinks]` existed.
pub async fn open(path: Option<&std::path::Path>, host: String) -> io::Result<(Emitter, Writer)> {
    let sinks = Sinks {
        file: path.map(|p| p.to_path_buf()),
        max_bytes: 0,
        ..Sinks::default()
    };
    open_sinks(&sinks, host)
}

/// Opens the sinks `[sinks]` names (the file is created if missing, appended to otherwise).
pub fn open_sinks(sinks: &Sinks, host: String) -> io::Result<(Emitter, Writer)> {
    let open = |p: &std::path::Path| {
        RotatingFile::open(p, sinks.max_bytes, sinks.keep)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
    };
    let (file, retained) = match &sinks.file {
        Some(p) => (Some(open(p)?), Some(open(&retained_path(p))?)),
        None => (None, None),
    };
    let (e, mut w) = with_queue(sinks, file, host, Depth::with_limit(super::SHED_AT));
    w.retained = retained;
    Ok((e, w))
}

fn with_queue(
    sinks: &Sinks,
    file: Option<RotatingFile>,
    host: String,
    depth: Depth,
) -> (Emitter, Writer) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (tap, _) = tokio::sync::broadcast::channel(TAP_CAPACITY);
    let host: Arc<str> = host.into();
    let queue = Arc::new(depth);
    (
        Emitter {
            host: host.clone(),
            tx,
            tap: tap.clone(),
            queue: queue.clone(),
            owners: None,
        },
        Writer {
            rx,
            stdout: sinks.stdout_on(),
            file,
            retained: None,
            queue,
            reported: 0,
            lines: super::LineWriter::new(&host),
            tap,
        },
    )
}

impl Writer {
    /// Writes until every emitter is gone; the first write error ends it.
    pub async fn run(self) -> io::Result<()> {
        tokio::task::spawn_blocking(move || self.run_blocking())
            .await
            .map_err(io::Error::other)?
    }

    fn run_blocking(mut self) -> io::Result<()> {
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut kept = Vec::new();
        while let Some(msg) = self.rx.blocking_recv() {
            let mut reopen = self.take(msg, &mut buf, &mut kept);
            // Batch whatever else is already queued into one write.
            while !reopen && buf.len() < 1 << 20 {
                match self.rx.try_recv() {
                    Ok(msg) => reopen = self.take(msg, &mut buf, &mut kept),
                    Err(_) => break,
                }
            }
            self.report_shed(&mut buf);
            self.write(&buf)?;
            buf.clear();
            if let Some(f) = self.retained.as_mut().filter(|_| !kept.is_empty()) {
                f.write_lines(&kept)?;
            }
            kept.clear();
            if reopen {
                for f in self.file.iter_mut().chain(self.retained.iter_mut()) {
                    f.reopen()?;
                    tracing::info!(file = %f.path().display(), "reopened the events file");
                }
            }
        }
        // Lines shed after the last batch (the queue is empty now, so nothing more will be).
        self.report_shed(&mut buf);
        self.write(&buf)
    }

    /// Appends a `loss` line (source `queue`) to `buf` if more lines were shed since the last.
    fn report_shed(&mut self, buf: &mut Vec<u8>) {
        let total = self.queue.shed();
        if total <= self.reported {
            return;
        }
        let body = Body::Loss(Loss {
            source: LossSource::Queue,
            lost: total - self.reported,
            total,
        });
        self.reported = total;
        super::count::count(&body);
        let at = buf.len();
        self.lines.write(buf, chrono::Utc::now(), &body, None);
        self.tap_line(&buf[at..]);
        buf.push(b'\n');
    }

    /// Hands a line to the live subscribers (the one allocation a line costs, and only while
    /// someone listens).
    fn tap_line(&self, line: &[u8]) {
        if self.tap.receiver_count() > 0 {
            // Only JSON (UTF-8) is written.
            if let Ok(s) = std::str::from_utf8(line) {
                let _ = self.tap.send(s.into());
            }
        }
    }

    /// Serializes an event into `buf` (and copies it to `kept` when it is retained); true for
    /// a reopen request.
    fn take(&self, msg: Msg, buf: &mut Vec<u8>, kept: &mut Vec<u8>) -> bool {
        match msg {
            Msg::Event(e) => {
                self.queue.taken(1);
                let at = buf.len();
                self.lines.write(buf, e.ts, &e.body, e.owner.as_deref());
                if e.tap {
                    self.tap_line(&buf[at..]);
                }
                if e.retained && self.retained.is_some() {
                    kept.extend_from_slice(&buf[at..]);
                    kept.push(b'\n');
                }
                buf.push(b'\n');
                false
            }
            Msg::Reopen => true,
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if self.stdout {
            let mut out = io::stdout().lock();
            out.write_all(buf)?;
            out.flush()?;
        }
        if let Some(f) = self.file.as_mut() {
            f.write_lines(buf)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Counters, Observation};

    #[test]
    fn stdout_defaults_on_only_without_a_file() {
        let mut s = Sinks::default();
        assert!(s.stdout_on());
        s.file = Some("/x".into());
        assert!(!s.stdout_on());
        s.stdout = Some(true);
        assert!(s.stdout_on());
    }

    #[test]
    fn the_retained_file_sits_next_to_the_events_file() {
        let p = |s: &str| retained_path(std::path::Path::new(s));
        assert_eq!(
            p("/var/log/guardian/events.ndjson"),
            PathBuf::from("/var/log/guardian/events.remedies.ndjson")
        );
        assert_eq!(p("ev"), PathBuf::from("ev.remedies"));
    }

    #[tokio::test]
    async fn an_observation_flood_rotates_the_events_file_but_not_the_remedies() {
        let dir = std::env::temp_dir().join(format!("guardian-keep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.ndjson");
        let sinks = Sinks {
            file: Some(path.clone()),
            max_bytes: 4096,
            keep: 1,
            ..Default::default()
        };
        let (e, w) = open_sinks(&sinks, "h".into()).unwrap();
        let writer = tokio::spawn(w.run());
        e.emit(Body::Lifecycle(super::super::Lifecycle {
            phase: super::super::Phase::Started,
            netns: 1,
            version: "0",
            mode: crate::model::Mode::Enforce,
            detail: None,
        }));
        for i in 0..2000 {
            e.emit(observation(i));
            if i % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
        drop(e);
        writer.await.unwrap().unwrap();
        let main = std::fs::read_to_string(&path).unwrap();
        assert!(
            !main.contains("\"lifecycle\""),
            "rotated out of the events file"
        );
        let kept = std::fs::read_to_string(retained_path(&path)).unwrap();
        assert_eq!(kept.lines().count(), 1, "{kept}");
        assert!(kept.contains("\"phase\":\"started\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn observation(i: u32) -> Body {
        Body::Observation(Observation::bind_conflict(1, 80, i))
    }

    #[tokio::test]
    async fn a_full_queue_sheds_observations_only_and_reports_them_as_queue_loss() {
        let path =
            std::env::temp_dir().join(format!("guardian-shed-{}.ndjson", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let sinks = Sinks {
            file: Some(path.clone()),
            max_bytes: 0,
            ..Default::default()
        };
        let file = RotatingFile::open(&path, 0, 1).unwrap();
        let (e, w) = with_queue(&sinks, Some(file), "h".into(), Depth::with_limit(4));
        // The writer is not running yet: everything queues.
        for i in 0..10 {
            e.emit(observation(i));
        }
        e.emit(Body::Counters(Counters {
            netns: 1,
            ..Default::default()
        }));
        e.emit(observation(10));
        drop(e);
        w.run().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let types: Vec<&str> = lines.iter().map(|v| v["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "observation",
                "observation",
                "observation",
                "observation",
                "counters",
                "loss"
            ]
        );
        // The first four, in order; 7 shed (6 before the counters event, 1 after).
        let pids: Vec<u64> = lines[..4]
            .iter()
            .map(|v| v["pid"].as_u64().unwrap())
            .collect();
        assert_eq!(pids, [0, 1, 2, 3]);
        assert_eq!(lines[5]["source"], "queue");
        assert_eq!(
            (lines[5]["lost"].as_u64(), lines[5]["total"].as_u64()),
            (Some(7), Some(7))
        );
    }
}
