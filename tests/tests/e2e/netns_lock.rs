//! One guardian per network namespace: a second `guardian run` there, with its own `--socket`
//! and `--state-dir`, in enforce or observe mode, is refused (exit 75, one sentence naming the
//! first one's pid) before it attaches anything; the first keeps running with every program
//! and link it held; once it stops, a new one starts.
use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use guardian_tests::*;

/// The BPF links and programs a process holds (ids from /proc/PID/fdinfo).
fn held(pid: u32) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .expect("fdinfo")
        .flatten()
    {
        let info = std::fs::read_to_string(e.path()).unwrap_or_default();
        for k in ["link_id:", "prog_id:"] {
            if let Some(v) = info.lines().find_map(|l| l.strip_prefix(k)) {
                out.insert(format!("{k}{}", v.trim()));
                break;
            }
        }
    }
    out
}

fn link_exists(id: &str) -> bool {
    Command::new("bpftool")
        .args(["link", "show", "id", id])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `guardian run` in `ns` with its own socket, state directory and events file.
fn second(ns: &Netns, dir: &TempDir, tag: &str, mode: &str) -> (Output, std::path::PathBuf) {
    let events = dir.path().join(format!("{tag}.ndjson"));
    let out = Command::new("timeout")
        .arg("30")
        .arg("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .arg("--")
        .arg(guardian_bin())
        .args(["run", "--mode", mode, "--events"])
        .arg(&events)
        .arg("--socket")
        .arg(dir.path().join(format!("{tag}.sock")))
        .arg("--state-dir")
        .arg(dir.path().join(format!("{tag}-state")))
        .stdin(Stdio::null())
        .output()
        .expect("run the second guardian");
    (out, events)
}

#[test]
fn a_second_daemon_in_one_namespace_is_refused_and_the_first_keeps_everything() {
    require_root();
    let a = Netns::new("lock-a");
    let b = Netns::new("lock-b");
    let v = pair(&a, &b, 231);
    let dir = TempDir::new("lock");
    let sock = dir.path().join("first.sock");
    let state = dir.path().join("first-state");
    let first_args = [
        "--mode",
        "enforce",
        "--xdp",
        &v.a_if,
        "--socket",
        sock.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--interval-ms",
        "200",
    ];
    let mut d = Daemon::start(&a, &first_args);
    d.wait_attached();
    let pid = d.pid().unwrap();
    let before = held(pid);
    assert!(
        before.iter().any(|h| h.starts_with("link_id:")),
        "the first daemon holds links: {before:?}"
    );
    let sentence =
        format!("guardian: another guardian (pid {pid}) already runs in this network namespace");
    for (tag, mode) in [("enforcer", "enforce"), ("observer", "observe")] {
        let (out, events) = second(&a, &dir, tag, mode);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(75), "{tag}: {stderr}");
        assert!(stderr.starts_with(&sentence), "{tag}: {stderr}");
        assert!(
            stderr.contains(&format!("(netns {}, lock /run/guardian/netns-", a.inode())),
            "{tag}: {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{tag}: {stderr}");
        assert!(
            std::fs::read(&events).map_or(true, |b| b.is_empty()),
            "{tag}: no event, nothing attached"
        );
        assert!(
            !dir.path().join(format!("{tag}.sock")).exists(),
            "{tag}: no control socket"
        );
    }
    // doctor in that namespace names the running one.
    let doc = Command::new("nsenter")
        .arg(format!("--net={}", a.path().display()))
        .arg("--")
        .arg(guardian_bin())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&doc.stdout).expect("doctor json");
    let lock = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "netns_lock")
        .expect("netns_lock check")
        .clone();
    assert_eq!(lock["status"], "warn", "{lock}");
    assert!(
        lock["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("guardian pid {pid} runs")),
        "{lock}"
    );
    // The first one is untouched: running, the same programs and links, all still in the
    // kernel, and still counting.
    assert!(d.exited().is_none(), "the first daemon still runs");
    assert_eq!(held(pid), before, "the first daemon's programs and links");
    for l in before.iter().filter_map(|h| h.strip_prefix("link_id:")) {
        assert!(link_exists(l), "link {l} still attached");
    }
    let n = d.count();
    d.wait_for_after(n, |e| is_type(e, "counters"), Duration::from_secs(5));
    let lock_file = format!("/run/guardian/netns-{}.lock", a.inode());
    assert_eq!(
        std::fs::read_to_string(&lock_file).unwrap().trim(),
        pid.to_string()
    );
    d.finish();
    assert!(
        !std::path::Path::new(&lock_file).exists(),
        "the lock file goes with its daemon"
    );
    // Free again: a new daemon (observe, other paths) starts.
    let mut again = Daemon::start(
        &a,
        &["--state-dir", dir.path().join("again").to_str().unwrap()],
    );
    again.wait_attached();
    again.finish();
}
