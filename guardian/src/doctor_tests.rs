//! Unit tests of `doctor`: parsing of /proc and mountinfo, the report.
use super::*;

#[test]
fn decodes_effective_capabilities() {
    let status = "Name:\tguardian\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
    let eff = cap_eff(status).unwrap();
    for (_, bit, _) in CAPS {
        assert!(eff & (1 << bit) != 0);
    }
    let none = cap_eff("CapEff:\t0000000000000000\n").unwrap();
    assert_eq!(none, 0);
    assert_eq!(cap_eff("no caps here"), None);
}

const MOUNTINFO: &str = "\
24 30 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
31 24 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
40 24 0:33 / /sys/fs/bpf rw,nosuid shared:15 - bpf bpf rw,mode=700
41 24 0:12 / /sys/kernel/tracing rw,nosuid shared:16 - tracefs nodev rw
";

#[test]
fn finds_cgroup2_and_mounts() {
    assert_eq!(
        cgroup2_mount(MOUNTINFO).as_deref(),
        Some("/sys/fs/cgroup/unified")
    );
    assert!(mounted(MOUNTINFO, "/sys/fs/bpf", "bpf"));
    assert!(mounted(MOUNTINFO, "/sys/kernel/tracing", "tracefs"));
    assert!(!mounted(MOUNTINFO, "/sys/fs/bpf", "tracefs"));
    assert_eq!(
        cgroup2_mount("24 30 0:22 / /sys rw - sysfs sysfs rw\n"),
        None
    );
}

#[test]
fn a_failed_required_check_fails_the_report_and_a_warning_does_not() {
    let mut buf = Vec::new();
    let warn = [check("bpffs", false, false, "x")];
    assert!(report(&warn, false, &mut buf).unwrap());
    let fail = [check("btf", true, false, "missing")];
    let mut buf = Vec::new();
    assert!(!report(&fail, false, &mut buf).unwrap());
    let text = String::from_utf8(buf).unwrap();
    assert!(text.contains("FAIL  btf"), "{text}");
    let mut js = Vec::new();
    assert!(!report(&fail, true, &mut js).unwrap());
    let v: serde_json::Value = serde_json::from_slice(&js).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["checks"][0]["status"], "fail");
}

#[test]
fn config_checks_report_an_invalid_file_and_writable_paths() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("guardian-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[sinks]\nmax_bytes = \"big\"\n").unwrap();
    let c = config_checks(Some(&bad));
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].status, Status::Fail);
    assert!(c[0].detail.contains("sinks.max_bytes"), "{}", c[0].detail);

    let good = dir.join("good.toml");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        &good,
        format!("[daemon]\nstate_dir = \"{}\"\n", state.display()),
    )
    .unwrap();
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let c = config_checks(Some(&good));
    assert_eq!(
        c.iter().map(|c| c.status).collect::<Vec<_>>(),
        [Status::Ok, Status::Ok],
        "{c:?}"
    );
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o666)).unwrap();
    let c = config_checks(Some(&good));
    assert_eq!(c[1].status, Status::Warn);
    assert!(c[1].detail.contains("world-writable"), "{}", c[1].detail);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lock_check_names_the_holder_and_refuses_an_unsafe_directory() {
    let dir = std::env::temp_dir().join(format!("guardian-doctor-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let free = lock_check(&dir);
    assert_eq!(free.status, Status::Ok, "{free:?}");
    let netns = crate::netns::current().unwrap();
    let held = crate::lock::lock_netns(&dir, netns).unwrap();
    let c = lock_check(&dir);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(
        c.detail
            .starts_with(&format!("guardian pid {} runs", std::process::id())),
        "{c:?}"
    );
    drop(held);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o757)).unwrap();
    let c = lock_check(&dir);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
