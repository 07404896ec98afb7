//! Record files: what `guardian run --record FILE` consumed, for `guardian replay FILE`.
//!
//! Line 1 is a [`Header`] (host, namespace, wall-clock start, detector configuration and
//! baseline); every other line is an [`Entry`]: microseconds since the start and one [`Input`].
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::faults::{Baseline, DetectConfig};
use crate::input::Input;

pub const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub record: u32,
    pub host: String,
    pub netns: u32,
    pub start: DateTime<Utc>,
    pub detect: DetectConfig,
    pub baseline: Baseline,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub t_us: u64,
    pub input: Input,
}

pub struct Recorder {
    out: BufWriter<File>,
    start: Instant,
}

impl Recorder {
    pub fn create(
        path: &Path,
        host: &str,
        netns: u32,
        detect: &DetectConfig,
        baseline: &Baseline,
    ) -> std::io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        let header = Header {
            record: RECORD_VERSION,
            host: host.to_string(),
            netns,
            start: Utc::now(),
            detect: detect.clone(),
            baseline: baseline.clone(),
        };
        serde_json::to_writer(&mut out, &header)?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(Self {
            out,
            start: Instant::now(),
        })
    }

    pub fn write(&mut self, now: Instant, input: &Input) -> std::io::Result<()> {
        let entry = Entry {
            t_us: now.saturating_duration_since(self.start).as_micros() as u64,
            input: input.clone(),
        };
        serde_json::to_writer(&mut self.out, &entry)?;
        self.out.write_all(b"\n")?;
        // One line per input is small; flushing keeps the file useful after a crash.
        self.out.flush()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is empty: a record file starts with a header line")]
    Empty { path: String },
    #[error("{path}:{line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    #[error(
        "{path}: record version {found} is not supported (this guardian reads {RECORD_VERSION})"
    )]
    Version { path: String, found: u32 },
}

/// Reads a whole record file, validating every line.
pub fn read(path: &Path) -> Result<(Header, Vec<Entry>), ReadError> {
    let p = path.display().to_string();
    let file = File::open(path).map_err(|source| ReadError::Io {
        path: p.clone(),
        source,
    })?;
    read_from(BufReader::new(file), &p)
}

/// Reads a record from any reader; `name` is what errors call it.
pub fn read_from(r: impl BufRead, name: &str) -> Result<(Header, Vec<Entry>), ReadError> {
    let p = name.to_string();
    let io = |source| ReadError::Io {
        path: p.clone(),
        source,
    };
    let mut lines = r.lines();
    let first = lines
        .next()
        .ok_or_else(|| ReadError::Empty { path: p.clone() })?
        .map_err(io)?;
    let header: Header = serde_json::from_str(&first).map_err(|e| ReadError::Line {
        path: p.clone(),
        line: 1,
        reason: format!("bad header: {e}"),
    })?;
    if header.record != RECORD_VERSION {
        return Err(ReadError::Version {
            path: p,
            found: header.record,
        });
    }
    let mut entries = Vec::new();
    for (i, line) in lines.enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        entries.push(
            serde_json::from_str::<Entry>(&line).map_err(|e| ReadError::Line {
                path: p.clone(),
                line: i + 2,
                reason: e.to_string(),
            })?,
        );
    }
    Ok((header, entries))
}
