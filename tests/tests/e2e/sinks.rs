//! Event sinks: the file and stdout at once, and the file moved away then reopened on SIGUSR1
//! (logrotate's `postrotate kill -USR1`) with nothing lost across the move.
use std::time::Duration;

use guardian_tests::*;

fn lines_of(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends mid-line",
        path.display()
    );
    text.lines().map(str::to_owned).collect()
}

#[test]
fn sigusr1_reopens_a_moved_file_and_nothing_is_lost() {
    require_root();
    let a = Netns::new("sinks");
    let cfg_dir = TempDir::new("sinks-cfg");
    let cfg = cfg_dir.path().join("guardian.toml");
    // Both sinks: stdout is the reference every line must also reach.
    std::fs::write(&cfg, "[sinks]\nstdout = true\n").unwrap();
    let _churn = churn(&a);
    let mut d = Daemon::start(
        &a,
        &["--config", cfg.to_str().unwrap(), "--interval-ms", "20"],
    );
    d.wait_attached();
    let events = d.events_path().to_path_buf();
    let old = events.with_file_name("events.old");
    // Counters events (every 20 ms when something changed) flow while the file moves.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::rename(&events, &old).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !events.exists(),
        "nothing recreates the file before SIGUSR1"
    );
    let pid = d.pid().unwrap() as libc::pid_t;
    // SAFETY: kill(2) on our own running child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    let fresh = poll(Duration::from_secs(5), Duration::from_millis(10), || {
        lines_of(&events).first().cloned()
    })
    .expect("a new events file written after SIGUSR1");
    assert!(fresh.contains("\"type\""), "{fresh}");
    std::thread::sleep(Duration::from_millis(300));
    d.stop();

    let moved = lines_of(&old);
    let new = lines_of(&events);
    let stdout = lines_of(&d.dir().join("stdout.log"));
    eprintln!(
        "moved file: {} lines, new file: {} lines, stdout: {} lines",
        moved.len(),
        new.len(),
        stdout.len()
    );
    // started + attached (+ counters) before the move; counters, stopping, detached after.
    assert!(moved.len() >= 10 && new.len() >= 10, "both files got lines");
    let mut both = moved.clone();
    both.extend(new.iter().cloned());
    assert_eq!(both.len(), stdout.len(), "line counts: file+file vs stdout");
    assert!(
        both == stdout,
        "the two files, concatenated, are exactly what stdout got"
    );
    validate_lines(&both).unwrap();
    let phases: Vec<_> = both
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| is_type(e, "lifecycle"))
        .map(|e| e["phase"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(phases, ["started", "attached", "stopping", "detached"]);
}

#[test]
fn the_file_rotates_by_size_and_keeps_n() {
    require_root();
    let a = Netns::new("sinks-rot");
    let cfg_dir = TempDir::new("sinks-rot-cfg");
    let cfg = cfg_dir.path().join("guardian.toml");
    std::fs::write(&cfg, "[sinks]\nmax_bytes = 8192\nkeep = 2\nstdout = true\n").unwrap();
    let _churn = churn(&a);
    let mut d = Daemon::start(
        &a,
        &["--config", cfg.to_str().unwrap(), "--interval-ms", "10"],
    );
    d.wait_attached();
    let events = d.events_path().to_path_buf();
    let rotated = |n: u32| {
        let mut s = events.as_os_str().to_owned();
        s.push(format!(".{n}"));
        std::path::PathBuf::from(s)
    };
    // Enough counters events to rotate at least three times (keep = 2: the oldest is dropped).
    poll(Duration::from_secs(30), Duration::from_millis(50), || {
        let stdout = std::fs::metadata(d.dir().join("stdout.log")).ok()?.len();
        (stdout > 4 * 8192).then_some(())
    })
    .expect("32 KiB of events within 30 s");
    d.stop();
    assert!(!rotated(3).exists(), "keep = 2");
    let files = [rotated(2), rotated(1), events.clone()];
    let mut all = Vec::new();
    for f in &files {
        let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        assert!(len <= 8192, "{} is {len} bytes", f.display());
        all.extend(lines_of(f));
    }
    assert!(
        std::fs::metadata(rotated(2)).unwrap().len() > 4096,
        "rotated files are nearly full"
    );
    let stdout = lines_of(&d.dir().join("stdout.log"));
    assert!(
        stdout.ends_with(&all),
        "the kept files are the newest lines, in order, unsplit"
    );
    validate_lines(&all).unwrap();
}
