//! The writer: one thread that owns the sinks (stdout and/or the rotated file) and writes
//! what the [`Emitter`]s queue, batched. A thread rather than a task: file writes and
//! rotation are blocking calls, and a slow disk must not stall the runtime's workers.
use std::io::{self, Write};

use tokio::sync::mpsc;

use super::rotate::RotatingFile;
use super::{Emitter, TAP_CAPACITY};
use crate::config::Sinks;

pub(super) enum Msg {
    Line(String),
    Reopen,
}

/// The writer side: owns the sinks. `run` ends when every [`Emitter`] has been dropped.
pub struct Writer {
    rx: mpsc::UnboundedReceiver<Msg>,
    stdout: bool,
    file: Option<RotatingFile>,
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
    let file = match &sinks.file {
        Some(p) => Some(
            RotatingFile::open(p, sinks.max_bytes, sinks.keep)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?,
        ),
        None => None,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let (tap, _) = tokio::sync::broadcast::channel(TAP_CAPACITY);
    Ok((
        Emitter {
            host: host.into(),
            tx,
            tap,
        },
        Writer {
            rx,
            stdout: sinks.stdout_on(),
            file,
        },
    ))
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
        while let Some(msg) = self.rx.blocking_recv() {
            let mut reopen = self.take(msg, &mut buf);
            // Batch whatever else is already queued into one write.
            while !reopen && buf.len() < 1 << 20 {
                match self.rx.try_recv() {
                    Ok(msg) => reopen = self.take(msg, &mut buf),
                    Err(_) => break,
                }
            }
            self.write(&buf)?;
            buf.clear();
            if reopen {
                if let Some(f) = self.file.as_mut() {
                    f.reopen()?;
                    tracing::info!(file = %f.path().display(), "reopened the events file");
                }
            }
        }
        Ok(())
    }

    /// Appends a line to `buf`; true for a reopen request.
    fn take(&self, msg: Msg, buf: &mut Vec<u8>) -> bool {
        match msg {
            Msg::Line(line) => {
                buf.extend_from_slice(line.as_bytes());
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
