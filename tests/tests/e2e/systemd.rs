//! The unit file under systemd itself: `systemd-analyze verify` has nothing to say about it,
//! and, where systemd is PID 1, a real start (Type=notify: active only after READY=1, which
//! the daemon sends after `attached`), events, stop (detached) under a test unit name.
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use guardian_tests::*;

/// The unit with ExecStart pointing at the binary under test plus `extra` arguments.
fn unit_for(bin: &Path, extra: &str) -> String {
    let text =
        std::fs::read_to_string(workspace_root().join("docs/deploy/guardian.service")).unwrap();
    assert!(text.contains("ExecStart=/usr/local/sbin/guardian run\n"));
    text.replace(
        "ExecStart=/usr/local/sbin/guardian run\n",
        &format!("ExecStart={} run {extra}\n", bin.display()),
    )
}

fn systemd_is_pid1() -> Result<(), String> {
    let comm = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    if comm.trim() == "systemd" {
        Ok(())
    } else {
        Err(format!("PID 1 is {:?}, not systemd", comm.trim()))
    }
}

#[test]
fn systemd_analyze_verify_is_silent() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    let dir = TempDir::new("sdverify");
    let unit = dir.path().join("guardian-verify.service");
    std::fs::write(&unit, unit_for(&guardian_bin(), "")).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // It exits 0 on unknown keys too; any complaint at all is a defect in the unit.
    assert!(stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
    // And it does complain when something is wrong (the check above can fail).
    std::fs::write(&unit, unit_for(&guardian_bin(), "") + "NoSuchKey=1\n").unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("NoSuchKey"));
}

#[test]
fn starts_ready_and_stops_detached_under_systemd() {
    if let Err(why) = systemd_is_pid1() {
        eprintln!("SKIPPED: {why}: cannot run the unit for real on this machine");
        return;
    }
    require_root();
    let dir = TempDir::new("sdunit");
    let events = dir.path().join("events.ndjson");
    let state = dir.path().join("state");
    let name = format!("guardian-test-{}.service", std::process::id());
    let path = Path::new("/run/systemd/system").join(&name);
    let extra = format!(
        "--events {} --state-dir {} --config {}",
        events.display(),
        state.display(),
        dir.path().join("none.toml").display()
    );
    std::fs::write(dir.path().join("none.toml"), "[metrics]\nenabled = false\n").unwrap();
    // The test unit must be able to write into the temp dir despite ProtectSystem=strict.
    let unit = unit_for(&guardian_bin(), &extra)
        .replace(
            "ReadWritePaths=/sys/fs/bpf",
            &format!("ReadWritePaths=/sys/fs/bpf {}", dir.path().display()),
        )
        .replace("PrivateTmp=yes", "PrivateTmp=no");
    std::fs::write(&path, unit).unwrap();
    struct Remove(std::path::PathBuf, String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("systemctl").args(["stop", &self.1]).status();
            let _ = std::fs::remove_file(&self.0);
            let _ = Command::new("systemctl").arg("daemon-reload").status();
        }
    }
    let _guard = Remove(path.clone(), name.clone());
    assert!(Command::new("systemctl")
        .arg("daemon-reload")
        .status()
        .unwrap()
        .success());
    // `systemctl start` of a Type=notify unit returns when READY=1 arrived.
    let st = Command::new("systemctl")
        .args(["start", &name])
        .status()
        .unwrap();
    assert!(st.success(), "systemctl start {name}");
    let text = std::fs::read_to_string(&events).unwrap_or_default();
    assert!(
        text.contains("\"phase\":\"attached\""),
        "attached before READY: {text}"
    );
    let active = Command::new("systemctl")
        .args(["is-active", &name])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&active.stdout).trim(), "active");
    assert!(Command::new("systemctl")
        .args(["stop", &name])
        .status()
        .unwrap()
        .success());
    let text = std::fs::read_to_string(&events).unwrap();
    assert!(text.contains("\"phase\":\"detached\""), "{text}");
    validate_lines(&text.lines().collect::<Vec<_>>()).unwrap();
    let _ = Duration::ZERO;
}
