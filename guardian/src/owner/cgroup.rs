//! Reads who owns a process from its cgroup path (`/proc/PID/cgroup`): the systemd unit, the
//! container runtime and id (containerd, CRI-O, podman, docker, systemd-nspawn) and, under
//! `kubepods`, the pod's uid. Pure string parsing, one rule per layout; hand-written because no
//! crate parses these names (they are conventions of each runtime, not of the kernel).

/// What a cgroup path says about its process. Every field is optional: a path names only what
/// its layout encodes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cgroup {
    /// The innermost systemd unit that is not a container's own scope (`nginx.service`,
    /// `session-3.scope`, `user@1000.service`).
    pub unit: Option<String>,
    pub runtime: Option<&'static str>,
    pub container_id: Option<String>,
    /// A container name the path itself carries (systemd-nspawn's `machine-NAME.scope`).
    pub container_name: Option<String>,
    /// The pod uid with dashes (`kubepods-…-pod<uid with _>.slice` or `…/pod<uid>/…`).
    pub pod_uid: Option<String>,
}

/// The path to read from a `/proc/PID/cgroup` file: the cgroup v2 line (`0::PATH`) unless it is
/// the root (a hybrid host whose runtime only manages v1), then the `name=systemd` line, then
/// the first v1 line that is not the root. None when every line is the root.
pub fn path_of(content: &str) -> Option<&str> {
    let lines: Vec<(&str, &str)> = content
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            Some((parts.next()?, parts.next()?))
        })
        .collect();
    let not_root = |p: &&str| !p.is_empty() && *p != "/";
    let v2 = lines.iter().find(|(c, _)| c.is_empty()).map(|(_, p)| *p);
    let named = lines
        .iter()
        .find(|(c, _)| *c == "name=systemd")
        .map(|(_, p)| *p);
    let first = lines.iter().map(|(_, p)| *p).find(not_root);
    v2.filter(not_root).or(named.filter(not_root)).or(first)
}

/// 64 lowercase hex digits: the id every OCI runtime here uses.
fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A pod uid: 36 characters of hex and dashes (`_` in systemd slice names).
pub(super) fn pod_uid(s: &str) -> Option<String> {
    let uid = s.replace('_', "-");
    (uid.len() == 36
        && uid
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-')))
    .then_some(uid)
}

/// Undoes systemd's unit name escaping of `-` and other bytes (`\x2d`).
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `PREFIX<id>.scope` or `PREFIX<id>` (cgroupfs managers drop the suffix).
fn scoped_id<'a>(seg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = seg.strip_prefix(prefix)?;
    let id = rest.strip_suffix(".scope").unwrap_or(rest);
    is_id(id).then_some(id)
}

/// Parses one cgroup path (any depth; a path seen through a cgroup namespace may start with
/// `/..`).
pub fn parse(path: &str) -> Cgroup {
    let mut c = Cgroup::default();
    let mut kube = false;
    let mut after_docker = false;
    let mut after_pod = false;
    for seg in path.split('/').filter(|s| !s.is_empty() && *s != "..") {
        let docker_parent = std::mem::take(&mut after_docker);
        let pod_parent = std::mem::take(&mut after_pod);
        if seg == "kubepods" || seg == "kubepods.slice" {
            kube = true;
            continue;
        }
        // The runtime's own helpers (conmon) live next to the container: not the container.
        if seg.starts_with("crio-conmon-") || seg.starts_with("libpod-conmon-") {
            continue;
        }
        let container = [
            ("cri-containerd-", "containerd"),
            ("crio-", "cri-o"),
            ("libpod-", "podman"),
            ("docker-", "docker"),
        ]
        .into_iter()
        .find_map(|(prefix, rt)| scoped_id(seg, prefix).map(|id| (rt, id)));
        if let Some((rt, id)) = container {
            c.runtime = Some(rt);
            c.container_id = Some(id.to_owned());
            continue;
        }
        if seg == "docker" {
            after_docker = true;
            continue;
        }
        if docker_parent && is_id(seg) {
            c.runtime = Some("docker");
            c.container_id = Some(seg.to_owned());
            continue;
        }
        // systemd driver: kubepods-burstable-pod<uid_>.slice, kubepods-pod<uid_>.slice (named
        // in full, so recognised even below a cgroup namespace's root).
        let slice = seg
            .strip_prefix("kubepods-")
            .and_then(|s| s.strip_suffix(".slice"))
            .and_then(|s| s.rsplit_once("pod"))
            .and_then(|(_, u)| pod_uid(u));
        // cgroupfs driver: kubepods/[qos/]pod<uid>, then the container id as the next directory.
        let plain = kube
            .then(|| seg.strip_prefix("pod").and_then(pod_uid))
            .flatten();
        if let Some(uid) = slice.or(plain) {
            c.pod_uid = Some(uid);
            after_pod = true;
            continue;
        }
        if kube && pod_parent && is_id(seg) {
            c.container_id = Some(seg.to_owned());
            continue;
        }
        if let Some(name) = seg
            .strip_prefix("machine-")
            .and_then(|s| s.strip_suffix(".scope"))
        {
            c.runtime = Some("systemd-nspawn");
            c.container_name = Some(unescape(name));
            continue;
        }
        if seg.ends_with(".service") || seg.ends_with(".scope") {
            c.unit = Some(unescape(seg));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f6d1e2b9a0c3d5e7f8a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6";

    #[test]
    fn the_v2_line_unless_root_then_name_systemd_then_any_v1() {
        assert_eq!(
            path_of("0::/system.slice/nginx.service\n"),
            Some("/system.slice/nginx.service")
        );
        // A real podman (cgroupfs manager) on this hybrid host: v1 lines carry the container.
        let hybrid = format!(
            "9:name=systemd:/libpod_parent/libpod-{ID}\n8:pids:/libpod_parent/libpod-{ID}\n0::/\n"
        );
        assert_eq!(
            path_of(&hybrid),
            Some(&*format!("/libpod_parent/libpod-{ID}"))
        );
        let v1 = "4:memory:/process_api/a3d3\n3:cpuset:/\n0::/\n";
        assert_eq!(path_of(v1), Some("/process_api/a3d3"));
        assert_eq!(path_of("1:cpu:/\n0::/\n"), None);
    }

    #[test]
    fn systemd_units_system_and_user() {
        let c = parse("/system.slice/nginx.service");
        assert_eq!(c.unit.as_deref(), Some("nginx.service"));
        assert_eq!(c.container_id, None);
        let c = parse("/user.slice/user-1000.slice/user@1000.service/app.slice/app-foo.service");
        assert_eq!(c.unit.as_deref(), Some("app-foo.service"));
        let c = parse("/user.slice/user-0.slice/session-3.scope");
        assert_eq!(c.unit.as_deref(), Some("session-3.scope"));
        let c = parse("/system.slice/system-getty.slice/getty@tty1.service");
        assert_eq!(c.unit.as_deref(), Some("getty@tty1.service"));
    }

    #[test]
    fn podman_systemd_and_cgroupfs_managers_rootless_too() {
        for p in [
            format!("/machine.slice/libpod-{ID}.scope"),
            format!("/machine.slice/libpod-{ID}.scope/container"),
            format!("/libpod_parent/libpod-{ID}"),
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"),
        ] {
            let c = parse(&p);
            assert_eq!(c.runtime, Some("podman"), "{p}");
            assert_eq!(c.container_id.as_deref(), Some(ID), "{p}");
            assert_eq!(c.pod_uid, None);
        }
        assert_eq!(
            parse(&format!("/machine.slice/libpod-conmon-{ID}.scope")).container_id,
            None
        );
    }

    #[test]
    fn docker_systemd_and_cgroupfs_drivers() {
        for p in [
            format!("/system.slice/docker-{ID}.scope"),
            format!("/docker/{ID}"),
        ] {
            let c = parse(&p);
            assert_eq!(c.runtime, Some("docker"), "{p}");
            assert_eq!(c.container_id.as_deref(), Some(ID), "{p}");
        }
        // The daemon itself is a unit, not a container.
        let c = parse("/system.slice/docker.service");
        assert_eq!(
            (c.unit.as_deref(), c.runtime),
            (Some("docker.service"), None)
        );
    }

    #[test]
    fn kubernetes_pods_containerd_crio_and_cgroupfs() {
        let uid = "0f5e8c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b";
        let u = uid.replace('-', "_");
        let cases = [
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{ID}.scope"),
                Some("containerd"),
            ),
            (
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/crio-{ID}.scope"),
                Some("cri-o"),
            ),
            // Guaranteed pods sit directly under kubepods.
            (
                format!("/kubepods.slice/kubepods-pod{u}.slice/cri-containerd-{ID}.scope"),
                Some("containerd"),
            ),
            (format!("/kubepods/burstable/pod{uid}/{ID}"), None),
            (format!("/kubepods/pod{uid}/{ID}"), None),
            // Seen from a container with its own cgroup namespace (a DaemonSet pod).
            (
                format!("/../../kubepods-burstable-pod{u}.slice/cri-containerd-{ID}.scope"),
                Some("containerd"),
            ),
        ];
        for (p, rt) in &cases {
            let c = parse(p);
            assert_eq!(c.container_id.as_deref(), Some(ID), "{p}");
            assert_eq!(c.runtime, *rt, "{p}");
            assert_eq!(c.pod_uid.as_deref(), Some(uid), "{p}");
        }
        // The CRI-O conmon scope is the runtime's helper, not the pod's container.
        let c = parse(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/crio-conmon-{ID}.scope"
        ));
        assert_eq!((c.container_id, c.pod_uid.as_deref()), (None, Some(uid)));
    }

    #[test]
    fn nspawn_machines_by_name() {
        let c = parse("/machine.slice/machine-web\\x2d1.scope/payload");
        assert_eq!(c.runtime, Some("systemd-nspawn"));
        assert_eq!(c.container_name.as_deref(), Some("web-1"));
    }

    #[test]
    fn unrelated_paths_name_nothing() {
        assert_eq!(parse("/"), Cgroup::default());
        assert_eq!(parse("/process_api/a3d3dcf9"), Cgroup::default());
        // A 64-hex directory outside docker/ and kubepods is not a container.
        assert_eq!(parse(&format!("/mine/{ID}")), Cgroup::default());
    }
}
