//! Statistics over runs, the table printed per fault, and the JSON document of every run.
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::runner::RunResult;
use super::scenario::Spec;

/// Median, 95th percentile and worst of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub median: f64,
    pub p95: f64,
    pub worst: f64,
    pub n: usize,
}

impl Stats {
    /// `None` for an empty sample. Median: mean of the two middle values for an even count;
    /// p95: nearest rank (the smallest value with at least 95 % of the sample at or below it).
    pub fn of(sample: &[f64]) -> Option<Stats> {
        let mut v: Vec<f64> = sample.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
        Some(Stats {
            median,
            p95: v[rank - 1],
            worst: v[n - 1],
            n,
        })
    }
}

/// One fault's line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub fault: &'static str,
    pub remedy: Option<&'static str>,
    pub runs: usize,
    pub detection: Option<Stats>,
    pub heal: Option<Stats>,
    /// Injection → verified (detection + heal) per run that healed: the MTTR.
    pub mttr: Option<Stats>,
    pub healed: usize,
    pub detected: usize,
    pub rollbacks: u32,
    pub failed: usize,
}

pub fn summarize(specs: &[&'static Spec], results: &[RunResult]) -> Vec<Summary> {
    specs
        .iter()
        .map(|s| {
            let rs: Vec<&RunResult> = results.iter().filter(|r| r.scenario == s.fault).collect();
            let det: Vec<f64> = rs.iter().filter_map(|r| r.detection_ms).collect();
            let heal: Vec<f64> = rs.iter().filter_map(|r| r.heal_ms).collect();
            let mttr: Vec<f64> = rs
                .iter()
                .filter_map(|r| Some(r.detection_ms? + r.heal_ms?))
                .collect();
            Summary {
                fault: s.fault,
                remedy: s.remedy,
                runs: rs.len(),
                detection: Stats::of(&det),
                heal: Stats::of(&heal),
                mttr: Stats::of(&mttr),
                healed: rs.iter().filter(|r| r.healed).count(),
                detected: det.len(),
                rollbacks: rs.iter().map(|r| r.rollbacks).sum(),
                failed: rs.iter().filter(|r| !r.ok()).count(),
            }
        })
        .collect()
}

fn ms(s: Option<Stats>, f: fn(&Stats) -> f64) -> String {
    s.map_or("-".into(), |s| format!("{:.1}", f(&s)))
}

/// The table: one line per fault, times in milliseconds.
pub fn table(rows: &[Summary]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<26} {:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>6}",
        "fault",
        "remedy",
        "det med",
        "det p95",
        "det max",
        "heal med",
        "heal p95",
        "heal max",
        "healed",
        "rollbacks",
        "failed"
    );
    for r in rows {
        let healed = match r.remedy {
            Some(_) => format!("{}/{}", r.healed, r.runs),
            None => format!("({}/{})", r.detected, r.runs),
        };
        let _ = writeln!(
            out,
            "{:<26} {:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>6}",
            r.fault,
            r.remedy.unwrap_or("-"),
            ms(r.detection, |s| s.median),
            ms(r.detection, |s| s.p95),
            ms(r.detection, |s| s.worst),
            ms(r.heal, |s| s.median),
            ms(r.heal, |s| s.p95),
            ms(r.heal, |s| s.worst),
            healed,
            r.rollbacks,
            r.failed
        );
    }
    out.push_str("times in ms; det: fault condition holds -> opened; heal: opened -> verified; (n/m): detection-only, detected n of m; failed: runs not detected, healed, cleared or in the expected end state\n");
    out
}

/// The raw results: every run, plus the summary and how the lab was run.
pub fn json(results: &[RunResult], summary: &[Summary], runs: u32, wall: Duration) -> Value {
    json!({
        "schema": 1,
        "guardian": env!("CARGO_PKG_VERSION"),
        "runs_per_scenario": runs,
        "wall_s": (wall.as_secs_f64() * 1000.0).round() / 1000.0,
        "results": results,
        "summary": summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(scenario: &'static str, det: f64, heal: Option<f64>, rollbacks: u32) -> RunResult {
        RunResult {
            scenario,
            remedy: Some("r"),
            run: 1,
            detection_ms: Some(det),
            heal_ms: heal,
            healed: heal.is_some(),
            rollbacks,
            cleared: true,
            error: None,
        }
    }

    #[test]
    fn stats_median_p95_worst() {
        assert_eq!(Stats::of(&[]), None);
        let s = Stats::of(&[3.0]).unwrap();
        assert_eq!((s.median, s.p95, s.worst, s.n), (3.0, 3.0, 3.0, 1));
        let s = Stats::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.p95, s.worst), (2.5, 4.0, 4.0));
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Stats::of(&v).unwrap();
        assert_eq!((s.median, s.p95, s.worst), (50.5, 95.0, 100.0));
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(Stats::of(&v).unwrap().p95, 19.0);
        assert_eq!(Stats::of(&[f64::NAN, 2.0]).unwrap().n, 1);
    }

    fn spec(fault: &'static str) -> &'static Spec {
        crate::scenario::find(fault).unwrap()
    }

    #[test]
    fn summary_table_and_json() {
        let results = vec![
            run("link_down", 1.0, Some(10.0), 0),
            run("link_down", 3.0, Some(30.0), 1),
            run("link_down", 2.0, None, 0),
        ];
        let sum = summarize(&[spec("link_down"), spec("route_lost")], &results);
        assert_eq!(sum.len(), 2);
        let ld = &sum[0];
        assert_eq!((ld.runs, ld.healed, ld.rollbacks, ld.failed), (3, 2, 1, 1));
        assert_eq!(ld.detection.unwrap().median, 2.0);
        assert_eq!(ld.heal.unwrap().median, 20.0);
        assert_eq!(ld.mttr.unwrap().worst, 33.0);
        assert_eq!(sum[1].runs, 0);
        let t = table(&sum);
        let header: Vec<&str> = t.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header.last(), Some(&"failed"));
        let line = t.lines().find(|l| l.starts_with("link_down")).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "link_down",
                "link_up",
                "2.0",
                "3.0",
                "3.0",
                "20.0",
                "30.0",
                "30.0",
                "2/3",
                "1",
                "1"
            ]
        );
        assert!(t
            .lines()
            .any(|l| l.starts_with("route_lost") && l.contains(" - ")));
        let j = json(&results, &sum, 3, Duration::from_millis(1500));
        assert_eq!(j["results"].as_array().unwrap().len(), 3);
        assert_eq!(j["results"][1]["detection_ms"], 3.0);
        assert_eq!(j["results"][1]["heal_ms"], 30.0);
        assert_eq!(j["results"][2]["heal_ms"], Value::Null);
        assert_eq!(j["summary"][0]["heal"]["p95"], 30.0);
        assert_eq!(j["wall_s"], 1.5);
    }
}
