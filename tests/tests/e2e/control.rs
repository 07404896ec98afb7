//! The control socket: status and health, permissions and peer credentials, mode switches,
//! manual heal, rollback through the daemon, the live event stream, SIGHUP reload.
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use guardian_tests::truth::admin_up;
use guardian_tests::*;
use serde_json::Value;

/// Runs `guardian ARGS --socket SOCK` from the test's namespace (a Unix socket path works
/// from any network namespace).
fn cli(sock: &Path, args: &[&str]) -> Output {
    Command::new(guardian_bin())
        .args(args)
        .arg("--socket")
        .arg(sock)
        .output()
        .expect("run guardian")
}

fn json_of(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "exit {:?}, stderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn status(sock: &Path) -> Value {
    json_of(&cli(sock, &["status", "--json"]))
}

/// A daemon in `ns` with its control socket in a temp dir (plus `extra` args).
fn daemon(ns: &Netns, sock_dir: &TempDir, extra: &[&str]) -> (Daemon, PathBuf) {
    let sock = sock_dir.path().join("guardian.sock");
    let s = sock.to_str().unwrap().to_owned();
    let mut args = vec!["--socket", s.as_str()];
    args.extend_from_slice(extra);
    let mut d = Daemon::start(ns, &args);
    d.wait_attached();
    (d, sock)
}

fn stderr_of(d: &mut Daemon) -> String {
    d.diagnostics()
}

#[test]
fn status_health_heal_history_and_rollback_through_the_daemon() {
    require_root();
    let a = Netns::new("ctl-a");
    let b = Netns::new("ctl-b");
    let v = pair(&a, &b, 150);
    let sock_dir = TempDir::new("ctl-sock");
    let state = TempDir::new("ctl-state");
    let st = state.path().to_str().unwrap().to_owned();
    let (mut d, sock) = daemon(&a, &sock_dir, &["--keep-up", &v.a_if, "--state-dir", &st]);

    let meta = std::fs::metadata(&sock).expect("socket exists");
    assert_eq!(meta.mode() & 0o777, 0o600, "socket mode");
    let s = status(&sock);
    assert_eq!(s["mode"], "observe", "{s}");
    assert_eq!(s["health"]["overall"], 100, "{s}");
    assert_eq!(s["incidents"].as_array().unwrap().len(), 0, "{s}");

    // Observe mode: the link stays down, the incident is open, layer 2 health drops.
    let n = d.count();
    a.link_set(&v.a_if, false);
    d.wait_for_after(
        n,
        |e| is_fault(e, "link_down", "opened"),
        Duration::from_secs(5),
    );
    d.wait_for_after(
        n,
        |e| is_remedy(e, "link_up", "planned"),
        Duration::from_secs(5),
    );
    let s = status(&sock);
    let inc = &s["incidents"][0];
    assert_eq!(inc["fault"], "link_down", "{s}");
    assert_eq!(inc["subject"], v.a_if.as_str(), "{s}");
    let l2 = s["health"]["l2"].as_u64().unwrap();
    assert!(l2 < 100, "layer 2 health with link_down open: {s}");
    assert_eq!(s["health"]["l4"], 100, "{s}");
    assert!(!admin_up(&a, &v.a_if), "observe mode must not heal");

    // A heal of something that is not open is one clear sentence, exit 65.
    let o = cli(&sock, &["heal", "link_down", "nosuchif"]);
    assert_eq!(o.status.code(), Some(65), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no open link_down incident on nosuchif"),
        "{o:?}"
    );

    // The operator's explicit heal acts even in observe mode, journaled and verified.
    let heal = json_of(&cli(&sock, &["heal", "link_down", &v.a_if, "--json"]));
    assert_eq!(heal["outcome"], "verified", "{heal}");
    assert!(admin_up(&a, &v.a_if), "healed");
    let journal = std::fs::read_to_string(state.path().join("journal.ndjson")).expect("journal");
    assert!(
        journal.contains("\"phase\":\"verified\"") && journal.contains("link_up"),
        "{journal}"
    );
    let id = heal["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["rollback_id"].as_str())
        .expect("rollback id")
        .to_owned();

    let h = json_of(&cli(&sock, &["history", "--json", "--since", "10m"]));
    assert_eq!(h["changes"][0]["rollback_id"], id.as_str(), "{h}");
    assert_eq!(h["changes"][0]["phase"], "verified", "{h}");

    // Rollback through the running daemon (it holds the journal lock) restores the state.
    let o = cli(&sock, &["rollback", &id, "--state-dir", &st]);
    assert!(o.status.success(), "{o:?} {}", stderr_of(&mut d));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("reverted"),
        "{o:?}"
    );
    assert!(!admin_up(&a, &v.a_if), "rolled back: down again");
    let o = cli(&sock, &["rollback", &id]);
    assert_eq!(
        o.status.code(),
        Some(65),
        "second rollback of the same change: {o:?}"
    );

    let stats = json_of(&cli(&sock, &["stats", "--json"]));
    assert!(stats["events"]["total"].as_u64().unwrap() > 0, "{stats}");
    assert!(
        stats["faults"]["link_down"]["opened"].as_u64().unwrap() >= 1,
        "{stats}"
    );

    d.finish();
    assert!(!sock.exists(), "socket removed at exit");
    let o = cli(&sock, &["status"]);
    assert_eq!(o.status.code(), Some(69), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        format!(
            "guardian: guardian is not running (no answer on {})",
            sock.display()
        )
    );
}

#[test]
fn another_uid_is_refused_and_logged() {
    require_root();
    let a = Netns::new("ctl-uid");
    let sock_dir = TempDir::new("ctl-uid-sock");
    std::fs::set_permissions(sock_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (mut d, sock) = daemon(&a, &sock_dir, &[]);
    // Open the file itself: only the peer-credential check stands in the way now.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    // A copy of the binary nobody can execute (the worktree may not be traversable for it).
    let bin = sock_dir.path().join("guardian");
    std::fs::copy(guardian_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = Command::new(&bin)
        .args(["status", "--socket"])
        .arg(&sock)
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .output()
        .expect("run as nobody");
    assert_eq!(o.status.code(), Some(77), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        "guardian: permission denied: uid 65534 is not allowed"
    );
    let logged = poll(Duration::from_secs(5), Duration::from_millis(50), || {
        let e = stderr_of(&mut d);
        (e.contains("WARN") && e.contains("65534") && e.contains("permission denied")).then_some(())
    });
    assert!(logged.is_some(), "{}", stderr_of(&mut d));
    // Root is still served.
    assert!(status(&sock)["mode"].is_string());
    // Malformed requests get an error line and the daemon keeps serving.
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    use std::io::{BufRead, Write};
    s.write_all(b"{\"v\":1,\"cmd\":\"reboot\"}\n").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(&s).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["ok"], false, "{line}");
    assert!(
        v["error"].as_str().unwrap().starts_with("unknown command"),
        "{line}"
    );
    assert!(status(&sock)["mode"].is_string());
    d.finish();
}

#[test]
fn pause_resume_observe_enforce_switch_at_runtime() {
    require_root();
    let a = Netns::new("ctl-mode-a");
    let b = Netns::new("ctl-mode-b");
    let v = pair(&a, &b, 151);
    let sock_dir = TempDir::new("ctl-mode-sock");
    let state = TempDir::new("ctl-mode-state");
    let st = state.path().to_str().unwrap().to_owned();
    // No cooldown: the same remedy acts on the same link twice within seconds here.
    let cfg = sock_dir.path().join("guardian.toml");
    std::fs::write(&cfg, "[safety]\nper_subject_cooldown_s = 0\n").unwrap();
    let c = cfg.to_str().unwrap().to_owned();
    let (mut d, sock) = daemon(
        &a,
        &sock_dir,
        &[
            "--keep-up",
            &v.a_if,
            "--state-dir",
            &st,
            "--mode",
            "enforce",
            "--config",
            &c,
        ],
    );
    let pause = state.path().join("paused");
    let flap = |d: &mut Daemon, result: &str| -> Value {
        let n = d.count();
        a.link_set(&v.a_if, false);
        let r = result.to_owned();
        let (_, e) = d.wait_for_after(
            n,
            move |e| e["type"] == "remedy" && e["remedy"] == "link_up" && e["result"] == r.as_str(),
            Duration::from_secs(5),
        );
        if !admin_up(&a, &v.a_if) {
            a.link_set(&v.a_if, true);
        }
        d.wait_for_after(
            n,
            |e| is_fault(e, "link_down", "cleared"),
            Duration::from_secs(5),
        );
        e
    };

    let o = cli(&sock, &["mode", "pause"]);
    assert!(o.status.success(), "{o:?}");
    assert!(pause.exists(), "pause file");
    assert_eq!(status(&sock)["mode"], "paused");
    let e = flap(&mut d, "planned");
    assert!(e["reason"].as_str().unwrap().starts_with("paused"), "{e}");

    assert!(cli(&sock, &["mode", "resume"]).status.success());
    assert!(!pause.exists(), "pause file removed");
    assert_eq!(status(&sock)["mode"], "enforce");
    flap(&mut d, "verified");

    assert!(cli(&sock, &["mode", "observe"]).status.success());
    let e = flap(&mut d, "planned");
    assert_eq!(
        (e["mode"].as_str(), e["reason"].as_str()),
        (Some("observe"), Some("observe mode")),
        "{e}"
    );
    assert!(cli(&sock, &["mode", "enforce"]).status.success());
    flap(&mut d, "verified");
    let events = d.finish();
    let changes: Vec<&Value> = events
        .iter()
        .filter(|e| is_lifecycle(e, "mode_changed"))
        .collect();
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert_eq!(changes[0]["detail"]["to"], "paused");
    assert_eq!(changes[3]["detail"]["to"], "enforce");
}

#[test]
fn events_follow_streams_fault_lines_live() {
    require_root();
    let a = Netns::new("ctl-ev-a");
    let b = Netns::new("ctl-ev-b");
    let v = pair(&a, &b, 152);
    let sock_dir = TempDir::new("ctl-ev-sock");
    let (mut d, sock) = daemon(&a, &sock_dir, &["--keep-up", &v.a_if]);
    let out = sock_dir.path().join("follow.ndjson");
    let mut child = Command::new(guardian_bin())
        .args(["events", "--follow", "--type", "fault", "--socket"])
        .arg(&sock)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The stream is subscribed once the client's request is read: wait for the connection.
    std::thread::sleep(Duration::from_millis(500));
    a.link_set(&v.a_if, false);
    let got = poll(Duration::from_secs(5), Duration::from_millis(50), || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| is_fault(e, "link_down", "opened"))
    });
    let _ = child.kill();
    let _ = child.wait();
    let got = got.unwrap_or_else(|| {
        panic!(
            "no fault line: {}",
            std::fs::read_to_string(&out).unwrap_or_default()
        )
    });
    assert_eq!(got["subject"]["iface"], v.a_if.as_str());
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.lines().all(|l| l.contains("\"type\":\"fault\"")),
        "only fault lines: {text}"
    );
    d.finish();
}

#[test]
fn sighup_reload_good_changes_a_threshold_bad_keeps_the_old() {
    require_root();
    let a = Netns::new("ctl-hup-a");
    let b = Netns::new("ctl-hup-b");
    let v = pair(&a, &b, 153);
    let sock_dir = TempDir::new("ctl-hup-sock");
    let cfg = sock_dir.path().join("guardian.toml");
    std::fs::write(&cfg, "[detect.link_flapping]\ntransitions = 100\n").unwrap();
    let c = cfg.to_str().unwrap().to_owned();
    let (mut d, sock) = daemon(&a, &sock_dir, &["--config", &c]);
    let flap = |times: usize| {
        for _ in 0..times {
            a.link_set(&v.a_if, false);
            a.link_set(&v.a_if, true);
        }
    };
    let hup = |d: &mut Daemon| {
        let pid = nix::unistd::Pid::from_raw(d.pid().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    };
    flap(3);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !d.events()
            .iter()
            .any(|e| is_fault(e, "link_flapping", "opened")),
        "100 transitions are not reached by 6"
    );

    std::fs::write(&cfg, "[detect.link_flapping]\ntransitions = 2\n").unwrap();
    let n = d.count();
    hup(&mut d);
    let (_, r) = d.wait_for_after(n, |e| is_lifecycle(e, "reloaded"), Duration::from_secs(5));
    assert_eq!(r["detail"]["ok"], true, "{r}");
    assert_eq!(
        r["detail"]["changed"]["detectors"][0], "link_flapping",
        "{r}"
    );
    let n = d.count();
    flap(2);
    d.wait_for_after(
        n,
        |e| is_fault(e, "link_flapping", "opened"),
        Duration::from_secs(5),
    );

    std::fs::write(&cfg, "[detect.link_flapping]\ntransitions = \"many\"\n").unwrap();
    let n = d.count();
    hup(&mut d);
    let (_, r) = d.wait_for_after(n, |e| is_lifecycle(e, "reloaded"), Duration::from_secs(5));
    assert_eq!(r["detail"]["ok"], false, "{r}");
    let err = r["detail"]["error"].as_str().unwrap();
    assert!(
        err.contains("guardian.toml") && !err.contains('\n'),
        "{err}"
    );
    assert!(d.exited().is_none(), "still running");
    assert!(status(&sock)["mode"].is_string());
    d.finish();
}
