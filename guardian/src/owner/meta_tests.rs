//! Unit tests of the state-file readers, on the files the runtimes and the kubelet write.
use super::*;

const ID: &str = "51fa41f071238a0cb2d7a2eb7e32b0a9b6eb0f19f5ea89e5feba8c9a31819f83";
const UID: &str = "0f5e8c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b";

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("guardian-owner-{tag}-{}", std::process::id()));
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
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn roots(d: &Dir) -> Roots {
    Roots {
        kubelet: d.0.join("kubelet"),
        storage: vec![d.0.join("storage")],
        containerd: d.0.join("containerd"),
        docker: d.0.join("docker"),
    }
}

#[test]
fn podman_names_from_containers_json() {
    let d = Dir::new("podman");
    // As podman 4.3 (vfs driver) wrote it after `podman run --name gd-own-probe --rootfs …`.
    d.write(
        "storage/vfs-containers/containers.json",
        &format!(
            r#"[{{"id":"{ID}","names":["gd-own-probe"],"image":"","layer":"dca4","metadata":"{{\"name\":\"gd-own-probe\"}}","created":"2026-12-04T20:46:45.029912308Z","flags":{{"MountLabel":"","ProcessLabel":""}}}}]"#
        ),
    );
    let r = roots(&d);
    assert_eq!(podman_name(&r, ID).as_deref(), Some("gd-own-probe"));
    assert_eq!(podman_name(&r, &ID.replace('5', "6")), None);
    let n = lookup(&r, Some("podman"), Some(ID), None);
    assert_eq!(n.container_name.as_deref(), Some("gd-own-probe"));
    assert_eq!(n.pod_name, None);
}

#[test]
fn docker_names_from_config_v2() {
    let d = Dir::new("docker");
    d.write(
        &format!("docker/{ID}/config.v2.json"),
        r#"{"ID":"x","Name":"/web"}"#,
    );
    assert_eq!(docker_name(&roots(&d), ID).as_deref(), Some("web"));
}

#[test]
fn cri_annotations_containerd_and_crio() {
    let d = Dir::new("cri");
    // containerd's CRI plugin, on a workload container of pod default/web-0.
    d.write(
        &format!("containerd/k8s.io/{ID}/config.json"),
        &format!(
            r#"{{"ociVersion":"1.1.0","annotations":{{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.container-name":"nginx","io.kubernetes.cri.sandbox-name":"web-0","io.kubernetes.cri.sandbox-namespace":"default","io.kubernetes.cri.sandbox-uid":"{UID}"}}}}"#
        ),
    );
    let n = lookup(&roots(&d), Some("containerd"), Some(ID), Some(UID));
    assert_eq!(
        n,
        Names {
            container_name: Some("nginx".into()),
            pod_namespace: Some("default".into()),
            pod_name: Some("web-0".into()),
            pod_uid: Some(UID.into()),
        }
    );
    // CRI-O's infra (sandbox) container: `POD` is no container name.
    let a = serde_json::json!({
        "io.kubernetes.container.name": "POD",
        "io.kubernetes.pod.name": "dns-7",
        "io.kubernetes.pod.namespace": "kube-system",
        "io.kubernetes.pod.uid": UID,
    });
    let n = from_annotations(a.as_object().unwrap());
    assert_eq!(n.container_name, None);
    assert_eq!(n.pod_name.as_deref(), Some("dns-7"));
    assert_eq!(n.pod_namespace.as_deref(), Some("kube-system"));
}

/// The file kubelet 1.2x writes (`managedHostsFileContent`), with a hostAlias appended.
const ETC_HOSTS: &str = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n10.244.1.7\tweb-0.nginx.default.svc.cluster.local\tweb-0\n\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\n";

#[test]
fn kubelet_pod_dir_gives_name_namespace_and_a_single_container() {
    assert_eq!(hosts_hostname(ETC_HOSTS).as_deref(), Some("web-0"));
    assert_eq!(
        hosts_hostname(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n10.0.0.5\tapi-5d9\n"
        )
        .as_deref(),
        Some("api-5d9")
    );
    assert_eq!(hosts_hostname("127.0.0.1 localhost\n"), None);
    let d = Dir::new("kubelet");
    let pod = format!("kubelet/pods/{UID}");
    d.write(&format!("{pod}/etc-hosts"), ETC_HOSTS);
    d.write(
        &format!("{pod}/volumes/kubernetes.io~projected/kube-api-access-x7k2p/namespace"),
        "shop\n",
    );
    d.write(&format!("{pod}/containers/nginx/8f3a1b2c"), "");
    let r = roots(&d);
    let n = lookup(&r, Some("containerd"), Some(ID), Some(UID));
    assert_eq!(n.pod_name.as_deref(), Some("web-0"));
    assert_eq!(n.pod_namespace.as_deref(), Some("shop"));
    assert_eq!(n.container_name.as_deref(), Some("nginx"));
    // Two containers: which one holds the namespace is not known from the directory alone.
    d.write(&format!("{pod}/containers/sidecar/1"), "");
    assert_eq!(from_kubelet(&r.kubelet, UID).container_name, None);
    // No kubelet directory: only the uid the cgroup path gave.
    let other = "11111111-2222-3333-4444-555555555555";
    let n = lookup(&r, None, None, Some(other));
    assert_eq!((n.pod_uid.as_deref(), n.pod_name), (Some(other), None));
}
