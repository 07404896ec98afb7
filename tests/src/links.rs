//! What the kernel says a daemon holds: its BPF links, read from `/proc/PID/fdinfo`, and a way
//! to start it where no cgroup v2 is mounted (so that its cgroup programs cannot attach).
use std::path::{Path, PathBuf};

/// One BPF link of a process, as the kernel describes it in the link fd's fdinfo.
#[derive(Debug, Clone, Default)]
pub struct Link {
    /// `perf`, `raw_tracepoint` (also a BTF tracepoint), `tracing`, `cgroup`...
    pub kind: String,
    /// The tracepoint's name (`perf` and `raw_tracepoint` links).
    pub tp_name: Option<String>,
    /// The attach type number (`cgroup` links: 0 ingress, 1 egress, 8 bind4...).
    pub attach_type: Option<u32>,
}

/// The fdinfo text of every descriptor of `pid`; None when there is no such process.
pub fn fdinfos(pid: u32) -> Option<Vec<String>> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).ok()?;
    Some(
        dir.flatten()
            .filter_map(|f| std::fs::read_to_string(f.path()).ok())
            .collect(),
    )
}

/// The value of `key:` in one fdinfo text.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// Every BPF link `pid` holds.
pub fn of(pid: u32) -> Vec<Link> {
    fdinfos(pid)
        .expect("fdinfo")
        .iter()
        .filter_map(|text| {
            Some(Link {
                kind: field(text, "link_type")?.to_string(),
                tp_name: field(text, "tp_name").map(str::to_string),
                attach_type: field(text, "attach_type").and_then(|v| v.parse().ok()),
            })
        })
        .collect()
}

/// The names of the tracepoints among `links` (BTF tracepoints are `raw_tracepoint` links;
/// a `perf` link without a tracepoint name is a uprobe, and is left out).
pub fn tracepoints(links: &[Link]) -> Vec<String> {
    links
        .iter()
        .filter_map(|l| match l.kind.as_str() {
            "perf" => l.tp_name.clone(),
            "raw_tracepoint" | "tracing" => Some(l.tp_name.clone().unwrap_or_else(|| "?".into())),
            _ => None,
        })
        .collect()
}

/// A script in `dir` that runs guardian in a mount namespace of its own with every cgroup2
/// mount unmounted, the way a host or container with only cgroup v1 looks: guardian's cgroup
/// programs cannot attach there.
pub fn without_cgroup2(dir: &Path, guardian: &Path) -> PathBuf {
    let wrapper = dir.join("guardian-without-cgroup2");
    let script = format!(
        "#!/bin/sh\nfor m in $(awk '$9 == \"cgroup2\" {{print $5}}' /proc/self/mountinfo); do \
         umount -l \"$m\" || exit 1; done\nexec {} \"$@\"\n",
        guardian.display()
    );
    let run = dir.join("run-without-cgroup2");
    let outer = format!(
        "#!/bin/sh\nexec unshare --mount --propagation private {} \"$@\"\n",
        wrapper.display()
    );
    for (path, text) in [(&wrapper, script), (&run, outer)] {
        std::fs::write(path, text).expect("script");
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    run
}

/// The kernel's `recursion_misses` of every BPF program `pid` holds that has any, as
/// `name (id): N` (names from bpftool), or a line saying there are none: for failure messages,
/// since a run the kernel skipped is an event the daemon never saw.
pub fn recursion_misses(pid: u32) -> String {
    let Some(infos) = fdinfos(pid) else {
        return format!("(no /proc/{pid}/fdinfo)");
    };
    let (mut progs, mut missed) = (0, Vec::new());
    for text in infos.iter().filter(|t| field(t, "link_type").is_none()) {
        let num = |k: &str| field(text, k).and_then(|v| v.parse::<u64>().ok());
        if let (Some(id), Some(n)) = (num("prog_id"), num("recursion_misses")) {
            progs += 1;
            if n > 0 {
                missed.push((id, n));
            }
        }
    }
    if missed.is_empty() {
        return format!("no recursion misses in the daemon's {progs} programs");
    }
    let names: serde_json::Value = std::process::Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or_default();
    let name = |id: u64| {
        names
            .as_array()
            .and_then(|a| a.iter().find(|p| p["id"].as_u64() == Some(id)))
            .and_then(|p| p["name"].as_str())
            .unwrap_or("?")
            .to_string()
    };
    let list: Vec<String> = missed
        .iter()
        .map(|(id, n)| format!("{} ({id}): {n}", name(*id)))
        .collect();
    format!("recursion misses: {}", list.join(", "))
}
