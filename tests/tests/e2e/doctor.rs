//! `guardian doctor` on this machine: everything guardian needs is here (exit 0, JSON says
//! ok); without privileges the capability checks fail and the exit status says so.
use std::process::Command;

use guardian_tests::*;

#[test]
fn doctor_passes_as_root_and_fails_without_capabilities() {
    require_root();
    let out = Command::new(guardian_bin())
        .args(["doctor", "--json"])
        .output()
        .expect("run doctor");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor --json");
    assert_eq!(v["ok"], true);
    let checks = v["checks"].as_array().unwrap();
    for name in [
        "btf",
        "tracefs",
        "offsets",
        "ebpf_object",
        "prog_xdp",
        "CAP_BPF",
    ] {
        let c = checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check: {v}"));
        assert_eq!(c["status"], "ok", "{c}");
    }
    // The packet programs of --http attach to the cgroup v2 root here (and are detached).
    let http = checks
        .iter()
        .find(|c| c["name"] == "feature:http")
        .unwrap_or_else(|| panic!("no feature:http check: {v}"));
    assert_eq!(http["status"], "ok", "{http}");
    assert!(
        http["detail"].as_str().unwrap_or("").contains("packets"),
        "{http}"
    );
    // The OpenSSL uprobes are proved by attaching them to the libssl files a run would find:
    // with Debian's libssl3 installed (setup installs nginx, which needs it), they attach.
    let tls = checks
        .iter()
        .find(|c| c["name"] == "feature:tls_uprobes")
        .unwrap_or_else(|| panic!("no feature:tls_uprobes check: {v}"));
    if std::path::Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3").exists() {
        assert_eq!(tls["status"], "ok", "{tls}");
        assert!(
            tls["detail"].as_str().unwrap_or("").contains("libssl.so.3"),
            "{tls}"
        );
    }

    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(guardian_bin())
        .arg("doctor")
        .output()
        .expect("run doctor unprivileged");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  CAP_BPF"), "{text}");
    assert!(text.contains("guardian cannot run here"), "{text}");
}

#[test]
fn doctor_checks_the_config_and_its_permissions() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    let dir = TempDir::new("doctor-cfg");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let cfg = dir.path().join("guardian.toml");
    let doctor = |cfg: &std::path::Path| -> (Option<i32>, serde_json::Value) {
        let out = Command::new(guardian_bin())
            .args(["doctor", "--json", "--config"])
            .arg(cfg)
            .output()
            .expect("run doctor");
        let v = serde_json::from_slice(&out.stdout).expect("doctor --json");
        (out.status.code(), v)
    };
    let find = |v: &serde_json::Value, name: &str| -> serde_json::Value {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} check: {v}"))
    };

    // A bad value: the config check fails with run's sentence, and so does doctor.
    std::fs::write(&cfg, "[safety]\nglobal_max_per_hour = \"many\"\n").unwrap();
    let (code, v) = doctor(&cfg);
    let c = find(&v, "config");
    assert_eq!((code, c["status"].as_str()), (Some(1), Some("fail")), "{v}");
    assert!(
        c["detail"].as_str().unwrap().contains("guardian.toml:2"),
        "{c}"
    );

    // A valid, world-writable file: a warning naming it; doctor still passes.
    std::fs::write(
        &cfg,
        format!("[daemon]\nstate_dir = \"{}\"\n", state.display()),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, v) = doctor(&cfg);
    assert_eq!(find(&v, "config")["status"], "ok", "{v}");
    let p = find(&v, "permissions");
    assert_eq!(p["status"], "warn", "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("world-writable"),
        "{p}"
    );
    assert_eq!(code, Some(0), "{v}");
}
