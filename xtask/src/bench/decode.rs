//! Event path, userspace side: ring buffer records decoded per second on one core, by the
//! daemon's own decoder, against copying the same bytes. The loop is guardian's bench target
//! `guardian/benches/event_decode.rs`, built with the release profile by `cargo bench`.
use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::report::{Measured, Table};
use super::stats::{median, spread};
use super::Ctx;
use crate::cmd;

/// Records per second per core, decoded and written as a line (millions).
const GOAL_M_PER_S: f64 = 3.0;

pub fn run(ctx: &Ctx) -> Result<Measured> {
    let (secs, rounds) = if ctx.quick { ("0.3", "3") } else { ("1", "5") };
    let mut bench = cmd::cargo(["bench", "--package", "guardian", "--bench", "event_decode"]);
    bench
        .args(["--", "--secs", secs, "--rounds", rounds])
        .current_dir(cmd::repo_root()?);
    eprintln!("  {}", cmd::display(&bench));
    let out = cmd::stdout(&mut bench)?;
    let last = out.lines().last().context("event_decode printed nothing")?;
    let v: Value = serde_json::from_str(last).context("event_decode printed no JSON")?;
    let samples = |k: &str| -> Vec<f64> {
        v[k].as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let (copy, dec, line) = (samples("memcpy"), samples("decode"), samples("decode_line"));
    let mut t = Table::new(
        &format!(
            "One core, 4096 distinct 64-byte records, {rounds} rounds of {secs} s per loop, \
             interleaved"
        ),
        &[
            "loop",
            "median records/s (spread, millions)",
            "ns/record",
            "× memcpy time",
        ],
    );
    let base_ns = 1e9 / median(&copy);
    for (label, xs) in [
        ("memcpy of the record (baseline)", &copy),
        ("decode: record → observation", &dec),
        ("decode + NDJSON line (what the daemon writes)", &line),
    ] {
        let m: Vec<f64> = xs.iter().map(|x| x / 1e6).collect();
        let ns = 1e9 / median(xs);
        t.row(&[
            label.to_string(),
            format!("{:.2} ({})", median(&m), spread(&m, 2)),
            format!("{ns:.1}"),
            format!("{:.1}×", ns / base_ns),
        ]);
    }
    let per_core = median(&line) / 1e6;
    Ok(Measured {
        tables: vec![t],
        goals: vec![(
            format!(
                "decode + NDJSON line ≥ {GOAL_M_PER_S} M records/s per core (measured {per_core:.2} M)"
            ),
            per_core >= GOAL_M_PER_S,
        )],
        headline: vec![(
            "Ring buffer records decoded per second per core (decode / decode + NDJSON line)"
                .into(),
            format!("{:.1} M / {:.2} M", median(&dec) / 1e6, median(&line) / 1e6),
        )],
        raw: json!({"memcpy": copy, "decode": dec, "decode_line": line}),
        ..Default::default()
    })
}
