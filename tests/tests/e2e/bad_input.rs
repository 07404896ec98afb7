//! Bad input, table-driven: bad CLI arguments, bad configs, bad control-socket requests and a
//! corrupted journal each get one clear sentence and a non-zero status, and change nothing
//! (no events written, nothing attached, the journal byte for byte as it was, the daemon that
//! received a bad request still answering).
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Output};
use std::time::Duration;

use guardian_tests::*;
use serde_json::Value;

fn guardian(args: &[&str]) -> Output {
    Command::new(guardian_bin())
        .args(args)
        .output()
        .expect("run guardian")
}

fn one_sentence(out: &Output, code: i32, needle: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{what}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{what}: {needle:?} not in {stderr}"
    );
    for bad in ["panicked", "backtrace"] {
        assert!(!stderr.contains(bad), "{what}: {bad} in {stderr}");
    }
}

#[test]
fn bad_cli_arguments_and_configs() {
    require_root();
    let tmp = TempDir::new("badin");
    let events = tmp.path().join("events.ndjson");
    let ev = events.to_str().unwrap();
    let cfg = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let wrong_type = cfg("type.toml", "[safety]\nmax_targets = \"many\"\n");
    let out_of_range = cfg("range.toml", "[safety]\nmin_confidence = 3.0\n");
    let unknown = cfg("unknown.toml", "[safety]\nmax_tragets = 4\n");
    let syntax = cfg("syntax.toml", "[safety\n");
    let cases: &[(&[&str], i32, &str)] = &[
        (&["run", "--mode", "bogus", "--events", ev], 2, "bogus"),
        (
            &["run", "--interval-ms", "0", "--events", ev],
            2,
            "interval-ms",
        ),
        (&["run", "--no-such-flag"], 2, "no-such-flag"),
        (&["heal", "link_down"], 2, "SUBJECT"),
        (&["rollback"], 2, "ID"),
        (&["mode", "sideways"], 2, "sideways"),
        (
            &["run", "--config", &wrong_type, "--events", ev],
            78,
            "safety.max_targets",
        ),
        (
            &["run", "--config", &out_of_range, "--events", ev],
            78,
            "safety.min_confidence",
        ),
        (
            &["run", "--config", &unknown, "--events", ev],
            78,
            "max_tragets",
        ),
        (
            &["run", "--config", &syntax, "--events", ev],
            78,
            "syntax.toml",
        ),
        (
            &["replay", "/nonexistent/record.ndjson"],
            65,
            "/nonexistent/record.ndjson",
        ),
    ];
    for (args, code, needle) in cases {
        let out = guardian(args);
        one_sentence(&out, *code, needle, &format!("guardian {}", args.join(" ")));
    }
    assert!(!events.exists(), "a refused run wrote events");
}

/// One request line on the socket; the response line as JSON.
fn ask(socket: &std::path::Path, line: &[u8]) -> Value {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(line);
    let _ = s.write_all(b"\n");
    let mut resp = String::new();
    BufReader::new(s)
        .read_line(&mut resp)
        .expect("a response line");
    serde_json::from_str(&resp).unwrap_or_else(|e| panic!("{e}: {resp}"))
}

#[test]
fn bad_socket_requests_get_an_error_line_and_change_nothing() {
    require_root();
    let a = Netns::new("badreq-a");
    let b = Netns::new("badreq-b");
    let v = pair(&a, &b, 224);
    let tmp = TempDir::new("badreq");
    let socket = tmp.path().join("g.sock");
    let state = tmp.path().join("state");
    let mut d = Daemon::start(
        &a,
        &[
            "--socket",
            socket.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--keep-up",
            &v.a_if,
        ],
    );
    d.wait_attached();
    let big = vec![b'x'; 70 * 1024];
    let cases: &[(&str, &[u8])] = &[
        ("not JSON", b"hello"),
        ("empty", b""),
        ("wrong version", br#"{"v":2,"cmd":"status"}"#),
        ("unknown command", br#"{"v":1,"cmd":"reboot"}"#),
        ("missing fields", br#"{"v":1,"cmd":"heal"}"#),
        (
            "heal of nothing open",
            br#"{"v":1,"cmd":"heal","fault":"link_down","subject":"nosuch0"}"#,
        ),
        ("unknown mode", br#"{"v":1,"cmd":"mode","mode":"sideways"}"#),
        (
            "unknown rollback id",
            br#"{"v":1,"cmd":"rollback","id":"0000000000000000-0000"}"#,
        ),
        ("oversized", &big),
    ];
    let before = d.count();
    for (what, line) in cases {
        let r = ask(&socket, line);
        assert_eq!(r["ok"], false, "{what}: {r}");
        let e = r["error"].as_str().unwrap_or_default();
        assert!(!e.is_empty() && !e.contains('\n'), "{what}: {r}");
        eprintln!("{what}: {e}");
    }
    // Still answering, still observing, and nothing was acted on.
    let s = ask(&socket, br#"{"v":1,"cmd":"status"}"#);
    assert_eq!(s["ok"], true, "{s}");
    let events = d.finish();
    assert!(
        !events[before..].iter().any(|e| is_type(e, "remedy")),
        "a bad request led to a remedy event"
    );
    assert!(
        !state.join("journal.ndjson").exists(),
        "a bad request wrote the journal"
    );
}

#[test]
fn a_corrupted_journal_does_not_disable_rollback() {
    // Issue 14: one torn or forged line used to disable recovery and `rollback` entirely.
    // Now such lines are skipped and reported, and the rest of the journal still counts
    // (attacks_journal.rs starts the daemon on one).
    require_root();
    let tmp = TempDir::new("badjr");
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let journal = state.join("journal.ndjson");
    let corrupt = b"{\"id\":\"x\",\"phase\":\"intent\"\nnot json at all\n".to_vec();
    std::fs::write(&journal, &corrupt).unwrap();
    let out = guardian(&["rollback", "--all", "--state-dir", state.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout.contains("skipped journal line 1: no journal key"),
        "{stdout}"
    );
    assert!(stdout.contains("skipped journal line 2"), "{stdout}");
    assert!(stdout.contains("nothing to roll back"), "{stdout}");
    assert_eq!(std::fs::read(&journal).unwrap(), corrupt, "journal changed");
}
