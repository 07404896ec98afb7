//! The deployment files parse and say what docs/operations.md promises: the systemd unit
//! (Type=notify, watchdog, least capabilities, nothing that breaks sysctl remedies) and the
//! DaemonSet (hostNetwork, hostPID, capabilities not privileged, state/socket/bpffs on the
//! host, config from a ConfigMap, metrics port). No root needed.
use std::collections::BTreeMap;

use guardian_tests::workspace_root;
use yaml_rust2::{Yaml, YamlLoader};

/// `[Section]` → key → values (a key may repeat).
fn parse_unit(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[') {
            section = s
                .strip_suffix(']')
                .unwrap_or_else(|| panic!("line {}: {line}", n + 1))
                .to_owned();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: no `=`: {line}", n + 1));
        assert!(!section.is_empty(), "line {}: key outside a section", n + 1);
        out.entry(section.clone())
            .or_default()
            .entry(k.trim().to_owned())
            .or_default()
            .push(v.trim().to_owned());
    }
    out
}

/// Capability names the kernel knows (capability.h, up to CAP_CHECKPOINT_RESTORE).
const CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

const NEEDED: &[&str] = &["BPF", "PERFMON", "NET_ADMIN", "SYS_ADMIN"];

#[test]
fn the_systemd_unit_is_notify_least_privilege_and_keeps_sysctls_writable() {
    let text =
        std::fs::read_to_string(workspace_root().join("docs/deploy/guardian.service")).unwrap();
    let unit = parse_unit(&text);
    let svc = &unit["Service"];
    let one = |k: &str| svc.get(k).and_then(|v| v.last()).map(String::as_str);
    assert_eq!(one("Type"), Some("notify"));
    assert!(one("WatchdogSec")
        .is_some_and(|w| w.trim_end_matches('s').parse::<u32>().is_ok_and(|s| s > 0)));
    assert_eq!(one("Restart"), Some("on-failure"));
    assert_eq!(one("StateDirectory"), Some("guardian"));
    assert_eq!(one("RuntimeDirectory"), Some("guardian"));
    assert_eq!(one("RuntimeDirectoryMode"), Some("0700"));
    assert_eq!(one("NoNewPrivileges"), Some("yes"));
    assert!(
        one("LimitNOFILE").is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 4096)),
        "a descriptor limit with room for the metrics endpoint's connections"
    );
    assert!(one("ExecStart").unwrap().ends_with("guardian run"));
    assert!(one("RestartPreventExitStatus")
        .unwrap()
        .split(' ')
        .any(|c| c == "78"));
    // AmbientCapabilities is optional: the daemon runs as root and starts with the bounding set.
    assert!(one("CapabilityBoundingSet").is_some());
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        let Some(set) = one(key) else { continue };
        let caps: Vec<&str> = set.split_whitespace().collect();
        for c in &caps {
            let name = c
                .strip_prefix("CAP_")
                .unwrap_or_else(|| panic!("{key}: {c} lacks CAP_"));
            assert!(CAPS.contains(&name), "{key}: {c} is not a capability");
        }
        for n in NEEDED {
            assert!(
                caps.contains(&format!("CAP_{n}").as_str()),
                "{key} lacks CAP_{n}"
            );
        }
        assert!(
            !caps.contains(&"CAP_SYS_MODULE"),
            "{key}: no module loading"
        );
    }
    assert!(
        one("PrivateNetwork").is_none_or(|v| v == "no"),
        "PrivateNetwork breaks remedies"
    );
    // Read-only /proc/sys is fine only with the net sysctls (the remedy's) writable again.
    if one("ProtectKernelTunables") == Some("yes") {
        assert!(
            svc["ReadWritePaths"].iter().any(|p| p.split_whitespace().any(|p| p == "/proc/sys/net")),
            "ProtectKernelTunables=yes without ReadWritePaths=/proc/sys/net breaks the sysctl remedy"
        );
    }
    // A system call filter must let through what guardian adds to @system-service.
    let allowed: Vec<&str> = svc
        .get("SystemCallFilter")
        .into_iter()
        .flatten()
        .filter(|v| !v.starts_with('~'))
        .flat_map(|v| v.split_whitespace())
        .collect();
    let denied: Vec<&str> = svc
        .get("SystemCallFilter")
        .into_iter()
        .flatten()
        .filter_map(|v| v.strip_prefix('~'))
        .flat_map(|v| v.split_whitespace())
        .collect();
    if !allowed.is_empty() {
        for call in ["@system-service", "bpf", "perf_event_open", "setns"] {
            assert!(allowed.contains(&call), "SystemCallFilter lacks {call}");
        }
    }
    for call in ["bpf", "perf_event_open", "setns"] {
        assert!(!denied.contains(&call), "SystemCallFilter denies {call}");
    }
    assert!(
        one("RestrictNamespaces").is_none_or(|v| v == "no" || v.split_whitespace().any(|n| n == "net")),
        "RestrictNamespaces must allow net (setns into other namespaces, the feature probe's unshare)"
    );
    assert!(unit["Install"]["WantedBy"].contains(&"multi-user.target".to_owned()));
}

fn get<'a>(y: &'a Yaml, path: &[&str]) -> &'a Yaml {
    path.iter().fold(y, |y, k| &y[*k])
}

#[test]
fn the_daemonset_has_host_access_capabilities_mounts_and_metrics() {
    let text =
        std::fs::read_to_string(workspace_root().join("docs/deploy/daemonset.yaml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).expect("valid YAML");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["Namespace", "ConfigMap", "DaemonSet"]);
    let ds = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("DaemonSet"))
        .unwrap();
    let pod = get(ds, &["spec", "template", "spec"]);
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    assert_eq!(pod["hostPID"].as_bool(), Some(true));
    assert_eq!(pod["tolerations"][0]["operator"].as_str(), Some("Exists"));
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_ne!(
        sc["privileged"].as_bool(),
        Some(true),
        "capabilities, not privileged"
    );
    let add: Vec<&str> = sc["capabilities"]["add"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    for n in NEEDED {
        assert!(add.contains(n), "capabilities.add lacks {n}");
    }
    for a in &add {
        assert!(CAPS.contains(a), "{a} is not a capability");
    }
    assert_eq!(sc["capabilities"]["drop"][0].as_str(), Some("ALL"));
    let mounts: BTreeMap<&str, &str> = c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["mountPath"].as_str().unwrap(),
                m["name"].as_str().unwrap(),
            )
        })
        .collect();
    let volumes: BTreeMap<&str, &Yaml> = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    for (path, host) in [
        ("/sys/fs/bpf", Some("/sys/fs/bpf")),
        ("/sys/kernel/tracing", Some("/sys/kernel/tracing")),
        ("/sys/fs/cgroup", Some("/sys/fs/cgroup")),
        ("/var/lib/guardian", Some("/var/lib/guardian")),
        ("/run/guardian", Some("/run/guardian")),
        ("/etc/guardian", None),
    ] {
        let vol = volumes[mounts
            .get(path)
            .unwrap_or_else(|| panic!("no mount at {path}"))];
        match host {
            Some(h) => assert_eq!(vol["hostPath"]["path"].as_str(), Some(h), "{path}"),
            None => assert!(
                vol["configMap"]["name"].as_str().is_some(),
                "{path} from a ConfigMap"
            ),
        }
    }
    let port = &c["ports"][0];
    assert_eq!(port["containerPort"].as_i64(), Some(9464));
    let ann = get(ds, &["spec", "template", "metadata", "annotations"]);
    assert_eq!(ann["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(ann["prometheus.io/port"].as_str(), Some("9464"));
    assert_eq!(
        c["livenessProbe"]["httpGet"]["port"].as_i64(),
        Some(9464),
        "liveness on the metrics port"
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz"),
        "liveness follows the engine's progress"
    );
    assert!(c["resources"]["limits"]["memory"].as_str().is_some());
    // The ConfigMap's guardian.toml is a valid config: observe mode, events on stdout.
    let cm = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("ConfigMap"))
        .unwrap();
    let toml_text = cm["data"]["guardian.toml"].as_str().unwrap();
    assert!(toml_text.contains("mode = \"observe\""));
    assert!(toml_text.contains("stdout = true"));
    if let Some(bin) = std::env::var_os("GUARDIAN_BIN") {
        let dir = guardian_tests::TempDir::new("deploy-cm");
        let f = dir.path().join("guardian.toml");
        std::fs::write(&f, toml_text).unwrap();
        // `run` as an unprivileged user stops at the privilege check (77) only after clap;
        // validate the file through `guardian run --config` as root where possible.
        if nix_is_root() {
            let out = std::process::Command::new(bin)
                .args([
                    "run",
                    "--config",
                    f.to_str().unwrap(),
                    "--interval-ms",
                    "10",
                    "--xdp",
                    "no/such",
                ])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            // The file passed validation: the error is about the flag, from the command line.
            assert!(err.contains("command line: interfaces.xdp"), "{err}");
        }
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() == 0 }
}
