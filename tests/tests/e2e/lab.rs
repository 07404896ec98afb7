//! `guardian-lab` end to end (`$GUARDIAN_LAB_BIN`, running the daemon `$GUARDIAN_BIN`): three
//! fast scenarios (one with the lab's eBPF loss injector), one run each. The command exits 0,
//! its JSON
//! has every run with detection and heal numbers, its SVG is XML naming the faults, and nothing
//! is left behind: no `glab-` namespace, no lab eBPF program. And the daemon binary carries none
//! of the lab: no injector program, no lab namespace prefix, no progress bar or chart crate.
use std::process::Command;

use guardian_tests::*;

const SCENARIOS: [&str; 3] = ["link_down", "route_lost", "connect_timeout_cascade"];

/// Names of the lab's eBPF programs currently loaded (`bpftool prog show`).
fn lab_programs() -> Vec<String> {
    let out = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .expect("run bpftool");
    assert!(out.status.success(), "bpftool prog show: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "name").nth(1))
        .filter(|n| n.starts_with("glab_"))
        .map(str::to_owned)
        .collect()
}

fn lab_namespaces() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("glab-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn lab_runs_three_scenarios_and_leaves_nothing_behind() {
    require_root();
    let dir = TempDir::new("lab");
    let json = dir.path().join("lab.json");
    let svg = dir.path().join("mttr.svg");
    let out = Command::new(guardian_lab_bin())
        .env("GUARDIAN_BIN", guardian_bin())
        .args(SCENARIOS)
        .args(["--runs", "1", "--json"])
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .expect("run guardian-lab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "guardian-lab exited {}", out.status);
    for s in SCENARIOS {
        assert!(
            stdout.lines().any(|l| l.starts_with(s)),
            "no table line for {s}"
        );
    }

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("read the JSON")).unwrap();
    let results = doc["results"].as_array().expect("results");
    assert_eq!(results.len(), SCENARIOS.len(), "{doc}");
    for s in SCENARIOS {
        let r = results
            .iter()
            .find(|r| r["scenario"] == s)
            .unwrap_or_else(|| panic!("no run of {s}: {doc}"));
        let det = r["detection_ms"].as_f64().unwrap_or_else(|| panic!("{r}"));
        let heal = r["heal_ms"].as_f64().unwrap_or_else(|| panic!("{r}"));
        assert!((0.0..5000.0).contains(&det), "{r}");
        assert!((0.0..5000.0).contains(&heal), "{r}");
        assert_eq!(r["healed"], true, "{r}");
        assert_eq!(r["cleared"], true, "{r}");
        assert_eq!(r["error"], serde_json::Value::Null, "{r}");
    }

    let text = std::fs::read_to_string(&svg).expect("read the SVG");
    let xml = roxmltree::Document::parse(&text).expect("the SVG is well-formed XML");
    assert_eq!(xml.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = xml.descendants().filter_map(|n| n.text()).collect();
    for s in SCENARIOS {
        assert!(texts.iter().any(|t| t.contains(s)), "{s} not in the chart");
    }

    assert_eq!(
        lab_namespaces(),
        Vec::<String>::new(),
        "lab namespaces left"
    );
    assert_eq!(
        lab_programs(),
        Vec::<String>::new(),
        "lab eBPF programs left"
    );
}

#[test]
fn an_unknown_scenario_is_a_usage_error() {
    require_root();
    let out = Command::new(guardian_lab_bin())
        .env("GUARDIAN_BIN", guardian_bin())
        .arg("no_such_fault")
        .output()
        .expect("run guardian-lab");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no_such_fault"), "{err}");
}

/// What only the lab's code and its eBPF object contain: the injectors' program names
/// (`glab_loss`, `glab_icmp_drop`, `glab_delay`, ...), the lab's namespace prefix, the crates of
/// its progress bar and chart.
const LAB_ONLY: [&str; 4] = ["glab_", "glab-", "indicatif", "plotters"];

#[test]
fn the_daemon_binary_carries_no_lab_code() {
    let bin = guardian_bin();
    let bytes = std::fs::read(&bin).unwrap_or_else(|e| panic!("read {}: {e}", bin.display()));
    let found: Vec<&str> = LAB_ONLY
        .into_iter()
        .filter(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
        .collect();
    assert_eq!(
        found,
        Vec::<&str>::new(),
        "{} contains lab code (`strings {} | grep glab_`)",
        bin.display(),
        bin.display()
    );
    // The lab binary does have them: the search finds what is there.
    let lab = std::fs::read(guardian_lab_bin()).expect("read the lab binary");
    assert!(
        lab.windows(9).any(|w| w == b"glab_loss"),
        "no glab_loss in guardian-lab"
    );
}
