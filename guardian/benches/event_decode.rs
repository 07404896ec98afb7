//! Ring buffer records decoded per second on one core (`cargo xtask bench decode` runs this;
//! by hand: `cargo bench -p guardian --bench event_decode -- --secs 1 --rounds 3`).
//!
//! A timed loop rather than criterion: the benchmark must print one JSON line that xtask turns
//! into docs/benchmarks.md, and it needs nothing criterion adds. Three loops over the same 4096
//! records, laid out byte for byte as the kernel writes them, interleaved round by round:
//! - `memcpy`: copy each 64-byte record out (the baseline: touching the bytes at all);
//! - `decode`: `decode::syscall_event` + `decode::observation` (what the consumer does);
//! - `decode_line`: that plus the NDJSON line the daemon writes, serialized the way its writer
//!   thread does: `output::LineWriter` appending to one reused buffer (no allocation per line).
use std::hint::black_box;
use std::time::{Duration, Instant};

use guardian::output::{Body, LineWriter};
use guardian::source::decode;

const RECORDS: usize = 4096;

fn record(i: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&(1 + (i % 2) as u32).to_le_bytes()); // bind conflict / connect
    b.extend_from_slice(&4026531840u32.to_le_bytes()); // netns
    b.extend_from_slice(&(1000 + i as u32).to_le_bytes()); // tgid
    b.extend_from_slice(&(1000 + i as u32).to_le_bytes()); // pid
    b.extend_from_slice(&(-98i32).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes()); // AF_INET
    b.extend_from_slice(&(1024 + (i % 60000) as u16).to_le_bytes());
    b.extend_from_slice(&[
        10,
        77,
        200,
        (i % 250) as u8,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    b.extend_from_slice(b"bench-binder\0\0\0\0");
    b.extend_from_slice(&(i as u64 * 1000).to_le_bytes());
    assert_eq!(
        b.len(),
        std::mem::size_of::<guardian_common::SyscallEvent>()
    );
    b
}

/// Records per second while `f` runs over every record for about `secs`.
fn rate(records: &[Vec<u8>], secs: f64, mut f: impl FnMut(&[u8])) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    // Bounded in time; checked once per pass over the records.
    while start.elapsed() < Duration::from_secs_f64(secs) {
        for r in records {
            f(r);
        }
        n += records.len() as u64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn arg(args: &[String], name: &str, default: f64) -> f64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // cargo bench adds `--bench`; only our two options are read.
    let args: Vec<String> = std::env::args().collect();
    let secs = arg(&args, "--secs", 1.0).clamp(0.05, 10.0);
    let rounds = arg(&args, "--rounds", 3.0).clamp(1.0, 20.0) as usize;
    let records: Vec<Vec<u8>> = (0..RECORDS).map(record).collect();
    let ts = chrono::Utc::now();
    let (mut copy, mut dec, mut line) = (Vec::new(), Vec::new(), Vec::new());
    let mut out = [0u8; 64];
    let lines = LineWriter::new("bench-host");
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    for _ in 0..rounds {
        copy.push(rate(&records, secs, |r| {
            out.copy_from_slice(black_box(r));
            black_box(&out);
        }));
        dec.push(rate(&records, secs, |r| {
            let ev = decode::syscall_event(black_box(r)).expect("record");
            black_box(decode::observation(&ev).expect("kind"));
        }));
        line.push(rate(&records, secs, |r| {
            let ev = decode::syscall_event(black_box(r)).expect("record");
            let obs = decode::observation(&ev).expect("kind");
            buf.clear();
            lines.write(&mut buf, ts, &Body::Observation(obs), None);
            black_box(&buf);
        }));
    }
    println!(
        "{}",
        serde_json::json!({"memcpy": copy, "decode": dec, "decode_line": line, "secs": secs})
    );
}
