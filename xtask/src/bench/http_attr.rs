//! The `http` benchmark's attribution pass: BPF run counts and times of `guardian run
//! --http`'s programs per phase, and the two tables made from them.
use serde_json::{json, Value};

use super::http_sys::{by_group, group, Snapshot, GROUPS};
use super::report::Table;

/// BPF run counts and times of `guardian run --http`'s programs, per phase.
#[derive(Default)]
pub struct Attribution {
    /// (phase, what one unit is, units, per-group delta).
    pub rows: Vec<(String, f64, Snapshot)>,
    pub raw: Vec<Value>,
}

impl Attribution {
    pub fn push(&mut self, phase: &str, units: f64, d: &Snapshot) {
        let programs: serde_json::Map<String, Value> = d
            .iter()
            .map(|(p, (n, t))| (p.clone(), json!({"runs": n, "run_time_ns": t})))
            .collect();
        self.raw
            .push(json!({"phase": phase, "units": units, "programs": programs}));
        self.rows.push((phase.to_string(), units, d.clone()));
    }
}

/// "Where it goes" by program group per phase, and per program for the keep-alive workloads.
pub fn attribution_tables(a: &Attribution) -> (Table, Table) {
    let mut attr = Table::new(
        "Where it goes: guardian run --http once more, with the kernel's BPF statistics on \
         (BPF_ENABLE_STATS): program runs and ns inside the daemon's programs per unit, by \
         group (system-wide: the machine's other processes count too)",
        &[
            "phase",
            &format!("{} runs / ns", GROUPS[0]),
            &format!("{} runs / ns", GROUPS[1]),
            &format!("{} runs / ns", GROUPS[2]),
            &format!("{} runs / ns", GROUPS[3]),
            &format!("{} runs / ns", GROUPS[4]),
        ],
    );
    for (phase, units, d) in &a.rows {
        let d = by_group(d);
        let mut row = vec![phase.clone()];
        for g in GROUPS {
            let (n, t) = d.get(g).copied().unwrap_or_default();
            let u = units.max(1.0);
            row.push(format!("{:.2} / {:.0}", n as f64 / u, t as f64 / u));
        }
        attr.row(&row);
    }
    let mut progs = Table::new(
        "The same pass, per program of --http, keep-alive workloads: runs per request and ns \
         per run (with the statistics' own two clock reads per run)",
        &[
            "program",
            "plaintext: runs/request",
            "plaintext: ns/run",
            "TLS: runs/request",
            "TLS: ns/run",
        ],
    );
    if let (Some(p), Some(t)) = (a.rows.get(1), a.rows.get(2)) {
        let mut names: Vec<&String> = p.2.keys().chain(t.2.keys()).collect();
        names.sort();
        names.dedup();
        let ran = |n: &String| [p, t].iter().any(|r| r.2.get(n).is_some_and(|x| x.0 > 0));
        for name in names
            .into_iter()
            .filter(|n| group(n) != GROUPS[2] && ran(n))
        {
            let mut row = vec![format!("`{name}`")];
            for (_, units, d) in [p, t] {
                let (n, ns) = d.get(name).copied().unwrap_or_default();
                row.push(format!("{:.2}", n as f64 / units.max(1.0)));
                row.push(if n > 0 {
                    format!("{:.0}", ns as f64 / n as f64)
                } else {
                    "–".into()
                });
            }
            progs.row(&row);
        }
    }
    (attr, progs)
}
