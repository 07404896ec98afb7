//! Names for an id a cgroup path gave: the runtime's own state files (the OCI bundle's
//! `config.json` annotations that containerd's and CRI-O's CRI plugins write, podman's
//! `containers.json`, docker's `config.v2.json`) and the kubelet's pod directory. Only files are
//! read, never a socket: every source is optional and a missing one leaves its fields unknown.
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where the runtimes and the kubelet keep their state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// The kubelet's root directory (`--root-dir`, default `/var/lib/kubelet`).
    pub kubelet: PathBuf,
    /// containers/storage graph roots (podman, CRI-O): `*-containers/containers.json` and
    /// `*-containers/<id>/userdata/config.json` below each.
    pub storage: Vec<PathBuf>,
    /// containerd's v2 task state: `<namespace>/<id>/config.json` (the OCI bundle).
    pub containerd: PathBuf,
    /// docker's `containers/<id>/config.v2.json`.
    pub docker: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            kubelet: "/var/lib/kubelet".into(),
            storage: vec![
                "/var/lib/containers/storage".into(),
                "/run/containers/storage".into(),
            ],
            containerd: "/run/containerd/io.containerd.runtime.v2.task".into(),
            docker: "/var/lib/docker/containers".into(),
        }
    }
}

impl Roots {
    /// The defaults, with `GUARDIAN_KUBELET_ROOT` (a kubelet `--root-dir` elsewhere) and
    /// `GUARDIAN_CONTAINERS_STORAGE` (graph roots, `:`-separated) when set.
    pub fn from_env() -> Self {
        let mut r = Self::default();
        if let Some(k) = std::env::var_os("GUARDIAN_KUBELET_ROOT").filter(|v| !v.is_empty()) {
            r.kubelet = k.into();
        }
        if let Some(s) = std::env::var_os("GUARDIAN_CONTAINERS_STORAGE").filter(|v| !v.is_empty()) {
            r.storage = std::env::split_paths(&s).collect();
        }
        r
    }
}

/// The names the state files give for one container.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Names {
    pub container_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
}

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

/// The `*-containers` directories of every graph root (`overlay-containers`, `vfs-containers`).
fn container_dirs(roots: &Roots) -> impl Iterator<Item = PathBuf> + '_ {
    roots.storage.iter().flat_map(|r| {
        std::fs::read_dir(r)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("-containers"))
            .map(|e| e.path())
    })
}

/// The OCI bundle's annotations of container `id`: containerd's (any containerd namespace, e.g.
/// `k8s.io`) or a containers/storage one's (CRI-O, podman).
fn annotations(roots: &Roots, id: &str) -> Option<serde_json::Map<String, Value>> {
    let containerd = std::fs::read_dir(&roots.containerd)
        .into_iter()
        .flatten()
        .flatten()
        .map(|ns| ns.path().join(id).join("config.json"));
    let storage = container_dirs(roots).map(|d| d.join(id).join("userdata/config.json"));
    containerd
        .chain(storage)
        .find_map(|p| read_json(&p))
        .and_then(|v| v.get("annotations")?.as_object().cloned())
}

/// Names from CRI annotations: containerd's `io.kubernetes.cri.*` or CRI-O's
/// `io.kubernetes.pod.*` / `io.kubernetes.container.name` (`POD` for the sandbox).
pub fn from_annotations(a: &serde_json::Map<String, Value>) -> Names {
    let get = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| a.get(*k)?.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Names {
        container_name: get(&[
            "io.kubernetes.cri.container-name",
            "io.kubernetes.container.name",
        ])
        .filter(|n| n != "POD"),
        pod_namespace: get(&[
            "io.kubernetes.cri.sandbox-namespace",
            "io.kubernetes.pod.namespace",
        ]),
        pod_name: get(&["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"]),
        pod_uid: get(&["io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"])
            .and_then(|u| super::cgroup::pod_uid(&u)),
    }
}

/// podman's name for `id` from containers/storage's `containers.json` (`names[0]`).
pub fn podman_name(roots: &Roots, id: &str) -> Option<String> {
    container_dirs(roots).find_map(|d| {
        let list = read_json(&d.join("containers.json"))?;
        let c = list.as_array()?.iter().find(|c| c["id"] == id)?;
        c["names"].get(0)?.as_str().map(str::to_owned)
    })
}

/// docker's name for `id` (`Name` in `config.v2.json`, without its leading `/`).
pub fn docker_name(roots: &Roots, id: &str) -> Option<String> {
    let v = read_json(&roots.docker.join(id).join("config.v2.json"))?;
    let n = v.get("Name")?.as_str()?.trim_start_matches('/');
    (!n.is_empty()).then(|| n.to_owned())
}

/// The host name line of a kubelet-managed `etc-hosts`: the first entry after the fixed
/// localhost/ip6 block and before `# Entries added by HostAliases.`; its last field is the
/// pod's hostname (the pod name unless `spec.hostname` is set).
pub fn hosts_hostname(content: &str) -> Option<String> {
    content
        .lines()
        .take_while(|l| !l.starts_with("# Entries added by HostAliases"))
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 2)
        .find(|f| {
            !f[1..]
                .iter()
                .any(|n| n.contains("localhost") || n.starts_with("ip6-"))
        })
        .and_then(|f| f.last().map(|s| s.to_string()))
}

/// What the kubelet's pod directory tells about pod `uid`: the name from `etc-hosts`, the
/// namespace from the service-account volume (`volumes/kubernetes.io~projected/*/namespace`,
/// or the older `kubernetes.io~secret/*/namespace`; only that file is read), and the container
/// name when the pod has exactly one (`containers/NAME`).
pub fn from_kubelet(root: &Path, uid: &str) -> Names {
    let pod = root.join("pods").join(uid);
    let pod_name = std::fs::read_to_string(pod.join("etc-hosts"))
        .ok()
        .and_then(|h| hosts_hostname(&h));
    let pod_namespace = ["kubernetes.io~projected", "kubernetes.io~secret"]
        .iter()
        .flat_map(|kind| {
            std::fs::read_dir(pod.join("volumes").join(kind))
                .into_iter()
                .flatten()
                .flatten()
        })
        .find_map(|v| std::fs::read_to_string(v.path().join("namespace")).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let containers: Vec<String> = std::fs::read_dir(pod.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let found = pod_name.is_some() || pod_namespace.is_some() || !containers.is_empty();
    Names {
        container_name: (containers.len() == 1).then(|| containers[0].clone()),
        pod_namespace,
        pod_name,
        pod_uid: found.then(|| uid.to_owned()),
    }
}

/// The names for container `id` of `runtime` (and pod `pod_uid`), best source first: the OCI
/// bundle's CRI annotations, then the runtime's own store (podman, docker), then the kubelet
/// directory for what is still unknown.
pub fn lookup(
    roots: &Roots,
    runtime: Option<&str>,
    id: Option<&str>,
    pod_uid: Option<&str>,
) -> Names {
    let mut n = id
        .and_then(|id| annotations(roots, id))
        .map(|a| from_annotations(&a))
        .unwrap_or_default();
    if n.container_name.is_none() && pod_uid.is_none() {
        n.container_name = match (runtime, id) {
            (Some("podman"), Some(id)) => podman_name(roots, id),
            (Some("docker"), Some(id)) => docker_name(roots, id),
            _ => None,
        };
    }
    if let Some(uid) = pod_uid {
        let k = from_kubelet(&roots.kubelet, uid);
        n.pod_name = n.pod_name.or(k.pod_name);
        n.pod_namespace = n.pod_namespace.or(k.pod_namespace);
        n.container_name = n.container_name.or(k.container_name);
        n.pod_uid = n.pod_uid.or(Some(uid.to_owned()));
    }
    n
}

#[cfg(test)]
#[path = "meta_tests.rs"]
mod tests;
