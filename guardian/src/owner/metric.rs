//! `guardian_open_incidents_by_owner{kind,namespace,name}`: open incidents by the owner of
//! their namespace, with a bounded label set. The engine hands over the namespaces of its open
//! incidents ([`set_open`]); the metrics endpoint renders the family at scrape time ([`render`])
//! with the owners cache the daemon installed ([`install`]), so nothing is resolved on the
//! engine's path. At most [`CAP`] owners get their own series (the most incidents first); the
//! rest are summed under `kind="other"`. An owner with no open incident has no series.
//!
//! Rendered here rather than through the `metrics` facade because that recorder never forgets a
//! label set: every pod that ever had an incident would stay a series for the daemon's life.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use super::{Kind, Owner, Owners};

pub const NAME: &str = "guardian_open_incidents_by_owner";
/// Owners with a series of their own; the rest go to `kind="other"`.
pub const CAP: usize = 32;

static OWNERS: OnceLock<Arc<Owners>> = OnceLock::new();
static OPEN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// The owners cache the renderer looks namespaces up in (once, at start).
pub fn install(owners: Arc<Owners>) {
    let _ = OWNERS.set(owners);
}

/// The namespaces of the incidents open now, one entry per incident.
pub fn set_open(netns: impl IntoIterator<Item = u32>) {
    let v: Vec<u32> = netns.into_iter().collect();
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    if *open != v {
        *open = v;
    }
}

/// The labels of one owner: a pod by namespace and name, a container by name (or short id),
/// a unit by name, the host, or `unknown`.
pub fn labels(o: Option<&Owner>) -> (&'static str, String, String) {
    let Some(o) = o else {
        return ("unknown", String::new(), String::new());
    };
    let short = || {
        o.container_id
            .as_deref()
            .map(|i| i[..12.min(i.len())].to_owned())
    };
    match o.kind {
        Kind::Host => ("host", String::new(), String::new()),
        Kind::Systemd => ("systemd", String::new(), o.unit.clone().unwrap_or_default()),
        Kind::Container => (
            "container",
            String::new(),
            o.container_name.clone().or_else(short).unwrap_or_default(),
        ),
        Kind::Pod => (
            "pod",
            o.pod_namespace.clone().unwrap_or_default(),
            o.pod_name
                .clone()
                .or_else(|| o.pod_uid.clone())
                .unwrap_or_default(),
        ),
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The family's text for counts per label set: the [`CAP`] largest, then `other`.
pub fn render_counts(counts: BTreeMap<(&'static str, String, String), u64>, out: &mut String) {
    let mut v: Vec<_> = counts.into_iter().collect();
    // Most incidents first; ties in label order, so the cut is stable scrape after scrape.
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let other: u64 = v.iter().skip(CAP).map(|(_, n)| n).sum();
    let _ = writeln!(
        out,
        "# HELP {NAME} Incidents open now, by the owner of their network namespace (pod, container, systemd unit, host; the {CAP} with most incidents, the rest under kind=\"other\").\n# TYPE {NAME} gauge"
    );
    for ((kind, ns, name), n) in v.iter().take(CAP) {
        let _ = writeln!(
            out,
            "{NAME}{{kind=\"{kind}\",namespace=\"{}\",name=\"{}\"}} {n}",
            escape(ns),
            escape(name)
        );
    }
    if other > 0 {
        let _ = writeln!(
            out,
            "{NAME}{{kind=\"other\",namespace=\"\",name=\"\"}} {other}"
        );
    }
    out.push('\n');
}

/// Appends the family to a text exposition (nothing when no cache was installed).
pub fn render(out: &mut String) {
    let Some(owners) = OWNERS.get() else {
        return;
    };
    let open = OPEN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut counts = BTreeMap::new();
    for ns in open {
        *counts.entry(labels(owners.get(ns).as_deref())).or_default() += 1;
    }
    render_counts(counts, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str) -> Owner {
        Owner {
            pod_namespace: Some(ns.into()),
            pod_name: Some(name.into()),
            ..Owner::of_kind(Kind::Pod)
        }
    }

    #[test]
    fn labels_per_kind() {
        assert_eq!(labels(None).0, "unknown");
        assert_eq!(
            labels(Some(&pod("shop", "web-0"))),
            ("pod", "shop".into(), "web-0".into())
        );
        let c = Owner {
            container_id: Some(
                "51fa41f071238a0cb2d7a2eb7e32b0a9b6eb0f19f5ea89e5feba8c9a31819f83".into(),
            ),
            ..Owner::of_kind(Kind::Container)
        };
        assert_eq!(
            labels(Some(&c)),
            ("container", String::new(), "51fa41f07123".into())
        );
        assert_eq!(labels(Some(&Owner::host())).0, "host");
    }

    #[test]
    fn at_most_cap_series_then_other() {
        let mut counts = BTreeMap::new();
        for i in 0..(CAP as u64 + 5) {
            // Pod 0 has the most incidents, the last five one each.
            let n = if i == 0 { 9 } else { 1 };
            counts.insert(labels(Some(&pod("shop", &format!("web-{i}")))), n);
        }
        let mut out = String::new();
        render_counts(counts, &mut out);
        let series: Vec<&str> = out.lines().filter(|l| l.starts_with(NAME)).collect();
        assert_eq!(series.len(), CAP + 1, "{out}");
        assert!(series.contains(
            &"guardian_open_incidents_by_owner{kind=\"pod\",namespace=\"shop\",name=\"web-0\"} 9"
        ));
        assert_eq!(
            *series.last().unwrap(),
            "guardian_open_incidents_by_owner{kind=\"other\",namespace=\"\",name=\"\"} 5"
        );
        let mut out = String::new();
        render_counts(BTreeMap::new(), &mut out);
        assert_eq!(out.lines().filter(|l| l.starts_with(NAME)).count(), 0);
        assert!(out.contains("# TYPE guardian_open_incidents_by_owner gauge"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
