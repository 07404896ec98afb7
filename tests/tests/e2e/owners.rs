//! Namespaces by owner. A real podman container (no image: `--rootfs` holding the static
//! busybox) joined to a namespace the test made, and a fake Kubernetes node (a process in a
//! cgroup v2 path `kubepods.slice/…-pod<uid>.slice/cri-containerd-<id>.scope` made under a
//! test-owned directory, and a kubelet pod directory under `GUARDIAN_KUBELET_ROOT`): refused
//! connects inside each open `connection_refused`, and that `fault` event's `owner` names the
//! podman container (id and name) or the pod (namespace, name, uid, container id), and
//! `/metrics` counts the pod's open incident under its namespace and name.
//! Container, cgroups, files and namespaces are removed by guards, also when the test fails.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use guardian_tests::flows::is_fault_in;
use guardian_tests::*;
use serde_json::Value;

const PORT: u16 = 5899;

/// A directory removed on drop, pass or fail.
struct Tree(PathBuf);

impl Tree {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("gt-owners-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts the daemon in its own namespace with the owner roots pointed at the test's files.
fn daemon(ns: &Netns, env: &[(&str, &str)]) -> Daemon {
    let mut d = Daemon::start_env(&guardian_bin(), ns, &["--interval-ms", "100"], env);
    d.wait_attached();
    d
}

/// Refused connects to loopback `port` inside `ns` until `connection_refused` opens there;
/// returns the fault event. One refusal first (to `port + 1`), so the detector has the
/// namespace's baseline. Only events after the call count.
fn refuse_until_fault(d: &mut Daemon, ns: &Netns, port: u16) -> Value {
    let netns = ns.inode();
    let after = d.count();
    let before = d
        .events()
        .iter()
        .rev()
        .find(|e| is_counters(e, netns))
        .map_or(0, |e| u64_field(e, "connect_refused"));
    let first = SocketAddr::from(([127, 0, 0, 1], port + 1));
    let one = run_in_netns(ns, move || {
        connect_refused_n(first, 1, Duration::from_secs(2))
    });
    assert_eq!(one, 1);
    d.wait_for_after(
        after,
        |e| is_counters(e, netns) && u64_field(e, "connect_refused") > before,
        Duration::from_secs(5),
    );
    let dst = SocketAddr::from(([127, 0, 0, 1], port));
    let n = run_in_netns(ns, move || {
        connect_refused_n(dst, 30, Duration::from_secs(2))
    });
    assert_eq!(n, 30, "every connect refused by the namespace's own kernel");
    d.wait_for_after(
        after,
        |e| is_fault_in(e, "connection_refused", "opened", netns),
        Duration::from_secs(5),
    )
    .1
}

/// podman with its storage under `dir`. In a mount namespace of its own where the hybrid
/// cgroup layout of this CI host is made plain v1 (crun refuses hybrid hosts), as
/// `package.rs` does.
fn podman(dir: &Path) -> Command {
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi; exec podman \"$@\"")
        .arg("podman")
        .args(["--cgroup-manager", "cgroupfs", "--storage-driver", "vfs"])
        .arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"));
    c
}

struct Container<'a>(&'a Path, String);

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = podman(self.0)
            .args(["rm", "-f", "-t", "0", &self.1])
            .output();
    }
}

#[test]
fn a_podman_container_is_named_on_its_fault() {
    require_root();
    let tree = Tree::new("podman");
    let rootfs = tree.0.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sleep")).unwrap();
    let p = Netns::new("own-pod");
    let name = format!("gt-owners-{}", std::process::id());
    let out = podman(&tree.0)
        .args(["run", "-d", "--name", &name])
        .arg(format!("--network=ns:{}", p.path().display()))
        .args([
            "--ulimit",
            "nofile=8192:8192",
            "--ulimit",
            "nproc=4096:4096",
        ])
        .arg("--rootfs")
        .arg(&rootfs)
        .args(["/bin/sleep", "120"])
        .output()
        .unwrap();
    let _c = Container(&tree.0, name.clone());
    assert!(out.status.success(), "podman run: {out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(id.len(), 64, "podman run printed the id: {id}");
    let storage = tree.0.join("storage");
    let home = Netns::new("own-d");
    let mut d = daemon(
        &home,
        &[("GUARDIAN_CONTAINERS_STORAGE", storage.to_str().unwrap())],
    );
    let fault = refuse_until_fault(&mut d, &p, PORT);
    eprintln!("fault: {fault}");
    let owner = &fault["owner"];
    assert_eq!(owner["kind"], "container", "{fault}");
    assert_eq!(owner["runtime"], "podman");
    assert_eq!(owner["container_id"], id.as_str());
    assert_eq!(owner["container_name"], name.as_str());
    assert!(owner.get("pod_uid").is_none());
    let events = d.finish();
    // Every event about that namespace names the same owner; the daemon's own is not it.
    let netns = p.inode();
    let about: Vec<_> = events
        .iter()
        .filter(|e| e["netns"].as_u64() == Some(netns))
        .collect();
    assert!(about.len() >= 2);
    assert!(about.iter().all(|e| e["owner"] == *owner), "{about:?}");
    assert!(events
        .iter()
        .filter(|e| e["netns"].as_u64() == Some(home.inode()))
        .all(|e| e["owner"]["container_id"] != id.as_str()));
}

/// The cgroup v2 hierarchy: `/sys/fs/cgroup/unified` on a hybrid host, else `/sys/fs/cgroup`.
fn cgroup2_root() -> PathBuf {
    let unified = Path::new("/sys/fs/cgroup/unified");
    if unified.join("cgroup.procs").exists() {
        unified.to_path_buf()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

/// A cgroup path made by the test with one process in its leaf; on drop the process goes back
/// to the root cgroup and the directories are removed, deepest first.
struct KubeCgroup {
    root: PathBuf,
    dirs: Vec<PathBuf>,
    pid: u32,
}

impl KubeCgroup {
    fn new(rel: &str, pid: u32) -> Self {
        let root = cgroup2_root();
        let mut dirs = Vec::new();
        let mut at = root.clone();
        for seg in rel.split('/') {
            at.push(seg);
            std::fs::create_dir(&at).unwrap_or_else(|e| panic!("mkdir {}: {e}", at.display()));
            dirs.push(at.clone());
        }
        let g = Self { root, dirs, pid };
        std::fs::write(at.join("cgroup.procs"), pid.to_string()).unwrap();
        g
    }
}

impl Drop for KubeCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.root.join("cgroup.procs"), self.pid.to_string());
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// What a kubelet writes in a pod's directory (etc-hosts, the service account volume's
/// namespace, one directory per container): pod `name` in namespace `shop`, container `api`.
fn kubelet_pod(kubelet: &Tree, uid: &str, name: &str) {
    let pod = format!("pods/{uid}");
    kubelet.write(
        &format!("{pod}/etc-hosts"),
        &format!("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n10.244.1.7\t{name}\n"),
    );
    kubelet.write(
        &format!("{pod}/volumes/kubernetes.io~projected/kube-api-access-x7k2p/namespace"),
        "shop",
    );
    kubelet.write(&format!("{pod}/containers/api/5e1f0c2a"), "");
}

/// A pod's sandbox: a process in namespace `ns`, in the pod's cgroup (`uid`, container `cid`).
fn sandbox(ns: &Netns, uid: &str, cid: &str) -> (u32, KubeCgroup) {
    let pid = ns.spawn(&["sleep", "120"]);
    let rel = format!(
        "gt-owners-{}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{cid}.scope",
        std::process::id(),
        uid.replace('-', "_")
    );
    let cg = KubeCgroup::new(&rel, pid);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroup.contains(&format!("0::/{rel}")), "{cgroup}");
    (pid, cg)
}

#[test]
fn a_pod_of_a_fake_kubelet_is_named_on_its_fault() {
    require_root();
    let pid = std::process::id();
    let uid = format!("0f5e8c1a-2b3d-4e5f-8a9b-{pid:012x}");
    let cid = format!("{:064x}", 0xc0ffee_u64 + u64::from(pid));
    let k = Netns::new("own-kube");
    // The pod's sandbox: a process in the pod's namespace, in the pod's cgroup.
    let (_sandbox, _cg) = sandbox(&k, &uid, &cid);
    let kubelet = Tree::new("kubelet");
    kubelet_pod(&kubelet, &uid, "checkout-7d9f");
    let home = Netns::new("own-kd");
    let mut d = daemon(
        &home,
        &[("GUARDIAN_KUBELET_ROOT", kubelet.0.to_str().unwrap())],
    );
    let fault = refuse_until_fault(&mut d, &k, PORT);
    eprintln!("fault: {fault}");
    let owner = &fault["owner"];
    assert_eq!(owner["kind"], "pod", "{fault}");
    assert_eq!(owner["pod_namespace"], "shop");
    assert_eq!(owner["pod_name"], "checkout-7d9f");
    assert_eq!(owner["pod_uid"], uid.as_str());
    assert_eq!(owner["runtime"], "containerd");
    assert_eq!(owner["container_id"], cid.as_str());
    assert_eq!(owner["container_name"], "api");
    // The bounded metric names the pod while its incidents are open: the refusals' and, as
    // each refusal is a RST, `reset_storm`'s on both ends of the port.
    let series =
        "guardian_open_incidents_by_owner{kind=\"pod\",namespace=\"shop\",name=\"checkout-7d9f\"} ";
    let seen = poll(Duration::from_secs(5), Duration::from_millis(100), || {
        metrics(&home).filter(|m| {
            m.lines().any(|l| {
                l.strip_prefix(series)
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|v| v >= 1.0)
            })
        })
    });
    assert!(seen.is_some(), "no `{series}` in:\n{:?}", metrics(&home));
    d.finish();
}

/// The body of `GET /metrics` on the daemon's default endpoint (127.0.0.1:9464 in `ns`).
fn metrics(ns: &Netns) -> Option<String> {
    run_in_netns(ns, || {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9464));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).ok()?;
        resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
    })
}

#[test]
fn a_pod_that_gets_a_deleted_pods_namespace_number_is_named_as_itself() {
    require_root();
    let pid = std::process::id();
    let kubelet = Tree::new("kubelet-reuse");
    let pod = |n: u64| {
        (
            format!("0f5e8c1a-2b3d-4e5f-8a9b-{:012x}", u64::from(pid) * 16 + n),
            format!("{:064x}", 0xc0ffee_u64 + u64::from(pid) * 16 + n),
        )
    };
    let home = Netns::new("own-rd");
    let mut d = daemon(
        &home,
        &[("GUARDIAN_KUBELET_ROOT", kubelet.0.to_str().unwrap())],
    );
    // The old pod, made after the daemon's namespace (so that the next namespace made takes
    // its number once it is freed): named on its events.
    let (uid, cid) = pod(1);
    kubelet_pod(&kubelet, &uid, "checkout-old");
    let old = Netns::new("own-ra");
    let inode = old.inode();
    let cg = sandbox(&old, &uid, &cid);
    refuse_until_fault(&mut d, &old, PORT);
    // A namespace first seen within RESCAN_EVERY of another scan is named from the next one.
    d.wait_for_after(
        0,
        |e| e["netns"].as_u64() == Some(inode) && e["owner"]["pod_name"] == "checkout-old",
        Duration::from_secs(5),
    );
    // It is deleted (sandbox, cgroup, namespace); a new pod's namespace gets its number.
    drop(cg);
    drop(old);
    let (new, _others) = namespace_with_inode(inode, "own-rb");
    let (uid, cid) = pod(2);
    kubelet_pod(&kubelet, &uid, "checkout-new");
    let _cg = sandbox(&new, &uid, &cid);
    // An answer is checked again at most every second (owner::CHECK_EVERY).
    std::thread::sleep(Duration::from_millis(1100));
    let fault = refuse_until_fault(&mut d, &new, PORT + 2);
    eprintln!("fault in the new pod: {fault}");
    let owner = &fault["owner"];
    assert_eq!(owner["pod_name"], "checkout-new", "{fault}");
    assert_eq!(owner["pod_uid"], uid.as_str(), "{fault}");
    assert_eq!(owner["container_id"], cid.as_str(), "{fault}");
    d.finish();
}
