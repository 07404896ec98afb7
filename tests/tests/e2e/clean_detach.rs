//! Clean detach: after SIGTERM, and after SIGKILL followed by a restart and a stop, none of
//! guardian's programs, maps or links remain (checked by id with bpftool, against exactly what
//! the daemon's own file descriptors held), nothing is pinned, the interface and the cgroup
//! carry what they carried before, and another tool's program on the same interface is
//! untouched.
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use guardian_tests::xdp_raw::attach_tc_ingress;
use guardian_tests::*;
use serde_json::Value;

const SUBNET: u8 = 220;

/// The BPF objects a process holds: (programs, maps, links) by id, from /proc/PID/fdinfo.
#[derive(Debug, Default)]
struct Held {
    progs: BTreeSet<u64>,
    maps: BTreeSet<u64>,
    links: BTreeSet<u64>,
}

fn held(pid: u32) -> Held {
    let mut h = Held::default();
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .expect("daemon's fdinfo")
        .flatten()
    {
        let info = std::fs::read_to_string(e.path()).unwrap_or_default();
        let id = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        // A link's fdinfo also names its program (prog_id): classify links first.
        if let Some(l) = id("link_id:") {
            h.links.insert(l);
        } else if let Some(p) = id("prog_id:") {
            h.progs.insert(p);
        } else if let Some(m) = id("map_id:") {
            h.maps.insert(m);
        }
    }
    h
}

/// Whether bpftool still finds `kind` (`prog`, `map`, `link`) with this id.
fn exists(kind: &str, id: u64) -> bool {
    Command::new("bpftool")
        .args([kind, "show", "id", &id.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Waits (freeing is deferred through RCU) until none of `h` exists; returns what remains.
fn remaining(h: &Held) -> Vec<String> {
    let left = || -> Vec<String> {
        let mut v = Vec::new();
        for (kind, ids) in [("prog", &h.progs), ("map", &h.maps), ("link", &h.links)] {
            v.extend(
                ids.iter()
                    .filter(|id| exists(kind, **id))
                    .map(|id| format!("{kind} {id}")),
            );
        }
        v
    };
    poll(Duration::from_secs(10), Duration::from_millis(100), || {
        let l = left();
        l.is_empty().then_some(())
    });
    left()
}

/// What bpftool sees on the namespace's interfaces (XDP, tc, tcx), by interface and program id.
fn net(ns: &Netns) -> Value {
    serde_json::from_str(&ns.run(&["bpftool", "-j", "net", "show"])).expect("bpftool net show")
}

fn cgroup_progs(path: &str) -> Value {
    let out = Command::new("bpftool")
        .args(["-j", "cgroup", "show", path])
        .output()
        .expect("bpftool cgroup show");
    // Nothing attached prints nothing at all.
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| Value::Array(Vec::new()))
}

fn pins() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            out.insert(p.display().to_string());
            if p.is_dir() {
                walk(&p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(Path::new("/sys/fs/bpf"), &mut out);
    // Other engineers' runs pin and unpin their own test objects under gt-<pid>-*.
    out.retain(|p| !p.contains("/gt-"));
    out
}

fn start(ns: &Netns, iface: &str, state: &str) -> (Daemon, Held, String) {
    let mut d = Daemon::start(
        ns,
        &[
            "--xdp",
            iface,
            "--keep-up",
            iface,
            "--mode",
            "enforce",
            "--state-dir",
            state,
        ],
    );
    let attached = d.wait_attached();
    let h = held(d.pid().expect("running"));
    assert!(
        !h.progs.is_empty() && !h.maps.is_empty() && !h.links.is_empty(),
        "the daemon holds programs, maps and links while it runs: {h:?}"
    );
    let cgroup = attached["detail"]["sockops"]["cgroup"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (d, h, cgroup)
}

fn assert_baseline(
    when: &str,
    a: &Netns,
    held: &[&Held],
    net_before: &Value,
    cg: &str,
    cg_before: &Value,
    pins_before: &BTreeSet<String>,
) {
    for h in held {
        let left = remaining(h);
        assert!(left.is_empty(), "{when}: still present: {left:?}");
    }
    assert_eq!(
        &net(a),
        net_before,
        "{when}: the interfaces' programs changed"
    );
    if !cg.is_empty() {
        assert_eq!(&cgroup_progs(cg), cg_before, "{when}: {cg} changed");
    }
    assert_eq!(&pins(), pins_before, "{when}: bpffs pins changed");
}

#[test]
fn nothing_of_guardians_remains_after_sigterm_or_sigkill_and_restart() {
    require_root();
    let a = Netns::new("cd-a");
    let b = Netns::new("cd-b");
    let v = pair(&a, &b, SUBNET);
    let state = TempDir::new("cd-state");
    let state = state.path().to_str().unwrap().to_owned();
    let foreign = attach_tc_ingress(&a, &v.a_if, "gt_other_tc");
    let net_before = net(&a);
    assert!(
        net_before
            .to_string()
            .contains(&format!("\"id\":{foreign}")),
        "the foreign classifier shows in bpftool net: {net_before}"
    );
    let pins_before = pins();

    // 1. SIGTERM.
    let (mut d, h1, cg) = start(&a, &v.a_if, &state);
    let cg_before = {
        // The cgroup as it is without guardian: guardian's own attachment is one of its links.
        let now = cgroup_progs(&cg);
        let mut v = now.clone();
        if let Some(arr) = v.as_array_mut() {
            arr.retain(|p| !p["id"].as_u64().is_some_and(|id| h1.progs.contains(&id)));
        }
        v
    };
    let with = net(&a).to_string();
    assert!(
        h1.progs
            .iter()
            .any(|id| with.contains(&format!("\"id\":{id}"))),
        "guardian's XDP/tcx programs show on {} while it runs: {with}",
        v.a_if
    );
    d.finish();
    assert_baseline(
        "after SIGTERM",
        &a,
        &[&h1],
        &net_before,
        &cg,
        &cg_before,
        &pins_before,
    );

    // 2. SIGKILL, then a restart and a clean stop.
    let (mut d, h2, _) = start(&a, &v.a_if, &state);
    d.kill9();
    drop(d);
    let (mut d, h3, _) = start(&a, &v.a_if, &state);
    d.finish();
    assert_baseline(
        "after SIGKILL, restart and SIGTERM",
        &a,
        &[&h2, &h3],
        &net_before,
        &cg,
        &cg_before,
        &pins_before,
    );
    eprintln!(
        "clean detach: {} programs, {} maps, {} links per run, none left; foreign program {foreign} untouched",
        h1.progs.len(),
        h1.maps.len(),
        h1.links.len()
    );
}
