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
