//! `guardian replay`: every recorded fixture (guardian/src/faults/<fault>/replay.record.ndjson)
//! gives exactly its expected fault events, byte for byte, every time. The fixtures were recorded from real runs
//! (`guardian run --record FILE`) of the fault scenarios.
use std::path::PathBuf;
use std::process::Command;

use guardian_tests::*;

/// The fixtures of every fault folder: `replay.record.ndjson` next to `replay.expected.ndjson`.
fn fixtures() -> Vec<(PathBuf, PathBuf)> {
    let dir = workspace_root().join("guardian/src/faults");
    let mut out: Vec<(PathBuf, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path().join("replay.record.ndjson"))
        .filter(|p| p.is_file())
        .map(|rec| {
            let exp = PathBuf::from(
                rec.to_string_lossy()
                    .replace(".record.ndjson", ".expected.ndjson"),
            );
            (rec, exp)
        })
        .collect();
    out.sort();
    out
}

fn replay(rec: &PathBuf) -> Vec<u8> {
    let out = Command::new(guardian_bin())
        .arg("replay")
        .arg(rec)
        .output()
        .expect("run guardian replay");
    assert!(
        out.status.success(),
        "replay {}: {}",
        rec.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn replay_is_deterministic_and_matches_the_fixtures() {
    let fx = fixtures();
    assert!(!fx.is_empty(), "no replay fixtures");
    let mut faults = std::collections::BTreeSet::new();
    for (rec, exp) in &fx {
        let expected = std::fs::read(exp).unwrap_or_else(|e| panic!("{}: {e}", exp.display()));
        let first = replay(rec);
        let second = replay(rec);
        assert_eq!(first, second, "{}: two replays differ", rec.display());
        assert_eq!(
            String::from_utf8_lossy(&first),
            String::from_utf8_lossy(&expected),
            "{}: output differs from {}",
            rec.display(),
            exp.display()
        );
        let lines = String::from_utf8(first).unwrap();
        validate_lines(&lines.lines().map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("{}: {e}", rec.display()));
        for l in lines.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            faults.insert(v["fault"].as_str().unwrap_or_default().to_owned());
        }
    }
    eprintln!("replayed {} fixtures covering faults {faults:?}", fx.len());
}

#[test]
fn replay_refuses_a_corrupt_file_with_the_line_number() {
    let tmp = TempDir::new("replay-bad");
    let bad = tmp.path().join("bad.record.ndjson");
    let (rec, _) = &fixtures()[0];
    let mut text = std::fs::read_to_string(rec).unwrap();
    text.push_str("{\"t_us\": 1, \"input\": {\"input\": \"nonsense\"}}\n");
    std::fs::write(&bad, &text).unwrap();
    let out = Command::new(guardian_bin())
        .arg("replay")
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    let line = text.lines().count();
    assert!(stderr.contains(&format!(":{line}:")), "{stderr}");
    assert!(out.stdout.is_empty());
}
