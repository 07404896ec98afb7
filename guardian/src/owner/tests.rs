//! Unit tests of the owner decision and of the cache.
use super::*;

const ID: &str = "51fa41f071238a0cb2d7a2eb7e32b0a9b6eb0f19f5ea89e5feba8c9a31819f83";
const UID: &str = "0f5e8c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b";

fn nowhere() -> Roots {
    let gone = std::path::PathBuf::from("/nonexistent/guardian-owner-test");
    Roots {
        kubelet: gone.clone(),
        storage: vec![gone.clone()],
        containerd: gone.clone(),
        docker: gone,
    }
}

#[test]
fn a_podman_process_on_a_hybrid_host_is_a_container() {
    // /proc/PID/cgroup of a `podman run --cgroup-manager cgroupfs` process on this host.
    let file = format!(
        "9:name=systemd:/libpod_parent/libpod-{ID}\n4:memory:/libpod_parent/libpod-{ID}\n0::/\n"
    );
    let o = of_process(&nowhere(), &file).unwrap();
    assert_eq!(o.kind, Kind::Container);
    assert_eq!(o.runtime.as_deref(), Some("podman"));
    assert_eq!(o.container_id.as_deref(), Some(ID));
    assert_eq!(o.container_name, None, "no containers.json under the roots");
}

#[test]
fn a_kubepods_process_is_a_pod_even_without_names() {
    let u = UID.replace('-', "_");
    let file = format!(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{ID}.scope\n"
    );
    let o = of_process(&nowhere(), &file).unwrap();
    assert_eq!(o.kind, Kind::Pod);
    assert_eq!(o.pod_uid.as_deref(), Some(UID));
    assert_eq!(o.container_id.as_deref(), Some(ID));
    assert_eq!((o.pod_name, o.pod_namespace), (None, None));
}

#[test]
fn units_and_the_root_cgroup() {
    let o = of_process(&nowhere(), "0::/system.slice/bird.service\n").unwrap();
    assert_eq!(
        (o.kind, o.unit.as_deref()),
        (Kind::Systemd, Some("bird.service"))
    );
    assert_eq!(of_process(&nowhere(), "0::/\n"), None);
    // The rank prefers a container's process over a unit's in the same namespace.
    assert!(
        of_process(&nowhere(), &format!("0::/system.slice/docker-{ID}.scope\n"))
            .unwrap()
            .rank()
            > o.rank()
    );
}

#[test]
fn serializes_only_what_is_known() {
    let o = Owner {
        pod_name: Some("web-0".into()),
        pod_namespace: Some("shop".into()),
        pod_uid: Some(UID.into()),
        ..Owner::of_kind(Kind::Pod)
    };
    let v = serde_json::to_value(&o).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"kind": "pod", "pod_name": "web-0", "pod_namespace": "shop", "pod_uid": UID})
    );
    assert_eq!(
        serde_json::to_value(Owner::host()).unwrap(),
        serde_json::json!({"kind": "host"})
    );
}

#[test]
fn the_cache_answers_from_memory_and_remembers_unknown_namespaces() {
    let owners = Owners::new(nowhere());
    let own = crate::netns::current().unwrap();
    let first = owners.get(own);
    if owners.host == Some(own) {
        assert_eq!(first.as_deref(), Some(&Owner::host()));
    }
    let scanned = owners.state.lock().unwrap().scanned;
    assert!(scanned.is_some());
    // Asked again: from the map, no scan.
    assert_eq!(owners.get(own), first);
    assert_eq!(owners.state.lock().unwrap().scanned, scanned);
    // No namespace has inode 1. Within RESCAN_EVERY of the last scan: no scan, no entry.
    assert_eq!(owners.get(1), None);
    assert_eq!(owners.state.lock().unwrap().scanned, scanned);
    assert!(
        !owners.is_empty(),
        "the scan filled every namespace present"
    );
    // Later: one scan, then remembered as unknown and not scanned again for RETRY.
    std::thread::sleep(RESCAN_EVERY);
    assert_eq!(owners.get(1), None);
    let rescanned = owners.state.lock().unwrap().scanned;
    assert_ne!(rescanned, scanned);
    assert!(owners.state.lock().unwrap().map.contains_key(&1));
    std::thread::sleep(RESCAN_EVERY);
    assert_eq!(owners.get(1), None);
    assert_eq!(owners.state.lock().unwrap().scanned, rescanned);
}

/// An unresolved namespace past RETRY is looked for by one scan, then not again for RETRY;
/// that scan also counts for every other unresolved namespace (500 namespaces without a
/// process, each past RETRY, made a /proc scan every RESCAN_EVERY).
#[test]
fn a_scan_answers_every_unresolved_namespace_for_retry() {
    let owners = Owners::new(nowhere());
    let old = Instant::now()
        .checked_sub(RETRY + Duration::from_secs(1))
        .expect("uptime");
    {
        let mut s = owners.state.lock().unwrap();
        for k in [1, 2] {
            s.map.insert(k, Entry::unknown(old));
        }
    }
    let before = Instant::now();
    assert_eq!(owners.get(1), None, "no namespace has inode 1");
    let scanned = owners.state.lock().unwrap().scanned;
    assert!(scanned.is_some_and(|t| t >= before), "expired: scanned");
    for k in [1, 2] {
        let at = owners.state.lock().unwrap().map[&k].at;
        assert!(at >= before, "inode {k} counts as asked by the scan");
    }
    std::thread::sleep(RESCAN_EVERY);
    assert_eq!(owners.get(1), None);
    assert_eq!(owners.get(2), None);
    assert_eq!(
        owners.state.lock().unwrap().scanned,
        scanned,
        "within RETRY of the scan: no other"
    );
}

/// Namespaces first asked within RESCAN_EVERY of a scan are all answered by the next scan,
/// RESCAN_EVERY later: not one scan each (500 new namespaces took 500 scans, one a tick).
#[test]
fn namespaces_asked_between_scans_share_the_next_one() {
    let owners = Owners::new(nowhere());
    let t0 = Instant::now();
    owners.state.lock().unwrap().scanned = Some(t0);
    assert_eq!(owners.get(1), None);
    assert_eq!(owners.get(2), None);
    assert_eq!(owners.state.lock().unwrap().scanned, Some(t0), "too soon");
    std::thread::sleep(RESCAN_EVERY);
    assert_eq!(owners.get(1), None);
    let scanned = owners.state.lock().unwrap().scanned;
    assert!(scanned.is_some_and(|t| t > t0), "due: scanned");
    std::thread::sleep(RESCAN_EVERY);
    assert_eq!(owners.get(2), None);
    assert_eq!(owners.get(1), None);
    assert_eq!(
        owners.state.lock().unwrap().scanned,
        scanned,
        "that scan answered both for RETRY"
    );
}

/// A fault about a namespace first asked between scans does not wait for the next one: it is
/// scanned for at once, and only once.
#[test]
fn a_fault_about_a_namespace_no_scan_has_looked_for_scans_now() {
    let owners = Owners::new(nowhere());
    let t0 = Instant::now();
    owners.state.lock().unwrap().scanned = Some(t0);
    assert_eq!(owners.get(7), None);
    assert_eq!(
        owners.state.lock().unwrap().scanned,
        Some(t0),
        "too soon for get"
    );
    assert_eq!(owners.get_now(7), None);
    let scanned = owners.state.lock().unwrap().scanned;
    assert!(scanned.is_some_and(|t| t > t0), "get_now scanned");
    // Looked for now: the next fault about it is answered from the map.
    assert_eq!(owners.get_now(7), None);
    assert_eq!(
        owners.state.lock().unwrap().scanned,
        scanned,
        "scanned once"
    );
    // A namespace never asked before, too (no entry at all).
    assert_eq!(owners.get_now(8), None);
    assert!(owners.state.lock().unwrap().scanned > scanned);
}

#[test]
fn the_map_is_bounded_and_keeps_the_asked_namespace() {
    let now = Instant::now();
    let mut map = HashMap::new();
    for k in 0..(MAX as u32 + 50) {
        let owner = (k % 2 == 0).then(|| Arc::new(Owner::host()));
        map.insert(
            k,
            Entry {
                looked: true,
                owner,
                at: now,
                pid: None,
            },
        );
    }
    bound(&mut map, 7, now);
    assert!(map.len() <= MAX);
    assert!(map.contains_key(&7), "the namespace just asked for stays");
    // Unresolved ones went first: every resolved one is still there.
    assert!((0..(MAX as u32 + 50))
        .step_by(2)
        .all(|k| map.contains_key(&k)));
}

#[test]
fn an_answer_is_dropped_once_its_process_left_the_namespace() {
    let now = Instant::now();
    let own = crate::netns::current().unwrap();
    let me = std::process::id();
    let mut e = Entry {
        looked: true,
        owner: Some(Arc::new(Owner::of_kind(Kind::Pod))),
        at: now,
        pid: Some((me, now)),
    };
    // Checked at most every CHECK_EVERY; this process is in the namespace.
    assert!(e.still_true(own, now));
    let later = now + CHECK_EVERY;
    assert!(e.still_true(own, later));
    assert_eq!(e.pid, Some((me, later)));
    // The same pid is not in namespace 1 (a number reused by a new namespace, in effect).
    let later = later + CHECK_EVERY;
    assert!(!e.still_true(1, later));
    // A process that exited: no /proc entry.
    let mut gone = Entry {
        pid: Some((u32::MAX, now)),
        ..Entry::unknown(now)
    };
    assert!(!gone.still_true(own, now + CHECK_EVERY));
    // No process to check (unknown owners): kept for RETRY as before.
    assert!(Entry::unknown(now).still_true(own, now + KEEP));
}

#[test]
fn a_stale_answer_is_replaced_by_a_scan_at_once() {
    let owners = Owners::new(nowhere());
    let own = crate::netns::current().unwrap();
    let now = Instant::now();
    let old = now.checked_sub(CHECK_EVERY).unwrap();
    {
        let mut s = owners.state.lock().unwrap();
        // A pod's answer read from a process that is gone, and a scan a moment ago.
        s.map.insert(
            own,
            Entry {
                looked: true,
                owner: Some(Arc::new(Owner::of_kind(Kind::Pod))),
                at: now,
                pid: Some((u32::MAX, old)),
            },
        );
        s.scanned = Some(now);
    }
    let got = owners.get(own);
    assert_ne!(got.map(|o| o.kind), Some(Kind::Pod));
    let scanned = owners.state.lock().unwrap().scanned;
    assert!(
        scanned > Some(now),
        "scanned again without waiting RESCAN_EVERY"
    );
    // Told that the number is gone or renewed: forgotten, looked up at the next event.
    assert!(owners.state.lock().unwrap().map.contains_key(&own));
    owners.forget(own);
    assert!(!owners.state.lock().unwrap().map.contains_key(&own));
}

#[test]
fn a_scan_checks_every_answer() {
    let owners = Owners::new(nowhere());
    let own = crate::netns::current().unwrap();
    let now = Instant::now();
    let pod = || Some(Arc::new(Owner::of_kind(Kind::Pod)));
    {
        let mut s = owners.state.lock().unwrap();
        // Read from a process that left (no such pid), and a namespace nobody is in.
        s.map.insert(
            own,
            Entry {
                looked: true,
                owner: pod(),
                at: now,
                pid: Some((u32::MAX, now)),
            },
        );
        s.map.insert(
            1,
            Entry {
                looked: true,
                owner: pod(),
                at: now,
                pid: Some((u32::MAX, now)),
            },
        );
    }
    // Any scan (here one asked for another namespace) checks both.
    owners.get(2);
    let s = owners.state.lock().unwrap();
    assert_ne!(s.map[&own].owner.as_ref().map(|o| o.kind), Some(Kind::Pod));
    assert!(s.map[&1].owner.is_none(), "no process in it: unknown");
}
