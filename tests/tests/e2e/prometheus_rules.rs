//! The shipped Prometheus rules (docs/deploy/prometheus-rules.yaml) pass the real promtool:
//! `promtool check rules` and their unit tests (`promtool test rules`, including the fleet
//! rule that raises one destination alert for two troubled nodes, not one per node). The
//! three-node check against a live Prometheus is `cargo xtask fleet`.
use std::process::Command;

use guardian_tests::*;

fn promtool(args: &[&str]) -> String {
    let dir = workspace_root().join("docs/deploy");
    let o = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("promtool (Debian package prometheus, installed by cargo xtask setup)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_shipped_rules_check_and_pass_their_unit_tests() {
    let out = promtool(&["check", "rules", "prometheus-rules.yaml"]);
    assert!(out.contains("SUCCESS"), "{out}");
    let out = promtool(&["test", "rules", "prometheus-rules.test.yaml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_dashboard_queries_metrics_guardian_exports() {
    let text = std::fs::read_to_string(workspace_root().join("docs/deploy/grafana-dashboard.json"))
        .expect("the dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let exprs: Vec<&str> = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 6, "{exprs:?}");
    let rules = std::fs::read_to_string(workspace_root().join("docs/deploy/prometheus-rules.yaml"))
        .unwrap();
    // Every metric a panel names is one guardian exports or a recording rule of ours.
    for e in &exprs {
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
            if word.starts_with("guardian:") {
                assert!(rules.contains(&format!("record: {word}")), "{word} in {e}");
            }
        }
    }
    for needed in [
        "guardian_open_incidents",
        "guardian_heal_duration_seconds_bucket",
        "guardian_loss_events_total",
        "guardian:dst_troubled_nodes:count",
        "process_resident_memory_bytes",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needed)),
            "no panel uses {needed}"
        );
    }
}
