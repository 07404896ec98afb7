//! The packages `cargo xtask package` builds (ignored by `cargo xtask test`; run by `cargo
//! xtask package` after building, with GUARDIAN_DEB, GUARDIAN_OCI and GUARDIAN_DEBROOT set):
//!
//! - the .deb installs into a fresh Debian root (a copy of a debootstrap minbase root) with
//!   dpkg, the binary runs there, and it removes and purges cleanly;
//! - the OCI image loads into podman and runs with the DaemonSet's capabilities (`--cap-add`,
//!   not `--privileged`) and `--network host` inside a test namespace: `doctor` passes, then
//!   the daemon attaches and, on `podman stop`, detaches.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use guardian_tests::*;

fn env_path(key: &str) -> PathBuf {
    PathBuf::from(
        std::env::var_os(key).unwrap_or_else(|| panic!("{key} is set by cargo xtask package")),
    )
}

fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{c:?} failed:\n{text}");
    text
}

fn chroot(root: &Path, args: &[&str]) -> String {
    ok(Command::new("chroot")
        .arg(root)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

#[test]
#[ignore = "needs the artefacts of `cargo xtask package`, which runs it"]
fn the_deb_installs_runs_and_removes_in_a_fresh_debian_root() {
    require_root();
    let deb = env_path("GUARDIAN_DEB");
    let base = env_path("GUARDIAN_DEBROOT");
    let dir = TempDir::new("debroot");
    let root = dir.path().join("root");
    ok(Command::new("cp").args(["-a"]).arg(&base).arg(&root));
    std::fs::copy(&deb, root.join("tmp/guardian.deb")).unwrap();
    chroot(&root, &["dpkg", "-i", "/tmp/guardian.deb"]);
    let status = chroot(
        &root,
        &["dpkg-query", "-W", "-f=${Status} ${Version}", "guardian"],
    );
    assert!(status.starts_with("install ok installed"), "{status}");
    for f in [
        "usr/sbin/guardian",
        "lib/systemd/system/guardian.service",
        "etc/guardian/guardian.toml",
        "usr/share/doc/guardian/prometheus-rules.yaml",
        "usr/share/doc/guardian/grafana-dashboard.json",
        "usr/share/bash-completion/completions/guardian",
        "usr/share/zsh/vendor-completions/_guardian",
        "usr/share/fish/vendor_completions.d/guardian.fish",
        "usr/share/man/man1/guardian.1.gz",
    ] {
        assert!(root.join(f).is_file(), "{f} installed");
    }
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/guardian.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/sbin/guardian run"), "{unit}");
    // The binary runs on the root's own glibc.
    let v = chroot(&root, &["/usr/sbin/guardian", "version"]);
    assert!(v.contains(env!("CARGO_PKG_VERSION")), "{v}");
    chroot(&root, &["dpkg", "-r", "guardian"]);
    assert!(!root.join("usr/sbin/guardian").exists());
    assert!(
        root.join("etc/guardian/guardian.toml").exists(),
        "remove keeps the conffile"
    );
    chroot(&root, &["dpkg", "-P", "guardian"]);
    assert!(
        !root.join("etc/guardian").exists(),
        "purge removes the config"
    );
    // Purged: dpkg no longer knows the package at all (dpkg-query fails).
    let left = Command::new("chroot")
        .arg(&root)
        .args(["dpkg-query", "-W", "-f=${Status}", "guardian"])
        .output()
        .unwrap();
    assert!(!left.status.success(), "{left:?}");
    assert!(!root.join("lib/systemd/system/guardian.service").exists());
}

/// podman with its storage under `dir` (not the host's).
fn podman(dir: &Path) -> Command {
    podman_in(dir, None)
}

/// The same, started inside `ns` (so `--network host` is that namespace). In a mount
/// namespace of its own where a hybrid cgroup layout (v1 controllers plus a cgroup2 at
/// /sys/fs/cgroup/unified, as on this CI host) is made plain v1: crun refuses hybrid hosts
/// ("cgroups in hybrid mode not supported"); the host's mounts are untouched.
fn podman_in(dir: &Path, ns: Option<&Netns>) -> Command {
    let mut c = match ns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.path().display()))
                .args(["--", "unshare"]);
            c
        }
        None => Command::new("unshare"),
    };
    c.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi; exec podman \"$@\"")
        .arg("podman")
        .arg("--cgroup-manager")
        .arg("cgroupfs")
        .arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(["--storage-driver", "vfs"]);
    c
}

/// The DaemonSet's capability list, as podman flags.
const CAPS: &str = "BPF,PERFMON,NET_ADMIN,SYS_ADMIN,SYS_PTRACE,DAC_READ_SEARCH";

struct Container<'a>(&'a Path, &'a str);

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = podman(self.0)
            .args(["rm", "-f", "-t", "5", self.1])
            .output();
    }
}

#[test]
#[ignore = "needs the artefacts of `cargo xtask package`, which runs it"]
fn the_image_runs_with_the_daemonset_capabilities_in_a_namespace() {
    require_root();
    let archive = env_path("GUARDIAN_OCI");
    let dir = TempDir::new("podman");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let loaded = ok(podman(dir.path()).arg("load").arg("-i").arg(&archive));
    let image = format!("localhost/guardian:{}", env!("CARGO_PKG_VERSION"));
    assert!(loaded.contains(&image), "{loaded}");
    let ns = Netns::new("pod");
    let common = |c: &mut Command| {
        // No cgroup of its own and limits below the host's hard ones: this CI host allows
        // neither a cgroup v2 container nor raising RLIMIT_NPROC/NOFILE past them.
        c.args(["run", "--network", "host", "--cgroups=disabled"])
            .args([
                "--ulimit",
                "nofile=8192:8192",
                "--ulimit",
                "nproc=4096:4096",
            ])
            .args(["--cap-drop", "ALL", "--cap-add", CAPS])
            .args([
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "no-new-privileges",
            ])
            .args([
                "-v",
                "/sys/fs/bpf:/sys/fs/bpf",
                "-v",
                "/sys/kernel/tracing:/sys/kernel/tracing:ro",
            ])
            .args(["-v", "/sys/kernel/btf:/sys/kernel/btf:ro"])
            .arg("-v")
            .arg(format!("{}:/var/lib/guardian", state.display()));
    };
    let mut doctor = podman_in(dir.path(), Some(&ns));
    common(&mut doctor);
    doctor.args(["--rm", &image, "doctor"]);
    let out = ok(&mut doctor);
    eprintln!("{out}");

    let name = format!("gt-guardian-{}", std::process::id());
    let mut run = podman_in(dir.path(), Some(&ns));
    common(&mut run);
    run.args(["-d", "--name", &name, &image, "run", "--interval-ms", "500"]);
    ok(&mut run);
    let _guard = Container(dir.path(), &name);
    let logs = || {
        let o = podman(dir.path()).args(["logs", &name]).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let attached = poll(Duration::from_secs(60), Duration::from_millis(500), || {
        logs().contains("\"phase\":\"attached\"").then_some(())
    });
    assert!(attached.is_some(), "no attached event:\n{}", logs());
    ok(podman(dir.path()).args(["stop", "-t", "30", &name]));
    let l = logs();
    assert!(
        l.contains("\"phase\":\"detached\""),
        "no detached event:\n{l}"
    );
}
