//! `guardian replay FILE`: runs the detectors over a record file offline and prints the
//! `fault` events they would have emitted. Time comes from the file, incident ids from a
//! counter: the same input gives the same output, byte for byte.
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::faults;
use crate::faults::incidents::{fault_body, Ids, Incidents};
use crate::output::to_line;
use crate::record;

/// Writes the fault events for `path` to `out`; returns how many.
pub fn replay(path: &Path, out: &mut impl Write) -> anyhow::Result<usize> {
    let (header, entries) = record::read(path)?;
    run(header, entries, out)
}

/// The same over a record held in memory (used by the fuzz target).
pub fn replay_bytes(bytes: &[u8], out: &mut impl Write) -> anyhow::Result<usize> {
    let (header, entries) = record::read_from(bytes, "<memory>")?;
    run(header, entries, out)
}

fn run(
    header: record::Header,
    entries: Vec<record::Entry>,
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let mut detectors = faults::all(&header.detect, &header.baseline);
    let mut incidents = Incidents::new(Ids::Sequence(0));
    let t0 = Instant::now();
    let mut n = 0;
    for e in entries {
        let now = t0 + Duration::from_micros(e.t_us);
        let ts = header.start + chrono::Duration::microseconds(e.t_us as i64);
        for f in faults::observe_all(&mut detectors, &e.input, now) {
            if let Some(id) = incidents.track(&f, now) {
                let body = fault_body(&f, &id, header.netns);
                writeln!(out, "{}", to_line(&header.host, ts, &body))?;
                n += 1;
            }
        }
    }
    out.flush()?;
    Ok(n)
}
